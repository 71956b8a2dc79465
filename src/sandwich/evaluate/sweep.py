"""RD sweeps with the real codec: a pre/post pair over the codec's qualities, metrics per image, averaged.

Rates are bits per source pixel from the real codec's payload bytes; PSNR (dB, 8-bit peak, RGB) and
MS-SSIM are averaged over images, as CompressAI's evaluation does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from sandwich.codecs.stage import JpegStage
from sandwich.evaluate.bd import pareto_front
from sandwich.metrics.ms_ssim import ms_ssim
from sandwich.metrics.psnr import mse, psnr
from sandwich.sample_format import to_array


@dataclass
class RdPoint:
    """One quality of one method, averaged over the images.

    ``ms_ssim`` is None when it was not measured (it costs more than the rest; see :func:`sweep`).
    ``image_bpp`` is each image's rate; ``examples`` the (bottleneck, output) uint8 RGB pair of the
    first images (``(H, W)`` or ``(H, W, 3)`` uint8), for figures.
    """

    variant: str
    quality: int
    bpp: float
    psnr: float
    ms_ssim: float | None
    image_bpp: list[float]
    examples: list[tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=list)


@torch.no_grad()
def sweep(
    pre: nn.Module,
    post: nn.Module,
    codec: JpegStage,
    images: Sequence[Tensor],
    qualities: Sequence[int],
    variant: str,
    with_ms_ssim: bool = True,
    keep: int = 0,
    progress: tqdm | None = None,
) -> list[RdPoint]:
    """Code every ``(1, 3, H, W)`` image on [0, 1] at each quality; one averaged :class:`RdPoint` per quality.

    The processors get the level of each quality (:meth:`~sandwich.codecs.stage.JpegStage.real_level`;
    unconditioned ones ignore it). ``keep``: how many of the first images keep their bottleneck and
    output as examples.
    """
    points = []
    for quality in qualities:
        level = torch.tensor([codec.real_level(quality)])
        bpp, psnr_db, ssim, examples = [], [], [], []
        for i, image in enumerate(images):
            bottleneck = pre(image, level.to(image.device))
            decoded, bits = codec.code_real(bottleneck, quality)
            recon = post(decoded, level.to(image.device)).clamp(0, 1)
            bpp.append(float(bits[0]) / (image.shape[-2] * image.shape[-1]))
            psnr_db.append(float(psnr(mse(image, recon))[0]))
            if with_ms_ssim:
                ssim.append(ms_ssim(image, recon))
            if i < keep:
                examples.append((to_array(bottleneck[0]), to_array(recon[0])))
            if progress is not None:
                progress.update()
        mean_ssim = float(np.mean(ssim)) if with_ms_ssim else None
        points.append(RdPoint(variant, quality, float(np.mean(bpp)), float(np.mean(psnr_db)), mean_ssim, bpp, examples))
    return points


def front(points: list[RdPoint]) -> list[RdPoint]:
    """The points on the Pareto front (lower bpp, higher PSNR; :func:`~sandwich.evaluate.bd.pareto_front`), by bpp."""
    kept = set(zip(*pareto_front([p.bpp for p in points], [p.psnr for p in points]), strict=True))
    chosen = {(p.bpp, p.psnr): p for p in points if (p.bpp, p.psnr) in kept}
    return [chosen[key] for key in sorted(chosen)]


def results(points: list[RdPoint]) -> dict[str, list]:
    """CompressAI ``results`` lists for ``points`` (with the codec quality of each point)."""
    return {
        "quality": [p.quality for p in points],
        "bpp": [p.bpp for p in points],
        "psnr-rgb": [p.psnr for p in points],
        "ms-ssim-rgb": [p.ms_ssim for p in points],
    }

"""RD sweeps with the real codec: a sandwich (or one baseline variant) over the codec's knob values.

Rates are bits per source pixel from the real codec's payload bytes; PSNR (dB, the source's bit depth,
RGB), PSNR-Y (of the BT.601 luma) and MS-SSIM are averaged over images, as CompressAI's evaluation does. Quality metrics by name
(:data:`METRICS`) give the Pareto fronts and BD figures of a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from sandwich.evaluate.bd import pareto_front
from sandwich.metrics.ms_ssim import ms_ssim, ms_ssim_db
from sandwich.metrics.psnr import luma_mse, mse, psnr
from sandwich.sample_format import to_array
from sandwich.scenarios.base import Baseline, SandwichModule

# CompressAI results key -> how a report names it; every one rises with quality and is in dB.
METRICS = {"psnr-rgb": "PSNR", "psnr-y": "PSNR-Y", "ms-ssim-db": "MS-SSIM (dB)"}


@dataclass
class RdPoint:
    """One knob value (quality or QP) of one method, averaged over the images.

    ``image_bpp`` is each image's rate; ``examples`` the (bottleneck, output) pair of the first images
    (``(H, W)`` or ``(H, W, 3)`` arrays), for figures.
    """

    variant: str
    knob: int
    bpp: float
    psnr: float
    psnr_y: float
    ms_ssim: float
    image_bpp: list[float]
    examples: list[tuple[np.ndarray, np.ndarray]] = field(repr=False, default_factory=list)

    def value(self, metric: str) -> float:
        """The point's quality in ``metric`` (a key of :data:`METRICS`)."""
        if metric == "ms-ssim-db":
            return float(ms_ssim_db(self.ms_ssim))
        return {"psnr-rgb": self.psnr, "psnr-y": self.psnr_y}[metric]


@torch.no_grad()
def sweep(
    module: SandwichModule,
    images: Sequence[Tensor],
    knobs: Sequence[int],
    variant: str,
    baseline: Baseline | None = None,
    keep: int = 0,
    progress: tqdm | None = None,
) -> list[RdPoint]:
    """Code every ``(1, C, H, W)`` image on [0, 1] at each knob value; one averaged :class:`RdPoint` each.

    ``baseline`` swaps in a baseline variant's (pre, post, adapter) (:meth:`SandwichModule.code_real`); ``keep``:
    how many of the first images keep their bottleneck and output as examples.
    """
    points = []
    for knob in knobs:
        bpp, psnr_db, psnr_y, ssim, examples = [], [], [], [], []
        for i, image in enumerate(images):
            out = module.code_real(image, knob, baseline)
            recon = out.recon.clamp(0, 1)
            bpp.append(float(out.bpp(image)[0]))
            psnr_db.append(float(psnr(mse(image, recon, module.bit_depth), module.bit_depth)[0]))
            psnr_y.append(float(psnr(luma_mse(image, recon, module.bit_depth), module.bit_depth)[0]))
            ssim.append(float(ms_ssim(image, recon)[0]))
            if i < keep:
                examples.append((to_array(out.bottleneck[0, :3].clamp(0, 1)), to_array(recon[0])))
            if progress is not None:
                progress.update()
        points.append(RdPoint(variant, knob, float(np.mean(bpp)), float(np.mean(psnr_db)), float(np.mean(psnr_y)), float(np.mean(ssim)), bpp, examples))
    return points


def front(points: list[RdPoint], metric: str = "psnr-rgb") -> list[RdPoint]:
    """The points on the Pareto front in (bpp, ``metric``) (:func:`~sandwich.evaluate.bd.pareto_front`), by bpp."""
    kept = set(zip(*pareto_front([p.bpp for p in points], [p.value(metric) for p in points]), strict=True))
    chosen = {(p.bpp, p.value(metric)): p for p in points if (p.bpp, p.value(metric)) in kept}
    return [chosen[key] for key in sorted(chosen)]


def curve(points: list[RdPoint], metric: str = "psnr-rgb") -> tuple[list[float], list[float]]:
    """(bpp, ``metric``) lists of ``points``."""
    return [p.bpp for p in points], [p.value(metric) for p in points]


def from_results(results: dict[str, list], knob: str, variant: str) -> list[RdPoint]:
    """The points of a CompressAI ``results`` dict written by :func:`results` (no per-image rates or examples).

    A curve without MS-SSIM or PSNR-Y (e.g. a published PSNR-only anchor) gets NaN there: :func:`has_metric` says so.
    """
    n = len(results["bpp"])
    knobs = results.get(knob, list(range(n)))
    missing = [float("nan")] * n
    ssim = results.get("ms-ssim-rgb", results.get("ms-ssim", missing))
    return [
        RdPoint(variant, int(k), float(b), float(p), float(y), float(m), [])
        for k, b, p, m, y in zip(knobs, results["bpp"], results["psnr-rgb"], ssim, results.get("psnr-y", missing), strict=True)
    ]


def has_metric(points: list[RdPoint], metric: str) -> bool:
    """Whether every point has a finite value in ``metric``."""
    return all(np.isfinite(p.value(metric)) for p in points)


def results(points: list[RdPoint], knob: str = "quality") -> dict[str, list]:
    """CompressAI ``results`` lists for ``points``, with the codec's knob value of each point (``knob``: its name)."""
    return {
        knob: [p.knob for p in points],
        "bpp": [p.bpp for p in points],
        "psnr-rgb": [p.psnr for p in points],
        "psnr-y": [p.psnr_y for p in points],
        "ms-ssim-rgb": [p.ms_ssim for p in points],
        "ms-ssim-db": [p.value("ms-ssim-db") for p in points],
    }

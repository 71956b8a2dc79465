"""RD sweeps with the real codec: a sandwich (or one baseline variant) over the codec's knob values.

Rates are bits per source pixel from the real codec's payload bytes; PSNR (dB, the source's bit depth,
over all channels), PSNR-Y (of the BT.601 luma) and MS-SSIM are averaged over images, as CompressAI's evaluation does.
Every quality figure is measured on the output rounded to the source's bit depth: the image ``sandwich decode``
writes, not the post-processor's unrounded floats. Quality metrics by name
(:func:`quality_metrics`) give the Pareto fronts and BD figures of a report.

A source of more than three channels names its parts (``scenario.parts``, e.g. a stereo pair's ``left``
and ``right``, RGBA's ``rgb`` and ``alpha``): each part's PSNR is a metric of its own (``psnr-part-<part>``,
:func:`quality_metrics`), and PSNR-Y is that of the mean luma MSE of its three-channel parts. A source coded as several codec
pictures also has each picture's rate (``bpp-picture-<k>``, summing to ``bpp``).

A model whose config names ``perceptual_metrics`` (``lpips``: LPIPS-AlexNet, ``dists``: DISTS; see
:mod:`sandwich.metrics.perceptual`) is also measured in those, per image on the whole image: the raw
distance (``"lpips"``, lower is better) and, as a quality metric with fronts and BD figures, the rising
``-10 log10(distance)`` (``"lpips-db"``): a BD-rate "at equal LPIPS" is the rate saved at equal values of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from sandwich.evaluate.bd import pareto_front
from sandwich.errors import InputError
from sandwich.evaluate.metric_names import DB_SUFFIX, PART_PREFIX, REPORTED, metric_name
from sandwich.metrics.ms_ssim import ms_ssim, ms_ssim_db
from sandwich.metrics.perceptual import PERCEPTUAL_METRICS, distance_db
from sandwich.metrics.psnr import luma_mse, mse, psnr
from sandwich.sample_format import rounded, to_array
from sandwich.scenarios.base import Baseline, SandwichModule



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
    parts: dict[str, float] = field(default_factory=dict)
    picture_bpp: list[float] = field(default_factory=list)
    perceptual: dict[str, float] = field(default_factory=dict)

    def value(self, metric: str) -> float:
        """The point's quality in ``metric`` (a key of :func:`quality_metrics`)."""
        if metric == "ms-ssim-db":
            return float(ms_ssim_db(self.ms_ssim))
        if metric.endswith(DB_SUFFIX) and metric.removesuffix(DB_SUFFIX) in PERCEPTUAL_METRICS:
            return distance_db(self.perceptual.get(metric.removesuffix(DB_SUFFIX), float("nan")))
        if metric.startswith(PART_PREFIX):
            return self.parts.get(metric.removeprefix(PART_PREFIX), float("nan"))
        return {"psnr-rgb": self.psnr, "psnr-y": self.psnr_y}[metric]


PICTURE_PREFIX = "bpp-picture-"
"""Results key prefix of the rate of a source's k-th codec picture when it has several (``bpp-picture-0``); they sum to ``bpp``."""


def channel_parts(module: SandwichModule) -> dict[str, slice]:
    """The source's named channel ranges (``scenario.parts``: ``{name: [start, stop]}``); none for a plain source."""
    return module.spec.parts


def perceptual_metrics(module: SandwichModule) -> tuple[str, ...]:
    """The perceptual distances the model's config asks evaluation for (``perceptual_metrics``; none in configs before it)."""
    names = module.spec.perceptual_metrics
    for name in names:
        if name not in PERCEPTUAL_METRICS:
            raise InputError(f"perceptual_metrics: {name!r} not one of {', '.join(PERCEPTUAL_METRICS.names())}")
    return names


def quality_metrics(module: SandwichModule) -> dict[str, str]:
    """The reported metrics (:data:`~sandwich.evaluate.metric_names.REPORTED`) plus each channel part's PSNR
    and each perceptual distance in dB, by results key -> how a report names it."""
    keys = [*REPORTED, *(f"{PART_PREFIX}{name}" for name in channel_parts(module)), *(f"{name}{DB_SUFFIX}" for name in perceptual_metrics(module))]
    return {key: metric_name(key).name for key in keys}


def _luma_mse(image: Tensor, recon: Tensor, parts: dict[str, slice], bit_depth: int) -> Tensor:
    """Luma MSE ``(N,)``: of the whole image, or the mean over the three-channel parts of a multi-part source."""
    colour = [part for part in parts.values() if part.stop - part.start == 3]
    if not colour:
        return luma_mse(image, recon, bit_depth)
    return torch.stack([luma_mse(image[:, part], recon[:, part], bit_depth) for part in colour]).mean(0)


@torch.no_grad()
def sweep(
    module: SandwichModule,
    images: Sequence[Tensor],
    knobs: Sequence[int],
    variant: str,
    baseline: Baseline | None = None,
    keep: int = 0,
    progress: tqdm | None = None,
    perceptual: Sequence[str] | None = None,
) -> list[RdPoint]:
    """Code every ``(1, C, H, W)`` image on [0, 1] at each knob value; one averaged :class:`RdPoint` each.

    ``baseline`` swaps in a baseline variant's (pre, post, adapter) (:meth:`SandwichModule.code_real`); ``keep``:
    how many of the first images keep their bottleneck and output as examples; ``perceptual``: the perceptual
    distances to measure (default: the module's, :func:`perceptual_metrics`; a compared model gets the report's).
    """
    points, parts, depth = [], channel_parts(module), module.bit_depth
    distances = {name: PERCEPTUAL_METRICS.get(name) for name in (perceptual_metrics(module) if perceptual is None else perceptual)}
    for knob in knobs:
        bpp, psnr_db, psnr_y, ssim, examples, pictures = [], [], [], [], [], []
        part_psnr: dict[str, list[float]] = {name: [] for name in parts}
        distance_values: dict[str, list[float]] = {name: [] for name in distances}
        for i, image in enumerate(images):
            out = module.code_real(image, knob, baseline)
            recon = rounded(out.recon[0], depth)[None]  # the output as decoded files hold it: d-bit samples
            bpp.append(float(out.bpp(image)[0]))
            pictures.append(out.picture_bpp(image)[0].tolist())
            psnr_db.append(float(psnr(mse(image, recon, depth), depth)[0]))
            psnr_y.append(float(psnr(_luma_mse(image, recon, parts, depth), depth)[0]))
            ssim.append(float(ms_ssim(image, recon)[0]))
            for name, part in parts.items():
                part_psnr[name].append(float(psnr(mse(image[:, part], recon[:, part], depth), depth)[0]))
            for name, distance in distances.items():
                distance_values[name].append(float(distance(image, recon)[0]))
            if i < keep:
                examples.append((to_array(out.bottleneck[0].clamp(0, 1)), to_array(recon[0])))
            if progress is not None:
                progress.update()
        means = {name: float(np.mean(values)) for name, values in part_psnr.items()}
        picture_bpp = np.mean(pictures, axis=0).tolist() if len(pictures[0]) > 1 else []
        distance_means = {name: float(np.mean(values)) for name, values in distance_values.items()}
        points.append(RdPoint(
            variant, knob, float(np.mean(bpp)), float(np.mean(psnr_db)), float(np.mean(psnr_y)), float(np.mean(ssim)), bpp, examples, means, picture_bpp,
            distance_means,
        ))
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
    parts = {key.removeprefix(PART_PREFIX): values for key, values in results.items() if key.startswith(PART_PREFIX)}
    pictures = [results[f"{PICTURE_PREFIX}{k}"] for k in range(sum(key.startswith(PICTURE_PREFIX) for key in results))]
    distances = {name: results[name] for name in PERCEPTUAL_METRICS if name in results}
    return [
        RdPoint(
            variant, int(k), float(b), float(p), float(y), float(m), [],
            parts={name: float(values[i]) for name, values in parts.items()}, picture_bpp=[float(values[i]) for values in pictures],
            perceptual={name: float(values[i]) for name, values in distances.items()},
        )
        for i, (k, b, p, m, y) in enumerate(zip(knobs, results["bpp"], results["psnr-rgb"], ssim, results.get("psnr-y", missing), strict=True))
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
    } | {f"{PART_PREFIX}{name}": [p.parts[name] for p in points] for name in (points[0].parts if points else {})} | {
        key: [p.perceptual[name] if key == name else p.value(key) for p in points]
        for name in (points[0].perceptual if points else {}) for key in (name, f"{name}{DB_SUFFIX}")
    } | {
        f"{PICTURE_PREFIX}{k}": [p.picture_bpp[k] for p in points] for k in range(len(points[0].picture_bpp) if points else 0)
    }

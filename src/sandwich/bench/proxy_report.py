"""What ``sandwich bench proxy`` shares between codecs: the photos it measures a proxy on, the summary of
its rate errors (overall and per photo source) and of its decode, and the printed report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sandwich.bench.timing import print_table
from sandwich.fitting.rate import DEFOCUS_SIGMAS
from sandwich.data.images import defocus, list_images, read_image
from sandwich.data.samples import RATE_FIT_PHOTOS, RATE_HELD_OUT_PHOTOS, load_photos, source_of

DEFOCUSED = "~defocused"


def load_images(folder: Path | None) -> dict[str, np.ndarray]:
    """``{name: (H, W, 3) uint8}``: the folder's images (named ``images/FILE``), or every sample source
    with SPORCO's photos also defocused (``sporco~defocused/NAME``) at the strongest fit blur."""
    if folder is None:
        held_out = load_photos(RATE_HELD_OUT_PHOTOS)
        defocused = {f"{source_of(name)}{DEFOCUSED}/{name.split('/')[1]}": defocus(rgb, max(DEFOCUS_SIGMAS)) for name, rgb in held_out.items()}
        return load_photos(RATE_FIT_PHOTOS) | held_out | defocused
    return {f"images/{path.name}": read_image(path) for path in list_images(folder)}


def rate_by_source(names: list[str], errors: list[float]) -> dict[str, dict]:
    """Median and p90 |relative error| per photo source, and whether the source is in the rate model's fit set.

    ``names[i]`` is the image of ``errors[i]``.
    """
    fitted = {source_of(name) for name in RATE_FIT_PHOTOS}
    groups: dict[str, list[float]] = {}
    for name, error in zip(names, errors, strict=True):
        groups.setdefault(source_of(name), []).append(error)
    return {
        source: {
            "in_fit_set": source in fitted,
            "median_abs_rel_err": float(np.median(values)),
            "p90_abs_rel_err": float(np.quantile(values, 0.9)),
            "codings": len(values),
        }
        for source, values in groups.items()
    }


def error_summary(named_errors: list[tuple[str, float]], points: list[dict], recon_all: list[float]) -> tuple[dict[str, float], dict[str, dict]]:
    """The summary's error figures and the per-source rate errors, from every (image name, rate error) pair,
    the per-knob points (with ``recon_psnr_vs_real_db``) and every per-image recon PSNR."""
    errors = [error for _, error in named_errors]
    summary = {
        "rate_median_abs_rel_err": float(np.median(errors)),
        "rate_p90_abs_rel_err": float(np.quantile(errors, 0.9)),
        "recon_psnr_vs_real_db_min": min(p["recon_psnr_vs_real_db"] for p in points),
        "recon_psnr_vs_real_db_worst_image": float(min(recon_all)),
    }
    return summary, rate_by_source([name for name, _ in named_errors], errors)


def print_report(points: list[dict], columns: list[tuple[str, str, str]], by_source: dict[str, dict], summary: dict[str, float]) -> None:
    """Print the per-knob table (``columns`` of :func:`~sandwich.bench.timing.print_table`), the per-source
    rate errors and the summary."""
    print_table(points, columns)
    print_table(
        [{"source": source, "fit": "fitted" if v["in_fit_set"] else "held out", **v} for source, v in by_source.items()],
        [("source", "source", "s"), ("fit", "fit set", "s"), ("median_abs_rel_err", "rate median |err|", ".3f"),
         ("p90_abs_rel_err", "p90", ".3f"), ("codings", "codings", "d")],
    )
    for key, value in summary.items():
        print(f"{key:36s} {value:.4f}")

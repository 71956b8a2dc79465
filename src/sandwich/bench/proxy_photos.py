"""The photos ``sandwich bench proxy`` measures a proxy on, and its per-source summary of rate errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sandwich.codecs.rate_fit import DEFOCUS_SIGMAS
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

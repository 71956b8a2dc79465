"""Fitting a proxy's linear rate model, whichever its codec: the fit photos with defocused copies,
non-negative least squares on the relative error, and the parameter file written beside the model.

Used by ``python -m sandwich.fitting.jpeg_rate`` and ``python -m sandwich.fitting.hevc_rate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from sandwich.data.images import defocus

DEFOCUS_SIGMAS = (1.5, 4.0)  # Gaussian blur (pixels) of the defocused copies


def with_defocused(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``photos`` plus a defocused copy of each per :data:`DEFOCUS_SIGMAS` (named ``name~blurS``): smooth
    content (shallow depth of field, sky) in the fit."""
    return photos | {f"{name}~blur{sigma:g}": defocus(rgb, sigma) for name, rgb in photos.items() for sigma in DEFOCUS_SIGMAS}


def fit(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative weights minimising ``Σ ((rows @ w - targets) / targets)²`` (small and large files weigh the same)."""
    weights, _ = nnls(rows / targets[:, None], np.ones_like(targets))
    return weights


def relative_errors(rows: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``|rows @ weights - targets| / targets`` per coding."""
    return np.abs(rows @ weights - targets) / targets


def write_fit(path: Path, features: list[str], weights: np.ndarray, rows: np.ndarray, targets: np.ndarray, **settings: Any) -> None:
    """Write the parameter file (features, weights, what the fit ran on, its error) and print the error."""
    rel = relative_errors(rows, targets, weights)
    report = {
        "features": features,
        "weights": [float(w) for w in weights],
        **settings,
        "defocus_sigmas": list(DEFOCUS_SIGMAS),
        "fit_median_abs_rel_err": float(np.median(rel)),
        "fit_p90_abs_rel_err": float(np.quantile(rel, 0.9)),
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fit on {len(targets)} codings: median |rel err| {np.median(rel):.4f}, p90 {np.quantile(rel, 0.9):.4f} -> {path}")

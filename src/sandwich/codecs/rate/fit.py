"""Fit the calibration-free JPEG rate model and write ``jpeg_linear.json``.

Usage: ``python -m sandwich.codecs.rate.fit [--out PATH]``

For every rate-fit sample photo (:data:`sandwich.data.samples.RATE_FIT_PHOTOS`: scikit-image's and
matplotlib's; SPORCO's are held out), as it is and defocused (:data:`DEFOCUS_SIGMAS`, so that smooth
content is in the fit), every subsampling (4:4:4, 4:2:0, 4:0:0) and table setting (IJG quality 10..95
and flat steps 2..64), it codes the photo with the proxy (for the features) and with libjpeg-turbo (for
the target: optimised-Huffman payload bits), then solves non-negative least squares on the *relative*
error, so small and large files weigh the same.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.optimize import nnls
from tqdm import tqdm

from sandwich.codecs.jpeg_pair import code_pair, tables_for
from sandwich.codecs.rate.linear import FEATURE_NAMES, PARAMS_PATH, feature_vector
from sandwich.data.images import defocus
from sandwich.data.samples import RATE_FIT_PHOTOS, load_photos

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
FLAT_STEPS = (2, 4, 8, 16, 32, 64)
DEFOCUS_SIGMAS = (1.5, 4.0)  # Gaussian blur (pixels) of the defocused copies
SUBSAMPLINGS = ("444", "420", "400")


def with_defocused(photos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``photos`` plus a defocused copy of each per :data:`DEFOCUS_SIGMAS` (named ``name~blurS``)."""
    return photos | {f"{name}~blur{sigma:g}": defocus(rgb, sigma) for name, rgb in photos.items() for sigma in DEFOCUS_SIGMAS}


def collect(photos: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows ``(M, len(FEATURE_NAMES))`` and real payload bits ``(M,)`` over photos x subsamplings x settings."""
    settings = [dict(quality=q) for q in QUALITIES] + [dict(flat_step=s) for s in FLAT_STEPS]
    rows, targets = [], []
    jobs = [(rgb, ss, st) for rgb in photos.values() for ss in SUBSAMPLINGS for st in settings]
    for rgb, subsampling, setting in tqdm(jobs, desc="coding fit photos"):
        pair = code_pair(rgb, subsampling, *tables_for(**setting))
        rows.append(feature_vector(pair.proxy.planes)[0].double().numpy())
        targets.append(pair.real_bits)
    return np.stack(rows), np.asarray(targets, dtype=np.float64)


def fit(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative weights minimising ``Σ ((rows @ w - targets) / targets)²``."""
    weights, _ = nnls(rows / targets[:, None], np.ones_like(targets))
    return weights


def main(argv: list[str] | None = None) -> None:
    """Collect, fit, report the fit error and write the parameter file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write the JSON (default: beside the model)")
    args = parser.parse_args(argv)
    rows, targets = collect(with_defocused(load_photos(RATE_FIT_PHOTOS)))
    weights = fit(rows, targets)
    rel = np.abs(rows @ weights - targets) / targets
    report = {
        "features": FEATURE_NAMES,
        "weights": weights.tolist(),
        "fit_photos": list(RATE_FIT_PHOTOS),
        "defocus_sigmas": list(DEFOCUS_SIGMAS),
        "qualities": list(QUALITIES),
        "flat_steps": list(FLAT_STEPS),
        "subsamplings": list(SUBSAMPLINGS),
        "fit_median_abs_rel_err": float(np.median(rel)),
        "fit_p90_abs_rel_err": float(np.quantile(rel, 0.9)),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fit on {len(targets)} codings: median |rel err| {np.median(rel):.4f}, p90 {np.quantile(rel, 0.9):.4f} -> {args.out}")


if __name__ == "__main__":
    main()

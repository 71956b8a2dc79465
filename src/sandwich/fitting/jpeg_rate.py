"""Fit the calibration-free JPEG rate model and write ``jpeg_linear.json``.

Usage: ``python -m sandwich.fitting.jpeg_rate [--out PATH]``

For every rate-fit sample photo (:data:`sandwich.data.samples.RATE_FIT_PHOTOS`: scikit-image's and
matplotlib's; SPORCO's are held out), as it is and defocused (:data:`DEFOCUS_SIGMAS`, so that smooth
content is in the fit), every subsampling (4:4:4, 4:2:0, 4:0:0) and table setting (IJG quality 10..95
and flat steps 2..64), it codes the photo with the proxy (for the features) and with libjpeg-turbo (for
the target: optimised-Huffman payload bits), then solves non-negative least squares on the *relative*
error, so small and large files weigh the same.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandwich.codecs.jpeg_proxy.pair import code_pair, tables_for
from sandwich.codecs.jpeg_proxy.rate import FEATURE_NAMES, PARAMS_PATH, feature_vector
from sandwich.fitting.rate import fit, with_defocused, write_fit
from sandwich.data.samples import RATE_FIT_PHOTOS, load_photos

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
FLAT_STEPS = (2, 4, 8, 16, 32, 64)
SUBSAMPLINGS = ("444", "420", "400")


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


def main(argv: list[str] | None = None) -> None:
    """Collect, fit, report the fit error and write the parameter file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write the JSON (default: beside the model)")
    args = parser.parse_args(argv)
    rows, targets = collect(with_defocused(load_photos(RATE_FIT_PHOTOS)))
    write_fit(
        args.out, FEATURE_NAMES, fit(rows, targets), rows, targets,
        fit_photos=list(RATE_FIT_PHOTOS), qualities=list(QUALITIES), flat_steps=list(FLAT_STEPS), subsamplings=list(SUBSAMPLINGS),
    )


if __name__ == "__main__":
    main()

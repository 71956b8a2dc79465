"""Fit the HEVC proxy's rate model on x265's payload bits and write ``hevc_linear.json``.

Usage: ``python -m sandwich.fitting.hevc_rate [--out PATH]``

For every rate-fit sample photo (:data:`sandwich.data.samples.RATE_FIT_PHOTOS`; SPORCO's are held out),
as it is and defocused, a centre crop of at most 192x192 is coded in 4:2:0 and 4:0:0 at QPs
17..47 by the proxy (for the statistics) and by x265 (for the target), and non-negative least squares
fits the weights on the relative error (:func:`sandwich.fitting.jpeg_rate.fit`). The proxy's transform-size
decisions depend on the weights, so the fit runs twice: first with rough weights, then with the first
fit's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sandwich.codecs.color import luma8
from sandwich.codecs.hevc_proxy import tables
from sandwich.codecs.hevc_proxy.proxy import hevc_intra_proxy
from sandwich.codecs.hevc_proxy.rate import FEATURE_NAMES, INITIAL_WEIGHTS, PARAMS_PATH, HevcRate
from sandwich.fitting.rate import fit, relative_errors, with_defocused, write_fit
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.data.images import centre_crop
from sandwich.data.samples import RATE_FIT_PHOTOS, load_photos

QPS = tuple(range(17, 48, 5))
SUBSAMPLINGS = ("420", "400")  # the layouts of the HEVC experiments
CROP = 192


def as_batch(rgb: np.ndarray, subsampling: str) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(1, C, H, W)`` float32 on 0..255 (4:0:0: the real codec's luma)."""
    if subsampling == "400":
        return torch.from_numpy(luma8(rgb))[None, None].float()
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()


def real_bits(rgb: np.ndarray, subsampling: str, qp: int) -> float:
    """x265's payload bits for ``rgb`` (4:0:0: its luma) at ``qp``."""
    image = luma8(rgb) if subsampling == "400" else rgb
    return float(HevcCodec(subsampling).encode(image, qp).payload_bits)


def jobs(photos: dict[str, np.ndarray]) -> list[tuple[np.ndarray, str, int]]:
    """Every (photo, layout, QP) of the fit."""
    return [(rgb, ss, qp) for rgb in photos.values() for ss in SUBSAMPLINGS for qp in QPS]


@torch.no_grad()
def features(work: list[tuple[np.ndarray, str, int]], rate: HevcRate) -> np.ndarray:
    """Feature rows ``(M, len(FEATURE_NAMES))`` of the proxy, whose size decisions use ``rate``."""
    rows = []
    for rgb, subsampling, qp in tqdm(work, desc="proxy on fit photos", unit="coding"):
        out = hevc_intra_proxy(as_batch(rgb, subsampling), torch.tensor(tables.slice_qp([qp])), subsampling, rate)
        rows.append(out.features[0].double().numpy())
    return np.stack(rows)


def main(argv: list[str] | None = None) -> None:
    """Collect, fit twice, report the fit error and write the parameter file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PARAMS_PATH, help="where to write the JSON (default: beside the model)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    photos = {name: centre_crop(rgb, CROP, multiple=2) for name, rgb in with_defocused(load_photos(RATE_FIT_PHOTOS)).items()}
    work = jobs(photos)
    targets = np.array([real_bits(*job) for job in tqdm(work, desc="x265 on fit photos", unit="coding")])
    weights = np.asarray(INITIAL_WEIGHTS)
    for _ in range(2):
        rows = features(work, HevcRate(weights.tolist()))
        weights = fit(rows, targets)
        print(f"round: median |rel err| {np.median(relative_errors(rows, targets, weights)):.4f}")
    write_fit(args.out, FEATURE_NAMES, weights, rows, targets, fit_photos=list(RATE_FIT_PHOTOS), crop=CROP, qps=list(QPS), subsamplings=list(SUBSAMPLINGS))


if __name__ == "__main__":
    main()

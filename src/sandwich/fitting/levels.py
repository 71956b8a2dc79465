"""Measure the level of every knob value of the real codecs and write ``codecs/real/levels.json``.

Usage: ``python -m sandwich.fitting.levels [--codec hevc/420/8 ...] [--out PATH]``

For each codec layout (``name/subsampling/bit_depth``), every training photo
(:data:`sandwich.data.samples.COLOR_TRAIN_PHOTOS`; the held-out sources stay out) is coded with the
codec over a grid of its knob and with JPEG of the same layout (4:0:0 for one channel, else the
codec's subsampling where JPEG has it, 4:2:0 otherwise) at qualities 1..100. The level of a knob value
is the JPEG level (:func:`~sandwich.codecs.real.levels.level_of_steps`) at which JPEG's mean
``log MSE`` over the photos equals the codec's (linear interpolation; MSE on the [0, 1] scale, so
bit depths compare). See :mod:`sandwich.codecs.real.levels`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandwich.codecs.color import luma8
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.base import RealCodec
from sandwich.codecs.real.levels import LEVELS_PATH, level_of_steps
from sandwich.codecs.real.registry import CODECS
from sandwich.data.samples import COLOR_TRAIN_PHOTOS, load_photos
from sandwich.sample_format import peak

# layout -> codec options; the knob grid is every STEPS-th value of the codec's range (and its ends).
LAYOUTS = {
    "hevc/420/8": ("hevc", {"subsampling": "420"}),
    "hevc/444/8": ("hevc", {"subsampling": "444"}),
    "hevc/400/8": ("hevc", {"subsampling": "400"}),
    "av1/420/8": ("av1", {}),
    "webp/420/8": ("webp", {}),
    "jxl/420/8": ("jxl", {}),
    "jxl/400/8": ("jxl", {"channels": 1}),
}
STEPS = 3
JPEG_QUALITIES = range(1, 101)


def _mean_log_mse(codec: RealCodec, images: list[np.ndarray], knob: int) -> float:
    """Mean over ``images`` of ``log`` MSE (on the [0, 1] scale) of coding at ``knob``."""
    errors = []
    for image in images:
        decoded = codec.decode(codec.encode(image, knob).data)
        error = np.mean((decoded.astype(np.float64) - image.astype(np.float64)) ** 2) / peak(codec.bit_depth) ** 2
        errors.append(np.log(max(error, 1e-12)))
    return float(np.mean(errors))


def fit(layout: str, images: list[np.ndarray]) -> dict:
    """The calibration entry of ``layout``: knob grid, levels, and HEVC-style slope (knob per octave)."""
    name, options = LAYOUTS[layout]
    codec = CODECS.create(name, **options)
    subsampling = "400" if codec.channels == 1 else getattr(codec, "subsampling", "420")
    jpeg = CODECS.create("jpeg", subsampling=subsampling if subsampling in ("420", "444", "400") else "420")
    if codec.channels == 1:
        images = [luma8(image) for image in images]
    jpeg_levels = np.array([level_of_steps(ijg_tables(q)[0]) for q in JPEG_QUALITIES])
    jpeg_errors = np.array([_mean_log_mse(jpeg, images, q) for q in tqdm(JPEG_QUALITIES, desc=f"{layout}: jpeg", leave=False)])
    low, high = codec.knob_range
    knobs = sorted(set(range(low, high + 1, STEPS)) | {high})
    errors = [_mean_log_mse(codec, images, k) for k in tqdm(knobs, desc=layout, leave=False)]
    order = np.argsort(jpeg_errors)  # JPEG's error rises with its level: interpolate level over error
    levels = np.interp(errors, jpeg_errors[order], jpeg_levels[order])
    slope = float(np.polyfit(levels, knobs, 1)[0])
    return {"knobs": knobs, "levels": [round(float(v), 4) for v in levels], "knob_per_octave": round(slope, 3), "reference": f"jpeg/{jpeg.subsampling}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codec", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS), help="layouts to fit")
    parser.add_argument("--out", type=Path, default=LEVELS_PATH)
    args = parser.parse_args()
    images = list(load_photos(COLOR_TRAIN_PHOTOS).values())
    table = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for layout in args.codec:
        table[layout] = fit(layout, images) | {"photos": list(COLOR_TRAIN_PHOTOS)}
        entry = table[layout]
        order = np.argsort(entry["levels"])
        zero = np.interp(0.0, np.asarray(entry["levels"])[order], np.asarray(entry["knobs"])[order])
        print(f"{layout}: level 0 (JPEG q50's error) at knob {zero:.1f}, {entry['knob_per_octave']:+.2f} knob values per octave")
        args.out.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()

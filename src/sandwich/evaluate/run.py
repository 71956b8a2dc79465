"""``sandwich eval``: a trained sandwich and its configuration's baselines, through the real codec.

For every image in a folder (any size; or the embedded colour photos of one source, ``--samples``), the
trained pre-processor (told the level of the quality, see :mod:`sandwich.codecs.stage`), the real codec at each quality and
the post-processor; the same for every baseline of the scenario (a baseline with several variants, e.g.
the texture embedding's gains, is merged into one curve by its Pareto front). Writes to OUTDIR:

* ``results.json``: CompressAI-format entry for the sandwich, ``"baselines"`` (same format, by name;
  ``"codec"`` is the codec alone), ``"bd"`` (BD-rate and BD-PSNR of the sandwich vs each baseline);
* ``rd.png``: all RD curves; ``examples.png``: source, bottleneck, sandwich and baselines side by side;
* ``index.html``: the above on one page.

bpp is the real codec's payload bits per source pixel. Outputs are written to a temporary folder and
moved into place at the end, so a failure leaves OUTDIR as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sandwich.data.images import list_images, read_rgb8
from sandwich.data.samples import COLOR_PHOTOS_BY_SOURCE, load_photos
from sandwich.evaluate.bd import bd_metrics, psnr_gap_range
from sandwich.evaluate.checkpoint import load_module
from sandwich.evaluate.report import plot_rd, results_entry, save_examples, write_index_html
from sandwich.evaluate.sweep import RdPoint, front, results, sweep
from sandwich.errors import InputError
from sandwich.sample_format import to_tensor
from sandwich.scenarios.base import SandwichModule

EXAMPLE_ROWS = 4


def _example_rows(images: dict[str, np.ndarray], sandwich: list[RdPoint], baselines: dict[str, list[RdPoint]]) -> list:
    """Per image: the source, the bottleneck and output of the sandwich at its middle quality, each baseline
    at the nearest rate."""
    middle = sandwich[len(sandwich) // 2]
    rows = []
    for i, (name, (bottleneck, recon)) in enumerate(zip(images, middle.examples)):
        bpp = middle.image_bpp[i]
        panels = [
            ("source", images[name]),
            ("bottleneck (codec input)", bottleneck),
            (f"sandwich q{middle.quality}: {bpp:.2f} bpp", recon),
        ]
        for label, points in baselines.items():
            nearest = min(points, key=lambda p: abs(p.image_bpp[i] - bpp))
            panels.append((f"{label} ({nearest.variant} q{nearest.quality}): {nearest.image_bpp[i]:.2f} bpp", nearest.examples[i][1]))
        rows.append((name, panels))
    return rows


def _measure_ms_ssim(points: list[RdPoint], variants: dict[str, tuple], codec, images: list[torch.Tensor]) -> None:
    """Fill in MS-SSIM for ``points`` (baseline front points: only they are reported) by coding them again."""
    for point in points:
        pre, post = variants[point.variant]
        point.ms_ssim = sweep(pre, post, codec, images, [point.quality], point.variant)[0].ms_ssim


def evaluate(
    module: SandwichModule, images: dict[str, np.ndarray], out_dir: Path, qualities: Sequence[int] | None = None, intro: Sequence[str] = ()
) -> dict:
    """Evaluate ``module`` and its baselines on ``images`` (``{name: (H, W, 3) uint8}``); write the report.

    Returns the ``results.json`` content.
    """
    qualities = list(qualities or module.config["codec"]["qualities"])
    if len(qualities) < 4:
        raise InputError(f"eval: need at least 4 qualities for BD figures, got {qualities}")
    for q in qualities:
        module.codec.real.check_level(q)
    tensors = [to_tensor(a)[None] for a in images.values()]
    names = list(images)
    baselines = module.baselines()
    total = len(qualities) * len(tensors) * (1 + sum(len(v) for v in baselines.values()))
    keep = min(EXAMPLE_ROWS, len(tensors))
    with tqdm(total=total, desc="eval (real codec)", unit="code") as progress:
        sandwich = sweep(module.pre, module.post, module.codec, tensors, qualities, "sandwich", True, keep, progress)
        swept = {
            name: [p for label, pre, post in variants for p in sweep(pre, post, module.codec, tensors, qualities, label, False, keep, progress)]
            for name, variants in baselines.items()
        }
    fronts = {name: front(points) for name, points in swept.items()}
    for name, points in fronts.items():
        _measure_ms_ssim(points, {label: (pre, post) for label, pre, post in baselines[name]}, module.codec, tensors)
    experiment = module.config["name"]
    codec_name = module.config["codec"]["name"]
    report = results_entry(
        f"sandwich-{experiment}", f"{experiment}: trained sandwich around real {codec_name}, quality sweep {qualities}", results(sandwich)
    )
    report["baselines"] = {
        name: results_entry(name, f"{name} baseline, real {codec_name}, Pareto front over variants x qualities", results(points))
        | {"variants": [p.variant for p in points]}
        for name, points in fronts.items()
    }
    report["bd"] = {
        name: bd_metrics(*curve(points), *curve(sandwich)) | {"psnr_gap": psnr_gap_range(*curve(points), *curve(sandwich))}
        for name, points in swept.items()
    }
    report["images"] = names

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        (tmp / "results.json").write_text(json.dumps(report, indent=2))
        curves = {"sandwich": results(sandwich)} | {name: results(points) for name, points in fronts.items()}
        plot_rd(curves, tmp / "rd.png", f"{experiment} on {len(names)} images (real {codec_name})")
        save_examples(_example_rows(images, sandwich, fronts), tmp / "examples.png")
        table = [
            {"vs baseline": name, "BD-PSNR (dB)": _fmt(bd["bd_psnr_db"]), "BD-rate (%)": _fmt(bd["bd_rate_percent"]),
             "PSNR gain, min..max (dB)": _gap(bd["psnr_gap"]), "note": bd["note"] or ""}
            for name, bd in report["bd"].items()
        ]
        write_index_html(
            tmp / "index.html",
            f"sandwich: {experiment}",
            [*intro, f"Images: {', '.join(names)}. Codec qualities: {qualities}. BD interpolation: {next(iter(report['bd'].values()))['interpolation']}."],
            table,
            [("Rate-distortion curves (bpp from the real codec's payload bytes per source pixel)", "rd.png"), ("Examples at similar rates", "examples.png")],
        )
        _replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def curve(points: list[RdPoint]) -> tuple[list[float], list[float]]:
    """(bpp, PSNR) lists of ``points``."""
    return [p.bpp for p in points], [p.psnr for p in points]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _replace(new: Path, out_dir: Path) -> None:
    """Move ``new``'s files into ``out_dir`` (created if needed), replacing same-named files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in new.iterdir():
        target = out_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)


def read_images(folder: str | Path) -> dict[str, np.ndarray]:
    """``{file stem: (H, W, 3) uint8}`` for every image in ``folder``; InputError for any unreadable one."""
    return {path.stem: read_rgb8(path) for path in list_images(folder)}


def _gap(gap: dict) -> str:
    if gap["min_gain_db"] is None:
        return "n/a"
    return f"{gap['min_gain_db']:+.2f} (at {gap['at_bpp_min']:.2f} bpp) .. {gap['max_gain_db']:+.2f} (at {gap['at_bpp_max']:.2f} bpp)"


def print_bd(report: dict) -> None:
    """One line per baseline with the BD figures (or why they are missing) and the range of the PSNR gain."""
    for name, bd in report["bd"].items():
        line = f"  vs {name}: BD-PSNR {_fmt(bd['bd_psnr_db'])} dB, BD-rate {_fmt(bd['bd_rate_percent'])} %, gain {_gap(bd['psnr_gap'])} dB"
        print(line + (f" ({bd['note']})" if bd["note"] else ""))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich eval``."""
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `sandwich train` (e.g. runs/.../checkpoints/last.ckpt)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of 8-bit images (PNG, JPEG, ...; any size)")
    source.add_argument(
        "--samples", choices=sorted(COLOR_PHOTOS_BY_SOURCE),
        help="the embedded colour photos of one source instead of a folder: sporco (Kodak/Waterloo, never trained on), "
        "matplotlib (the validation photo), skimage (the training photos)",
    )
    parser.add_argument("--out", required=True, help="output folder for results.json, rd.png, examples.png, index.html")
    parser.add_argument("--qualities", type=int, nargs="+", help="codec qualities to sweep (default: the config's codec.qualities)")


def run(args: argparse.Namespace) -> None:
    """``sandwich eval`` entry point."""
    module = load_module(args.ckpt)
    images = read_images(args.images) if args.images else load_photos(COLOR_PHOTOS_BY_SOURCE[args.samples])
    report = evaluate(module, images, Path(args.out), args.qualities)
    print(f"sandwich: wrote {args.out}/results.json, rd.png, examples.png, index.html")
    print_bd(report)

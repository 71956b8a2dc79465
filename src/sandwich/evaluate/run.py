"""``sandwich eval``: a trained sandwich and its configuration's baselines, through the real codec.

For every image in a folder (any size; or the embedded colour photos of one source, ``--samples``), the
trained pre-processor (told the level of the knob value, see :mod:`sandwich.codecs.stage`), the real
codec (the config's: JPEG, HEVC, AV1, ...) at each knob value (quality or QP) and the post-processor;
the same for every baseline of the scenario (a baseline with several variants, e.g. the texture
embedding's gains, is merged into one curve by its Pareto front), and for every ``--compare`` checkpoint
(another trained model with the same codec, e.g. the post-only variant). Writes to OUTDIR:

* ``results.json``: CompressAI-format entry for the sandwich, ``"codec"`` (the real codec in words),
  ``"baselines"`` (same format, by name; ``"codec"`` is the codec alone; compared models too, named in
  ``"compared"``), ``"bd"`` (per quality metric, ``psnr-rgb`` (all channels), ``psnr-y`` (BT.601 luma),
  ``ms-ssim-db`` = ``-10 log10(1 - MS-SSIM)``, and ``psnr-part-<part>`` for each channel part of a
  multi-part source (:mod:`sandwich.evaluate.knob_sweep`): BD-rate and BD-quality of the sandwich vs each
  baseline, on the Pareto fronts in that metric);
* ``rd.png`` (PSNR), ``rd_psnr-y.png``, ``rd_ms-ssim.png`` (and ``rd_psnr-part-<part>.png``): all RD curves;
  ``examples.png``: source, bottleneck, sandwich and baselines side by side (the channel parts of a
  source and the codec pictures of a bottleneck next to each other);
* ``index.html``: the above on one page.

bpp is the real codec's payload bits per source pixel. Outputs are written to a temporary folder and
moved into place at the end, so a failure leaves OUTDIR as it was.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from tqdm import tqdm

from sandwich.data.images import list_images, read_image
from sandwich.data.samples import sample_set
from sandwich.codecs.stage import describe_codec
from sandwich.evaluate.bd import bd_metrics, psnr_gap_range
from sandwich.evaluate.metric_names import metric_name
from sandwich.evaluate.checkpoint import add_model_arguments, load_module, model_file
from sandwich.evaluate.report import plot_rd, results_entry, save_examples, write_index_html
from sandwich.evaluate.knob_sweep import RdPoint, channel_parts, curve, front, perceptual_metrics, quality_metrics, results, sweep
from sandwich.errors import InputError
from sandwich.files import staged_folder
from sandwich.metrics.psnr import mse, psnr
from sandwich.sample_format import requantize, rounded, to_array, to_tensor
from sandwich.tracking import log_outputs
from sandwich.scenarios.base import SandwichModule

EXAMPLE_ROWS = 4


def figure_files(metrics: dict[str, str]) -> dict[str, str]:
    """The RD plot's file name per quality metric."""
    return {metric: metric_name(metric).figure for metric in metrics}


def _example_rows(module: SandwichModule, images: dict[str, np.ndarray], sandwich: list[RdPoint], baselines: dict[str, list[RdPoint]], prefix: str) -> list:
    """Per image: the source, the bottleneck and output of the sandwich at its middle knob value, each
    baseline at the nearest rate (sources and outputs by channel part, bottlenecks by codec picture)."""
    parts = list(channel_parts(module).values())
    codec_channels = module.codec.channels

    def source_view(image: np.ndarray) -> np.ndarray:
        return tile_channels(image if image.dtype == np.uint8 else to_array(to_tensor(image, module.bit_depth)), parts)

    middle = sandwich[len(sandwich) // 2]
    rows = []
    for i, (name, (bottleneck, recon)) in enumerate(zip(images, middle.examples)):
        bpp = middle.image_bpp[i]
        pictures = [slice(start, start + codec_channels) for start in range(0, bottleneck.shape[-1] if bottleneck.ndim == 3 else 1, codec_channels)]
        panels = [
            ("source", source_view(images[name])),
            ("bottleneck (codec input)", tile_channels(bottleneck, pictures)),
            (f"sandwich {prefix}{middle.knob}: {bpp:.2f} bpp", source_view(recon)),
        ]
        for label, points in baselines.items():
            nearest = min(points, key=lambda p: abs(p.image_bpp[i] - bpp))
            panels.append((f"{label} ({nearest.variant} {prefix}{nearest.knob}): {nearest.image_bpp[i]:.2f} bpp", source_view(nearest.examples[i][1])))
        rows.append((name, panels))
    return rows


def tile_channels(image: np.ndarray, parts: Sequence[slice]) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` uint8 with its channel ``parts`` side by side, each shown as RGB (a one-channel
    part as gray), 4 white columns apart; the image as it is when ``parts`` is empty or one part of it all."""
    if image.ndim == 2 or not parts or (len(parts) == 1 and image.shape[2] == 3):
        return image if image.ndim == 2 or image.shape[2] == 3 else image[..., :3]
    gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
    views = [_as_rgb(image[..., part]) for part in parts]
    return np.concatenate([x for view in views for x in (view, gap)][:-1], axis=1)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, n)`` uint8 as ``(H, W, 3)``: one channel as gray, two with a zero third, more: the first three."""
    n = image.shape[2]
    if n == 1:
        return np.repeat(image, 3, axis=2)
    return image[..., :3] if n >= 3 else np.pad(image, ((0, 0), (0, 0), (0, 1)))


def bd_report(baselines: dict[str, list[RdPoint]], sandwich: list[RdPoint], metrics: dict[str, str]) -> dict[str, dict[str, dict]]:
    """``{metric: {baseline: BD figures and gain range}}`` of the sandwich against each baseline's points,
    for every quality metric of ``metrics`` (:func:`~sandwich.evaluate.knob_sweep.quality_metrics`; fronts taken per metric)."""
    return {
        metric: {
            name: bd_metrics(*curve(points, metric), *curve(sandwich, metric)) | {"gap": psnr_gap_range(*curve(points, metric), *curve(sandwich, metric))}
            for name, points in baselines.items()
        }
        for metric in metrics
    }


def check_knobs(module: SandwichModule, knobs: Sequence[int] | None) -> list[int]:
    """The real codec's knob values to sweep (default: the config's ``codec.knobs``); InputError unless
    there are at least 4 (for BD figures) and the codec takes each."""
    codec = module.codec
    knobs = list(knobs or codec.knobs)
    if len(knobs) < 4:
        raise InputError(f"eval: need at least 4 knob values ({codec.knob}) for BD figures, got {knobs}")
    for knob in knobs:
        codec.real.check_knob(knob)
    return knobs


def check_images(module: SandwichModule, images: dict[str, np.ndarray]) -> None:
    """InputError naming the first image the module cannot take: another channel count than the model's
    source, or a size its adapter refuses (e.g. too small to down-sample)."""
    for name, image in images.items():
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != module.channels:
            raise InputError(f"{name}: {channels} channels, the model takes {module.channels} (scenario {module.spec.scenario})")
        try:
            module.adapter.check(*image.shape[:2])
        except InputError as exc:
            raise InputError(f"{name}: {exc}") from None


def sweep_baselines(module: SandwichModule, tensors: Sequence[Tensor], knobs: Sequence[int], keep: int, progress: tqdm) -> dict[str, list[RdPoint]]:
    """Every point of every baseline of ``module``'s scenario (all variants of a baseline in one list); a variant
    with a codec of its own is swept over that codec's knob values instead of ``knobs``."""
    return {
        name: [p for label, variant in variants.items() for p in sweep(module, tensors, variant.knobs or knobs, label, variant, keep, progress)]
        for name, variants in module.baselines().items()
    }


def baseline_codings(module: SandwichModule, knobs: Sequence[int]) -> int:
    """How many codings per image the baselines' sweeps take (for progress bars)."""
    return sum(len(b.knobs or knobs) for variants in module.baselines().values() for b in variants.values())


def baseline_codec(module: SandwichModule, name: str) -> tuple[str, str]:
    """(the codec in words, its knob's name) of baseline ``name``: its variants' own codec, or the module's
    (also for a compared model's curve)."""
    own = next(iter(module.baselines()[name].values())).codec if name in module.baselines() else None
    return (module.codec.describe(), module.codec.knob) if own is None else (describe_codec(own), own.knob)


def baseline_entries(swept: dict[str, list[RdPoint]], module: SandwichModule) -> dict[str, dict]:
    """CompressAI entries of the baselines' Pareto fronts (PSNR), with the variant of each point."""
    entries = {}
    for name, points in swept.items():
        described, knob = baseline_codec(module, name)
        entries[name] = results_entry(name, f"{name} baseline, real {described}, Pareto front (PSNR) over variants x {knob}", results(front(points), knob))
        entries[name]["variants"] = [p.variant for p in front(points)]
    return entries


def compared_names(module: SandwichModule, compare: Sequence[SandwichModule]) -> list[str]:
    """A curve name per compared model (its experiment, numbered when two share one); InputError unless
    each codes with the same real codec as ``module`` (how they were trained, their proxy and training
    signal, may differ)."""
    names: list[str] = []
    for other in compare:
        if other.spec.real_codec != module.spec.real_codec:
            raise InputError(f"--compare: {other.spec.name} codes with {other.codec.describe()}, not {module.spec.name}'s real codec ({module.codec.describe()})")
        name = other.spec.name
        names.append(name if name not in names and name != module.spec.name else f"{name} ({len(names) + 1})")
    return names


def evaluate(
    module: SandwichModule,
    images: dict[str, np.ndarray],
    out_dir: Path,
    knobs: Sequence[int] | None = None,
    intro: Sequence[str] = (),
    compare: Sequence[SandwichModule] = (),
) -> dict:
    """Evaluate ``module`` and its baselines on ``images`` (``{name: (H, W, C) uint8}``); write the report.

    ``knobs``: the real codec's knob values (qualities or QPs; default: the config's ``codec.knobs``).
    ``compare``: other trained models with the same codec (e.g. a post-only variant), each one more curve
    of the report, with BD figures like a baseline's. Returns the ``results.json`` content.
    """
    codec = module.codec
    knobs = check_knobs(module, knobs)
    compared = compared_names(module, compare)
    check_images(module, images)
    tensors = [to_tensor(a, module.bit_depth)[None] for a in images.values()]
    names = list(images)
    total = len(tensors) * (len(knobs) * (1 + len(compare)) + baseline_codings(module, knobs))
    keep = min(EXAMPLE_ROWS, len(tensors))
    with tqdm(total=total, desc=f"eval (real {codec.real.name})", unit="code") as progress:
        sandwich = sweep(module, tensors, knobs, "sandwich", None, keep, progress)
        swept = sweep_baselines(module, tensors, knobs, keep, progress)
        swept |= {
            name: sweep(other, tensors, knobs, name, None, keep, progress, perceptual_metrics(module))
            for name, other in zip(compared, compare, strict=True)
        }
    fronts = {name: front(points) for name, points in swept.items()}
    saturation = saturation_psnr(tensors, module.bit_depth, codec.real.bit_depth)
    experiment, described = module.spec.name, codec.describe()
    report = results_entry(f"sandwich-{experiment}", f"{experiment}: trained sandwich around real {described}, {codec.knob} sweep {knobs}", results(sandwich, codec.knob))
    report["codec"] = described
    report["baselines"] = baseline_entries(swept, module)
    metrics = quality_metrics(module)
    report["bd"] = bd_report(swept, sandwich, metrics)
    report["images"] = names
    report["compared"] = compared
    if saturation is not None:
        report["saturation_psnr_db"] = saturation

    with staged_folder(out_dir) as tmp:
        (tmp / "results.json").write_text(json.dumps(report, indent=2))
        title = f"{experiment} on {len(names)} images (real {described})"
        figures = []
        for metric, label in metrics.items():
            curves = {"sandwich": results(sandwich, codec.knob)} | {name: results(front(points, metric), codec.knob) for name, points in swept.items()}
            lines = {f"{codec.real.bit_depth}-bit rounding (no codec)": saturation} if saturation is not None and metric == "psnr-rgb" else None
            plot_rd(curves, tmp / figure_files(metrics)[metric], title, metric, lines=lines)
            figures.append((f"Rate-{label} curves (bpp from the real codec's payload bytes per source pixel)", figure_files(metrics)[metric]))
        prefix = "q" if codec.knob == "quality" else codec.knob
        save_examples(_example_rows(module, images, sandwich, fronts, prefix), tmp / "examples.png")
        interpolation = next(iter(report["bd"]["psnr-rgb"].values()))["interpolation"]
        write_index_html(
            tmp / "index.html",
            f"sandwich: {experiment}",
            [*intro, f"Images: {', '.join(names)}. Codec: real {described}, {codec.knob} values {knobs}. BD interpolation: {interpolation}.",
             *saturation_note(saturation, module.bit_depth, codec.real.bit_depth)],
            bd_rows(report["bd"], metrics),
            [*figures, ("Examples at similar rates", "examples.png")],
        )
    return report


def saturation_psnr(tensors: Sequence[Tensor], bit_depth: int, codec_bits: int) -> float | None:
    """Where plain ``codec_bits``-bit coding of ``bit_depth``-bit sources saturates: the mean ``bit_depth``-bit PSNR
    (dB) of each ``(1, C, H, W)`` image on [0, 1] rounded to ``codec_bits`` bits and expanded back, with no codec
    (None when the codec has the source's bits or more)."""
    if codec_bits >= bit_depth:
        return None
    return float(np.mean([float(psnr(mse(t, rounded(t[0], codec_bits)[None], bit_depth), bit_depth)[0]) for t in tensors]))


def saturation_note(saturation: float | None, bit_depth: int, codec_bits: int) -> list[str]:
    """The report's sentence on :func:`saturation_psnr` (none when there is no saturation point)."""
    if saturation is None:
        return []
    return [f"{bit_depth}-bit PSNR of the sources rounded to {codec_bits} bits, no codec (where plain {codec_bits}-bit coding saturates): {saturation:.2f} dB."]


def bd_rows(bd: dict[str, dict[str, dict]], metrics: dict[str, str], **first: str) -> list[dict[str, str]]:
    """Table rows (for :func:`~sandwich.evaluate.report.write_index_html`) of a ``{metric: {baseline: BD}}``
    report (metric names from ``metrics``), each starting with the columns of ``first`` (e.g. ``curve="front"``)."""
    return [
        first | {"metric": metrics[metric], "vs baseline": name, "BD-quality (dB)": _fmt(figures["bd_psnr_db"]),
                 "BD-rate (%)": _fmt(figures["bd_rate_percent"]), "gain, min..max (dB)": _gap(figures["gap"]), "note": figures["note"] or ""}
        for metric, per_baseline in bd.items()
        for name, figures in per_baseline.items()
    ]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def read_images(folder: str | Path, channels: int = 3, bit_depth: int = 8) -> dict[str, np.ndarray]:
    """``{file stem: (H, W, channels) samples of bit_depth bits}`` for every image in ``folder``
    (:func:`~sandwich.data.images.read_image`); InputError for any unreadable one or one of another channel count or depth."""
    return {path.stem: read_image(path, channels, bit_depth) for path in list_images(folder)}


def evaluation_images(module: SandwichModule, folder: str | None, source: str | None = None) -> dict[str, np.ndarray]:
    """The images to evaluate ``module`` on: those of ``folder``, or the embedded photos of ``source`` in the
    module's sample set (``data.samples``; None: the set's held-out source; InputError for a source it does not have)."""
    if folder:
        return read_images(folder, module.channels, module.bit_depth)
    chosen = sample_set(module.spec.samples)
    photos = chosen.load(chosen.names(source or chosen.held_out))
    return {name: requantize(image, chosen.bit_depth, module.bit_depth) for name, image in photos.items()}


def _gap(gap: dict) -> str:
    if gap["min_gain_db"] is None:
        return "n/a"
    return f"{gap['min_gain_db']:+.2f} (at {gap['at_bpp_min']:.2f} bpp) .. {gap['max_gain_db']:+.2f} (at {gap['at_bpp_max']:.2f} bpp)"


def print_bd(bd: dict[str, dict[str, dict]], metrics: dict[str, str]) -> None:
    """One line per metric and baseline of a ``{metric: {baseline: BD}}`` report with the BD figures (or why
    they are missing) and the range of the gain (metric names from ``metrics``)."""
    for metric, per_baseline in bd.items():
        for name, bd in per_baseline.items():
            line = f"  {metrics[metric]} vs {name}: BD {_fmt(bd['bd_psnr_db'])} dB, BD-rate {_fmt(bd['bd_rate_percent'])} %, gain {_gap(bd['gap'])} dB"
            print(line + (f" ({bd['note']})" if bd["note"] else ""))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich eval``."""
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--images",
        help="folder of images (PNG, JPEG, ...; RGBA files or .npy arrays for a 4- or N-channel model; 16-bit PNG/TIFF or EXR for an HDR "
        "model, rounded to its scenario.bit_depth; any size)",
    )
    source.add_argument(
        "--samples", metavar="SOURCE",
        help="the embedded photos of one source of the model's sample set (data.samples) instead of a folder; colour: sporco "
        "(Kodak/Waterloo, never trained on), matplotlib (the validation photo), skimage (the training photos); stereo: skimage "
        "(held out), opencv; rgba: pypi (held out), oxygen, oxygen_places; hdr: blender_held_out (held out), blender",
    )
    parser.add_argument("--out", required=True, help="output folder for results.json, rd*.png, examples.png, index.html")
    parser.add_argument("--knobs", "--levels", dest="knobs", type=int, nargs="+", help="the real codec's knob values to sweep: JPEG qualities, HEVC QPs, ... (default: the config's codec.knobs; --levels is the old name)")
    parser.add_argument(
        "--compare", nargs="+", default=[], metavar="CKPT",
        help="other checkpoints with the same codec (e.g. a post-only variant) drawn and compared like baselines",
    )


def run(args: argparse.Namespace) -> None:
    """``sandwich eval`` entry point: the report, then its files as a W&B artifact (:func:`~sandwich.tracking.log_outputs`)."""
    path, artifact = model_file(args.ckpt, args.model)
    artifacts = [artifact] if artifact else []
    module = load_module(path)
    compare = [load_module(other) for other in args.compare]
    images = evaluation_images(module, args.images, args.samples)
    out = Path(args.out)
    report = evaluate(module, images, out, args.knobs, compare=compare)
    metrics = quality_metrics(module)
    files = figure_files(metrics).values()
    print(f"sandwich: wrote {out}/results.json, {', '.join(files)}, examples.png, index.html")
    print_bd(report["bd"], metrics)
    for line in saturation_note(report.get("saturation_psnr_db"), module.bit_depth, module.codec.real.bit_depth):
        print(f"  {line}")
    spec = module.spec
    log_outputs(
        out, "eval", [out / "results.json", *(out / f for f in files), out / "examples.png", out / "index.html"],
        {"experiment": spec.name, "lmbda": spec.lmbda, "codec": report["codec"], "checkpoint": artifacts[0] if artifacts else str(path.resolve()),
         "project": spec.project, "entity": spec.entity},
        {f"bd/{metric}/{name}": bd["bd_rate_percent"] for metric, per in report["bd"].items() for name, bd in per.items()},
        artifacts,
    )

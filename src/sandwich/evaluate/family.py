"""``sandwich report``: one RD report for a family of models, e.g. a λ sweep, read as one Pareto front.

Papers judge a configuration by a family of models (one per λ, each swept over the codec's knob) and the
Pareto front of all their points. This command takes the family from any mix of:

* run folders (``runs/gray_jpeg/lmbda10.0``), or a folder of them (``runs/sweeps/gray_jpeg_lambda``);
* a sweep file (``sweeps/gray_jpeg_lambda.yaml``): its points in ``runs/sweeps/<file stem>``, where
  ``sandwich sweep`` trains them (pass the folder instead if you gave ``sandwich sweep --out``);
* checkpoint files;
* W&B references: ``wandb:ENTITY/PROJECT/RUN_ID``, ``wandb:ENTITY/PROJECT/sweeps/SWEEP_ID`` (every run of
  the sweep) or ``wandb:ENTITY/PROJECT/model-RUN_ID:best`` (a model artifact), downloaded once;
* pretrained models that ship with the package: ``--model NAME`` (``sandwich models``).

Every model is evaluated with the real codec over the knob sweep (``--knobs``, default the config's), on a
folder of images or the embedded photos of one source; its curve is cached in its run folder
(``eval/curve-<key>.json``, keyed by the images and knob values, checked against the checkpoint's sha256
and the metrics reported),
so adding a λ to a sweep evaluates only the new model. The configuration's baselines are evaluated once
(cached beside the first model). The models must share a scenario and a codec (they may differ in λ, net,
loss, ...); a report over different configurations is refused.

Writes to OUTDIR (atomically): ``results.json`` (a CompressAI-format entry of the PSNR front, plus every
model's curve, the baselines, the fronts per metric and the BD figures of the front and of each model
against each baseline, per metric), ``curves/*.json`` (one CompressAI JSON file per curve, for CompressAI's
plotting tool), ``rd.png`` and ``rd_ms-ssim.png`` (every model's curve, the front, the baselines, and
``--anchor`` curves: published results in CompressAI's JSON format, drawn dotted; they were measured on
their own images, so no BD figures are computed against them) and ``index.html``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sandwich.evaluate.checkpoint import load_module
from sandwich.evaluate.report import plot_rd, results_entry, write_index_html
from sandwich.evaluate.run import (
    baseline_codec, baseline_codings, baseline_entries, bd_report, bd_rows, check_images, check_knobs, evaluation_images, figure_files, print_bd, sweep_baselines,
)
from sandwich.evaluate.knob_sweep import RdPoint, from_results, front, has_metric, quality_metrics, results, sweep
from sandwich.errors import InputError
from sandwich.files import cache_root, sha256_file, staged_folder, write_json
from sandwich.pretrained import model_path
from sandwich.sample_format import to_tensor
from sandwich.scenarios.base import SandwichModule
from sandwich.sweep_files import grid, load_sweep, point_name, safe_name
from sandwich.tracking import WANDB_PREFIX, log_outputs, wandb_checkpoints

FAMILY_KEYS = ("scenario", "codec")
"""Config keys every model of a report shares: they fix the baselines and the real codec."""

IGNORED_KEYS = ("out_dir", "trainer", "logger", "resume", "checkpoint_every", "log_images", "data.num_workers")
"""Config keys (and prefixes) that do not tell models apart in labels."""

FRONT = "Pareto front"


@dataclass
class Member:
    """One model of the family: its checkpoint, the folder its evaluations are cached in, the W&B artifact
    it came from (if any), and (once loaded) its configuration and label."""

    checkpoint: Path
    folder: Path
    artifact: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def _run_checkpoint(folder: Path, which: str) -> Path | None:
    """``checkpoints/<which>.ckpt`` of a run folder; ``best`` falls back to ``last`` when no validation wrote one."""
    names = ["best.ckpt", "last.ckpt"] if which == "best" else ["last.ckpt"]
    return next((folder / "checkpoints" / n for n in names if (folder / "checkpoints" / n).is_file()), None)


def find_members(sources: list[str], which: str = "best", models: Sequence[str] = ()) -> list[Member]:
    """The models named by ``sources`` (see the module docstring) and the pretrained ``models`` (by name; their
    evaluations cached under ``$SANDWICH_CACHE/pretrained``), in the order given, without duplicates."""
    members = [Member(model_path(name), cache_root() / "pretrained" / name) for name in models]
    for source in sources:
        if source.startswith(WANDB_PREFIX):
            for path, artifact in wandb_checkpoints(source[len(WANDB_PREFIX) :], which):
                members.append(Member(path, path.parent, artifact))
            continue
        path = Path(source)
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            folder = Path("runs") / "sweeps" / path.stem
            for point in grid(load_sweep(path)):
                checkpoint = _run_checkpoint(folder / point_name(point), which)
                if checkpoint is None:
                    raise InputError(f"{path}: point {point_name(point)} has no checkpoint in {folder / point_name(point)}; run `sandwich sweep {path}` first")
                members.append(Member(checkpoint, checkpoint.parent.parent))
        elif path.is_file():
            folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            members.append(Member(path, folder))
        elif path.is_dir() and _run_checkpoint(path, which) is not None:
            members.append(Member(_run_checkpoint(path, which), path))
        elif path.is_dir() and (runs := [d for d in sorted(path.iterdir()) if d.is_dir() and _run_checkpoint(d, which) is not None]):
            members += [Member(_run_checkpoint(d, which), d) for d in runs]
        else:
            raise InputError(f"{source}: not a run folder, a folder of runs, a sweep file, a checkpoint or a {WANDB_PREFIX} reference")
    unique = {m.checkpoint.resolve(): m for m in members}
    if not unique:
        raise InputError("report: no models given")
    return list(unique.values())


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for every leaf of a nested config."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The config keys whose values differ between ``configs``.

    Raises:
        InputError: the configs differ in a key under :data:`FAMILY_KEYS` (a report compares models of one
            scenario and codec).
    """
    flats = [flatten(c) for c in configs]
    keys = sorted(set().union(*flats))
    varying = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    for key in varying:
        if key.split(".")[0] in FAMILY_KEYS:
            values = sorted({json.dumps(f.get(key)) for f in flats})
            raise InputError(f"report: the models differ in {key} ({', '.join(values)}); a report compares models of one scenario and codec")
    return [k for k in varying if not any(k == i or k.startswith(i + ".") for i in IGNORED_KEYS)]


def label_members(members: list[Member]) -> None:
    """Each member's label: the values of the keys that vary in the family (e.g. ``lmbda=10``); models
    that differ in nothing else are told apart by their folder."""
    keys = varying_keys([m.config for m in members])
    for m in members:
        flat = flatten(m.config)
        m.label = ",".join(f"{k.removeprefix('net.')}={flat.get(k)}" for k in keys[:3]) or m.folder.name
    labels = [m.label for m in members]
    for m in members:
        if labels.count(m.label) > 1:
            m.label = f"{m.label} ({m.folder.name})"


def images_key(images: dict[str, np.ndarray], knobs: list[int], *extra: str) -> str:
    """16 hex digits naming an evaluation: the images (names and pixels), the knob values and ``extra``."""
    digest = hashlib.sha256(json.dumps([knobs, *extra]).encode())
    for name, image in images.items():
        digest.update(name.encode() + str(image.shape).encode() + image.tobytes())
    return digest.hexdigest()[:16]


def _cached(path: Path, stamp: str) -> dict | None:
    """The cache file's content when it exists and was written for ``stamp``; else None."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) and content.get("stamp") == stamp else None


def member_curve(member: Member, module: SandwichModule, images: dict[str, np.ndarray], knobs: list[int], progress: tqdm) -> list[RdPoint]:
    """The model's RD points with the real codec, from its cache when the checkpoint is the one evaluated."""
    path = member.folder / "eval" / f"curve-{images_key(images, knobs)}.json"
    stamp = f"{sha256_file(member.checkpoint)} {' '.join(quality_metrics(module))}"  # a cache without this version's metrics is stale
    knob = module.codec.knob
    if (hit := _cached(path, stamp)) is not None:
        progress.update(len(knobs) * len(images))
        return from_results(hit["results"], knob, member.label)
    tensors = [to_tensor(a, module.bit_depth)[None] for a in images.values()]
    points = sweep(module, tensors, knobs, member.label, None, 0, progress)
    write_json(path, {"stamp": stamp, "checkpoint": str(member.checkpoint), "images": list(images), "results": results(points, knob)})
    return points


def baseline_curves(first: Member, module: SandwichModule, images: dict[str, np.ndarray], knobs: list[int], progress: tqdm) -> dict[str, list[RdPoint]]:
    """Every point of every baseline of the family's configuration, cached beside the first model."""
    shared = json.dumps({k: module.config[k] for k in FAMILY_KEYS} | {"metrics": list(quality_metrics(module))}, sort_keys=True)
    path = first.folder / "eval" / f"baselines-{images_key(images, knobs, shared)}.json"
    knob = {name: baseline_codec(module, name)[1] for name in module.baselines()}
    if (hit := _cached(path, shared)) is not None:
        progress.update(len(images) * baseline_codings(module, knobs))
        return {name: [p for variant, r in variants.items() for p in from_results(r, knob[name], variant)] for name, variants in hit["baselines"].items()}
    tensors = [to_tensor(a, module.bit_depth)[None] for a in images.values()]
    swept = sweep_baselines(module, tensors, knobs, 0, progress)
    by_variant = {
        name: {v: results([p for p in points if p.variant == v], knob[name]) for v in dict.fromkeys(p.variant for p in points)} for name, points in swept.items()
    }
    write_json(path, {"stamp": shared, "images": list(images), "baselines": by_variant})
    return swept


def read_anchor(path: str) -> tuple[str, list[RdPoint]]:
    """A published curve in CompressAI's JSON format (``{"name", "results": {"bpp", "psnr-rgb", ...}}``)."""
    try:
        entry = json.loads(Path(path).read_text())
        return str(entry["name"]), from_results(entry["results"], "quality", "anchor")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--anchor {path}: not a CompressAI results file with name, results.bpp and results.psnr-rgb ({type(exc).__name__}: {exc})") from None


def report(members: list[Member], images: dict[str, np.ndarray], out_dir: Path, knobs: list[int] | None = None, anchors: list[str] = ()) -> dict:
    """Evaluate every member and the baselines; write the family report to ``out_dir``; return ``results.json``'s content."""
    modules = [load_module(m.checkpoint) for m in members]
    for m, module in zip(members, modules, strict=True):
        m.config = module.config
    label_members(members)
    order = sorted(range(len(members)), key=lambda i: (float(members[i].config["lmbda"]), members[i].label))  # by λ: the legend reads in order
    members, modules = [members[i] for i in order], [modules[i] for i in order]
    first = modules[0]
    knobs = check_knobs(first, knobs)
    check_images(first, images)
    anchor_curves = dict(read_anchor(a) for a in anchors)
    codec, experiment = first.codec, first.config["name"]
    total = len(images) * (len(knobs) * len(members) + baseline_codings(first, knobs))
    with torch.no_grad(), tqdm(total=total, desc=f"report (real {codec.real.name})", unit="code") as progress:
        curves = {m.label: member_curve(m, module, images, knobs, progress) for m, module in zip(members, modules, strict=True)}
        swept = baseline_curves(members[0], first, images, knobs, progress)
    every = [p for points in curves.values() for p in points]
    metrics = quality_metrics(first)
    fronts = {metric: front(every, metric) for metric in metrics}
    described = codec.describe()

    result = results_entry(f"front-{experiment}", f"{experiment}: Pareto front (PSNR) of {len(members)} models around real {described}", results(fronts["psnr-rgb"], codec.knob))
    result |= {
        "codec": described,
        "images": list(images),
        "knobs": knobs,
        "fronts": {metric: results(points, codec.knob) | {"model": [p.variant for p in points]} for metric, points in fronts.items()},
        "models": {
            m.label: results_entry(m.label, f"{experiment} {m.label}", results(curves[m.label], codec.knob))
            | {"checkpoint": m.artifact or str(m.checkpoint), "lmbda": m.config.get("lmbda")}
            for m in members
        },
        "baselines": baseline_entries(swept, first),
        "bd": bd_report(swept, every, metrics),
        "bd_models": {label: bd_report(swept, points, metrics) for label, points in curves.items()},
    }
    with staged_folder(out_dir) as tmp:
        write_json(tmp / "results.json", result)
        curve_files = {f"front-{experiment}": result} | result["models"] | result["baselines"]
        for name, entry in curve_files.items():
            write_json(tmp / "curves" / f"{safe_name(name)}.json", {k: entry[k] for k in ("name", "description", "results")})
        title = f"{experiment}: {len(members)} models on {len(images)} images (real {described})"
        figures = []
        for metric, metric_label in metrics.items():
            drawn = {m.label: results(curves[m.label], codec.knob) for m in members}
            drawn[FRONT] = results(fronts[metric], codec.knob)
            drawn |= {name: results(front(points, metric), codec.knob) for name, points in swept.items()}
            drawn |= {f"{name} (published)": results(points, codec.knob) for name, points in anchor_curves.items() if has_metric(points, metric)}
            styles = {m.label: {"marker": ".", "linewidth": 1, "zorder": 3} for m in members}
            styles[FRONT] = {"color": "black", "linewidth": 4, "alpha": 0.35, "marker": "o", "markersize": 9, "zorder": 2}
            styles |= {name: {"linestyle": "--", "marker": "s"} for name in swept}
            styles |= {f"{name} (published)": {"linestyle": ":", "marker": "^", "color": "gray"} for name in anchor_curves}
            plot_rd(drawn, tmp / figure_files(metrics)[metric], title, metric, styles)
            figures.append((f"Rate-{metric_label}: every model, the Pareto front over all of them, the baselines", figure_files(metrics)[metric]))
        rows = bd_rows(result["bd"], metrics, curve=FRONT) + [row for label, bd in result["bd_models"].items() for row in bd_rows(bd, metrics, curve=label)]
        write_index_html(
            tmp / "index.html",
            f"sandwich report: {experiment}",
            [
                f"{len(members)} models ({', '.join(m.label for m in members)}), each evaluated with real {described} at {codec.knob} {knobs}, "
                f"on {len(images)} images: {', '.join(images)}.",
                "The Pareto front takes the best points of all models; BD figures compare it (and each model) with every baseline, "
                "per quality metric. Positive BD-quality and negative BD-rate mean the sandwich is better.",
            ],
            rows,
            figures,
        )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich report``."""
    parser.add_argument("models", nargs="*", metavar="MODELS", help="run folders, folders of runs, sweep files, checkpoints or wandb: references")
    parser.add_argument("--model", action="append", default=[], metavar="NAME", help="a pretrained model (`sandwich models`) as one more member (repeatable)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="folder of 8-bit images (PNG, JPEG, ...; RGBA files or .npy arrays for a 4- or N-channel model; any size)")
    source.add_argument(
        "--samples", metavar="SOURCE",
        help="the embedded photos of one source of the models' sample set (data.samples): colour sporco (never trained on), stereo skimage, rgba pypi",
    )
    parser.add_argument("--out", required=True, help="output folder for results.json, curves/, rd*.png, index.html")
    parser.add_argument("--knobs", "--levels", dest="knobs", type=int, nargs="+", help="the real codec's knob values (default: the config's codec.knobs; --levels is the old name)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of each run (default: best, else last)")
    parser.add_argument("--anchor", action="append", default=[], metavar="JSON", help="a published curve in CompressAI's JSON format to draw (repeatable)")


def run(args: argparse.Namespace) -> None:
    """``sandwich report`` entry point."""
    run_report(args.models, Path(args.out), args.images, args.samples, args.knobs, args.checkpoint, args.anchor, args.model)


def run_report(
    sources: Sequence[str], out: Path, images: str | None = None, samples: str | None = None, knobs: Sequence[int] | None = None,
    which: str = "best", anchors: Sequence[str] = (), models: Sequence[str] = (),
) -> dict:
    """The report of the family ``sources`` and pretrained ``models`` name (:func:`find_members`; checkpoint
    ``which`` of a run), on the images of folder ``images`` or the embedded photos of source ``samples``
    (neither: the held-out source), written to ``out``, printed, and logged as a W&B artifact. Returns
    ``results.json``'s content."""
    members = find_members(list(sources), which, models)
    first = load_module(members[0].checkpoint)
    result = report(members, evaluation_images(first, images, samples), out, knobs, list(anchors))
    metrics = quality_metrics(first)
    files = figure_files(metrics).values()
    print(f"sandwich: wrote {out}/results.json, curves/, {', '.join(files)}, index.html")
    print("front of all models:")
    print_bd(result["bd"], metrics)
    config = members[0].config.get("logger", {})
    log_outputs(
        out, "report", [out / "results.json", *(out / f for f in files), out / "index.html"],
        {"experiment": result["name"], "models": [m.label for m in members], "codec": result["codec"], "project": config.get("project"), "entity": config.get("entity")},
        {f"bd/{metric}/{name}": bd["bd_rate_percent"] for metric, per in result["bd"].items() for name, bd in per.items()},
        [m.artifact for m in members if m.artifact],
    )
    return result

"""``sandwich sweep SWEEP.yaml``: run a W&B grid sweep here, one training run after another.

A sweep file (``sweeps/``) is a W&B sweep configuration: ``method: grid``, ``parameters`` (config keys
with their ``values``), and a ``command`` that runs ``sandwich train`` with Hydra overrides
(``${args_no_hyphens}``). With a W&B server, ``wandb sweep FILE`` and ``wandb agent`` run it. Without
one, this command renders the same command for every grid point with wandb's own renderer, checks that
every point composes into a valid configuration before anything runs, then trains the points in order
into ``runs/sweeps/<file stem>/<point>/`` (or ``--out``). A point whose run finished is skipped; an
interrupted one resumes from its ``last.ckpt``. Extra ``KEY=VALUE`` overrides apply to every point, e.g.
``trainer.max_steps=500`` for a step budget per point (the same work on a busy or an idle machine).
With ``launcher=slurm`` the unfinished points are submitted as one SLURM job array instead
(:mod:`sandwich.launch`); the same command, run again once they have finished, skips them and reports.

When every point is trained, ``sandwich report`` runs over them (:mod:`sandwich.evaluate.family`): one RD
report with every model's curve and their Pareto front against the baselines, in ``<sweep folder>/report``,
on the embedded photos of a source none of them trained on (``--report-samples``, default: the held-out source of their sample set, ``sporco`` for colour photos) or on
your images (``--report-images``); ``--no-report`` skips it.
"""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from sandwich.config import compose
from sandwich.errors import InputError
from sandwich.launch import FINISHED, TrainJob, is_local, submit, submit_folder


def load_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep configuration in ``path``; InputError unless it is a grid sweep of ``sandwich train``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such sweep file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict) or spec.get("method") != "grid" or not isinstance(spec.get("parameters"), dict):
        raise InputError(f"{path}: expected a W&B sweep with method: grid and parameters")
    command = [str(c) for c in spec.get("command", [])]
    if "train" not in command or "${args_no_hyphens}" not in command:
        raise InputError(f"{path}: its command must run `sandwich train ... ${{args_no_hyphens}}`")
    for key, values in spec["parameters"].items():
        if not isinstance(values, dict) or not ("values" in values or "value" in values):
            raise InputError(f"{path}: parameter {key!r} needs values (a grid sweep takes only values/value)")
    return spec


def grid(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point ``{key: value}``, in the order W&B's grid search runs them (last key fastest)."""
    keys = list(spec["parameters"])
    choices = [p["values"] if "values" in p else [p["value"]] for p in spec["parameters"].values()]
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*choices)]


def render(spec: dict[str, Any], point: dict[str, Any]) -> list[str]:
    """The command the W&B agent would run for ``point`` (its macros filled as wandb's agent fills them)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    values = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    values |= {"env": ["/usr/bin/env"], "interpreter": ["python"], "program": [str(spec.get("program", "sandwich"))]}
    rendered: list[str] = []
    for chunk in sweep_utils.create_sweep_command([str(c) for c in spec["command"]]):
        rendered += values.get(chunk[2:-1], []) if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return rendered


def train_overrides(command: list[str]) -> list[str]:
    """The Hydra overrides of a rendered ``sandwich train`` command (what follows ``train``)."""
    return command[command.index("train") + 1 :]


def safe_name(text: str) -> str:
    """``text`` with every character a file name should not hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)


def point_name(point: dict[str, Any]) -> str:
    """A folder name for a grid point, e.g. ``lmbda=30``."""
    return safe_name(",".join(f"{k}={v}" for k, v in point.items()))


def plan(path: str | Path, out: str | Path | None, extra: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(point, resolved config)`` for every grid point of the sweep file; all are composed (and so
    checked) before any runs."""
    spec = load_sweep(path)
    folder = Path(out) if out else Path("runs") / "sweeps" / Path(path).stem
    planned = []
    for point in grid(spec):
        overrides = [*train_overrides(render(spec, point)), *extra, f"out_dir='{folder / point_name(point)}'"]  # quoted: names hold "="
        planned.append((point, compose(overrides)))
    return planned


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich sweep``."""
    parser.add_argument("sweep", help="a W&B grid sweep file, e.g. sweeps/gray_jpeg_lambda.yaml")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides for every point, e.g. trainer.max_steps=500")
    parser.add_argument("--out", help="folder of the points' run folders (default: runs/sweeps/<sweep file stem>)")
    report = parser.add_mutually_exclusive_group()
    report.add_argument(
        "--report-samples", metavar="SOURCE",
        help="embedded photos the report evaluates on: a source of the points' sample set (default: its held-out source, e.g. sporco for colour photos)"
    )
    report.add_argument("--report-images", metavar="DIR", help="a folder of your images for the report instead")
    report.add_argument("--no-report", action="store_true", help="train only; run `sandwich report` later")


def run(args: argparse.Namespace) -> None:
    """``sandwich sweep`` entry point."""
    from sandwich.train import quiet_lightning

    planned = plan(args.sweep, args.out, args.overrides)
    if args.report_images and not Path(args.report_images).is_dir():
        raise InputError(f"--report-images {args.report_images}: no such folder")
    trainer, local = planned[0][1]["trainer"], is_local(planned[0][1])
    if local and (trainer.get("num_nodes", 1) != 1 or trainer.get("devices", 1) not in (1, "1")):
        # Lightning would start the other ranks by re-running this whole command, each looping over the grid.
        raise InputError("sandwich sweep: multi-rank training runs one grid point per job; add launcher=slurm, or train each point with sandwich train")
    folder = Path(planned[0][1]["out_dir"]).parent
    todo = []
    for i, (point, config) in enumerate(planned, 1):
        label = f"sandwich sweep: [{i}/{len(planned)}] {point_name(point)}"
        if (Path(config["out_dir"]) / FINISHED).is_file():
            print(f"{label}: finished before, skipped ({config['out_dir']})")
        else:
            todo.append((label, point, config))
    if todo and not local:
        submit([config for _, _, config in todo], [point for _, point, _ in todo], submit_folder(planned[0][1], folder / "submitit"))
        print(f"sandwich sweep: when the jobs have finished, run `sandwich sweep {args.sweep}` again (finished points are skipped) for the report")
        return
    quiet_lightning()
    for label, point, config in todo:
        print(f"{label}: training into {config['out_dir']}")
        TrainJob(config, point)()
    print(f"sandwich sweep: all {len(planned)} points trained, in {folder}")
    if not args.no_report:
        from sandwich.evaluate import family

        samples = None if args.report_images else args.report_samples
        points = [config["out_dir"] for _, config in planned]
        family.run(argparse.Namespace(models=points, images=args.report_images, samples=samples, out=folder / "report", knobs=None, checkpoint="best", anchor=[]))

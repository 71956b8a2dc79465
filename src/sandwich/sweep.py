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
from pathlib import Path

from sandwich.errors import InputError
from sandwich.evaluate.family import run_report
from sandwich.launch import FINISHED, TrainJob, is_local, submit, submit_folder
from sandwich.sweep_files import plan, point_name
from sandwich.training import quiet_lightning


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
        run_report([config["out_dir"] for _, config in planned], folder / "report", args.report_images, None if args.report_images else args.report_samples)

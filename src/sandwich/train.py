"""``sandwich train``: train one sandwich (scenario x codec x λ) from the ``conf/`` configuration.

Usage: ``sandwich train experiment=gray_jpeg [key=value ...]`` (Hydra override syntax). The run folder
(``out_dir``) gets ``config.yaml`` (the resolved configuration), ``checkpoints/last.ckpt`` (updated every
``checkpoint_every`` steps and on interrupt), ``checkpoints/best.ckpt`` (the lowest ``val/loss`` of any
validation: real codec on the validation photos), ``git.txt``, ``git.diff`` and ``packages.txt`` (the code's
commit, its uncommitted changes and the installed packages), the logger's files and validation images.
Running the same command again resumes from ``last.ckpt`` (``resume=false`` starts over) and, with
``logger=wandb``, continues the same W&B run. ``launcher=slurm`` submits the run as a SLURM job instead
(:mod:`sandwich.launch`); ``trainer=ddp`` / ``trainer=ddp_cpu`` train on several ranks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from sandwich.config import GROUPS, compose, group_options
from sandwich.launch import is_local, submit, submit_folder
from sandwich.training import quiet_lightning, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich train``; the epilog lists every config group's options."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides, e.g. experiment=gray_jpeg lmbda=12")
    parser.epilog = "config groups (conf/):\n" + "\n".join(f"  {g}: {', '.join(group_options(g))}" for g in GROUPS)


def run(args: argparse.Namespace) -> None:
    """``sandwich train`` entry point: train here, or submit the run (``launcher=slurm``, :mod:`sandwich.launch`)."""
    config = compose(args.overrides)
    if not is_local(config):
        submit([config], [None], submit_folder(config, Path(config["out_dir"]) / "submitit"))
        return
    quiet_lightning()
    last = train(config)
    rank_zero_only(print)(f"sandwich: checkpoint {last}")

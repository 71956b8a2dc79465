"""``sandwich bench train``: training throughput on this machine for one experiment's default net and crop.

Times full optimiser steps (forward through pre-processor, proxy codec and rate model, post-processor;
backward; Adam) on one batch of the experiment's training data (data loading is not timed), and separately the codec proxy's own forward +
backward on a bottleneck of the same size, giving the codec's share of the step. Prints a table and
writes JSON (``--json PATH``) with ``images_per_s``, ``source_mpix_per_s``, ``step_ms``, ``codec_ms``,
``codec_share`` (0..1) and ``peak_rss_mib`` (the process's peak resident memory, CPU).
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import torch

from sandwich.bench.timing import median_seconds, print_table
from sandwich.config import compose
from sandwich.data.datamodule import ShardDataModule
from sandwich.errors import InputError
from sandwich.files import write_json
from sandwich.scenarios.registry import create_module


def measure(config: dict, repeats: int = 5) -> dict:
    """The figures of the module docstring for a resolved run configuration."""
    batch, crop = config["data"]["batch_size"], config["data"]["crop"]
    torch.manual_seed(config["seed"])
    module = create_module(config).train()
    optimizer = module.configure_optimizers()["optimizer"]
    data = ShardDataModule(**config["data"], seed=config["seed"])
    data.setup("fit")
    x = next(iter(data.train_dataloader()))  # one batch of the run's own training data, reused every step

    def step() -> None:
        optimizer.zero_grad()
        module._losses(x, module(x))["loss"].backward()
        optimizer.step()

    with torch.no_grad():
        bottleneck = module.pre(x)

    def codec() -> None:
        b = bottleneck.clone().requires_grad_(True)
        decoded, bits = module.codec(b)
        (decoded.sum() + bits.sum()).backward()

    step_s = median_seconds(step, repeats=repeats, warmup=2)
    codec_s = median_seconds(codec, repeats=repeats, warmup=2)
    return {
        "experiment": config["name"],
        "net": config["net"]["unet"],
        "batch_size": batch,
        "crop": crop,
        "threads": torch.get_num_threads(),
        "step_ms": step_s * 1e3,
        "images_per_s": batch / step_s,
        "source_mpix_per_s": batch * crop * crop / step_s / 1e6,
        "codec_ms": codec_s * 1e3,
        "codec_share": codec_s / step_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported; default 5)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (default: experiment=gray_jpeg)")


def run(args: argparse.Namespace) -> None:
    """``sandwich bench train`` entry point."""
    if args.repeats < 1:
        raise InputError(f"--repeats {args.repeats} must be >= 1")
    overrides = args.overrides if any(o.startswith("experiment=") for o in args.overrides) else ["experiment=gray_jpeg", *args.overrides]
    report = measure(compose(overrides), args.repeats)
    print_table(
        [report],
        [("experiment", "experiment", "s"), ("net", "net", "s"), ("batch_size", "batch", "d"), ("crop", "crop", "d"),
         ("images_per_s", "images/s", ".1f"), ("source_mpix_per_s", "MPix/s", ".3f"), ("step_ms", "step ms", ".1f"),
         ("codec_share", "codec share", ".2f"), ("peak_rss_mib", "peak RSS MiB", ".0f")],
    )
    write_json(args.json, report)

"""``sandwich bench train``: training throughput on this machine for one experiment's default net and crop.

Times full optimiser steps (forward through pre-processor, adapter, proxy codec and rate model, adapter
back, post-processor; backward; Adam) on one batch of the experiment's training data (data loading is not
timed), and separately each stage's own forward + backward on inputs of the sizes it sees in the step:
the pre-processor, the adapter (e.g. super-resolution's resampling down and up; nothing for the
identity), the codec proxy, the post-processor, and the distortion terms of the loss (a perceptual loss's
network: ``loss=lpips`` runs AlexNet on both images and back). Their shares of the step say where its
time goes (the rest is the rate term and Adam). Prints a table and writes JSON (``--json PATH``) with
``images_per_s``, ``source_mpix_per_s``, ``step_ms``, ``<stage>_ms`` and ``<stage>_share`` (0..1) for ``pre``,
``adapter``, ``codec``, ``post``, ``distortion``, and ``peak_rss_mib`` (the process's peak resident memory, CPU).
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
        out = module(x)
        coded = module.adapter.to_codec(out.bottleneck)

    def backward_of(fn, *inputs: torch.Tensor):
        """A timed callable: ``fn`` on fresh leaf copies of ``inputs``, then backward of the sum of its outputs."""

        def run() -> None:
            leaves = [t.clone().requires_grad_(True) for t in inputs]
            result = fn(*leaves)
            sum(r.sum() for r in (result if isinstance(result, tuple) else (result,))).backward()

        return run

    stages = {
        "pre": backward_of(lambda s: module.pre(s, out.level), x),
        "adapter": backward_of(lambda b, d: module.adapter.from_codec(d, out.bits, b)[0] + module.adapter.to_codec(b).mean(), out.bottleneck, coded),
        "codec": backward_of(lambda c: module.codec(c, out.level), coded),
        "post": backward_of(lambda d: module.post(d, out.level) if module.post is not None else d, out.decoded),
        "distortion": backward_of(lambda r: tuple(module.loss.distortions(x, r).values()), out.recon),
    }
    step_s = median_seconds(step, repeats=repeats, warmup=2)
    report = {
        "experiment": config["name"],
        "net": config["net"]["unet"],
        "batch_size": batch,
        "crop": crop,
        "threads": torch.get_num_threads(),
        "step_ms": step_s * 1e3,
        "images_per_s": batch / step_s,
        "source_mpix_per_s": batch * crop * crop / step_s / 1e6,
    }
    for name, fn in stages.items():
        seconds = median_seconds(fn, repeats=repeats, warmup=2)
        report |= {f"{name}_ms": seconds * 1e3, f"{name}_share": seconds / step_s}
    return report | {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
         ("pre_share", "pre", ".2f"), ("adapter_share", "adapter", ".2f"), ("codec_share", "codec", ".2f"), ("post_share", "post", ".2f"),
         ("distortion_share", "distortion", ".2f"),
         ("peak_rss_mib", "peak RSS MiB", ".0f")],
    )
    write_json(args.json, report)

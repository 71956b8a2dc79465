"""``sandwich bench train``: training throughput on this machine for one experiment's default net and crop.

Times full optimiser steps (forward through pre-processor, adapter, codec stage and rate model, adapter
back, post-processor; backward; Adam) on one batch of the experiment's training data (data loading is not
timed), and separately each stage's own forward + backward on inputs of the sizes it sees in the step:
the pre-processor, the adapter (e.g. super-resolution's resampling down and up; nothing for the
identity), the codec proxy, the post-processor, and the distortion terms of the loss (a perceptual loss's
network: ``loss=lpips`` runs AlexNet on both images and back). With a training signal that calls the real
codec (``codec.signal``), ``real_codec`` is the batch's real coding alone (its pictures coded and decoded in
the ``codec.workers`` threads; in the step it runs beside the proxy). Their shares of the step say where its
time goes (the rest is the rate term and Adam).

**Platform overhead**: the step above is a bare PyTorch loop (zero_grad, forward, loss, backward, Adam);
the same module and batch are then stepped by a Lightning ``Trainer`` (its
``training_step``: seeded random draws, metric logging), each step timed from one batch start to the next;
``lightning_overhead`` is the ratio of their medians minus 1 (goal <= 0.05).

``--device cuda`` runs it on the GPU (``auto``: the GPU when there is one), ``--autocast bf16`` under
bfloat16 autocast. Prints a table and writes JSON (``--json PATH``) with ``images_per_s``,
``source_mpix_per_s``, ``step_ms``, ``<stage>_ms`` and ``<stage>_share`` (0..1) for ``pre``, ``adapter``,
``codec``, ``real_codec`` (null without a real signal), ``post``, ``distortion``, ``lightning_step_ms``, ``lightning_overhead``, and ``peak_rss_mib`` (the process's peak resident memory, CPU)
or ``peak_gpu_mib`` (CUDA).
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from sandwich.bench.timing import median_seconds, print_table
from sandwich.codecs.stage import code_images
from sandwich.config import compose
from sandwich.data.datamodule import ShardDataModule
from sandwich.errors import InputError
from sandwich.files import write_json
from sandwich.scenarios.base import SandwichModule, picture_levels
from sandwich.scenarios.registry import create_module
from sandwich.training import quiet_lightning

STAGES = ("pre", "adapter", "codec", "real_codec", "post", "distortion")


def pick_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) as a device; InputError for CUDA without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device here")
    return torch.device(name)


def synchronised(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """``fn`` followed by a wait for the device's queued work, so that wall time measures it."""

    def run() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


class StepTimes(L.Callback):
    """Wall time from one training batch's start to the next (what a bare loop's step is compared with)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:  # noqa: D102
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def median(self, warmup: int) -> float:
        """Median seconds between batch starts after ``warmup`` steps."""
        return float(np.median(np.diff(self.starts[warmup:])))


def lightning_step_seconds(module: SandwichModule, batch: Tensor, steps: int, warmup: int, device: torch.device, precision: str) -> float:
    """Median seconds per step of a Lightning ``Trainer`` fitting ``module`` on ``batch`` repeated."""
    timer = StepTimes()
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_steps=warmup + steps + 1, precision=precision,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch.cpu()] * (warmup + steps + 1), batch_size=None))
    return timer.median(warmup)


def measure(config: dict, repeats: int = 5, device: str = "cpu", autocast: str | None = None) -> dict:
    """The figures of the module docstring for a resolved run configuration."""
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)  # this benchmark's own peak, not an earlier one's in the same process
    batch, crop = config["data"]["batch_size"], config["data"]["crop"]
    torch.manual_seed(config["seed"])
    module = create_module(config).to(dev).train()
    optimizer = module.configure_optimizers()["optimizer"]
    data = ShardDataModule.from_config(config)
    data.setup("fit")
    x = next(iter(data.train_dataloader())).to(dev)  # one batch of the run's own training data, reused every step
    precision = {None: "32-true", "bf16": "bf16-mixed"}[autocast]

    @contextlib.contextmanager
    def cast() -> Iterator[None]:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast is not None):
            yield

    with torch.no_grad(), cast():
        out = module(x)
        coded = module.adapter.to_codec(out.bottleneck)
    levels = picture_levels(out.level, coded)
    codec = module.codec
    knobs = [codec.knob_levels.knob(v) for v in levels.tolist()]

    def backward_of(fn, *inputs: torch.Tensor):
        """A timed callable: ``fn`` on fresh leaf copies of ``inputs``, then backward of the sum of its outputs."""

        def run() -> None:
            leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
            with cast():
                result = fn(*leaves)
            sum(r.float().sum() for r in (result if isinstance(result, tuple) else (result,))).backward()

        return run

    stages = {
        "pre": backward_of(lambda s: module.pre(s, out.level), x),
        "adapter": backward_of(lambda b, d: module.adapter.from_codec(d, out.bits, tuple(b.shape[-2:]))[0] + module.adapter.to_codec(b).mean(), out.bottleneck, coded),
        "codec": backward_of(lambda c: codec.proxy(c, levels), coded),
        "post": backward_of(lambda d: module.post(d, out.level) if module.post is not None else d, out.decoded),
        "distortion": backward_of(lambda r: tuple(module.loss.distortions(x, r).values()), out.recon),
    }
    if codec.signal.uses_real:
        stages["real_codec"] = lambda: code_images(coded, codec.real, lambda image, i: codec.real.encode(image, knobs[i]), codec.workers)
    step_s = median_seconds(synchronised(lambda: bare_step(module, optimizer, x, cast), dev), repeats=repeats, warmup=2)
    report = {
        "experiment": config["name"],
        "net": config["net"]["unet"],
        "device": str(dev),
        "autocast": autocast or "none",
        "signal": f"{codec.signal.rate}/{codec.signal.decode}",
        "batch_size": batch,
        "crop": crop,
        "threads": torch.get_num_threads(),
        "step_ms": step_s * 1e3,
        "images_per_s": batch / step_s,
        "source_mpix_per_s": batch * crop * crop / step_s / 1e6,
    }
    for name in STAGES:
        seconds = median_seconds(synchronised(stages[name], dev), repeats=repeats, warmup=2) if name in stages else None
        report |= {f"{name}_ms": None if seconds is None else seconds * 1e3, f"{name}_share": None if seconds is None else seconds / step_s}
    lightning = lightning_step_seconds(module, x, max(repeats, 3), 2, dev, precision)  # last: fit() hands the module back on the CPU
    report |= {"lightning_step_ms": lightning * 1e3, "lightning_overhead": lightning / step_s - 1}
    if dev.type == "cuda":
        return report | {"peak_gpu_mib": torch.cuda.max_memory_allocated(dev) / 2**20}
    return report | {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bare_step(module: SandwichModule, optimizer: torch.optim.Optimizer, x: Tensor, cast: Callable[[], contextlib.AbstractContextManager]) -> None:
    """One plain PyTorch training step of ``module`` on ``x`` (``step_ms``; what Lightning's step is compared with)."""
    optimizer.zero_grad()
    with cast():
        loss = module._losses(x, module(x))["loss"]
    loss.backward()
    optimizer.step()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported; default 5)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="where to run (default: cpu; auto: CUDA when present)")
    parser.add_argument("--autocast", choices=("bf16",), default=None, help="run forward passes under bfloat16 autocast")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (default: experiment=gray_jpeg)")


COLUMNS = [
    ("experiment", "experiment", "s"), ("device", "device", "s"), ("autocast", "autocast", "s"), ("batch_size", "batch", "d"),
    ("crop", "crop", "d"), ("images_per_s", "images/s", ".1f"), ("step_ms", "step ms", ".1f"), ("pre_share", "pre", ".2f"),
    ("adapter_share", "adapter", ".2f"), ("codec_share", "proxy", ".2f"), ("real_codec_share", "real codec", ".2f"),
    ("post_share", "post", ".2f"), ("distortion_share", "distortion", ".2f"), ("lightning_overhead", "Lightning overhead", "+.1%"),
]


def print_report(reports: list[dict]) -> None:
    """The table of ``reports`` (absent figures as ``-``)."""
    rows = [{k: ("-" if r.get(k) is None else r[k]) for k, _, _ in COLUMNS} for r in reports]
    print_table(rows, [(k, h, "s" if any(row[k] == "-" for row in rows) else f) for k, h, f in COLUMNS])


def run(args: argparse.Namespace) -> None:
    """``sandwich bench train`` entry point."""
    if args.repeats < 1:
        raise InputError(f"--repeats {args.repeats} must be >= 1")
    quiet_lightning()
    overrides = args.overrides if any(o.startswith("experiment=") for o in args.overrides) else ["experiment=gray_jpeg", *args.overrides]
    report = measure(compose(overrides), args.repeats, args.device, args.autocast)
    print_report([report])
    print(f"bare PyTorch step {report['step_ms']:.1f} ms, Lightning step {report['lightning_step_ms']:.1f} ms: overhead {report['lightning_overhead']:+.1%}")
    write_json(args.json, report)

"""``sandwich bench data``: is the shard pipeline ever the training step's bottleneck?

Times, in one run and side by side, the train batches of one experiment's data config (default
``experiment=gray_jpeg``):

* ``shards``: the real pipeline (:class:`~sandwich.data.datamodule.ShardDataModule`: tar shards -> PNG decode
  -> random crops, flips and the config's colour and defocus augmentation -> batches), once per
  ``--workers`` value (dataloader worker processes; 0 = in the training process);
* ``in-memory``: the same images decoded once and held as tensors, random crops and flips cut by torch: the
  pipeline without decoding and augmentation, the most a loader could give;
* the experiment's optimiser step (:func:`sandwich.bench.train.measure`) on one batch.

Each pipeline's figure is the median time per batch over ``--batches`` batches after its first (which
includes starting the workers). ``step / batch`` > 1 means the pipeline delivers batches faster than the
step consumes them (with workers, loading overlaps the step; without, it adds to it). Prints a table and
writes JSON (``--json PATH``): per pipeline ``batch_ms``, ``images_per_s``, ``vs_in_memory`` (its batch time
over the in-memory one's) and ``step_over_batch``; and ``step_ms``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from sandwich.bench.timing import print_table
from sandwich.bench.train import measure
from sandwich.config import compose
from sandwich.data.datamodule import ShardDataModule
from sandwich.errors import InputError
from sandwich.files import write_json
from sandwich.sample_format import to_tensor


def batch_seconds(batches: Iterator[torch.Tensor], count: int) -> float:
    """Median seconds per batch of ``count`` batches of ``batches``, after its first one (untimed)."""
    next(batches)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def in_memory_batches(images: list[torch.Tensor], batch_size: int, crop: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Endless ``(batch_size, C, crop, crop)`` random crops (with random flips) of ``images`` (``(C, H, W)``
    tensors at least ``crop`` a side), drawn by a seeded torch generator."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        crops = []
        for _ in range(batch_size):
            image = images[int(torch.randint(len(images), (), generator=generator))]
            top = int(torch.randint(image.shape[-2] - crop + 1, (), generator=generator))
            left = int(torch.randint(image.shape[-1] - crop + 1, (), generator=generator))
            patch = image[:, top : top + crop, left : left + crop]
            flips = [d for d, flip in ((-1, torch.rand((), generator=generator) < 0.5), (-2, torch.rand((), generator=generator) < 0.5)) if flip]
            crops.append(patch.flip(flips) if flips else patch)
        yield torch.stack(crops)


def train_images(data: ShardDataModule, crop: int) -> list[torch.Tensor]:
    """Every train image of ``data``'s shards decoded, as ``(C, H, W)`` float tensors (those under ``crop`` dropped)."""
    urls = [str(data.shard_dir / name) for name in data.index["train"]["shards"]]
    images = [to_tensor(data.decode(s), data.bit_depth) for s in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]
    return [image for image in images if min(image.shape[-2:]) >= crop]


def measure_pipelines(config: dict, workers: list[int], batches: int, repeats: int) -> dict:
    """The figures of the module docstring for a resolved run configuration."""
    data_config = config["data"]
    rows = []
    reference = ShardDataModule.from_config(config, num_workers=0)
    reference.setup("fit")
    images = train_images(reference, data_config["crop"])
    if not images:
        raise InputError(f"bench data: no train image is at least data.crop={data_config['crop']} pixels a side")
    memory_s = batch_seconds(in_memory_batches(images, data_config["batch_size"], data_config["crop"], config["seed"]), batches)
    rows.append({"pipeline": "in-memory", "workers": 0, "batch_ms": memory_s * 1e3})
    for count in workers:
        data = ShardDataModule.from_config(config, num_workers=count, batches_per_epoch=batches + 1)
        data.setup("fit")
        rows.append({"pipeline": "shards", "workers": count, "batch_ms": batch_seconds(iter(data.train_dataloader()), batches) * 1e3})
    step_ms = measure(config, repeats)["step_ms"]
    for row in rows:
        row |= {"images_per_s": data_config["batch_size"] / row["batch_ms"] * 1e3, "vs_in_memory": row["batch_ms"] / rows[0]["batch_ms"], "step_over_batch": step_ms / row["batch_ms"]}
    return {"experiment": config["name"], "batch_size": data_config["batch_size"], "crop": data_config["crop"], "threads": torch.get_num_threads(),
            "step_ms": step_ms, "pipelines": rows}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="dataloader worker counts to time (default: 0 1 2)")
    parser.add_argument("--batches", type=int, default=30, help="timed batches per pipeline (median reported; default 30)")
    parser.add_argument("--repeats", type=int, default=5, help="timed optimiser steps (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (default: experiment=gray_jpeg)")


def run(args: argparse.Namespace) -> None:
    """``sandwich bench data`` entry point."""
    for name, value, low in (("--batches", args.batches, 1), ("--repeats", args.repeats, 1), ("--workers", min(args.workers), 0)):
        if value < low:
            raise InputError(f"{name} {value} must be >= {low}")
    overrides = args.overrides if any(o.startswith("experiment=") for o in args.overrides) else ["experiment=gray_jpeg", *args.overrides]
    report = measure_pipelines(compose(overrides), sorted(set(args.workers)), args.batches, args.repeats)
    print(f"{report['experiment']}: batch {report['batch_size']} x {report['crop']}^2, optimiser step {report['step_ms']:.1f} ms ({report['threads']} threads)")
    print_table(report["pipelines"], [("pipeline", "pipeline", "s"), ("workers", "workers", "d"), ("batch_ms", "ms/batch", ".1f"),
                                      ("images_per_s", "images/s", ".0f"), ("vs_in_memory", "x in-memory", ".1f"), ("step_over_batch", "step/batch", ".1f")])
    write_json(args.json, report)

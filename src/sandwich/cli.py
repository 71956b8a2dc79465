"""The ``sandwich`` command.

Every subcommand has ``--help``. Exit codes: 0 on success, 2 on bad input (one line on stderr that
names the problem, no traceback).

Each subcommand lives in its own module (its docstring is the ``--help`` description; its
``add_arguments`` and ``run`` functions give the options and the action). Only the module of the
command being run is imported, so ``sandwich --help`` and ``sandwich shards`` do not pay for torch
and Lightning imports they do not use.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sandwich.errors import InputError

# name -> (module, one-line summary)
COMMANDS = {
    "demo": ("sandwich.demo", "the main job: train the grayscale-JPEG sandwich on CPU and write a report"),
    "train": ("sandwich.train", "train one sandwich: sandwich train experiment=NAME [key=value ...]"),
    "sweep": ("sandwich.sweep", "run a W&B grid sweep file (sweeps/) here, one run after another, resumable"),
    "eval": ("sandwich.evaluate.run", "evaluate a checkpoint and its baselines with the real codec"),
    "report": ("sandwich.evaluate.family", "one RD report for a family of models (a lambda sweep): every curve, their Pareto front, BD vs baselines"),
    "encode": ("sandwich.deploy.encode", "photos -> standard files (.jpg, .hevc, ...) through a trained sandwich's pre-processor and codec"),
    "decode": ("sandwich.deploy.decode", "files written by `sandwich encode` -> images, through the codec's decoder and the post-processor"),
    "export": ("sandwich.deploy.export", "a trained sandwich's pre- and post-processors as ONNX graphs, checked against onnxruntime"),
    "models": ("sandwich.deploy.models", "the pretrained sandwiches that ship with the package, and their model cards"),
    "shards": ("sandwich.data.shards", "pack a folder of images into WebDataset shards"),
    "weights": ("sandwich.weights", "install pretrained weights that cannot be downloaded at run time: sandwich weights lpips"),
}
BENCHMARKS = {
    "proxy": ("sandwich.bench.proxy", "proxy codec vs the real codec: rate error, reconstruction gap, speed vs kornia"),
    "train": ("sandwich.bench.train", "training throughput, the codec proxy's share of a step, peak memory"),
    "kernels": ("sandwich.bench.kernels", "block-codec kernels: CPU reference vs compiled vs Triton, copy-bound fractions"),
    "data": ("sandwich.bench.data", "the shard pipeline (decode, crop, augment) vs in-memory tensors vs the training step"),
    "gpu": ("sandwich.bench.gpu_check", "the lent-GPU check (make gpu-check): CUDA tests, kernels, training throughput, a 3-minute run; token sizes on CPU"),
}


def _add_commands(subparsers: argparse._SubParsersAction, commands: dict[str, tuple[str, str]], chosen: str | None) -> None:
    """One subcommand per entry; only ``chosen`` is imported and given its options."""
    for name, (module_name, summary) in commands.items():
        if name != chosen:
            subparsers.add_parser(name, help=summary)
            continue
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The argument parser, with the options of the subcommand named in ``argv``."""
    words = [a for a in argv if not a.startswith("-")]
    command = words[0] if words else None
    parser = argparse.ArgumentParser(
        prog="sandwich",
        description="Sandwiched image compression: neural pre/post-processors around a standard codec.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(commands, COMMANDS, command)
    bench = commands.add_parser("bench", help="benchmarks that print figures and write JSON", description="Benchmarks.")
    benches = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    _add_commands(benches, BENCHMARKS, words[1] if command == "bench" and len(words) > 1 else None)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sandwich`` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"sandwich: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

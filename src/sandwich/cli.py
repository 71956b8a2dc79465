"""The ``sandwich`` command.

Every subcommand has ``--help``. Exit codes: 0 on success, 2 on bad input (one line on stderr that
names the problem, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from sandwich.errors import InputError


def _add_commands(subparsers: argparse._SubParsersAction, entries: tuple[tuple[str, ModuleType, str], ...]) -> None:
    """One subcommand per (name, module, summary): the module's docstring is its ``--help`` description and
    its ``add_arguments`` / ``run`` functions its options and action."""
    for name, module, summary in entries:
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    from sandwich import demo, train
    from sandwich.bench import proxy as bench_proxy
    from sandwich.bench import train as bench_train
    from sandwich.data import shards
    from sandwich.evaluate import run as evaluate

    parser = argparse.ArgumentParser(
        prog="sandwich",
        description="Sandwiched image compression: neural pre/post-processors around a standard codec.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(commands, (
        ("demo", demo, "the main job: train the grayscale-JPEG sandwich on CPU and write a report"),
        ("train", train, "train one sandwich: sandwich train experiment=NAME [key=value ...]"),
        ("eval", evaluate, "evaluate a checkpoint and its baselines with the real codec"),
        ("shards", shards, "pack a folder of images into WebDataset shards"),
    ))
    bench = commands.add_parser("bench", help="benchmarks that print figures and write JSON", description="Benchmarks.")
    benches = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    _add_commands(benches, (
        ("proxy", bench_proxy, "proxy codec vs the real codec: rate error, reconstruction gap, speed vs kornia"),
        ("train", bench_train, "training throughput, the codec proxy's share of a step, peak memory"),
    ))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sandwich`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        print(f"sandwich: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

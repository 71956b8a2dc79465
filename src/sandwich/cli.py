"""The ``sandwich`` command.

Every subcommand has ``--help``. Exit codes: 0 on success, 2 on bad input (one line on stderr that
names the problem, no traceback).
"""

from __future__ import annotations

import argparse
import sys

from sandwich.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    from sandwich import demo, train
    from sandwich.bench import proxy as bench_proxy
    from sandwich.data import shards
    from sandwich.evaluate import run as evaluate

    parser = argparse.ArgumentParser(
        prog="sandwich",
        description="Sandwiched image compression: neural pre/post-processors around a standard codec.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, summary in (
        ("demo", demo, "the main job: train the grayscale-JPEG sandwich on CPU and write a report"),
        ("train", train, "train one sandwich: sandwich train experiment=NAME [key=value ...]"),
        ("eval", evaluate, "evaluate a checkpoint and its baselines with the real codec"),
        ("shards", shards, "pack a folder of images into WebDataset shards"),
    ):
        sub = commands.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    bench = commands.add_parser("bench", help="benchmarks that print figures and write JSON", description="Benchmarks.")
    benches = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    proxy = benches.add_parser(
        "proxy",
        help="proxy codec vs the real codec: rate error, reconstruction gap, speed vs kornia",
        description=bench_proxy.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench_proxy.add_arguments(proxy)
    proxy.set_defaults(func=bench_proxy.run)
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

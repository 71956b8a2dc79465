"""``sandwich models``: the pretrained sandwiches that ship with the package, and their model cards.

Without options, one line per model: its name (``--model NAME`` in ``eval``, ``report``, ``encode``,
``decode`` and ``export``), configuration, codec, size and headline figure. ``--card NAME`` prints a model's
card: the command that trained it, its data and budget, and its figures against its baselines on photos it
never saw. ``--pack CKPT --name NAME`` (for maintainers) writes a checkpoint's configuration and weights,
without its optimiser state, as pretrained model ``NAME`` into the package (its card is written by hand).
"""

from __future__ import annotations

import argparse

import torch

from sandwich import pretrained
from sandwich.codecs.stage import describe_codec
from sandwich.errors import InputError
from sandwich.evaluate.checkpoint import load_module, read_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich models``."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--card", metavar="NAME", help="print the model card of NAME")
    which.add_argument("--pack", metavar="CKPT", help="(maintainers) store CKPT's configuration and weights as pretrained model --name")
    parser.add_argument("--name", help="with --pack: the model's name")


def headline(card: str) -> str:
    """The card's headline: its first line that starts with ``Headline:``, without the prefix."""
    return next((line.removeprefix("Headline:").strip() for line in card.splitlines() if line.startswith("Headline:")), "")


def pack(checkpoint: str, name: str) -> None:
    """Write ``checkpoint``'s configuration and weights as pretrained model ``name`` (loaded once, to check them)."""
    module = load_module(checkpoint)
    stored = read_checkpoint(checkpoint)
    path = pretrained.FOLDER / f"{name}.pt"
    torch.save({"sandwich_config": stored["sandwich_config"], "state_dict": module.state_dict()}, path)
    print(f"sandwich: wrote {path} ({path.stat().st_size / 1e6:.2f} MB); write its card {path.with_suffix('.md')}")


def run(args: argparse.Namespace) -> None:
    """``sandwich models`` entry point."""
    if args.pack:
        if not args.name:
            raise InputError("--pack needs --name NAME")
        pack(args.pack, args.name)
        return
    if args.card:
        print(pretrained.card(args.card))
        return
    for name in pretrained.names():
        module = load_module(pretrained.model_path(name))
        size = pretrained.model_path(name).stat().st_size / 1e6
        print(f"{name:14} {module.spec.scenario:>8} over {describe_codec(module.codec.real):28} {size:5.2f} MB  {headline(pretrained.card(name))}")

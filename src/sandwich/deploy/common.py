"""What ``sandwich encode``, ``decode`` and ``export`` share: the model to load, inputs and outputs by file
or folder, and the refusal to overwrite."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from sandwich.errors import InputError
from sandwich.evaluate.checkpoint import add_model_arguments, load_module, model_file, weights_digest
from sandwich.scenarios.base import SandwichModule


def add_io_arguments(parser: argparse.ArgumentParser, inputs: str, outputs: str) -> None:
    """The model (``--ckpt`` / ``--model``), ``IN``, ``OUT`` and ``--force`` of a command that maps files to files."""
    add_model_arguments(parser)
    parser.add_argument("input", metavar="IN", help=f"{inputs}, or a folder of them (searched recursively)")
    parser.add_argument("output", metavar="OUT", help=f"{outputs}; for a folder IN, a folder that mirrors IN's tree")
    parser.add_argument("--force", action="store_true", help="overwrite outputs that exist (default: refuse, before anything is written)")


def load_model(args: argparse.Namespace) -> tuple[SandwichModule, str]:
    """The module that ``--ckpt`` or ``--model`` names and its weights' digest."""
    path, _ = model_file(args.ckpt, args.model)
    module = load_module(path)
    return module, weights_digest(module)


def pairs(source: Path, target: Path, find: Callable[[Path], list[Path]], rename: Callable[[Path], Path]) -> list[tuple[Path, Path]]:
    """``(input, output)`` pairs: ``(source, target)`` for a file; for a folder, every file ``find(source)``
    lists, written to ``target / rename(its path relative to source)``.

    Raises:
        InputError: ``source`` does not exist, or is a folder where ``find`` lists nothing.
    """
    if source.is_dir():
        found = [(path, target / rename(path.relative_to(source))) for path in find(source)]
        if not found:
            raise InputError(f"{source}: nothing to do in this folder")
        return found
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    return [(source, target)]


def check_free(paths: Iterable[Path], force: bool) -> None:
    """InputError naming the first of ``paths`` that exists, unless ``force``."""
    if force:
        return
    for path in paths:
        if path.exists():
            raise InputError(f"{path}: exists (--force overwrites)")

"""Loading a trained sandwich, safely, with clear errors: a checkpoint written by ``sandwich train``, a W&B
model artifact, or a pretrained model that ships with the package (:mod:`sandwich.pretrained`).

Checkpoints are read with ``torch.load(weights_only=True)``: the unpickler builds only tensors and the
containers and scalars a checkpoint of weights and a configuration needs (dict, list, tuple, OrderedDict,
str, int, float, bool, None: torch's weights-only set, nothing added). A file whose pickle asks for
anything else (a function to call, a class to build) is refused before any of it runs, with one line
naming what it asked for: a ``.ckpt`` from a colleague or a W&B download cannot run code.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from sandwich import pretrained
from sandwich.config import upgrade
from sandwich.errors import InputError
from sandwich.scenarios.base import SandwichModule
from sandwich.scenarios.registry import create_module
from sandwich.tracking import WANDB_PREFIX, wandb_checkpoints


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict stored in checkpoint ``path``, unpickled with weights only (module docstring), on CPU.

    Raises:
        InputError: the file is missing or not a readable checkpoint, or its pickle asks for a global
            (a function or class) outside the weights-only set (the message names it), or it holds no
            ``sandwich_config`` and ``state_dict`` (not written by ``sandwich train`` or ``sandwich models``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        asked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = asked.group(1) if asked else str(exc).strip().splitlines()[-1]
        raise InputError(f"{path}: refused: its pickle asks for {what}, which a checkpoint of weights and a configuration never needs (it could run code)") from None
    except Exception as exc:  # torch raises many types for non-checkpoint files
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(checkpoint, dict) or "sandwich_config" not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"{path}: not a sandwich checkpoint (no sandwich_config / state_dict)")
    return checkpoint


def load_module(path: str | Path) -> SandwichModule:
    """The module stored in ``path`` (its configuration and weights), in eval mode on CPU.

    Raises:
        InputError: the file is missing, not a checkpoint, asks its unpickler for code (:func:`read_checkpoint`),
            was not written by ``sandwich train``, its configuration lacks a key this version needs (written
            by an older version), or its weights do not fit the configuration it carries.
    """
    checkpoint = read_checkpoint(path)
    try:
        module = create_module(upgrade(checkpoint["sandwich_config"]))
    except KeyError as exc:
        raise InputError(f"{path}: its configuration has no {exc.args[0]!r} (written by an older sandwich; retrain it)") from None
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match its configuration ({str(exc).splitlines()[0]})") from None
    return module.eval()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--ckpt`` / ``--model`` pair (one of them required) of every command that loads a trained sandwich."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--ckpt",
        help="checkpoint written by `sandwich train` (e.g. runs/.../checkpoints/best.ckpt), or a W&B model artifact: wandb:ENTITY/PROJECT/model-RUN_ID:best "
        "(read weights-only: a checkpoint whose pickle would run code is refused)",
    )
    which.add_argument("--model", metavar="NAME", help=f"a pretrained model that ships with the package: {', '.join(pretrained.names()) or 'none yet'} (`sandwich models`)")


def model_file(ckpt: str | None = None, model: str | None = None) -> tuple[Path, str | None]:
    """The checkpoint file a command's ``--ckpt`` or ``--model`` names, and the W&B artifact it came from (or None).

    ``ckpt``: a file, or a W&B model artifact ``wandb:ENTITY/PROJECT/NAME:ALIAS`` (downloaded, then read
    like any file); ``model``: a pretrained model's name (``sandwich models``). Exactly one is given.

    Raises:
        InputError: neither or both given, an unknown pretrained name, a W&B reference to several models.
    """
    if (ckpt is None) == (model is None):
        raise InputError("give a checkpoint (--ckpt) or a pretrained model (--model), one of them")
    if model is not None:
        return pretrained.model_path(model), None
    if ckpt.startswith(WANDB_PREFIX):
        (path, artifact), *more = wandb_checkpoints(ckpt[len(WANDB_PREFIX) :])
        if more:
            raise InputError(f"{ckpt}: names {len(more) + 1} models; this command takes one")
        return path, artifact
    return Path(ckpt), None


def weights_digest(module: SandwichModule) -> str:
    """A content hash of ``module``'s weights (every tensor of its state dict, names and values in order):
    16 hex digits of their SHA-256. Two modules with one digest compute the same thing."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]

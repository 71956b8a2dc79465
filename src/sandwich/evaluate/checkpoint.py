"""Loading a trained sandwich from a checkpoint written by ``sandwich train``, with clear errors."""

from __future__ import annotations

from pathlib import Path

import torch

from sandwich.config import upgrade
from sandwich.errors import InputError
from sandwich.scenarios.base import SandwichModule
from sandwich.scenarios.registry import create_module


def load_module(path: str | Path) -> SandwichModule:
    """The module stored in ``path`` (its configuration and weights), in eval mode on CPU.

    Raises:
        InputError: the file is missing, not a checkpoint, was not written by ``sandwich train``, its
            configuration lacks a key this version needs (written by an older version), or its weights do
            not fit the configuration it carries.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for non-checkpoint files
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(checkpoint, dict) or "sandwich_config" not in checkpoint or "state_dict" not in checkpoint:
        raise InputError(f"{path}: not a sandwich checkpoint (no sandwich_config / state_dict)")
    try:
        module = create_module(upgrade(checkpoint["sandwich_config"]))
    except KeyError as exc:
        raise InputError(f"{path}: its configuration has no {exc.args[0]!r} (written by an older sandwich; retrain it)") from None
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not match its configuration ({str(exc).splitlines()[0]})") from None
    return module.eval()

"""Pretrained sandwiches that ship with the package (``sandwich models`` lists them).

Each model is two files here: ``NAME.pt``, its configuration and weights only (``{"sandwich_config",
"state_dict"}``, read like any checkpoint, weights-only, by :func:`sandwich.evaluate.checkpoint.load_module`),
and ``NAME.md``, its model card (the command that trained it, its data and budget, and its figures against
its baselines on photos it never saw). ``--model NAME`` names one wherever ``--ckpt`` names a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from sandwich.errors import InputError

FOLDER = Path(__file__).parent


def names() -> list[str]:
    """The names of the pretrained models, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.pt"))


def model_path(name: str) -> Path:
    """The weights file of pretrained model ``name``.

    Raises:
        InputError: no pretrained model of that name (the message lists those there are).
    """
    path = FOLDER / f"{name}.pt"
    if not path.is_file():
        raise InputError(f"no pretrained model {name!r}; there are: {', '.join(names()) or 'none'} (sandwich models)")
    return path


def card(name: str) -> str:
    """The model card (Markdown) of pretrained model ``name``."""
    return model_path(name).with_suffix(".md").read_text(encoding="utf-8")

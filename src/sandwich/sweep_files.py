"""W&B grid sweep files (``sweeps/``): reading one, its grid points, the ``sandwich train`` command of each
point as W&B's agent renders it, and their run folders. ``sandwich sweep`` (:mod:`sandwich.sweep`) runs
them; ``sandwich report`` (:mod:`sandwich.evaluate.family`) finds their checkpoints."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml

from sandwich.config import compose
from sandwich.errors import InputError


def load_sweep(path: str | Path) -> dict[str, Any]:
    """The sweep configuration in ``path``; InputError unless it is a grid sweep of ``sandwich train``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such sweep file")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict) or spec.get("method") != "grid" or not isinstance(spec.get("parameters"), dict):
        raise InputError(f"{path}: expected a W&B sweep with method: grid and parameters")
    command = [str(c) for c in spec.get("command", [])]
    if "train" not in command or "${args_no_hyphens}" not in command:
        raise InputError(f"{path}: its command must run `sandwich train ... ${{args_no_hyphens}}`")
    for key, values in spec["parameters"].items():
        if not isinstance(values, dict) or not ("values" in values or "value" in values):
            raise InputError(f"{path}: parameter {key!r} needs values (a grid sweep takes only values/value)")
    return spec


def grid(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every grid point ``{key: value}``, in the order W&B's grid search runs them (last key fastest)."""
    keys = list(spec["parameters"])
    choices = [p["values"] if "values" in p else [p["value"]] for p in spec["parameters"].values()]
    return [dict(zip(keys, combination, strict=True)) for combination in itertools.product(*choices)]


def render(spec: dict[str, Any], point: dict[str, Any]) -> list[str]:
    """The command the W&B agent would run for ``point`` (its macros filled as wandb's agent fills them)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    values = sweep_utils.create_sweep_command_args({"args": {k: {"value": v} for k, v in point.items()}})
    values |= {"env": ["/usr/bin/env"], "interpreter": ["python"], "program": [str(spec.get("program", "sandwich"))]}
    rendered: list[str] = []
    for chunk in sweep_utils.create_sweep_command([str(c) for c in spec["command"]]):
        rendered += values.get(chunk[2:-1], []) if chunk.startswith("${") and chunk.endswith("}") else [chunk]
    return rendered


def train_overrides(command: list[str]) -> list[str]:
    """The Hydra overrides of a rendered ``sandwich train`` command (what follows ``train``)."""
    return command[command.index("train") + 1 :]


def safe_name(text: str) -> str:
    """``text`` with every character a file name should not hold replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)


def point_name(point: dict[str, Any]) -> str:
    """A folder name for a grid point, e.g. ``lmbda=30``."""
    return safe_name(",".join(f"{k}={v}" for k, v in point.items()))


def plan(path: str | Path, out: str | Path | None, extra: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(point, resolved config)`` for every grid point of the sweep file; all are composed (and so
    checked) before any runs."""
    spec = load_sweep(path)
    folder = Path(out) if out else Path("runs") / "sweeps" / Path(path).stem
    planned = []
    for point in grid(spec):
        overrides = [*train_overrides(render(spec, point)), *extra, f"out_dir='{folder / point_name(point)}'"]  # quoted: names hold "="
        planned.append((point, compose(overrides)))
    return planned

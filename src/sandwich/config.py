"""Composing run configurations from ``conf/`` (Hydra) with clear one-line errors.

``compose(["experiment=gray_jpeg", "lmbda=300"])`` returns the resolved configuration as a plain dict.
Unknown keys, unknown group options and values of the wrong type fail here, before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sandwich.errors import InputError

GROUPS = ("codec", "net", "scenario", "loss", "data", "trainer", "logger", "launcher", "experiment")


def conf_dir() -> Path:
    """The ``conf/`` folder: ``$SANDWICH_CONF`` if set, else the one at the root of this checkout."""
    path = Path(os.environ.get("SANDWICH_CONF", Path(__file__).resolve().parents[2] / "conf"))
    if not (path / "train.yaml").is_file():
        raise InputError(f"{path}: no train.yaml here; set SANDWICH_CONF to the project's conf/ folder")
    return path


def group_options(group: str) -> list[str]:
    """The option names of a config group (its YAML files but the shared ``_base.yaml``-style ones), sorted."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml") if not p.stem.startswith("_"))


def _compose(overrides: list[str]) -> dict[str, Any]:
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="train", overrides=overrides)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except (HydraException, OmegaConfBaseException) as exc:
        raise InputError("config: " + " ".join(line.strip() for line in str(exc).splitlines()[:2])) from None


def _check_types(config: dict[str, Any], defaults: dict[str, Any], prefix: str = "") -> None:
    """Each value must have the type of the same key's value in the config files (None there: anything)."""
    for key, default in defaults.items():
        if key not in config:
            continue
        value, name = config[key], f"{prefix}{key}"
        if isinstance(default, dict) and isinstance(value, dict):
            _check_types(value, default, f"{name}.")
        elif default is None or value is None:
            continue
        elif isinstance(default, bool) != isinstance(value, bool):
            raise InputError(f"config: {name}={value!r}: expected true or false")
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)):
            raise InputError(f"config: {name}={value!r}: expected a number")
        elif isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            raise InputError(f"config: {name}={value!r}: expected an integer")
        elif isinstance(default, (str, list, dict)) and type(value) is not type(default):
            raise InputError(f"config: {name}={value!r}: expected a {type(default).__name__}")


def compose(overrides: list[str]) -> dict[str, Any]:
    """The resolved run configuration for ``overrides`` (Hydra syntax: ``group=option``, ``a.b=value``).

    Raises:
        InputError: unknown key or option, unparsable override, or a value whose type differs from the
            type the config files give that key.
    """
    config = _compose(overrides)
    choices = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in GROUPS]
    _check_types(config, _compose(choices))
    return config


def upgrade(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration stored by an older sandwich (in a checkpoint) in today's keys, as a new dict.

    Renamed: ``codec.levels`` / ``codec.val_levels`` -> ``codec.knobs`` / ``codec.val_knobs`` and a baseline
    codec's ``levels`` -> ``knobs`` (knob values are what a codec's encoder takes; levels are octaves). Keys
    added since (``codec.signal``, ``codec.workers``) are left out: the codec stage's defaults are the
    behaviour that preceded them.
    """
    renames = {"levels": "knobs", "val_levels": "val_knobs"}
    codec = {renames.get(key, key): value for key, value in config["codec"].items()}
    scenario = dict(config["scenario"])
    scenario["baselines"] = {
        name: None if variants is None else {label: {renames.get(k, k): v for k, v in variant.items()} for label, variant in variants.items()}
        for name, variants in scenario.get("baselines", {}).items()
    }
    return config | {"codec": codec, "scenario": scenario}

"""Scenario name (``scenario.name`` in the config) -> LightningModule class."""

from __future__ import annotations

from typing import Any

from sandwich.errors import InputError
from sandwich.scenarios.base import SandwichModule
from sandwich.scenarios.gray import GraySandwich
from sandwich.scenarios.rgb import RgbSandwich

SCENARIOS: dict[str, type[SandwichModule]] = {"rgb": RgbSandwich, "gray": GraySandwich}


def create_module(config: dict[str, Any]) -> SandwichModule:
    """Build the scenario's module from a resolved run configuration (see ``conf/``)."""
    name = config["scenario"]["name"]
    if name not in SCENARIOS:
        raise InputError(f"scenario {name!r} not one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name](config)

"""Scenario LightningModules by name (``scenario.module`` in the config).

RGB over an RGB codec and RGB over a one-channel codec are the same module: what differs (bypasses,
baselines) is configuration (``conf/scenario/``). A configuration that changes the flow itself (e.g.
resampling around the codec, channel groups, bit-depth reduction) registers its thin subclass here.
"""

from __future__ import annotations

from typing import Any

from sandwich.registry import Registry
from sandwich.scenarios.base import SandwichModule
from sandwich.scenarios.groups import GroupedSandwich
from sandwich.scenarios.hdr import HdrSandwich
from sandwich.scenarios.superres import SuperResolutionSandwich

SCENARIOS: Registry[SandwichModule] = Registry("scenario module", {"sandwich": SandwichModule, "superres": SuperResolutionSandwich, "groups": GroupedSandwich, "hdr": HdrSandwich})


def create_module(config: dict[str, Any]) -> SandwichModule:
    """Build the scenario's module from a resolved run configuration (see ``conf/``)."""
    return SCENARIOS.get(config["scenario"]["module"])(config)

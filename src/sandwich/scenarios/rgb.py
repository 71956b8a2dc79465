"""RGB over an RGB codec (JPEG 4:2:0 or 4:4:4): the sandwich against the codec alone."""

from __future__ import annotations

from sandwich.nets.processor import Processor
from sandwich.scenarios.base import SOURCE_CHANNELS, SandwichModule


class RgbSandwich(SandwichModule):
    """RGB -> RGB bottleneck -> RGB. Baseline ``"codec"``: the codec alone (identity processors)."""

    def baselines(self) -> dict[str, list[tuple[str, Processor, Processor]]]:  # noqa: D102
        identity = Processor(SOURCE_CHANNELS, SOURCE_CHANNELS, "identity")
        return {"codec": [("codec", identity, identity)]}

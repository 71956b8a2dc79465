"""Super-resolution: a high-resolution source over a low-resolution codec (PCS 2022).

The pre-processor works at the source's resolution, the codec carries a picture ``scenario.scale`` times
smaller per side (antialiased bicubic down, :class:`~sandwich.scenarios.adapters.Resample`), and the
post-processor restores full resolution from the Lanczos-3 up-sampled decode. bpp counts the codec's
bits per *source* pixel. With identity processors the sandwich is plain resampling around the codec.
"""

from __future__ import annotations

from typing import Any

from sandwich.errors import InputError
from sandwich.scenarios.adapters import Adapter, Resample
from sandwich.scenarios.base import SandwichModule

BLOCK = {"420": 16, "444": 8, "400": 8}
"""The smallest codec picture side per chroma layout: one MCU (JPEG) or coding block."""


class SuperResolutionSandwich(SandwichModule):
    """:class:`SandwichModule` with the codec at ``1/scenario.scale`` of the source's resolution.

    Raises:
        InputError: a scale that is not an integer >= 2, or training/validation crops (``data.crop``,
            ``data.val_crop``) that would give the codec a picture smaller than its block.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        need = self.adapter.factor * self.adapter.min_side
        for key in ("crop", "val_crop"):
            if config["data"][key] < need:
                raise InputError(f"config: data.{key}={config['data'][key]} is below {need}: at scale {self.adapter.factor} the codec would get less than its {self.adapter.min_side}-pixel block")

    def make_adapter(self) -> Adapter:  # noqa: D102
        return Resample(self.config["scenario"]["scale"], BLOCK[getattr(self.codec.real, "subsampling", "420")])

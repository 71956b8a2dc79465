"""High dynamic range: a d-bit source (10, 12 or 16 bits) over an 8-bit codec (PCS 2022).

The pre-processor works on the d-bit source and outputs a d-bit bottleneck; the 8-bit codec carries
``floor(B / 2^t)``, ``t = d - 8``, with a straight-through gradient, and the post-processor starts from
the bin's midpoint ``B̂ · 2^t + 2^(t-1)`` (:class:`~sandwich.scenarios.adapters.BitDepth`). The loss's MSE
and every reported PSNR are on the d-bit scale, ``10 log10((2^d - 1)^2 / MSE)``. With identity processors
the sandwich is plain bit-depth reduction around the codec.
"""

from __future__ import annotations

from sandwich.scenarios.adapters import Adapter, BitDepth
from sandwich.scenarios.base import SandwichModule


class HdrSandwich(SandwichModule):
    """:class:`SandwichModule` whose codec carries the ``scenario.bit_depth``-bit bottleneck in its own (fewer) bits.

    Raises:
        InputError: a source bit depth not above the codec's.
    """

    def make_adapter(self) -> Adapter:  # noqa: D102
        return BitDepth(self.bit_depth, self.codec.real.bit_depth)

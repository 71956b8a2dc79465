"""RGB over a grayscale (4:0:0) codec: one bottleneck channel has to carry the colour.

Baselines:

* ``"codec"``: the codec carries the luma; the decoder shows it as gray (no colour at all);
* ``"texture_embedding"``: the classic non-learned answer, colour embedded as texture in the luma's Haar
  subbands (de Queiroz & Braun 2006; :mod:`sandwich.nets.colour_maps`), swept over its gain ``alpha``.

The sandwich's default bypasses are that same embedding (with trainable gains), so training starts from
the classic method and the U-Nets learn what it misses.
"""

from __future__ import annotations

from sandwich.nets.processor import Processor
from sandwich.scenarios.base import SandwichModule

# Embedding gains the texture baseline is swept over (its RD curve is the Pareto front of all of them).
TEXTURE_ALPHAS = (0.25, 0.5, 1.0, 2.0)


class GraySandwich(SandwichModule):
    """RGB -> one-channel bottleneck (JPEG 4:0:0) -> RGB."""

    def baselines(self) -> dict[str, list[tuple[str, Processor, Processor]]]:  # noqa: D102
        gray = [("codec", Processor(3, 1, "luma"), Processor(1, 3, "gray_to_rgb"))]
        texture = [
            (f"alpha={alpha:g}", Processor(3, 1, "texture_embed", alpha=alpha), Processor(1, 3, "texture_extract", alpha=alpha))
            for alpha in TEXTURE_ALPHAS
        ]
        return {"codec": gray, "texture_embedding": texture}

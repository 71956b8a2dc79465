"""Bottleneck adapters: what happens between the pre-processor's output and the codec, and back.

A sandwich's flow is ``source -> pre -> adapter.to_codec -> codec -> adapter.from_codec -> post``. The
identity adapter (:class:`Adapter`) hands the bottleneck to the codec as it is. The configurations
to come change only this step: resampling around the codec (super-resolution: ``to_codec`` down,
``from_codec`` up), bit-depth reduction to the codec's depth (HDR: floor with a straight-through
gradient, midpoint reconstruction), channel groups of the codec's width (more channels than the codec
has: ``(N, G·C, H, W) -> (N·G, C, H, W)`` and the bits of a source image's groups summed). A scenario
picks its adapter in :meth:`~sandwich.scenarios.base.SandwichModule.make_adapter`.
"""

from __future__ import annotations

from torch import Tensor, nn


class Adapter(nn.Module):
    """The identity adapter; subclasses override all three methods together.

    Shapes: the bottleneck is ``(N, bottleneck_channels, H, W)`` on [0, 1]; the codec's input and output
    ``(M, codec channels, h, w)`` on [0, 1]; bits ``(M,)`` from the codec, ``(N,)`` per source image back.
    """

    def bottleneck_channels(self, codec_channels: int) -> int:
        """Channels of the bottleneck (the pre-processor's output) for a codec of ``codec_channels``."""
        return codec_channels

    def to_codec(self, bottleneck: Tensor) -> Tensor:
        """The bottleneck as the codec's input."""
        return bottleneck

    def from_codec(self, decoded: Tensor, bits: Tensor, bottleneck: Tensor) -> tuple[Tensor, Tensor]:
        """The codec's output and bits back in the bottleneck's shape (``bottleneck`` for reference) and per source image."""
        return decoded, bits

"""Bottleneck adapters: what happens between the pre-processor's output and the codec, and back.

A sandwich's flow is ``source -> pre -> adapter.to_codec -> codec -> adapter.from_codec -> post``. The
identity adapter (:class:`Adapter`) hands the bottleneck to the codec as it is; :class:`Resample`
carries it at a lower resolution (super-resolution); :class:`ChannelGroups` codes a bottleneck of G groups of
the codec's width as G pictures (more channels than the codec has: ``(N, G·C, H, W) -> (N·G, C, H, W)``
and the bits of a source image's groups summed); :class:`BitDepth` carries a d-bit bottleneck over a
codec of fewer bits (HDR: floor with a straight-through gradient, midpoint reconstruction). A scenario
picks its adapter in :meth:`~sandwich.scenarios.base.SandwichModule.make_adapter`.

The codec codes ``M = k·N`` pictures for N source images (k pictures each, in order); each picture is
coded at its source image's level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sandwich.codecs.quantize import ste_floor
from sandwich.errors import InputError
from sandwich.resize import bicubic_down, lanczos_up
from sandwich.sample_format import peak


class Adapter(nn.Module):
    """The identity adapter; subclasses override all three methods together.

    Shapes: the bottleneck is ``(N, bottleneck_channels, H, W)`` on [0, 1]; the codec's input and output
    ``(M, codec channels, h, w)`` on [0, 1]; bits ``(M,)`` from the codec, ``(N,)`` per source image back.
    The way back needs only the codec's output and the bottleneck's size ``(H, W)``, so a decoder works
    from the coded pictures and that size alone (:meth:`~sandwich.scenarios.base.SandwichModule.decode`).
    """

    def bottleneck_channels(self, codec_channels: int) -> int:
        """Channels of the bottleneck (the pre-processor's output) for a codec of ``codec_channels``."""
        return codec_channels

    def check(self, height: int, width: int) -> None:
        """Raise InputError when a ``height x width`` source cannot go through this adapter (here: never)."""

    @property
    def pictures(self) -> int:
        """Codec pictures per source image (``k``; 1 here)."""
        return 1

    @property
    def scale(self) -> int:
        """How many times smaller per side the codec's pictures are than the source (1 here)."""
        return 1

    def to_codec(self, bottleneck: Tensor) -> Tensor:
        """The bottleneck as the codec's input."""
        return bottleneck

    def from_codec(self, decoded: Tensor, bits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """The codec's output and bits back in the bottleneck's shape (``size`` its ``(H, W)``) and per source image."""
        return decoded, bits


class Resample(Adapter):
    """The codec carries the bottleneck ``factor`` times smaller per side (super-resolution).

    ``to_codec``: the bottleneck padded at its bottom and right edges (edge samples repeated) to a multiple
    of ``factor``, then antialiased bicubic down-sampling by ``factor``; ``from_codec``: Lanczos-3
    up-sampling by ``factor`` and the padding cropped off (:mod:`sandwich.resize`). Any source size works;
    a codec picture smaller than ``min_side`` (the codec's block) is refused.
    """

    def __init__(self, factor: int, min_side: int) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise InputError(f"scenario.scale={factor!r}: the resampling factor must be an integer >= 2")
        self.factor, self.min_side = factor, min_side

    @property
    def scale(self) -> int:  # noqa: D102
        return self.factor

    def check(self, height: int, width: int) -> None:  # noqa: D102
        low_h, low_w = math.ceil(height / self.factor), math.ceil(width / self.factor)
        if min(low_h, low_w) < self.min_side:
            raise InputError(
                f"super-resolution: a {height}x{width} source gives a {low_h}x{low_w} codec picture at scale {self.factor}, "
                f"smaller than the codec's {self.min_side}-pixel block (the source needs at least {self.factor * self.min_side} pixels a side)"
            )

    def to_codec(self, bottleneck: Tensor) -> Tensor:  # noqa: D102
        h, w = bottleneck.shape[-2:]
        self.check(h, w)
        low_h, low_w = math.ceil(h / self.factor), math.ceil(w / self.factor)
        padded = F.pad(bottleneck, (0, low_w * self.factor - w, 0, low_h * self.factor - h), mode="replicate")
        return bicubic_down(padded, self.factor)

    def from_codec(self, decoded: Tensor, bits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:  # noqa: D102
        h, w = size
        up = lanczos_up(decoded, decoded.shape[-2] * self.factor, decoded.shape[-1] * self.factor)
        return up[..., :h, :w], bits


class ChannelGroups(Adapter):
    """A bottleneck of ``groups`` x C channels coded as ``groups`` pictures of the codec's C channels each.

    ``to_codec``: ``(N, G·C, H, W) -> (N·G, C, H, W)``, channels ``g·C .. g·C + C - 1`` being picture g of
    each image; a group listed in ``gray_groups`` is made gray first (each of its channels their mean, so
    a codec with ``gray_pictures`` writes it as a grayscale picture, e.g. RGBA's alpha); ``from_codec``:
    the decoded pictures back to ``(N, G·C, H, W)`` and the bits of each image's G pictures summed,
    ``(N·G,) -> (N,)``.
    """

    def __init__(self, groups: int, gray_groups: Sequence[int] = ()) -> None:
        super().__init__()
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise InputError(f"scenario.groups={groups!r}: the number of codec pictures per image must be an integer >= 1")
        if any(isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < groups for g in gray_groups):
            raise InputError(f"scenario.gray_groups={list(gray_groups)}: group indices must be integers in 0..{groups - 1}")
        self.groups, self.gray_groups = groups, sorted(set(gray_groups))

    def bottleneck_channels(self, codec_channels: int) -> int:  # noqa: D102
        return self.groups * codec_channels

    @property
    def pictures(self) -> int:  # noqa: D102
        return self.groups

    def to_codec(self, bottleneck: Tensor) -> Tensor:  # noqa: D102
        n, channels, h, w = bottleneck.shape
        pictures = bottleneck.reshape(n, self.groups, channels // self.groups, h, w)
        if self.gray_groups:
            gray = torch.zeros(self.groups, dtype=torch.bool, device=bottleneck.device)
            gray[self.gray_groups] = True
            mean = pictures.mean(2, keepdim=True).expand_as(pictures)
            pictures = torch.where(gray[None, :, None, None, None], mean, pictures)
        return pictures.reshape(n * self.groups, channels // self.groups, h, w)

    def from_codec(self, decoded: Tensor, bits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:  # noqa: D102
        return decoded.reshape(-1, self.groups * decoded.shape[1], *size), self.group_bits(bits).sum(1)

    def group_bits(self, bits: Tensor) -> Tensor:
        """The codec's bits ``(N·G,)`` as ``(N, G)``: per source image, per group."""
        return bits.reshape(-1, self.groups)


class BitDepth(Adapter):
    """A ``source_bits``-bit bottleneck carried by a ``codec_bits``-bit codec (HDR, PCS 2022).

    With ``t = source_bits - codec_bits`` and ``B`` the bottleneck's d-bit value (``bottleneck · (2^d - 1)``):
    ``to_codec`` sends ``floor(B / 2^t)`` (clipped to the codec's range) with a straight-through gradient
    (the floor's gradient taken as the identity's, ``1 / 2^t``); ``from_codec`` reconstructs each decoded
    code ``B̂`` at its bin's midpoint ``B̂ · 2^t + 2^(t-1)``. Through a lossless codec the error is at most
    ``2^(t-1)`` d-bit levels. Values on [0, 1]: the bottleneck on the d-bit scale, the codec's input and
    output on its own ``codec_bits`` scale.
    """

    def __init__(self, source_bits: int, codec_bits: int = 8) -> None:
        super().__init__()
        if source_bits <= codec_bits:
            raise InputError(f"scenario.bit_depth={source_bits}: a high-bit-depth source needs more bits than the codec's {codec_bits}")
        self.source_peak, self.codec_peak = peak(source_bits), peak(codec_bits)
        self.bin = 2 ** (source_bits - codec_bits)

    def to_codec(self, bottleneck: Tensor) -> Tensor:  # noqa: D102
        return ste_floor(bottleneck * (self.source_peak / self.bin)).clamp(0, self.codec_peak) / self.codec_peak

    def from_codec(self, decoded: Tensor, bits: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:  # noqa: D102
        return (decoded * self.codec_peak * self.bin + self.bin / 2) / self.source_peak, bits

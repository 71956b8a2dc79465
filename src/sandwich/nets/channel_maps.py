"""Fixed maps between a source's channels and a bottleneck of channel groups (bypasses of the processors).

A source with more channels than the codec (a stereo pair's 6, RGBA's 4) is coded as G pictures of the
codec's C channels (:class:`~sandwich.scenarios.adapters.ChannelGroups`). ``channel_pack`` places the
source's channels into the ``G x C`` bottleneck channels by a list (bottleneck channel k takes source
channel ``channels[k]``; a source channel may fill several, e.g. RGBA's alpha as a gray picture
``[0, 1, 2, 3, 3, 3]``); ``channel_unpack`` is its left inverse (each source channel the mean of the
bottleneck channels that carry it). Together, around a codec, they are the per-group baseline: each
group coded on its own by the plain codec.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sandwich.errors import InputError


def _placement(channels: Sequence[int]) -> Tensor:
    """``(len(channels), S)`` 0/1 matrix: row k has its one at source channel ``channels[k]``, S = max + 1."""
    if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in channels):
        raise InputError(f"channel map {list(channels)}: needs a non-empty list of source channel indices >= 0")
    sources = max(channels) + 1
    missing = sorted(set(range(sources)) - set(channels))
    if missing:
        raise InputError(f"channel map {list(channels)}: source channels {missing} are carried by no bottleneck channel")
    return torch.eye(sources)[list(channels)]


class ChannelPack(nn.Module):
    """``(N, S, H, W) -> (N, len(channels), H, W)``: bottleneck channel k is source channel ``channels[k]``."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("placement", _placement(channels), persistent=False)
        self.out_channels, self.in_channels = self.placement.shape

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return torch.einsum("ks,nshw->nkhw", self.placement.to(x), x)


class ChannelUnpack(nn.Module):
    """``(N, len(channels), H, W) -> (N, S, H, W)``: each source channel the mean of the bottleneck channels
    that carry it (the left inverse of :class:`ChannelPack` with the same list)."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        placement = _placement(channels)
        self.register_buffer("average", (placement / placement.sum(0)).T.contiguous(), persistent=False)
        self.out_channels, self.in_channels = self.average.shape

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return torch.einsum("sk,nkhw->nshw", self.average.to(x), x)

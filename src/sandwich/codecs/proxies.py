"""Differentiable proxies of a sandwich's codec, by name (``codec.proxy.name`` in the config).

A proxy codes bottlenecks ``(N, C, H, W)`` on the [0, 1] scale at levels ``(N,)`` (octaves of step scale,
:mod:`sandwich.codecs.real.levels`) and returns the decoded bottlenecks (same shape, [0, 1]) and
differentiable bit estimates ``(N,)``. Every proxy implements :class:`Proxy`; nothing asks a proxy or
a codec its name. Two are registered: ``jpeg`` (:mod:`sandwich.codecs.jpeg_proxy`) and ``hevc``
(:mod:`sandwich.codecs.hevc_proxy`, an HEVC-intra proxy of x265).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import Tensor, nn

from sandwich.codecs.hevc_proxy.proxy import HevcIntraProxy
from sandwich.codecs.jpeg_proxy.proxy import JpegProxyCodec
from sandwich.registry import Registry


class Proxy(Protocol):
    """What the codec stage needs of a differentiable proxy.

    Attributes:
        channels: bottleneck channels it codes (1 or 3), those of its real codec.
        alignment: the pixel multiple its transform works on (it pads other sizes itself, as its codec
            does, and crops back): 16 for JPEG 4:2:0's MCUs, 8 otherwise.
    """

    channels: int
    alignment: int

    def __call__(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (octaves; None: its base steps) -> (decoded
        ``(N, C, H, W)`` on [0, 1], differentiable bits ``(N,)``)."""
        ...

    def base_level(self) -> float:
        """The level of its (learned) steps as they are."""
        ...

    def learned_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """What it can hand a real codec that takes step tables (``RealCodec.takes_tables``): its
        (luma, chroma) ``(8, 8)`` integer tables, or None when it has none."""
        ...

    def summary(self) -> dict[str, Tensor]:
        """Scalars worth logging in training."""
        ...


PROXIES: Registry[nn.Module] = Registry("proxy")
PROXIES.register("jpeg")(JpegProxyCodec)
PROXIES.register("hevc")(HevcIntraProxy)

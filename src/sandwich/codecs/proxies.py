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
import torch
from torch import Tensor, nn

from sandwich.codecs.hevc_proxy.proxy import HevcIntraProxy
from sandwich.codecs.jpeg_proxy import JpegProxy, jpeg_proxy
from sandwich.codecs.rate.linear import LinearJpegRate
from sandwich.codecs.real.levels import REFERENCE_LUMA_STEP, level_of_steps
from sandwich.registry import Registry
from sandwich.sample_format import peak


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
PROXIES.register("hevc")(HevcIntraProxy)


@PROXIES.register("jpeg")
class JpegProxyCodec(nn.Module):
    """The JPEG proxy (:class:`~sandwich.codecs.jpeg_proxy.JpegProxy`) with the calibration-free rate model.

    Args:
        subsampling: ``"444"``, ``"420"`` (3 channels) or ``"400"`` (1 channel).
        quality: the IJG quality whose tables initialise the steps (trained as 8x8 tables), or
        flat_step: a flat initial step (trained as one scalar per table); exactly one of the two.
        trainable: learn the steps with the networks.
        quantizer: ``"ste"`` or ``"noise"`` for the coefficients.
        kernels: block-codec kernels (:mod:`sandwich.codecs.kernels.ops`); None: ``$SANDWICH_KERNELS``
            or ``"auto"`` (Triton on CUDA, numba on CPU).

    Example:
        >>> proxy = JpegProxyCodec("400", quality=50)
        >>> decoded, bits = proxy(torch.rand(2, 1, 32, 32), torch.tensor([0.0, 1.0]))
        >>> decoded.shape, bits.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2]))
    """

    def __init__(
        self,
        subsampling: str = "420",
        quality: int | None = 50,
        flat_step: float | None = None,
        trainable: bool = False,
        quantizer: str = "ste",
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        self.proxy = JpegProxy(subsampling, quality=quality, flat_step=flat_step, trainable=trainable, quantizer=quantizer)
        self.rate = LinearJpegRate()
        self.kernels = kernels
        self.channels = 1 if subsampling == "400" else 3
        self.alignment = 16 if subsampling == "420" else 8

    def base_level(self) -> float:
        """The level of the (learned) steps as they are."""
        return level_of_steps(self.proxy.steps()[0].detach().cpu().numpy())

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the base steps) -> (decoded on [0, 1], bits ``(N,)``).

        At level ``ℓ`` every step is the base step times ``2**(ℓ - base level)``.
        """
        luma, chroma = self.proxy.steps()
        if level is not None:
            # In torch, on the steps' device: a training step needs no host round trip for the base level.
            base = torch.log2(luma.detach().mean() / REFERENCE_LUMA_STEP)
            scale = torch.exp2(level.to(luma) - base)  # (N,): flat steps become (N,), tables (N, 8, 8)
            luma, chroma = (s * scale if s.dim() == 0 else s * scale[:, None, None] for s in (luma, chroma))
        top = peak(8)
        out = jpeg_proxy(bottleneck * top, luma, chroma, self.proxy.subsampling, self.proxy.quantizer, self.kernels)
        return out.recon / top, self.rate(out.planes)

    def learned_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (luma, chroma) steps as ``(8, 8)`` integer JPEG tables (1..255)."""
        luma, chroma = (torch.broadcast_to(s.detach().cpu(), (8, 8)).round().clamp(1, 255).to(torch.int64).numpy() for s in self.proxy.steps())
        return luma, chroma

    def summary(self) -> dict[str, Tensor]:
        """Scalars worth logging in training: the mean luma and chroma steps."""
        luma, chroma = self.proxy.steps()
        return {"luma_step_mean": luma.mean(), "chroma_step_mean": chroma.mean()}

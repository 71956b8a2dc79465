"""The codec stage of a sandwich: the differentiable proxy in training, the real codec in evaluation.

Both sides take and return bottleneck images on the [0, 1] scale (``(N, C, H, W)`` float32) and give
bits per image. The proxy's bits come from the calibration-free rate model (a differentiable estimate);
the real codec's bits are its payload bytes × 8 (what a decoder needs; see :mod:`sandwich.codecs.real`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.jpeg_proxy import JpegProxy, jpeg_proxy
from sandwich.codecs.rate.linear import LinearJpegRate
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.errors import InputError


def to_uint8(planes: Tensor) -> np.ndarray:
    """``(C, H, W)`` on [0, 1] -> ``(H, W)`` (one channel) or ``(H, W, C)`` uint8, rounded half up and clipped."""
    array = torch.floor(planes.detach().float() * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def from_uint8(image: np.ndarray) -> Tensor:
    """Inverse of :func:`to_uint8`: ``(H, W)`` or ``(H, W, C)`` uint8 -> ``(C, H, W)`` float32 on [0, 1]."""
    array = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(np.array(array.transpose(2, 0, 1))).float() / 255


class JpegStage(nn.Module):
    """JPEG as the codec of a sandwich (libjpeg-turbo when real, :class:`JpegProxy` when training).

    Args:
        subsampling: ``"444"``, ``"420"`` (3-channel bottleneck) or ``"400"`` (1 channel).
        quality: the IJG quality whose tables initialise the proxy's steps (trained as 8x8 tables), or
        flat_step: a flat initial step Δ (trained as one scalar per table); exactly one of the two.
        trainable: learn the steps with the networks.
        quantizer: ``"ste"`` or ``"noise"`` for the proxy's coefficients.
        step_jitter: in training, each image's steps are the learned steps times ``2**u``,
            ``u ~ U(-step_jitter, step_jitter)`` (octaves), so the networks learn to work over the range
            of qualities the evaluation sweeps (IJG q20..q90 spans about ±2 octaves around q50). 0: off.
        kernels: block-codec kernels for the proxy: ``"auto"`` (Triton on CUDA, torch on CPU),
            ``"reference"`` (torch everywhere), ``"compiled"`` (torch.compile of the torch kernel), ...
            (:mod:`sandwich.codecs.kernels.ops`); None: ``$SANDWICH_KERNELS``, else ``"auto"``.

    Example:
        >>> stage = JpegStage("400", quality=50)
        >>> decoded, bits = stage(torch.rand(2, 1, 32, 32))
        >>> decoded.shape, bits.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2]))
    """

    def __init__(
        self,
        subsampling: str = "420",
        quality: int | None = None,
        flat_step: float | None = None,
        trainable: bool = True,
        quantizer: str = "ste",
        step_jitter: float = 0.0,
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        if step_jitter < 0:
            raise InputError(f"jpeg stage: step_jitter={step_jitter} must be >= 0")
        self.step_jitter = step_jitter
        self.kernels = kernels
        self.proxy = JpegProxy(subsampling, quality=quality, flat_step=flat_step, trainable=trainable, quantizer=quantizer)
        self.rate = LinearJpegRate()
        self.real = JpegCodec(subsampling)
        self.channels = 1 if subsampling == "400" else 3

    def forward(self, bottleneck: Tensor) -> tuple[Tensor, Tensor]:
        """Proxy coding: ``(N, C, H, W)`` on [0, 1] -> (decoded ``(N, C, H, W)`` on [0, 1], bits ``(N,)``)."""
        self.check(bottleneck)
        luma, chroma = self.proxy.steps()
        if self.training and self.step_jitter > 0:
            u = torch.rand(bottleneck.shape[0], device=bottleneck.device) * 2 - 1
            scale = torch.exp2(u * self.step_jitter)  # (N,): flat steps become (N,), tables (N, 8, 8)
            luma, chroma = (s * scale if s.dim() == 0 else s * scale[:, None, None] for s in (luma, chroma))
        out = jpeg_proxy(bottleneck * 255, luma, chroma, self.proxy.subsampling, self.proxy.quantizer, self.kernels)
        return out.recon / 255, self.rate(out.planes)

    def learned_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The proxy's current (luma, chroma) steps as ``(8, 8)`` integer JPEG tables (1..255)."""
        luma, chroma = (torch.broadcast_to(s.detach(), (8, 8)).round().clamp(1, 255).to(torch.int64).numpy() for s in self.proxy.steps())
        return luma, chroma

    @torch.no_grad()
    def code_real(self, bottleneck: Tensor, quality: int | None = None) -> tuple[Tensor, Tensor]:
        """Real coding of each image: ``(N, C, H, W)`` on [0, 1] -> (decoded, payload bits ``(N,)`` float).

        ``quality`` is an IJG quality 1..100; None codes with :meth:`learned_tables`.
        """
        self.check(bottleneck)
        tables = self.learned_tables() if quality is None else None
        decoded, bits = [], []
        for planes in bottleneck:
            image = to_uint8(planes)
            encoded = self.real.encode(image, quality) if tables is None else self.real.encode_with_tables(image, *tables)
            decoded.append(from_uint8(self.real.decode(encoded.data)))
            bits.append(float(encoded.payload_bits))
        return torch.stack(decoded).to(bottleneck.device), torch.tensor(bits, device=bottleneck.device)

    def check(self, bottleneck: Tensor) -> None:
        """Raise InputError unless ``bottleneck`` is ``(N, channels, H, W)``."""
        if bottleneck.dim() != 4 or bottleneck.shape[1] != self.channels:
            raise InputError(f"jpeg stage: bottleneck must be (N, {self.channels}, H, W), got {tuple(bottleneck.shape)}")

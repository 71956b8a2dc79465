"""The codec stage of a sandwich: the differentiable proxy in training, the real codec in evaluation.

Both sides take and return bottleneck images on the [0, 1] scale (``(N, C, H, W)`` float32) and give
bits per image. The proxy's bits come from the calibration-free rate model (a differentiable estimate);
the real codec's bits are its payload bytes × 8 (what a decoder needs; see :mod:`sandwich.codecs.real`).

**Level**: how coarse the quantiser is, in octaves: ``level = log2(mean luma step / mean luma step of IJG
quality 50)``: q10 is +1.77, q30 +0.73, q50 0, q70 -0.74, q90 -2.33, q95 -3.32. The encoder chooses it
and the decoder can read it off the quantisation tables in the bitstream, so level-conditioned
processors (:mod:`sandwich.nets.processor`) cost no bits. In training each image draws its level
uniformly from ``level_range`` and the proxy codes it with the base steps rescaled to that level, so one
model learns the whole quality sweep that evaluation runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.jpeg_proxy import JpegProxy, jpeg_proxy
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.rate.linear import LinearJpegRate
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.errors import InputError
from sandwich.sample_format import peak, to_array, to_tensor


REFERENCE_LUMA_STEP = float(ijg_tables(50)[0].mean())  # mean luma step of IJG quality 50: level 0


def level_of(luma_step: Tensor | np.ndarray) -> float:
    """The level (octaves, see the module doc) of a luma step table ``(8, 8)`` or flat step ``()``."""
    return float(np.log2(float(np.asarray(luma_step, dtype=np.float64).mean()) / REFERENCE_LUMA_STEP))


class JpegStage(nn.Module):
    """JPEG as the codec of a sandwich (libjpeg-turbo when real, :class:`JpegProxy` when training).

    Args:
        subsampling: ``"444"``, ``"420"`` (3-channel bottleneck) or ``"400"`` (1 channel).
        quality: the IJG quality whose tables initialise the proxy's steps (trained as 8x8 tables), or
        flat_step: a flat initial step Δ (trained as one scalar per table); exactly one of the two.
        trainable: learn the steps with the networks.
        quantizer: ``"ste"`` or ``"noise"`` for the proxy's coefficients.
        level_range: ``(low, high)`` octaves: in training each image draws its level uniformly from this
            range and is coded at the base steps rescaled to it (module doc); ``low == high`` trains at
            one level. The default covers IJG q95 (-3.32) to q10 (+1.77), the evaluation sweep.
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
        level_range: tuple[float, float] = (-3.5, 2.0),
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        low, high = (float(v) for v in level_range)
        if not low <= high:
            raise InputError(f"jpeg stage: level_range={list(level_range)} needs low <= high")
        self.level_range = (low, high)
        self.kernels = kernels
        self.proxy = JpegProxy(subsampling, quality=quality, flat_step=flat_step, trainable=trainable, quantizer=quantizer)
        self.rate = LinearJpegRate()
        self.real = JpegCodec(subsampling)
        self.channels = 1 if subsampling == "400" else 3

    def base_level(self) -> float:
        """The level of the proxy's (learned) steps."""
        return level_of(self.proxy.steps()[0].detach().cpu())

    def sample_levels(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """Levels ``(n,)`` for a batch: uniform over ``level_range`` in training, the base level otherwise."""
        if not self.training:
            return torch.full((n,), self.base_level(), device=device)
        low, high = self.level_range
        return low + (high - low) * torch.rand(n, device=device)

    def real_level(self, quality: int | None = None) -> float:
        """The level the real codec codes at: of IJG ``quality``'s tables, or of :meth:`learned_tables` (None)."""
        return level_of(self.learned_tables()[0] if quality is None else ijg_tables(quality)[0])

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Proxy coding: ``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the base steps as they are)
        -> (decoded ``(N, C, H, W)`` on [0, 1], bits ``(N,)``)."""
        self.check(bottleneck)
        luma, chroma = self.proxy.steps()
        if level is not None:
            scale = torch.exp2(level.to(luma) - self.base_level())  # (N,): flat steps become (N,), tables (N, 8, 8)
            luma, chroma = (s * scale if s.dim() == 0 else s * scale[:, None, None] for s in (luma, chroma))
        top = peak(8)
        out = jpeg_proxy(bottleneck * top, luma, chroma, self.proxy.subsampling, self.proxy.quantizer, self.kernels)
        return out.recon / top, self.rate(out.planes)

    def learned_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The proxy's current (luma, chroma) steps as ``(8, 8)`` integer JPEG tables (1..255)."""
        luma, chroma = (torch.broadcast_to(s.detach().cpu(), (8, 8)).round().clamp(1, 255).to(torch.int64).numpy() for s in self.proxy.steps())
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
            image = to_array(planes)
            encoded = self.real.encode(image, quality) if tables is None else self.real.encode_with_tables(image, *tables)
            decoded.append(to_tensor(self.real.decode(encoded.data)))
            bits.append(float(encoded.payload_bits))
        return torch.stack(decoded).to(bottleneck.device), torch.tensor(bits, device=bottleneck.device)

    def check(self, bottleneck: Tensor) -> None:
        """Raise InputError unless ``bottleneck`` is ``(N, channels, H, W)``."""
        if bottleneck.dim() != 4 or bottleneck.shape[1] != self.channels:
            raise InputError(f"jpeg stage: bottleneck must be (N, {self.channels}, H, W), got {tuple(bottleneck.shape)}")

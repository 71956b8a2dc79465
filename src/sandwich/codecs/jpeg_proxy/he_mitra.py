"""The published rate model: He & Mitra's log model, calibrated per image against real JPEG bytes.

``n = Σ ln(1 + |q|)`` over all quantised levels ``q = round(c / Δ)`` (its gradient is that of
``ln(1 + |c/Δ|)``), and the rate is ``w · n`` with ``w = stopgrad(n · R_real / (n² + 1))`` - the
least-squares slope through the origin, about ``R_real / n``. ``R_real`` is the payload of libjpeg-turbo
coding each plane that the proxy coded as its own grayscale JPEG with that plane's table rounded to
integers (optimised Huffman), as the published code does. Units: bits per image.

Exact at the operating point by construction, but it runs the real encoder on every call: too slow to
train with, useful as a reference.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.block_levels import FEATURES
from sandwich.codecs.jpeg_proxy.proxy import ProxyOutput
from sandwich.codecs.real.jpeg import JpegCodec

_AC_LOG, _DC_LOG = FEATURES.index("ac_log"), FEATURES.index("dc_log")


class HeMitraRate(nn.Module):
    """Bits per image ``(N,)`` from a :class:`~sandwich.codecs.jpeg_proxy.proxy.ProxyOutput` and its steps."""

    def __init__(self) -> None:
        super().__init__()
        self._gray = JpegCodec("400")

    def real_bits(self, samples: Tensor, step: Tensor) -> np.ndarray:
        """``(N,)`` libjpeg payload bits of ``(N, C, H, W)`` 0..255 planes, each coded alone with table ``step``."""
        table = np.broadcast_to(step.detach().cpu().round().clamp(1, 255).numpy(), (8, 8))
        planes = samples.detach().round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        return np.array(
            [sum(self._gray.encode_with_tables(p, table).payload_bits for p in image) for image in planes], dtype=np.float64
        )

    def forward(self, out: ProxyOutput, luma_step: Tensor, chroma_step: Tensor) -> Tensor:
        """``out``: the proxy output; ``luma_step``, ``chroma_step``: the ``()`` or ``(8, 8)`` steps it used."""
        n_total = sum(math.log(2.0) * (p.features[:, _AC_LOG] + p.features[:, _DC_LOG]) for p in out.planes)
        real = sum(
            self.real_bits(samples, luma_step if plane.kind == "luma" else chroma_step)
            for plane, samples in zip(out.planes, out.samples)
        )
        real_t = torch.as_tensor(real, dtype=n_total.dtype, device=n_total.device)
        weight = (n_total * real_t / (n_total**2 + 1)).detach()
        return weight * n_total

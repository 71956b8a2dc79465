"""JFIF (full-range BT.601) colour conversion, as libjpeg uses it.

Both directions take and return ``(N, 3, H, W)`` float tensors on the 0..255 scale; chroma is centred
at 128. The forward matrix is JFIF's rounded to 16 fractional bits as libjpeg's encoder does
(``FIX(x) = round(x * 2**16)``), so that its integer rounding can be followed exactly. Each direction
is one batched 3x3 matrix product over the pixels. :func:`luma8` is the luma of an 8-bit array, as a
4:0:0 (grayscale) encoder is given it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sandwich import jfif

RGB_TO_YCBCR = torch.round(torch.tensor(jfif.RGB_TO_YCBCR, dtype=torch.float64) * 2**16) / 2**16
YCBCR_TO_RGB = torch.tensor(jfif.YCBCR_TO_RGB, dtype=torch.float64)
# libjpeg's encoder rounds Y half up and Cb, Cr just below half up (``ONE_HALF - 1`` in 16-bit fixed point).
ENCODER_ROUNDING = (0.5, 0.5 - 2**-16, 0.5 - 2**-16)
CHROMA_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)  # Cb and Cr are centred at 128


def _mix(x: Tensor, matrix: Tensor, bias: Tensor) -> Tensor:
    """``matrix @ pixel + bias`` for every pixel of ``(N, C, H, W)`` ``x``; ``matrix`` is ``(O, C)``."""
    n, c, h, w = x.shape
    o = matrix.shape[0]
    return torch.baddbmm(bias.view(1, o, 1), matrix.expand(n, o, c), x.reshape(n, c, h * w)).view(n, o, h, w)


def rgb_to_ycbcr(rgb: Tensor, offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(N, 3, H, W)`` RGB in [0, 255] -> Y ``(N, 1, H, W)`` and CbCr ``(N, 2, H, W)`` in [0, 255].

    Cb and Cr are centred at 128. ``offset`` ``(3,)`` is added on top (e.g. a rounding offset). The two
    parts come back separately because JPEG codes them separately (and slicing would cost a copy in
    the backward pass).
    """
    bias = (CHROMA_OFFSET if offset is None else CHROMA_OFFSET + offset.double().cpu()).to(rgb)
    matrix = RGB_TO_YCBCR.to(rgb)
    return _mix(rgb, matrix[:1], bias[:1]), _mix(rgb, matrix[1:], bias[1:])


def ycbcr_to_rgb(luma: Tensor, chroma: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr`: Y ``(N, 1, H, W)`` and CbCr ``(N, 2, H, W)`` -> RGB (no clipping)."""
    matrix = YCBCR_TO_RGB.to(luma)
    # Y's column of the matrix is all ones: add it by broadcasting.
    return _mix(chroma, matrix[:, 1:], -(matrix @ CHROMA_OFFSET.to(luma))) + luma


def luma8(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` uint8 JFIF luma ``round(0.299 R + 0.587 G + 0.114 B)``."""
    return np.floor(rgb.astype(np.float64) @ np.array(jfif.BT601_LUMA) + 0.5).astype(np.uint8)

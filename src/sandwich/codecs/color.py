"""JFIF (full-range BT.601) colour conversion, as libjpeg uses it.

Both directions take and return ``(N, 3, H, W)`` float tensors on the 0..255 scale; chroma is centred
at 128. The matrices are JFIF's, with the forward one rounded to 16 fractional bits as libjpeg's
encoder does (``FIX(x) = round(x * 2**16)``), so that its integer rounding can be followed exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

_RGB_TO_YCBCR = torch.round(
    torch.tensor(
        [
            [0.29900, 0.58700, 0.11400],
            [-0.16874, -0.33126, 0.50000],
            [0.50000, -0.41869, -0.08131],
        ],
        dtype=torch.float64,
    )
    * 2**16
) / 2**16
_YCBCR_TO_RGB = torch.tensor(
    [
        [1.0, 0.0, 1.402],
        [1.0, -0.344136286, -0.714136286],
        [1.0, 1.772, 0.0],
    ],
    dtype=torch.float64,
)
_OFFSET = torch.tensor([0.0, 128.0, 128.0], dtype=torch.float64)


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    return torch.einsum("oc,nchw->nohw", matrix.to(x), x)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """``(N, 3, H, W)`` RGB in [0, 255] -> YCbCr in [0, 255] (Cb, Cr centred at 128)."""
    return _mix(rgb, _RGB_TO_YCBCR) + _OFFSET.to(rgb).view(1, 3, 1, 1)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no clipping)."""
    return _mix(ycc - _OFFSET.to(ycc).view(1, 3, 1, 1), _YCBCR_TO_RGB)

"""Chroma resampling as libjpeg-turbo does it for 4:2:0.

* :func:`box_down2` - the encoder's ``h2v2_downsample``: the mean of each 2x2 block, plus the
  rounding bias libjpeg adds before its integer division (alternately 1/4 and 2/4 along each row, so
  that ties do not all round the same way); the caller floors the result.
* :func:`triangle_up2` - the decoder's "fancy" ``h2v2_fancy_upsample``: each output sample is
  ``(9 a + 3 b + 3 c + d) / 16`` of its nearest input sample ``a``, the nearest neighbours ``b, c``
  across the nearer row and column boundary, and the diagonal ``d`` (a separable [1/4, 3/4] filter),
  with the edge sample repeated beyond the image (libjpeg's edge rule).

Both are linear, so autograd differentiates them exactly. Inputs are ``(N, C, H, W)`` float tensors of
any value range; rounding to integers is the caller's business.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sandwich.errors import InputError


def box_down2(x: Tensor) -> Tensor:
    """``(N, C, H, W)`` with even H, W -> ``(N, C, H/2, W/2)`` 2x2 means + libjpeg's bias (1/4, 2/4, ...).

    ``floor`` of the result is libjpeg's integer ``(sum + bias) >> 2``.
    """
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise InputError(f"box_down2 needs even H and W, got shape {tuple(x.shape)}")
    bias = torch.tensor([0.25, 0.5], dtype=x.dtype, device=x.device).repeat(x.shape[-1] // 4 + 1)
    return F.avg_pool2d(x, 2) + bias[: x.shape[-1] // 2]


def _triangle_up2_1d(x: Tensor, dim: int) -> Tensor:
    """Double ``dim`` (-1 or -2): even outputs 3/4 self + 1/4 previous, odd 3/4 self + 1/4 next."""
    n = x.shape[dim]
    prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    even, odd = 0.75 * x + 0.25 * prev, 0.75 * x + 0.25 * nxt
    stacked = torch.stack([even, odd], dim=dim)  # (..., n, 2, ...): each input sample's pair
    shape = list(x.shape)
    shape[dim] = 2 * n
    return stacked.reshape(shape)


def triangle_up2(x: Tensor, height: int, width: int) -> Tensor:
    """``(N, C, h, w)`` -> ``(N, C, height, width)`` with ``height in (2h-1, 2h)`` and likewise width.

    Odd output sizes (an odd source side coded in 4:2:0) crop the last row or column.
    """
    h, w = x.shape[-2:]
    if height not in (2 * h - 1, 2 * h) or width not in (2 * w - 1, 2 * w):
        raise InputError(f"triangle_up2: cannot make {height}x{width} from {h}x{w}")
    up = _triangle_up2_1d(_triangle_up2_1d(x, -2), -1)
    return up[..., :height, :width]

"""Chroma resampling as libjpeg-turbo does it for 4:2:0.

* :func:`box_down2` - the encoder's ``h2v2_downsample``: the mean of each 2x2 block plus the rounding
  bias libjpeg adds before its integer division (alternately 1/4 and 2/4 along each row, so that ties
  do not all round the same way); ``floor`` of the result is libjpeg's ``(sum + bias) >> 2``.
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
    """``(N, C, H, W)`` with even H, W -> ``(N, C, H/2, W/2)`` 2x2 means + libjpeg's bias (1/4, 2/4, ...)."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise InputError(f"box_down2 needs even H and W, got shape {tuple(x.shape)}")
    bias = torch.tensor([0.25, 0.5], dtype=x.dtype, device=x.device).repeat(x.shape[-1] // 4 + 1)
    return F.avg_pool2d(x, 2) + bias[: x.shape[-1] // 2]


def triangle_up2(x: Tensor, height: int, width: int) -> Tensor:
    """``(N, C, h, w)`` -> ``(N, C, height, width)`` with ``height in (2h-1, 2h)`` and likewise width.

    Odd output sizes (an odd source side coded in 4:2:0) crop the last row or column.
    """
    n, c, h, w = x.shape
    if height not in (2 * h - 1, 2 * h) or width not in (2 * w - 1, 2 * w):
        raise InputError(f"triangle_up2: cannot make {height}x{width} from {h}x{w}")
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    # Rows: even outputs lean to the row above, odd ones to the row below (3/4 self + 1/4 neighbour).
    mid = padded[..., 1:-1, :]
    rows = torch.stack([torch.lerp(mid, padded[..., :-2, :], 0.25), torch.lerp(mid, padded[..., 2:, :], 0.25)], dim=-2)
    rows = rows.reshape(n, c, 2 * h, w + 2)
    mid = rows[..., 1:-1]
    up = torch.stack([torch.lerp(mid, rows[..., :-2], 0.25), torch.lerp(mid, rows[..., 2:], 0.25)], dim=-1)
    return up.reshape(n, c, 2 * h, 2 * w)[..., :height, :width]

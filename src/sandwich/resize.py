"""Differentiable resampling around a low-resolution codec (super-resolution sandwiches).

* :func:`bicubic_down` - antialiased bicubic down-sampling by an integer factor: torch's own
  ``F.interpolate(mode="bicubic", antialias=True)``, which uses Pillow's kernel (``a = -0.5``) stretched by
  the factor, as Pillow's ``Image.resize(..., BICUBIC)`` does.
* :func:`lanczos_up` - Lanczos-3 up-sampling to any size, as Pillow's ``Image.resize(..., LANCZOS)``
  computes it (neither torch nor kornia ships a Lanczos resampler): for output sample ``i`` the centre
  ``(i + 0.5) · in/out`` in input coordinates, taps ``sinc(x) sinc(x/3)`` over ``|x| < 3`` (times the
  factor when shrinking), the window cut at the image edges and the taps renormalised to sum 1. The
  separable filter is one ``(out, in)`` matrix per axis, applied as two matrix products, so autograd
  differentiates it exactly.

Images are ``(N, C, H, W)`` float tensors of any value range (no clipping).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

LANCZOS_LOBES = 3


def bicubic_down(x: Tensor, factor: int) -> Tensor:
    """``(N, C, H, W)`` with H, W multiples of ``factor`` -> ``(N, C, H/factor, W/factor)``, antialiased bicubic."""
    return F.interpolate(x, size=(x.shape[-2] // factor, x.shape[-1] // factor), mode="bicubic", antialias=True, align_corners=False)


@functools.lru_cache(maxsize=64)
def lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` float64 matrix of Pillow's Lanczos-3 resampling along one axis (rows sum to 1)."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)  # the kernel widens by the factor when shrinking (antialiasing)
    support = LANCZOS_LOBES * stretch
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        low, high = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        x = (np.arange(low, high) - centre + 0.5) / stretch
        taps = np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)
        matrix[i, low:high] = taps / taps.sum()
    return matrix


def lanczos_up(x: Tensor, height: int, width: int) -> Tensor:
    """``(N, C, h, w)`` -> ``(N, C, height, width)`` by Lanczos-3 (any sizes; named for its use here)."""
    rows = torch.as_tensor(lanczos_matrix(x.shape[-2], height), dtype=x.dtype, device=x.device)
    cols = torch.as_tensor(lanczos_matrix(x.shape[-1], width), dtype=x.dtype, device=x.device)
    return rows @ x @ cols.T

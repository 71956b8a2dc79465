"""MSE and PSNR on the d-bit integer scale (peak ``2**d - 1``), for tensors and for arrays.

Tensors are ``(N, C, H, W)`` on [0, 1] (:mod:`sandwich.sample_format`); errors are measured after
scaling by the peak, so an MSE of 1 is one squared integer level at that bit depth.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sandwich.jfif import BT601_LUMA
from sandwich.sample_format import peak



def mse(source: Tensor, recon: Tensor, bit_depth: int = 8) -> Tensor:
    """Per-image MSE ``(N,)`` in squared ``bit_depth``-bit levels, the reconstruction clipped to [0, 1] first.

    Example:
        >>> mse(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 1 / 255)).tolist()
        [1.0]
    """
    return ((source - recon.clamp(0, 1)) * peak(bit_depth)).square().flatten(1).mean(1)


def luma_mse(source: Tensor, recon: Tensor, bit_depth: int = 8) -> Tensor:
    """Per-image MSE ``(N,)`` of the BT.601 luma (:data:`BT601_LUMA`) of RGB images, in squared ``bit_depth``-bit
    levels, the reconstruction clipped to [0, 1] first; a one-channel image is its own luma."""
    if source.shape[1] == 1:
        return mse(source, recon, bit_depth)
    weights = source.new_tensor(BT601_LUMA)[None, :, None, None]
    return mse((source * weights).sum(1, keepdim=True), (recon.clamp(0, 1) * weights).sum(1, keepdim=True), bit_depth)


def psnr(mse_levels: Tensor, bit_depth: int = 8) -> Tensor:
    """PSNR in dB from an MSE in squared ``bit_depth``-bit levels (any shape; an MSE of 0 counts as 1e-10)."""
    return 10 * torch.log10(peak(bit_depth) ** 2 / mse_levels.clamp_min(1e-10))


def psnr_db(a: np.ndarray, b: np.ndarray, bit_depth: int = 8) -> float:
    """PSNR in dB of integer arrays ``a`` against ``b`` (same shape), peak ``2**bit_depth - 1``; ``inf`` if identical."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    error = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    top = peak(bit_depth)
    return math.inf if error == 0 else 10 * math.log10(top * top / error)

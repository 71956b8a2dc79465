"""PSNR on the d-bit integer scale."""

from __future__ import annotations

import math

import numpy as np


def psnr_db(a: np.ndarray, b: np.ndarray, bit_depth: int = 8) -> float:
    """PSNR in dB of ``a`` against ``b`` (same shape), peak ``2**bit_depth - 1``; ``inf`` if identical."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    peak = 2**bit_depth - 1
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)

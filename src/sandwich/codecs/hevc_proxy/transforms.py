"""HEVC's block transforms as orthonormal matrices, its dead-zone quantiser, and per-block statistics.

HEVC's integer transforms approximate the orthonormal DCT-II of sizes 4 to 32 (and the DST-VII for
4x4 intra luma); with flat scaling lists (x265's default) a level is ``sign(c) floor(|c| / Δ + f)`` with
``Δ = 2**((QP - 4) / 6)`` (:func:`~sandwich.codecs.hevc_proxy.tables.qstep`) and the intra dead-zone
offset ``f = 171 / 512`` (x265's quantiser without rate-distortion-optimised quantisation, RDOQ:
where x265 applies RDOQ, the proxy is that much off; its rate model is fitted on what x265 spends).

Backward: the level is straight-through (``dq/du = 1``); each statistic's gradient is that of the same
function of the unrounded ``u = c / Δ`` (as in :mod:`sandwich.codecs.blockcodec`).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from sandwich.codecs.dct import dct_matrix

INTRA_DEADZONE = 171.0 / 512.0
BLOCK_FEATURES = ("log_mag", "nonzero", "nz_log", "blocks")  # per-block statistics, summed over a block's planes


@functools.lru_cache(maxsize=None)
def _dst7(size: int) -> Tensor:
    k = torch.arange(size, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(size, dtype=torch.float64).unsqueeze(0)
    return torch.sin(math.pi * (2 * k + 1) * (n + 1) / (2 * size + 1)) * (2.0 / math.sqrt(2 * size + 1))


def transform_matrix(size: int, dst: bool, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The ``(size, size)`` orthonormal transform (rows are basis functions): DST-VII when ``dst`` (HEVC
    uses it for 4x4 intra luma), else DCT-II."""
    return _dst7(size).to(dtype=dtype, device=device) if dst else dct_matrix(size, dtype, device)


def forward_2d(blocks: Tensor, matrix: Tensor) -> Tensor:
    """``M X Mᵀ`` of every ``(s, s)`` block in the last two dimensions."""
    return matrix @ blocks @ matrix.T


def inverse_2d(coefficients: Tensor, matrix: Tensor) -> Tensor:
    """``Mᵀ C M``: the inverse of :func:`forward_2d` (``M`` is orthonormal)."""
    return matrix.T @ coefficients @ matrix


def deadzone_levels(u: Tensor) -> Tensor:
    """Integer levels ``sign(u) floor(|u| + 171/512)`` of ``u = c / Δ`` (forward only)."""
    return torch.sign(u) * torch.floor(u.abs() + INTRA_DEADZONE)


def statistics(u: Tensor) -> Tensor:
    """``u = c / Δ`` ``(..., s, s)`` -> statistics ``(..., len(BLOCK_FEATURES))`` of each block's levels
    (the count of blocks is 1 per block); gradients as in the module doc."""
    hard = deadzone_levels(u.detach()).abs()
    mag = u.abs()
    soft_log = torch.log2(1.0 + mag)
    log_mag = soft_log + (torch.log2(1.0 + hard) - soft_log).detach()
    soft_nz = mag.clamp(max=1.0)
    nonzero = soft_nz + ((hard != 0).to(u.dtype) - soft_nz).detach()
    log_mag, nonzero = log_mag.sum(dim=(-2, -1)), nonzero.sum(dim=(-2, -1))
    area = u.shape[-1] * u.shape[-2]
    nz_log = nonzero * torch.log2(1.0 + area / (nonzero + 1.0))  # about the information in where the non-zero levels are
    return torch.stack([log_mag, nonzero, nz_log, torch.ones_like(log_mag)], dim=-1)

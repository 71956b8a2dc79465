"""Closed-loop intra coding of a plane group at one transform size, in block wavefronts.

A block is predicted from the *reconstructed* samples of its neighbours above and to the left (as an
HEVC decoder sees them), so blocks on one anti-diagonal of the block grid (``i + j = t``) depend only
on earlier diagonals and are coded together: ``R + C - 1`` batched steps for an ``R x C`` block grid.

Each block takes the mode (of HEVC's 35, :mod:`.modes`) whose residual costs least: the sum of its
absolute transform coefficients (a SATD), computed for all modes at once in the transform domain
(the prediction maps are linear, so their transforms are precomputed). All planes of a group (Cb and
Cr) share a block's mode, as in HEVC; chroma chooses from all 35 modes (HEVC offers 4 plus luma's).

Per step: one matrix product for every mode's predicted coefficients, the choice, the quantiser, one
inverse transform. The rate statistics are taken once, after the last step, from the levels of the
whole grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from sandwich.codecs.hevc_proxy.modes import MID, prediction_maps
from sandwich.codecs.hevc_proxy.transforms import deadzone_levels, forward_2d, inverse_2d, statistics, transform_matrix
from sandwich.codecs.quantize import round_samples


@dataclass
class SizeCoding:
    """One plane group coded at one transform size.

    Attributes:
        recon: ``(N, P, H, W)`` reconstructed samples, integer-valued on 0..255 (before deblocking).
        features: ``(R, C, N, len(BLOCK_FEATURES))`` statistics per block, summed over the P planes.
        sse: ``(R, C, N)`` squared error of each block's reconstruction (no gradient).
    """

    recon: Tensor
    features: Tensor
    sse: Tensor


def _references(recon: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``(k, N, P, 2s + 1)`` left column, corner and top row of blocks ``(rows, cols)`` from ``recon``
    ``(R, C, N, P, s, s)``; unavailable ones hold anything (the availability case's map ignores them)."""
    up, back = (rows - 1).clamp(min=0), (cols - 1).clamp(min=0)
    top = recon[up, cols, :, :, -1, :]
    left = recon[rows, back, :, :, :, -1]
    corner = recon[up, back, :, :, -1, -1]
    return torch.cat([left, corner.unsqueeze(-1), top], dim=-1)


def uses_dst(size: int, luma: bool) -> bool:
    """HEVC transforms 4x4 intra luma blocks with the DST-VII, every other block with the DCT-II."""
    return luma and size == 4


@functools.cache
def coefficient_maps(size: int, luma: bool, dtype: torch.dtype, device: str) -> tuple[Tensor, Tensor]:
    """Every mode's predicted *coefficients*: ``(4, 2s + 1, M·s·s)`` maps and ``(4, M, s, s)`` biases, per
    availability case (:func:`~sandwich.codecs.hevc_proxy.modes.prediction_maps` through the transform)."""
    matrix = transform_matrix(size, uses_dst(size, luma), torch.float64, device)
    maps, biases = prediction_maps(size, luma, torch.float64, device)
    return forward_2d(maps, matrix).flatten(2).to(dtype), forward_2d(biases, matrix).to(dtype)


def code_size(planes: Tensor, size: int, step: Tensor, luma: bool, intra: bool = True) -> SizeCoding:
    """Code ``planes`` ``(N, P, H, W)`` (integer-valued, 0..255; H, W multiples of ``size``) with
    ``size x size`` transforms at steps ``step`` ``(N,)`` (module doc). ``luma``: luma's prediction filters and,
    for 4x4, the DST-VII; ``intra=False``: predict every block as 128 (plain transform coding)."""
    n, p, h, w = planes.shape
    rows_n, cols_n = h // size, w // size
    matrix = transform_matrix(size, uses_dst(size, luma), planes.dtype, planes.device)
    source = planes.view(n, p, rows_n, size, cols_n, size).permute(2, 4, 0, 1, 3, 5)  # (R, C, N, P, s, s)
    coefficients = forward_2d(source, matrix)
    scale = step.view(1, n, 1, 1, 1).to(planes.dtype)
    maps, biases = coefficient_maps(size, luma, planes.dtype, str(planes.device))
    flat = forward_2d(torch.full((size, size), MID, dtype=planes.dtype, device=planes.device), matrix)
    recon = planes.new_zeros(source.shape)
    scaled = planes.new_zeros(source.shape)  # u = (c - prediction) / step of every block
    for t in range(rows_n + cols_n - 1):
        rows = torch.arange(max(0, t - cols_n + 1), min(t, rows_n - 1) + 1, device=planes.device)
        cols = t - rows
        target = coefficients[rows, cols]  # (k, N, P, s, s)
        if intra:
            case = (rows > 0).long() * 2 + (cols > 0).long()
            references = _references(recon, rows, cols)
            predicted = torch.einsum("knpr,krm->knpm", references, maps[case]).unflatten(-1, (-1, size, size)) + biases[case][:, None, None]
            mode = (target.unsqueeze(3) - predicted).detach().abs().sum(dim=(2, 4, 5)).argmin(dim=-1)  # (k, N)
            pick = mode.view(*mode.shape, 1, 1, 1, 1).expand(*mode.shape, p, 1, size, size)
            prediction = predicted.gather(3, pick).squeeze(3)
        else:
            prediction = flat
        u = (target - prediction) / scale
        levels = u + (deadzone_levels(u.detach()) - u).detach()
        decoded = round_samples(inverse_2d(prediction + levels * scale, matrix))
        recon = recon.index_put((rows, cols), decoded)
        scaled = scaled.index_put((rows, cols), u)
    features = statistics(scaled).sum(dim=3)  # (R, C, N, F)
    sse = (recon - source).detach().square().sum(dim=(3, 4, 5))
    return SizeCoding(recon=recon.permute(2, 3, 0, 4, 1, 5).reshape(n, p, h, w), features=features, sse=sse)

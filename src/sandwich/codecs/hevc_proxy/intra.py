"""Closed-loop intra coding of a plane group at one transform size, in block wavefronts.

A block is predicted from the *reconstructed* samples of its neighbours above and to the left (as an
HEVC decoder sees them), so blocks on one anti-diagonal of the block grid (``i + j = t``) depend only
on earlier diagonals and are coded together: ``R + C - 1`` batched steps for an ``R x C`` block grid.

Each block takes the mode (of HEVC's 35, :mod:`.modes`) whose residual costs least: the sum of its
absolute transform coefficients (a SATD), computed for all modes at once in the transform domain
(the prediction maps are linear, so their transforms are precomputed). All planes of a group (Cb and
Cr) share a block's mode, as in HEVC; chroma chooses from all 35 modes (HEVC offers 4 plus luma's).

Per step: one matrix product for every mode's predicted coefficients (without autograd: the choice
is not differentiated), the choice, the chosen mode's prediction again (differentiable), the quantiser,
one inverse transform. Blocks are held in wavefront order and a step reads its references from the
previous two wavefronts' decoded edges, so a step costs its own blocks, not the grid's. The rate
statistics are taken once, after the last step, from the levels of the whole grid.
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


def _wavefronts(rows_n: int, cols_n: int) -> list[tuple[int, int]]:
    """The first and one-past-last block row of each anti-diagonal ``t = i + j`` of an ``R x C`` block grid."""
    return [(max(0, t - cols_n + 1), min(t, rows_n - 1) + 1) for t in range(rows_n + cols_n - 1)]


def _diagonal_order(rows_n: int, cols_n: int, device: torch.device) -> Tensor:
    """``(R·C,)`` raster indices of the blocks in wavefront order (anti-diagonal by anti-diagonal, rows ascending)."""
    order = [r * cols_n + (t - r) for t, (lo, hi) in enumerate(_wavefronts(rows_n, cols_n)) for r in range(lo, hi)]
    return torch.tensor(order, device=device)


def _neighbour(edges: list[Tensor], t: int, lo: int, rows: range, shift: int, none: Tensor) -> Tensor:
    """The edges ``(k, N, P, s)`` of the blocks one row up (``shift = 1``) or in the same row (``shift = 0``)
    in wavefront ``t`` (first row ``lo``), for blocks in ``rows``; a neighbour outside it gets its
    nearest one's, and before the first wavefront ``none`` (unavailable neighbours are ignored by the
    availability case's map)."""
    if t < 0:
        return none
    index = torch.tensor([r - shift - lo for r in rows], device=edges[t].device).clamp(0, edges[t].shape[0] - 1)
    return edges[t].index_select(0, index)


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


def _every_mode(references: Tensor, cases: list[int], maps: Tensor, biases: Tensor) -> Tensor:
    """Every mode's predicted coefficients ``(k, N, P, M, s, s)`` of blocks with references ``(k, N, P, 2s + 1)``
    and availability cases ``cases`` (one per block; a wavefront holds at most three runs of equal cases)."""
    size = biases.shape[-1]
    runs, start = [], 0
    for i in range(1, len(cases) + 1):
        if i == len(cases) or cases[i] != cases[start]:
            runs.append((start, i, cases[start]))
            start = i
    return torch.cat(
        [torch.einsum("knpr,rm->knpm", references[a:b], maps[case]).unflatten(-1, (-1, size, size)) + biases[case] for a, b, case in runs]
    )


def code_size(planes: Tensor, size: int, step: Tensor, luma: bool, intra: bool = True) -> SizeCoding:
    """Code ``planes`` ``(N, P, H, W)`` (integer-valued, 0..255; H, W multiples of ``size``) with
    ``size x size`` transforms at steps ``step`` ``(N,)`` (module doc). ``luma``: luma's prediction filters and,
    for 4x4, the DST-VII; ``intra=False``: predict every block as 128 (plain transform coding).

    The blocks are held in wavefront order: each wavefront's coefficients are one slice, and a block's
    references are read from the previous two wavefronts' decoded edges, so no step copies the whole grid."""
    n, p, h, w = planes.shape
    rows_n, cols_n = h // size, w // size
    matrix = transform_matrix(size, uses_dst(size, luma), planes.dtype, planes.device)
    source = planes.view(n, p, rows_n, size, cols_n, size).permute(2, 4, 0, 1, 3, 5).reshape(rows_n * cols_n, n, p, size, size)
    order = _diagonal_order(rows_n, cols_n, planes.device)
    coefficients = forward_2d(source, matrix).index_select(0, order)  # (R·C, N, P, s, s) in wavefront order
    scale = step.view(1, n, 1, 1, 1).to(planes.dtype)
    maps, biases = coefficient_maps(size, luma, planes.dtype, str(planes.device))
    per_mode_maps = maps.unflatten(-1, (-1, size * size)).transpose(1, 2)  # (4, M, 2s + 1, s·s)
    flat = forward_2d(torch.full((size, size), MID, dtype=planes.dtype, device=planes.device), matrix)
    decoded_blocks, scaled_blocks, bottoms, rights = [], [], [], []
    start = 0
    fronts = _wavefronts(rows_n, cols_n)
    for t, (lo, hi) in enumerate(fronts):
        rows = range(lo, hi)
        target = coefficients[start : start + len(rows)]  # (k, N, P, s, s)
        start += len(rows)
        if intra:
            cases = [(r > 0) * 2 + (t - r > 0) for r in rows]
            up_lo, corner_lo = (fronts[t - 1][0] if t >= 1 else 0), (fronts[t - 2][0] if t >= 2 else 0)
            none = planes.new_zeros(len(rows), n, p, size)
            references = torch.cat(
                [
                    _neighbour(rights, t - 1, up_lo, rows, 0, none),
                    _neighbour(bottoms, t - 2, corner_lo, rows, 1, none)[..., -1:],
                    _neighbour(bottoms, t - 1, up_lo, rows, 1, none),
                ],
                dim=-1,
            )  # (k, N, P, 2s + 1): left column, corner, top row
            with torch.no_grad():
                predicted = _every_mode(references, cases, maps, biases)
                mode = (target.unsqueeze(3) - predicted).abs().sum(dim=(2, 4, 5)).argmin(dim=-1)  # (k, N)
                pick = mode.view(*mode.shape, 1, 1, 1, 1).expand(*mode.shape, p, 1, size, size)
                prediction = predicted.gather(3, pick).squeeze(3)
            chosen = per_mode_maps[torch.tensor(cases, device=planes.device)[:, None], mode]  # (k, N, 2s + 1, s·s)
            linear = torch.einsum("knpr,knrm->knpm", references, chosen).unflatten(-1, (size, size))
            prediction = prediction + (linear - linear.detach())  # the chosen mode's value, its gradient in the references
        else:
            prediction = flat
        u = (target - prediction) / scale
        levels = u + (deadzone_levels(u.detach()) - u).detach()
        decoded = round_samples(inverse_2d(prediction + levels * scale, matrix))
        decoded_blocks.append(decoded)
        scaled_blocks.append(u)
        bottoms.append(decoded[..., -1, :])
        rights.append(decoded[..., :, -1])
    raster = torch.argsort(order)
    recon = torch.cat(decoded_blocks).index_select(0, raster).view(rows_n, cols_n, n, p, size, size)
    scaled = torch.cat(scaled_blocks).index_select(0, raster).view(rows_n, cols_n, n, p, size, size)
    features = statistics(scaled).sum(dim=3)  # (R, C, N, F)
    sse = (recon - source.view(rows_n, cols_n, n, p, size, size)).detach().square().sum(dim=(3, 4, 5))
    return SizeCoding(recon=recon.permute(2, 3, 0, 4, 1, 5).reshape(n, p, h, w), features=features, sse=sse)

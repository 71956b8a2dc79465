"""Closed-loop intra coding of a plane group at one transform size.

A block is predicted from the *reconstructed* samples of its neighbours above and to the left (as an
HEVC decoder sees them). Each block takes the mode (of HEVC's 35, :mod:`.modes`) whose residual costs
least: the sum of its absolute transform coefficients (a SATD), computed for all modes at once in the
transform domain (the prediction maps are linear, so their transforms are precomputed). All planes of a
group (Cb and Cr) share a block's mode, as in HEVC; chroma chooses from all 35 modes (HEVC offers 4 plus
luma's).

Two passes. The *decisions* (no autograd): the blocks coded one after another, each from its
neighbours' decoded samples: every mode's predicted coefficients, the choice, the dead-zone levels,
the inverse transform. On the CPU a fused numba kernel (:mod:`sandwich.codecs.kernels.numba_hevc_intra`)
does it block by block, and so does a fused Triton kernel on CUDA when asked for
(:mod:`sandwich.codecs.kernels.triton_hevc_intra`, ``SANDWICH_KERNELS=triton``); the torch reference
(:func:`wavefront_decisions`, every device) codes the blocks of one anti-diagonal of the block grid
(``i + j = t``, which depend only on earlier diagonals) together: ``R + C - 1`` batched steps for an
``R x C`` grid. Then the *gradient*, one batched pass over every block (:func:`code_size`): the values are
the decisions', and the chosen mode's linear map carries the gradient of the rate statistics to the
references. The rate statistics are taken from the levels of the whole grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sandwich.codecs.hevc_proxy.modes import MID, prediction_maps
from sandwich.codecs.hevc_proxy.transforms import deadzone_levels, forward_2d, inverse_2d, statistics, transform_matrix
from sandwich.codecs.kernels.ops import default_impl, numba_applies, triton_applies
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


def wavefront_decisions(target: Tensor, step: Tensor, size: int, luma: bool, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The torch reference of the closed-loop decisions (module doc; no autograd): what
    :func:`sandwich.codecs.kernels.numba_hevc_intra.decide` computes, same arguments (``maps`` and the transform
    from ``size`` and ``luma``) and results: ``pre`` ``(N, P, H, W)``, ``scaled`` ``(R, C, N, P, s, s)``,
    ``modes`` ``(R, C, N)``.

    The blocks are held in wavefront order: each wavefront's coefficients are one slice, and a block's
    references are read from the previous two wavefronts' decoded edges, so no step copies the whole grid."""
    rows_n, cols_n, n, p = target.shape[:4]
    matrix = transform_matrix(size, uses_dst(size, luma), target.dtype, target.device)
    order = _diagonal_order(rows_n, cols_n, target.device)
    coefficients = target.detach().flatten(0, 1).index_select(0, order)  # (R·C, N, P, s, s) in wavefront order
    scale = step.view(1, n, 1, 1, 1).to(target.dtype)
    maps, biases = coefficient_maps(size, luma, target.dtype, str(target.device))
    pre_blocks, scaled_blocks, mode_blocks, bottoms, rights = [], [], [], [], []
    start = 0
    fronts = _wavefronts(rows_n, cols_n)
    with torch.no_grad():
        for t, (lo, hi) in enumerate(fronts):
            rows = range(lo, hi)
            block_target = coefficients[start : start + len(rows)]  # (k, N, P, s, s)
            start += len(rows)
            cases = [(r > 0) * 2 + (t - r > 0) for r in rows]
            up_lo, corner_lo = (fronts[t - 1][0] if t >= 1 else 0), (fronts[t - 2][0] if t >= 2 else 0)
            none = target.new_zeros(len(rows), n, p, size)
            references = torch.cat(
                [
                    _neighbour(rights, t - 1, up_lo, rows, 0, none),
                    _neighbour(bottoms, t - 2, corner_lo, rows, 1, none)[..., -1:],
                    _neighbour(bottoms, t - 1, up_lo, rows, 1, none),
                ],
                dim=-1,
            )  # (k, N, P, 2s + 1): left column, corner, top row
            predicted = _every_mode(references, cases, maps, biases)
            mode = (block_target.unsqueeze(3) - predicted).abs().sum(dim=(2, 4, 5)).argmin(dim=-1)  # (k, N)
            pick = mode.view(*mode.shape, 1, 1, 1, 1).expand(*mode.shape, p, 1, size, size)
            prediction = predicted.gather(3, pick).squeeze(3)
            u = (block_target - prediction) / scale
            pre = inverse_2d(prediction + deadzone_levels(u) * scale, matrix)
            decoded = round_samples(pre)
            pre_blocks.append(pre)
            scaled_blocks.append(u)
            mode_blocks.append(mode)
            bottoms.append(decoded[..., -1, :])
            rights.append(decoded[..., :, -1])
    raster = torch.argsort(order)
    grid = lambda blocks: torch.cat(blocks).index_select(0, raster).unflatten(0, (rows_n, cols_n))  # noqa: E731
    pre = grid(pre_blocks).permute(2, 3, 0, 4, 1, 5).reshape(n, p, height, width)
    return pre, grid(scaled_blocks), grid(mode_blocks)


def _references(decoded: Tensor, size: int) -> Tensor:
    """``(R, C, N, P, 2s + 1)`` every block's references ``[left column, corner, top row]`` read from the decoded
    planes ``(N, P, H, W)`` (zero where a block has no such neighbour; the availability case's map ignores them)."""
    n, p, h, w = decoded.shape
    rows_n, cols_n = h // size, w // size
    padded = F.pad(decoded, (1, 0, 1, 0))  # padded[y + 1, x + 1] = decoded[y, x]
    left = padded[..., 1:, :-1:size].unflatten(2, (rows_n, size)).permute(2, 4, 0, 1, 3)  # column j·s - 1 of rows i·s ..
    corner = padded[..., :-1:size, :-1:size].permute(2, 3, 0, 1).unsqueeze(-1)
    top = padded[..., :-1:size, 1:].unflatten(3, (cols_n, size)).permute(2, 3, 0, 1, 4)  # row i·s - 1 of columns j·s ..
    return torch.cat([left, corner, top], dim=-1)


def _availability(rows_n: int, cols_n: int, device: torch.device) -> Tensor:
    """``(R, C)`` each block's availability case: 2 with a block above, + 1 with one to the left."""
    i = torch.arange(rows_n, device=device).view(-1, 1)
    j = torch.arange(cols_n, device=device).view(1, -1)
    return (i > 0).long() * 2 + (j > 0).long()


def decisions(target: Tensor, step: Tensor, size: int, luma: bool, height: int, width: int, impl: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The closed-loop decisions by the kernel ``impl`` selects (``SANDWICH_KERNELS`` when None, see
    :mod:`sandwich.codecs.kernels.ops`): ``auto`` and ``numba``: the fused numba kernel on float32 / float64 CPU
    tensors (:mod:`sandwich.codecs.kernels.numba_hevc_intra`); ``triton``: the fused Triton kernel
    (:mod:`sandwich.codecs.kernels.triton_hevc_intra`; CUDA, or the CPU under ``TRITON_INTERPRET=1``);
    otherwise, and ``auto`` on every other device, the torch reference :func:`wavefront_decisions`."""
    impl = default_impl() if impl is None else impl
    if numba_applies(impl, target):
        from sandwich.codecs.kernels.numba_hevc_intra import decide
    elif triton_applies(impl, target):
        from sandwich.codecs.kernels.triton_hevc_intra import decide
    else:
        return wavefront_decisions(target, step, size, luma, height, width)
    maps, biases = coefficient_maps(size, luma, target.dtype, str(target.device))
    matrix = transform_matrix(size, uses_dst(size, luma), target.dtype, target.device)
    return decide(target, step, maps, biases, matrix, height, width)


def code_size(planes: Tensor, size: int, step: Tensor, luma: bool, intra: bool = True, impl: str | None = None) -> SizeCoding:
    """Code ``planes`` ``(N, P, H, W)`` (integer-valued, 0..255; H, W multiples of ``size``) with
    ``size x size`` transforms at steps ``step`` ``(N,)`` (module doc). ``luma``: luma's prediction filters and,
    for 4x4, the DST-VII; ``intra=False``: predict every block as 128 (plain transform coding); ``impl``:
    the kernel of the decisions (:func:`decisions`).

    The values are the decisions'; the gradient comes from one batched pass over every block: a decoded
    sample's gradient is its input sample's (the prediction cancels: ``pred + Δ·(c - pred)/Δ``), and the
    rate statistics' gradient reaches the references through the chosen mode's linear map."""
    n, p, h, w = planes.shape
    rows_n, cols_n = h // size, w // size
    matrix = transform_matrix(size, uses_dst(size, luma), planes.dtype, planes.device)
    source = planes.view(n, p, rows_n, size, cols_n, size).permute(2, 4, 0, 1, 3, 5)  # (R, C, N, P, s, s)
    target = forward_2d(source, matrix)
    scale = step.view(1, 1, n, 1, 1, 1).to(planes.dtype)
    if intra:
        pre, scaled, modes = decisions(target.detach(), step, size, luma, h, w, impl)
        recon = round_samples(pre + (planes - planes.detach()))  # the decoded values; the input's gradient
        maps, _ = coefficient_maps(size, luma, planes.dtype, str(planes.device))
        per_mode_maps = maps.unflatten(-1, (-1, size * size)).transpose(1, 2)  # (4, M, 2s + 1, s·s)
        chosen = per_mode_maps[_availability(rows_n, cols_n, planes.device).unsqueeze(-1), modes]  # (R, C, N, 2s + 1, s·s)
        linear = torch.einsum("rcnpk,rcnkm->rcnpm", _references(recon, size), chosen).unflatten(-1, (size, size))
        moving = (target - linear) / scale  # u's gradient: the mode's bias and the decision are constants
        u = scaled + (moving - moving.detach())
    else:
        flat = forward_2d(torch.full((size, size), MID, dtype=planes.dtype, device=planes.device), matrix)
        u = (target - flat) / scale
        levels = u + (deadzone_levels(u.detach()) - u).detach()
        blocks = round_samples(inverse_2d(flat + levels * scale, matrix))
        recon = blocks.permute(2, 3, 0, 4, 1, 5).reshape(n, p, h, w)
    features = statistics(u).sum(dim=3)  # (R, C, N, F)
    sse = (recon.detach().view(n, p, rows_n, size, cols_n, size).permute(2, 4, 0, 1, 3, 5) - source.detach()).square().sum(dim=(3, 4, 5))
    return SizeCoding(recon=recon, features=features, sse=sse)

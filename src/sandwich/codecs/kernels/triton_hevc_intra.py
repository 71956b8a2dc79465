"""Fused Triton kernel of the HEVC-intra proxy's closed-loop decisions (CUDA; CPU tensors under ``TRITON_INTERPRET=1``).

:func:`decide` has the contract of :func:`sandwich.codecs.kernels.numba_hevc_intra.decide` and computes what
:func:`sandwich.codecs.hevc_proxy.intra.wavefront_decisions` computes (the torch reference): a plane group at
one transform size, block by block in raster order, each block predicted from the decoded samples of its
neighbours. One program per image (a block depends on the blocks above and to its left, so an image's blocks
run one after another; the images of a batch run in parallel). Per block:

1. every mode's predicted coefficients, ``CHUNK`` columns of the ``(2s + 1, M·s²)`` map of the block's
   availability case at a time (the columns of consecutive modes are contiguous: a chunk holds whole modes,
   all 35 of the 4x4 ones, one or two of the 32x32 ones): a loop over the ``2s + 1`` references, each a
   ``(P,)`` load of the decoded planes and one contiguous row of the map, accumulated in registers; plus the bias;
2. their SATD against the block's coefficients, summed over the planes, per mode; the cheapest mode (the
   first on ties) is kept across chunks;
3. the chosen mode's prediction again (the same sums in the same order), ``u = (c - pred) / Δ``, HEVC's
   dead-zone levels and the dequantised coefficients, written to ``scaled`` and to a per-image scratch row;
4. after a barrier, the inverse transform of each plane's ``(s, s)`` coefficients (``tl.dot`` from 16 up,
   broadcast sums below), written to ``pre`` and, rounded, to ``decoded``; a barrier again, so that the next
   block reads them.

Floating point: the input's dtype (float32 or float64), the same elementwise operations as the reference;
the sums run in another order, so a value can differ by float rounding and a decision between two modes of
equal cost (to that rounding) can fall the other way, as with the numba kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from sandwich.codecs.hevc_proxy.transforms import INTRA_DEADZONE
from sandwich.codecs.quantize import CLIP_MARGIN

MAX_TILE = 2048  # elements of the (planes, CHUNK) accumulator


def chunk_size(size: int, planes: int, modes: int) -> int:
    """Columns of the prediction map per step: whole modes (a power of two times ``size²``), about
    :data:`MAX_TILE` elements over the planes, no more than ``modes`` modes need."""
    return max(size * size, min(MAX_TILE // triton.next_power_of_2(planes), triton.next_power_of_2(modes * size * size)))


@triton.jit
def _inverse(mat, mat_t, coef, S: tl.constexpr):
    """``Mᵀ C M`` of one ``(S, S)`` block: ``tl.dot`` (IEEE, no TF32) from 16 up, broadcast sums below."""
    if S >= 16:
        return tl.dot(tl.dot(mat_t, coef, input_precision="ieee"), mat, input_precision="ieee")
    tmp = tl.sum(mat_t[:, :, None] * coef[None, :, :], axis=1)
    return tl.sum(tmp[:, :, None] * mat[None, :, :], axis=1)


@triton.jit
def _predict(maps_ptr, biases_ptr, decoded_ptr, cols, col_ok, plane, plane_ok, n, i, j, case, MS, H, W,
             S: tl.constexpr, P: tl.constexpr, PP: tl.constexpr, CHUNK: tl.constexpr):  # fmt: skip
    """``(PP, CHUNK)`` predicted coefficients at map columns ``cols`` of block ``(i, j)`` of image ``n``."""
    dtype = decoded_ptr.dtype.element_ty
    acc = tl.zeros((PP, CHUNK), dtype)
    plane_base = (n.to(tl.int64) * P + plane) * H * W
    y0 = i * S
    x0 = j * S
    for r in range(2 * S + 1):  # [left column (top to bottom), corner, top row]
        left = r < S
        corner = r == S
        y = tl.where(left, y0 + r, y0 - 1)
        x = tl.where(left | corner, x0 - 1, x0 + r - S - 1)
        available = tl.where(left, j > 0, tl.where(corner, (i > 0) & (j > 0), i > 0))
        ref = tl.load(decoded_ptr + plane_base + y * W + x, mask=plane_ok & available, other=0.0)
        row = tl.load(maps_ptr + (case * (2 * S + 1) + r) * MS + cols, mask=col_ok, other=0.0)
        acc += ref[:, None] * row[None, :]
    return acc + tl.load(biases_ptr + case * MS + cols, mask=col_ok, other=0.0)[None, :]


@triton.jit
def decide_kernel(
    target_ptr, step_ptr, maps_ptr, biases_ptr, matrix_ptr, consts_ptr, pre_ptr, decoded_ptr, scaled_ptr, modes_ptr, coef_ptr,
    ROWS, COLS, H, W, MODES,
    S: tl.constexpr, P: tl.constexpr, PP: tl.constexpr, CHUNK: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0)
    n64 = n.to(tl.int64)
    dtype = target_ptr.dtype.element_ty
    AREA: tl.constexpr = S * S
    MS = MODES * AREA
    half = tl.load(consts_ptr + 0)
    top = tl.load(consts_ptr + 1)
    deadzone = tl.load(consts_ptr + 2)
    step = tl.load(step_ptr + n)
    plane = tl.arange(0, PP)
    plane_ok = plane < P
    k = tl.arange(0, CHUNK)
    e = tl.arange(0, S)
    mat = tl.load(matrix_ptr + e[:, None] * S + e[None, :])
    mat_t = tl.load(matrix_ptr + e[:, None] + e[None, :] * S)
    for i in range(ROWS):
        for j in range(COLS):
            case = tl.where(i > 0, 2, 0) + tl.where(j > 0, 1, 0)
            block_base = ((n64 * ROWS + i) * COLS + j) * P * AREA
            best = 0
            best_cost = tl.full((), float("inf"), dtype)
            for c0 in range(0, MS, CHUNK):  # CHUNK // AREA whole modes per step
                cols = c0 + k
                col_ok = cols < MS
                pred = _predict(maps_ptr, biases_ptr, decoded_ptr, cols, col_ok, plane, plane_ok, n, i, j, case, MS, H, W, S, P, PP, CHUNK)
                ok = plane_ok[:, None] & col_ok[None, :]
                tgt = tl.load(target_ptr + block_base + plane[:, None] * AREA + (cols % AREA)[None, :], mask=ok, other=0.0)
                diff = tl.sum(tl.where(ok, tl.abs(tgt - pred), 0.0), axis=0)  # (CHUNK,) summed over the planes
                per_mode = tl.sum(tl.reshape(diff, (CHUNK // AREA, AREA)), axis=1)
                mode = c0 // AREA + tl.arange(0, CHUNK // AREA)
                per_mode = tl.where(mode < MODES, per_mode, float("inf"))
                cost = tl.min(per_mode, axis=0)
                take = cost < best_cost  # the first on ties: an earlier step's, and argmin's leftmost
                best = tl.where(take, c0 // AREA + tl.argmin(per_mode, axis=0, tie_break_left=True), best)
                best_cost = tl.where(take, cost, best_cost)
            tl.store(modes_ptr + (n64 * ROWS + i) * COLS + j, best.to(tl.int64))
            q = tl.arange(0, AREA)
            pred = _predict(maps_ptr, biases_ptr, decoded_ptr, best * AREA + q, q >= 0, plane, plane_ok, n, i, j, case, MS, H, W, S, P, PP, AREA)
            at = plane[:, None] * AREA + q[None, :]
            ok = plane_ok[:, None] & (q >= 0)[None, :]
            u = (tl.load(target_ptr + block_base + at, mask=ok, other=0.0) - pred) / step
            tl.store(scaled_ptr + block_base + at, u, mask=ok)
            sign = tl.where(u > 0, 1.0, tl.where(u < 0, -1.0, 0.0)).to(dtype)
            tl.store(coef_ptr + n64 * P * AREA + at, pred + sign * tl.floor(tl.abs(u) + deadzone) * step, mask=ok)
            tl.debug_barrier()
            for p in tl.static_range(P):
                coef = tl.load(coef_ptr + (n64 * P + p) * AREA + e[:, None] * S + e[None, :])
                samples = _inverse(mat, mat_t, coef, S)
                pix = (n64 * P + p) * H * W + (i * S + e)[:, None] * W + (j * S + e)[None, :]
                tl.store(pre_ptr + pix, samples)
                tl.store(decoded_ptr + pix, tl.floor(tl.minimum(tl.maximum(samples + half, 0.0), top)))
            tl.debug_barrier()


def decide(target: Tensor, step: Tensor, maps: Tensor, biases: Tensor, matrix: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The closed-loop decisions of one plane group at one transform size (module doc); arguments and results
    as :func:`sandwich.codecs.kernels.numba_hevc_intra.decide`: ``target`` ``(R, C, N, P, s, s)`` float32 or
    float64 on CUDA (CPU under the interpreter), ``step`` ``(N,)``, ``maps`` ``(4, 2s + 1, M·s·s)``, ``biases``
    ``(4, M, s, s)``, ``matrix`` ``(s, s)``; returns ``pre`` ``(N, P, H, W)``, ``scaled`` ``(R, C, N, P, s, s)``,
    ``modes`` ``(R, C, N)`` int64."""
    rows_n, cols_n, n, p, s, _ = target.shape
    dtype, device = target.dtype, target.device
    blocks = target.detach().permute(2, 0, 1, 3, 4, 5).contiguous()  # (N, R, C, P, s, s)
    consts = torch.tensor([0.5, 255.0 + CLIP_MARGIN, INTRA_DEADZONE], dtype=dtype, device=device)  # in the dtype, as the reference's
    pre = torch.empty((n, p, height, width), dtype=dtype, device=device)
    decoded = torch.empty_like(pre)
    scaled = torch.empty_like(blocks)
    modes = torch.empty((n, rows_n, cols_n), dtype=torch.int64, device=device)
    scratch = torch.empty((n, p, s * s), dtype=dtype, device=device)
    mode_n = biases.shape[1]
    decide_kernel[(n,)](
        blocks, step.to(dtype).contiguous(), maps.to(dtype).contiguous(), biases.to(dtype).flatten(1).contiguous(),
        matrix.to(dtype).contiguous(), consts, pre, decoded, scaled, modes, scratch,
        rows_n, cols_n, height, width, mode_n,
        S=s, P=p, PP=triton.next_power_of_2(p), CHUNK=chunk_size(s, p, mode_n),
    )  # fmt: skip
    return pre, scaled.permute(1, 2, 0, 3, 4, 5), modes.permute(1, 2, 0)

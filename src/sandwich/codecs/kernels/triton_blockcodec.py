"""Fused Triton kernels of the transform-quantize op (CUDA; CPU tensors under ``TRITON_INTERPRET=1``).

Same contract and results as :mod:`sandwich.codecs.kernels.reference` (``forward``, ``backward``), in
four kernels:

* ``forward_kernel``: one program per ``S x S`` pixel tiles along a row of tiles (``TPP`` tiles per
  program; ``S = max(b, 16)`` so that every ``tl.dot`` is at least 16 x 16: a tile holds
  ``(S/b)^2`` blocks and the per-block DCT is a product with the block-diagonal matrix
  ``A = diag(D, ..., D)``). Per tile: load the pixels once (masked edges), ``c = A_r X A_c^T``
  (two fp32 ``tl.dot`` with ``input_precision="ieee"``: no TF32), ``u = c / Δ``, levels, the AC and DC
  statistics (per-program partial sums, one atomic add per statistic and program into a float64
  ``(N, 5)`` buffer), ``u`` at the DC positions (the ``dc`` output), then ``A^T (q Δ) A`` written once.
* ``dc_forward_kernel``: the DC-difference statistic over the tiny ``dc`` array (``1/b^2`` of the
  input), raster order per plane.
* ``dc_backward_kernel``: the gradient of the two DC statistics w.r.t. the DC ``u`` (needs each block's
  neighbours, hence a pass of its own over ``dc``).
* ``backward_kernel``: per tile, recompute ``u`` from the input (nothing of the input's size is saved),
  ``A G A^T`` of the incoming gradient, the surrogate gradients of the statistics, then
  ``A_r^T (g_u / Δ) A_c`` written once, and the step gradient as per-program partial sums (one atomic
  add per program and frequency - or per program for a step constant over frequencies - into float64).

Edges: any ``H, W``. A partial edge block is replicate-padded, as the reference does, without
materialising the padding: for a tile with ``v`` valid rows, ``A_r = diag(D R_v0, D R_v1, ...)`` with
``R_v`` the ``b x b`` replicate-padding matrix of ``v`` valid rows (``R_v[i, j] = 1`` where
``min(i, v - 1) = j``); blocks wholly outside the image get a zero matrix. Pixel loads and stores are
masked to the image; the inverse transform uses plain ``D`` and is cropped; the backward's
``A_r^T ... A_c`` is then exactly the adjoint of the padding. The ``S + 1`` possible tile matrices are a
small cached table.

Float32 and float64 inputs (float64 for tight checks in the interpreter; dot in float64 needs sm80+).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from sandwich.codecs.block_levels import TIE_TOLERANCE
from sandwich.codecs.dct import dct_matrix

NUM_FEATURES = 5
TOL_DENOMINATOR = tl.constexpr(round(1 / TIE_TOLERANCE))  # TIE_TOLERANCE = 1 / 10000
assert abs(1 / TOL_DENOMINATOR.value - TIE_TOLERANCE) < 1e-15
TILES_PER_PROGRAM = 4
DC_BLOCK = 1024


def tile_size(block: int) -> int:
    """Pixel tile side ``S`` for a block size: ``max(block, 16)`` (``tl.dot`` needs at least 16)."""
    return max(block, 16)


# ----------------------------------------------------------------------------------------- jit helpers


@triton.jit
def _levels(u):
    """``round_half_away(u + copysign(TIE_TOLERANCE, u))``, as :func:`~sandwich.codecs.blockcodec.quantize_levels`."""
    one = tl.full((1, 1), 1.0, u.dtype)
    tol = one / TOL_DENOMINATOR  # exact 1e-4 in u's dtype (a literal would be rounded to float32)
    a = u + tl.where(u >= 0, tol, -tol)
    t = a + tl.where(a >= 0, 0.5, -0.5)
    return tl.where(t >= 0, tl.floor(t), tl.ceil(t))


@triton.jit
def _dlog(u):
    """``d/du log2(1 + |u|) = sign(u) / ((1 + |u|) ln 2)``."""
    ln2 = tl.log(tl.full((1, 1), 2.0, u.dtype))
    sgn = tl.where(u > 0, 1.0, tl.where(u < 0, -1.0, 0.0)).to(u.dtype)
    return sgn / ((1.0 + tl.abs(u)) * ln2)


# --------------------------------------------------------------------------------------------- kernels


@triton.jit
def forward_kernel(
    x_ptr, noise_ptr, step_ptr, mat_ptr, recon_ptr, dc_ptr, feat_ptr,
    C, H, W, HB, WB, TILE_ROWS, s_n, s_k, s_l,
    HAS_NOISE: tl.constexpr, B: tl.constexpr, S: tl.constexpr, TPP: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    plane = pid // TILE_ROWS
    tr = pid % TILE_ROWS
    n = plane // C
    plane64 = plane.to(tl.int64)
    idx = tl.arange(0, S)
    rows = tr * S + idx
    row_px = rows < H
    row_cf = rows < HB * B
    sq = idx[:, None] * S + idx[None, :]
    sq_t = idx[:, None] + idx[None, :] * S
    vr = tl.minimum(H - tr * S, S)
    a_r = tl.load(mat_ptr + vr * S * S + sq)  # replicate-padded DCT along H
    a = tl.load(mat_ptr + S * S * S + sq)  # plain block-diagonal DCT
    a_t = tl.load(mat_ptr + S * S * S + sq_t)
    step = tl.load(step_ptr + n * s_n + (idx % B)[:, None] * s_k + (idx % B)[None, :] * s_l)
    is_dc = ((idx % B) == 0)[:, None] & ((idx % B) == 0)[None, :]
    acc_ac_log = tl.zeros((1,), tl.float64)
    acc_nonzero = tl.zeros((1,), tl.float64)
    acc_dc_log = tl.zeros((1,), tl.float64)
    for t in range(TPP):
        tc = tl.program_id(1) * TPP + t
        cols = tc * S + idx
        px = row_px[:, None] & (cols < W)[None, :]
        cf = row_cf[:, None] & (cols < WB * B)[None, :]
        vc = tl.maximum(tl.minimum(W - tc * S, S), 0)
        a_c_t = tl.load(mat_ptr + vc * S * S + sq_t)
        pix = plane64 * H * W + rows[:, None] * W + cols[None, :]
        x = tl.load(x_ptr + pix, mask=px, other=0.0)
        coef = tl.dot(tl.dot(a_r, x, input_precision="ieee"), a_c_t, input_precision="ieee")
        u = coef / step
        lv = _levels(u)
        mag = tl.abs(lv)
        log_mag = tl.log2(mag + 1.0)
        ac = cf & (is_dc == 0)
        acc_ac_log += tl.sum(tl.sum(tl.where(ac, log_mag, 0.0), axis=1), axis=0).to(tl.float64)
        acc_nonzero += tl.sum(tl.sum(tl.where(ac & (mag > 0), 1.0, 0.0), axis=1), axis=0).to(tl.float64)
        acc_dc_log += tl.sum(tl.sum(tl.where(cf & is_dc, log_mag, 0.0), axis=1), axis=0).to(tl.float64)
        dc_off = plane64 * HB * WB + (rows // B)[:, None] * WB + (cols // B)[None, :]
        tl.store(dc_ptr + dc_off, u, mask=cf & is_dc)
        if HAS_NOISE:
            coded = u + tl.load(noise_ptr + plane64 * HB * B * WB * B + rows[:, None] * (WB * B) + cols[None, :], mask=cf, other=0.0)
        else:
            coded = lv
        z = tl.where(cf, coded * step, 0.0)
        recon = tl.dot(tl.dot(a_t, z, input_precision="ieee"), a, input_precision="ieee")
        tl.store(recon_ptr + pix, recon, mask=px)
    one = tl.arange(0, 1)
    tl.atomic_add(feat_ptr + n * 5 + 0 + one, acc_ac_log)
    tl.atomic_add(feat_ptr + n * 5 + 1 + one, acc_nonzero)
    tl.atomic_add(feat_ptr + n * 5 + 3 + one, acc_dc_log)


@triton.jit
def dc_forward_kernel(dc_ptr, feat_ptr, C, L, BLOCK: tl.constexpr):
    plane = tl.program_id(0)
    n = plane // C
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = i < L
    base = dc_ptr + plane.to(tl.int64) * L
    lv = _levels(tl.load(base + i, mask=ok, other=0.0)[None, :])
    prev = _levels(tl.load(base + i - 1, mask=ok & (i > 0), other=0.0)[None, :])
    s = tl.sum(tl.sum(tl.where(ok[None, :], tl.log2(tl.abs(lv - prev) + 1.0), 0.0), axis=1), axis=0)
    tl.atomic_add(feat_ptr + n * 5 + 2 + tl.arange(0, 1), s.to(tl.float64) + tl.zeros((1,), tl.float64))


@triton.jit
def dc_backward_kernel(dc_ptr, gfeat_ptr, gdc_ptr, C, L, BLOCK: tl.constexpr):
    plane = tl.program_id(0)
    n = plane // C
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = i < L
    base = plane.to(tl.int64) * L
    u = tl.load(dc_ptr + base + i, mask=ok, other=0.0)[None, :]
    prev = tl.load(dc_ptr + base + i - 1, mask=ok & (i > 0), other=0.0)[None, :]
    has_next = (i + 1 < L)[None, :]
    nxt = tl.load(dc_ptr + base + i + 1, mask=ok & (i + 1 < L), other=0.0)[None, :]
    g_diff_log = tl.load(gfeat_ptr + n * 5 + 2)
    g_dc_log = tl.load(gfeat_ptr + n * 5 + 3)
    g = _dlog(u - prev) * g_diff_log - tl.where(has_next, _dlog(nxt - u) * g_diff_log, 0.0)
    g = g + _dlog(u) * g_dc_log
    tl.store(gdc_ptr + base + i[None, :], g, mask=ok[None, :])


@triton.jit
def backward_kernel(
    x_ptr, g_ptr, noise_ptr, step_ptr, mat_ptr, gdc_ptr, gfeat_ptr, gx_ptr, gstep_ptr,
    C, H, W, HB, WB, TILE_ROWS, s_n, s_k, s_l,
    HAS_NOISE: tl.constexpr, NEED_X: tl.constexpr, NEED_STEP: tl.constexpr, STEP_TABLE: tl.constexpr,
    B: tl.constexpr, S: tl.constexpr, TPP: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    plane = pid // TILE_ROWS
    tr = pid % TILE_ROWS
    n = plane // C
    plane64 = plane.to(tl.int64)
    idx = tl.arange(0, S)
    rows = tr * S + idx
    row_px = rows < H
    row_cf = rows < HB * B
    sq = idx[:, None] * S + idx[None, :]
    sq_t = idx[:, None] + idx[None, :] * S
    vr = tl.minimum(H - tr * S, S)
    a_r = tl.load(mat_ptr + vr * S * S + sq)
    a_r_t = tl.load(mat_ptr + vr * S * S + sq_t)
    a = tl.load(mat_ptr + S * S * S + sq)
    a_t = tl.load(mat_ptr + S * S * S + sq_t)
    step = tl.load(step_ptr + n * s_n + (idx % B)[:, None] * s_k + (idx % B)[None, :] * s_l)
    is_dc = ((idx % B) == 0)[:, None] & ((idx % B) == 0)[None, :]
    g_ac_log = tl.load(gfeat_ptr + n * 5 + 0)
    g_nonzero = tl.load(gfeat_ptr + n * 5 + 1)
    if STEP_TABLE:
        acc_step = tl.zeros((S, S), tl.float64)
    else:
        acc_step = tl.zeros((1,), tl.float64)
    for t in range(TPP):
        tc = tl.program_id(1) * TPP + t
        cols = tc * S + idx
        px = row_px[:, None] & (cols < W)[None, :]
        cf = row_cf[:, None] & (cols < WB * B)[None, :]
        vc = tl.maximum(tl.minimum(W - tc * S, S), 0)
        pix = plane64 * H * W + rows[:, None] * W + cols[None, :]
        x = tl.load(x_ptr + pix, mask=px, other=0.0)
        a_c_t = tl.load(mat_ptr + vc * S * S + sq_t)
        u = tl.dot(tl.dot(a_r, x, input_precision="ieee"), a_c_t, input_precision="ieee") / step
        g = tl.load(g_ptr + pix, mask=px, other=0.0)
        g_coded = tl.dot(tl.dot(a, g, input_precision="ieee"), a_t, input_precision="ieee")
        dc_off = plane64 * HB * WB + (rows // B)[:, None] * WB + (cols // B)[None, :]
        g_dc = tl.load(gdc_ptr + dc_off, mask=cf & is_dc, other=0.0)
        abs_u = tl.abs(u)
        sgn = tl.where(u > 0, 1.0, tl.where(u < 0, -1.0, 0.0)).to(u.dtype)
        g_feat = _dlog(u) * g_ac_log + sgn * (abs_u < 1).to(u.dtype) * g_nonzero
        g_feat = tl.where(cf, tl.where(is_dc, g_dc, g_feat), 0.0)
        if NEED_X:
            g_u = (g_coded * step + g_feat) / step
            a_c = tl.load(mat_ptr + vc * S * S + sq)
            gx = tl.dot(tl.dot(a_r_t, g_u, input_precision="ieee"), a_c, input_precision="ieee")
            tl.store(gx_ptr + pix, gx, mask=px)
        if NEED_STEP:
            if HAS_NOISE:
                noise = tl.load(noise_ptr + plane64 * HB * B * WB * B + rows[:, None] * (WB * B) + cols[None, :], mask=cf, other=0.0)
                lv = u + noise
            else:
                lv = _levels(u)
            g_step = tl.where(cf, g_coded * (lv - u) - g_feat * u / step, 0.0)
            if STEP_TABLE:
                acc_step += g_step.to(tl.float64)
            else:
                acc_step += tl.sum(tl.sum(g_step.to(tl.float64), axis=1), axis=0)
    if NEED_STEP:
        if STEP_TABLE:
            tl.atomic_add(gstep_ptr + n * S * S + sq, acc_step)
        else:
            tl.atomic_add(gstep_ptr + n + tl.arange(0, 1), acc_step)


# -------------------------------------------------------------------------------------------- launchers


@functools.lru_cache(maxsize=None)
def _tile_matrices_cached(block: int, dtype: torch.dtype, device: str) -> Tensor:
    s = tile_size(block)
    d = dct_matrix(block, torch.float64)
    padded = torch.zeros(block + 1, block, block, dtype=torch.float64)  # D R_v, v valid rows (0: no block)
    for v in range(1, block + 1):
        r = torch.zeros(block, block, dtype=torch.float64)
        r[torch.arange(block), torch.arange(block).clamp(max=v - 1)] = 1.0
        padded[v] = d @ r
    table = torch.zeros(s + 1, s, s, dtype=torch.float64)
    for vt in range(s + 1):
        for j in range(s // block):
            v = min(max(vt - j * block, 0), block)
            table[vt, j * block : (j + 1) * block, j * block : (j + 1) * block] = padded[v]
    table[s] = torch.block_diag(*[d] * (s // block))  # the full blocks: exactly the reference's D
    return table.to(dtype=dtype, device=device).contiguous()


def tile_matrices(block: int, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    """``(S + 1, S, S)``: for ``v`` valid rows of a tile, the block-diagonal replicate-padded DCT."""
    return _tile_matrices_cached(block, dtype, str(torch.device(device)))


def _step_layout(step: Tensor, n: int, block: int) -> tuple[Tensor, tuple[int, int, int], bool]:
    """The step, its strides as an ``(N, b, b)`` table (0 where broadcast), and whether it varies by frequency."""
    step = step.contiguous()
    if step.dim() == 0:
        return step, (0, 0, 0), False
    if step.shape == (block, block):
        return step, (0, block, 1), True
    if step.shape == (n,):
        return step, (1, 0, 0), False
    if step.shape == (n, block, block):
        return step, (block * block, block, 1), True
    raise ValueError(f"step of shape {tuple(step.shape)} (checked by tile_step before the op)")


def _grid_shape(h: int, w: int, block: int) -> tuple[int, int, int, int, int]:
    s = tile_size(block)
    tile_rows, tile_cols = triton.cdiv(h, s), triton.cdiv(w, s)
    tpp = min(TILES_PER_PROGRAM, tile_cols)
    return s, tile_rows, tile_cols, tpp, triton.cdiv(tile_cols, tpp)


def _dc_grid(planes: int, length: int) -> tuple[tuple[int, int], int]:
    blk = triton.next_power_of_2(min(length, DC_BLOCK))
    return (planes, triton.cdiv(length, blk)), blk


def launch_forward(planes: Tensor, step: Tensor, block: int, noise: Tensor | None, recon: Tensor, dc: Tensor, features: Tensor) -> None:
    """``forward_kernel`` into preallocated ``recon``, ``dc`` and float64 ``features`` (adds to columns 0, 1, 3)."""
    n, c, h, w = planes.shape
    hb, wb = dc.shape[-2:]
    s, tile_rows, _, tpp, col_programs = _grid_shape(h, w, block)
    step, (s_n, s_k, s_l), _ = _step_layout(step, n, block)
    forward_kernel[(n * c * tile_rows, col_programs)](
        planes, noise if noise is not None else planes, step, tile_matrices(block, planes.dtype, planes.device),
        recon, dc, features, c, h, w, hb, wb, tile_rows, s_n, s_k, s_l,
        HAS_NOISE=noise is not None, B=block, S=s, TPP=tpp,
    )  # fmt: skip


def launch_dc_forward(dc: Tensor, features: Tensor) -> None:
    """``dc_forward_kernel``: adds the ``dc_diff_log`` statistic to column 2 of float64 ``features``."""
    n, c, hb, wb = dc.shape
    grid, blk = _dc_grid(n * c, hb * wb)
    dc_forward_kernel[grid](dc, features, c, hb * wb, BLOCK=blk)


def forward(planes: Tensor, step: Tensor, block: int, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Same contract as :func:`sandwich.codecs.kernels.reference.forward`."""
    planes = planes.contiguous()
    n, c, h, w = planes.shape
    hb, wb = triton.cdiv(h, block), triton.cdiv(w, block)
    noise = noise.to(planes.dtype).contiguous() if noise is not None else None
    recon = torch.empty_like(planes)
    dc = torch.empty((n, c, hb, wb), dtype=planes.dtype, device=planes.device)
    features = torch.zeros((n, NUM_FEATURES), dtype=torch.float64, device=planes.device)
    launch_forward(planes, step.to(planes.dtype), block, noise, recon, dc, features)
    launch_dc_forward(dc, features)
    features[:, 4] = float(c * hb * wb)
    return recon, features.to(planes.dtype), dc


def dc_grad(dc: Tensor, grad_features: Tensor) -> Tensor:
    """``dc_backward_kernel``: gradient of ``dc_diff_log`` and ``dc_log`` w.r.t. ``dc`` (shaped like ``dc``)."""
    n, c, hb, wb = dc.shape
    dc = dc.contiguous()
    g_dc = torch.empty_like(dc)
    grid, blk = _dc_grid(n * c, hb * wb)
    dc_backward_kernel[grid](dc, grad_features.to(dc.dtype).contiguous(), g_dc, c, hb * wb, BLOCK=blk)
    return g_dc


def launch_backward(
    grad_recon: Tensor,
    grad_features: Tensor,
    planes: Tensor,
    step: Tensor,
    g_dc: Tensor,
    block: int,
    noise: Tensor | None,
    grad_planes: Tensor | None,
    step_acc: Tensor | None,
) -> None:
    """``backward_kernel``: writes ``grad_planes`` (if given) and adds the step gradient's partial sums to
    float64 ``step_acc`` (if given): ``(N, S, S)`` for a step that varies by frequency, else ``(N,)``."""
    n, c, h, w = planes.shape
    hb, wb = g_dc.shape[-2:]
    s, tile_rows, _, tpp, col_programs = _grid_shape(h, w, block)
    step, (s_n, s_k, s_l), table = _step_layout(step, n, block)
    backward_kernel[(n * c * tile_rows, col_programs)](
        planes, grad_recon, noise if noise is not None else planes, step,
        tile_matrices(block, planes.dtype, planes.device), g_dc, grad_features,
        grad_planes if grad_planes is not None else planes, step_acc if step_acc is not None else planes,
        c, h, w, hb, wb, tile_rows, s_n, s_k, s_l,
        HAS_NOISE=noise is not None, NEED_X=grad_planes is not None, NEED_STEP=step_acc is not None,
        STEP_TABLE=table, B=block, S=s, TPP=tpp,
    )  # fmt: skip


def step_accumulator(step: Tensor, n: int, block: int) -> Tensor:
    """The zeroed float64 buffer :func:`launch_backward` adds the step gradient to."""
    s = tile_size(block)
    table = _step_layout(step, n, block)[2]
    return torch.zeros((n, s, s) if table else (n,), dtype=torch.float64, device=step.device)


def backward(
    grad_recon: Tensor,
    grad_features: Tensor,
    planes: Tensor,
    step: Tensor,
    dc: Tensor,
    block: int,
    noise: Tensor | None,
    need_planes: bool,
    need_step: bool,
) -> tuple[Tensor, Tensor]:
    """Same contract as :func:`sandwich.codecs.kernels.reference.backward`."""
    planes = planes.contiguous()
    n = planes.shape[0]
    s = tile_size(block)
    grad_features = grad_features.to(planes.dtype).contiguous()
    noise = noise.to(planes.dtype).contiguous() if noise is not None else None
    g_dc = dc_grad(dc, grad_features)
    grad_planes = torch.empty_like(planes) if need_planes else None
    acc = step_accumulator(step, n, block) if need_step else None
    launch_backward(
        grad_recon.to(planes.dtype).contiguous(), grad_features, planes, step.to(planes.dtype), g_dc, block, noise, grad_planes, acc
    )
    grad_step = step.new_empty(0)
    if acc is not None:
        if acc.dim() == 3:  # (N, S, S) -> (N, b, b), then the sum over images for a shared (b, b) table
            acc = acc.view(n, s // block, block, s // block, block).sum(dim=(1, 3))
        grad_step = (acc.sum(dim=0) if step.dim() in (0, 2) else acc).to(step.dtype)
    return grad_planes if grad_planes is not None else planes.new_empty(0), grad_step


KERNELS = ("forward_kernel", "dc_forward_kernel", "dc_backward_kernel", "backward_kernel")

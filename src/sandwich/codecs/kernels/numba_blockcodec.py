"""Fused CPU kernels of the transform-quantize op, compiled with numba (LLVM, multi-threaded).

Same contract and results as :mod:`sandwich.codecs.kernels.reference` (``forward``, ``backward``), but
each pass reads the image once and writes its result once, where the torch kernel runs dozens of
whole-tensor passes (each a fresh allocation: on Linux, tensors of 32 MiB and up are fresh pages,
faulted in one 4 KiB page at a time).

One parallel iteration per *strip*: the ``b`` pixel rows of one row of blocks of one plane, held in a
cache-sized scratch buffer in *frequency-major* layout ``[l, k, block]`` (``l``, ``k``: horizontal and
vertical frequency - or pixel column and row inside the block - and the block's index along the strip
last, contiguous). In that layout each stage of the separable transform is a ``b x b`` matrix times
``b`` contiguous rows: vectorised along the rows, with the block size a compile-time constant so that
each output's sum over the block unrolls into registers (:func:`_transforms`); and each frequency is a
contiguous row with one step, so quantisation and statistics vectorise too (their float64 sums are
allowed to reassociate). Per strip:

* ``forward``: gather the pixels into the layout (rows and columns past the image repeat the last one:
  replicate padding without materialising it), row DCT, column DCT, ``u = c / Δ``, the levels, the
  statistics (float64 partial sums per strip), ``u`` of the DC row, the dequantised coefficients, the
  two inverse DCTs, and a scatter back to image rows, cropped to the image;
* ``backward``: the same DCTs of the input (``u`` is recomputed: nothing of the input's size is saved)
  and of the incoming gradient (zero past the image), the surrogate gradients of the statistics,
  ``g_u / Δ`` through the inverse DCT, and the padding's adjoint (padded rows and columns folded onto
  the last real one, inside the strip); the step gradient as float64 partial sums per strip.

The DC-difference statistic and its gradient couple neighbouring blocks along a plane; they run on the
``1/b²``-sized ``dc`` array in torch (:func:`~sandwich.codecs.kernels.reference.dc_diff_log`,
:func:`~sandwich.codecs.kernels.reference.dc_grad`).

Floating point: every value is computed in the input's dtype (float32 or float64) with the same
elementwise operations as the torch kernel; the DCT sums run in a different order (and with fused
multiply-adds), so results differ from the torch kernel by float rounding (about 1e-5 of a float32
sample), and a level can differ only where ``u`` sits within that of a rounding tie, which the tie
tolerance of :func:`~sandwich.codecs.blockcodec.quantize_levels` makes rare. Compiled on first use per
block size and dtype (seconds; cached on disk by numba next to this file, or in ``$NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numba import njit
from torch import Tensor

from sandwich.codecs.block_levels import TIE_TOLERANCE, tile_step
from sandwich.codecs.dct import dct_matrix
from sandwich.codecs.kernels import reference
from sandwich.codecs.kernels.numba_runtime import JIT, run_items


def _log_table(dtype: np.dtype, size: int = 4096) -> np.ndarray:
    """``log2(1 + n)`` for ``n < size`` in ``dtype`` (levels are integers; a lookup beats a ``log2`` call)."""
    return np.log2(np.arange(1, size + 1, dtype=dtype))


def _constants(dtype: np.dtype) -> np.ndarray:
    """``[1/2, TIE_TOLERANCE, 1, 0, ln 2]`` in ``dtype`` (numba would compute float32 math in float64
    if given Python floats)."""
    return np.array([0.5, TIE_TOLERANCE, 1.0, 0.0, math.log(2.0)], dtype=dtype)


@njit(**JIT)
def _gather(plane, br0, b, wb, out, replicate):  # pragma: no cover - compiled
    """``out[m, r, g*Wb + j] = plane[(br0 + g)*b + r, j*b + m]``: block rows ``br0, br0 + 1, ...`` (as many
    as ``out`` holds) in frequency-major layout ``(b, b, G*Wb)``.

    Rows and columns past the plane repeat the last one (``replicate``) or are zero.
    """
    h, w = plane.shape
    for g in range(out.shape[2] // wb):
        for r in range(b):
            y = (br0 + g) * b + r
            if y >= h and not replicate:
                out[:, r, g * wb : (g + 1) * wb] = 0
                continue
            row = plane[min(y, h - 1)]
            for m in range(b):
                dst = out[m, r, g * wb : (g + 1) * wb]
                for j in range(wb):
                    x = j * b + m
                    if x < w:
                        dst[j] = row[x]
                    else:
                        dst[j] = row[w - 1] if replicate else row[w - 1] * 0


@njit(**JIT)
def _levels(u, consts):  # pragma: no cover - compiled
    """``round_half_away(u + copysign(TIE_TOLERANCE, u))`` (:func:`~sandwich.codecs.blockcodec.quantize_levels`)."""
    v = u + np.copysign(consts[1], u)
    return np.trunc(v + np.copysign(consts[0], v))


@njit(**{**JIT, "fastmath": {"contract", "reassoc"}})
def _level_stats(levels, table):  # pragma: no cover - compiled
    """``(Σ log2(1 + |q|), #{q != 0})`` over the integer-valued ``levels``, as float64.

    ``log2(1 + |q|)`` comes from ``table`` (:func:`_log_table`) when it has the entry, else from
    ``log2``. The sums may be reassociated (so that they vectorise): float64 partial sums of at most a
    few thousand terms, exact to far below the float32 results they feed.
    """
    last = table.shape[0] - 1
    log_sum, nonzero, beyond = 0.0, 0.0, 0.0
    for t in range(levels.shape[0]):
        a = np.abs(levels[t])
        nonzero += 1.0 if a != 0 else 0.0
        log_sum += table[int(min(a, last))]
        beyond += 1.0 if a > last else 0.0
    if beyond:  # rare: levels past the table (huge coefficients or tiny steps)
        for t in range(levels.shape[0]):
            a = np.abs(levels[t])
            if a > last:
                log_sum += np.log2(table[1] + a) - table[last]  # table[1] == 1 in a's dtype
    return log_sum, nonzero


@njit(**{**JIT, "fastmath": {"contract", "reassoc"}})
def _step_grad(u, levels, g_coef, g_feat, step):  # pragma: no cover - compiled
    """``Σ_t g_coef · (level - u) - g_feat · u / Δ`` as float64: one frequency's contribution to the
    gradient of its step ``Δ`` (reassociated, so that it vectorises; see :func:`_level_stats`)."""
    acc = 0.0
    for t in range(u.shape[0]):
        acc += g_coef[t] * (levels[t] - u[t]) - g_feat[t] * u[t] / step
    return acc


def strip_rows(hb: int, wb: int, target: int = 256) -> int:
    """Block rows per parallel strip: enough for about ``target`` blocks (long vector loops)."""
    return max(1, min(hb, -(-target // wb)))


@functools.lru_cache(maxsize=None)
def _transforms(b: int):
    """The separable block transforms for block size ``b``, a compile-time constant in them (so the sums
    over a block unroll and stay in registers).

    Returns ``(dct, idct)``: ``dct(buf, tmp, d)`` turns ``buf`` ``[m, r, j]`` pixels into ``[l, k, j]``
    coefficients, ``idct(buf, tmp, dt)`` is its inverse (``dt`` the transposed matrix); ``tmp`` is scratch
    of the same shape.
    """

    @njit(**JIT)
    def mix(mat, src, dst):  # pragma: no cover - compiled
        """``dst[a, :] = Σ_c mat[a, c] · src[c, :]`` for 2-D ``src``, ``dst`` of ``b`` rows: two output rows
        at a time, each sum over ``c`` accumulated in registers, vectorised along the rows."""
        for a in range(0, b, 2):
            d0, d1 = dst[a], dst[a + 1]
            for p in range(dst.shape[1]):
                s = src[0, p]
                acc0, acc1 = mat[a, 0] * s, mat[a + 1, 0] * s
                for c in range(1, b):
                    s = src[c, p]
                    acc0 += mat[a, c] * s
                    acc1 += mat[a + 1, c] * s
                d0[p] = acc0
                d1[p] = acc1

    @njit(**JIT)
    def dct(buf, tmp, d):  # pragma: no cover - compiled
        mix(d, buf.reshape(b, -1), tmp.reshape(b, -1))  # along the block's rows: [l, r, j]
        for l in range(b):
            mix(d, tmp[l], buf[l])  # along its columns: [l, k, j]

    @njit(**JIT)
    def idct(buf, tmp, dt):  # pragma: no cover - compiled
        for l in range(b):
            mix(dt, buf[l], tmp[l])
        mix(dt, tmp.reshape(b, -1), buf.reshape(b, -1))

    return dct, idct


@functools.lru_cache(maxsize=None)
def _kernels(b: int):
    """The forward and backward kernels for block size ``b`` (a compile-time constant in them).

    Shared arguments: ``x`` planes ``(N, C, H, W)``; ``d``, ``dt`` the DCT matrix and its transpose;
    ``step`` ``(N, b, b)`` each image's step table; ``noise`` ``(N, C, Hp, Wp)`` (read if
    ``use_noise``); ``consts`` from :func:`_constants`; ``wb`` blocks per row, ``rows`` block rows per
    strip (:func:`strip_rows`). Block ``t`` of a strip starting at block row ``br0`` is block row
    ``br0 + t // wb``, column ``t % wb``.
    """
    dct, idct = _transforms(b)

    @njit(**JIT)
    def forward_kernel(first, last, x, d, dt, step, noise, use_noise, consts, table, wb, rows, recon, dc_u, stats):  # pragma: no cover - compiled
        """Strips ``first .. last - 1``: fill ``recon (N,C,H,W)``, ``dc_u (N,C,Hb*Wb)`` and ``stats (N,C,strips,3)``
        (AC log, AC non-zero, DC log). ``table`` is :func:`_log_table`.
        """
        n, c, h, w = x.shape
        hb = dc_u.shape[2] // wb
        strips = stats.shape[2]
        for s in range(first, last):
            i, ch, si = s // (c * strips), (s // strips) % c, s % strips
            br0 = si * rows
            count = min(rows, hb - br0) * wb  # blocks in this strip
            buf = np.empty((b, b, count), x.dtype)
            tmp = np.empty((b, b, count), x.dtype)
            levels = np.empty(count, x.dtype)
            _gather(x[i, ch], br0, b, wb, buf, True)
            dct(buf, tmp, d)
            ac_log, ac_nonzero, dc_log = 0.0, 0.0, 0.0
            for l in range(b):
                for k in range(b):
                    st = step[i, k, l]
                    row = buf[l, k]
                    if l == 0 and k == 0:
                        for t in range(count):
                            dc_u[i, ch, br0 * wb + t] = row[t] / st
                    for t in range(count):
                        levels[t] = _levels(row[t] / st, consts)
                    if use_noise:
                        for t in range(count):
                            u = row[t] / st
                            row[t] = (u + noise[i, ch, (br0 + t // wb) * b + k, (t % wb) * b + l]) * st
                    else:
                        for t in range(count):
                            row[t] = levels[t] * st
                    log_sum, nonzero = _level_stats(levels, table)
                    if l == 0 and k == 0:
                        dc_log = log_sum
                    else:
                        ac_log += log_sum
                        ac_nonzero += nonzero
            stats[i, ch, si, 0] = ac_log
            stats[i, ch, si, 1] = ac_nonzero
            stats[i, ch, si, 2] = dc_log
            idct(buf, tmp, dt)
            for g in range(count // wb):
                for r in range(b):
                    y = (br0 + g) * b + r
                    if y >= h:
                        break
                    out = recon[i, ch, y]
                    for m in range(b):
                        src = buf[m, r, g * wb : (g + 1) * wb]
                        for j in range(wb):
                            if j * b + m < w:
                                out[j * b + m] = src[j]

    @njit(**JIT)
    def backward_kernel(first, last, g, x, d, dt, step, gdc, gf, noise, use_noise, need_planes, need_step, consts, wb, rows, grad_x, grad_step):  # pragma: no cover - compiled
        """Strips ``first .. last - 1``: fill ``grad_x (N,C,H,W)`` (if ``need_planes``) and ``grad_step
        (N,C,strips,b,b)`` float64 partials (if ``need_step``).

        ``g`` is the incoming gradient ``(N,C,H,W)``, ``gdc`` ``(N,C,Hb*Wb)`` the DC statistics' gradient
        w.r.t. the DC ``u``, ``gf`` ``(N, 5)`` the features' gradient.
        """
        n, c, h, w = x.shape
        hb = gdc.shape[2] // wb
        strips = -(-hb // rows)
        one, zero, ln2 = consts[2], consts[3], consts[4]
        for s in range(first, last):
            i, ch, si = s // (c * strips), (s // strips) % c, s % strips
            br0 = si * rows
            count = min(rows, hb - br0) * wb
            buf = np.empty((b, b, count), x.dtype)
            gbuf = np.empty((b, b, count), x.dtype)
            tmp = np.empty((b, b, count), x.dtype)
            g_feat = np.empty(count, x.dtype)
            levels = np.empty(count, x.dtype)
            padded = np.empty(wb * b, x.dtype)
            _gather(x[i, ch], br0, b, wb, buf, True)
            dct(buf, tmp, d)
            _gather(g[i, ch], br0, b, wb, gbuf, False)
            dct(gbuf, tmp, d)
            gf_log, gf_nonzero = gf[i, 0], gf[i, 1]
            for l in range(b):
                for k in range(b):
                    st = step[i, k, l]
                    coef, gcoef = buf[l, k], gbuf[l, k]
                    if l == 0 and k == 0:
                        for t in range(count):
                            coef[t] = coef[t] / st
                            g_feat[t] = gdc[i, ch, br0 * wb + t]
                    else:
                        for t in range(count):
                            u = coef[t] / st
                            coef[t] = u
                            a = np.abs(u)
                            sign = np.sign(u)
                            g_feat[t] = sign / ((one + a) * ln2) * gf_log + (sign * gf_nonzero if a < one else zero)
                    if need_step:  # coef now holds u = c / Δ
                        if use_noise:
                            for t in range(count):
                                levels[t] = coef[t] + noise[i, ch, (br0 + t // wb) * b + k, (t % wb) * b + l]
                        else:
                            for t in range(count):
                                levels[t] = _levels(coef[t], consts)
                        grad_step[i, ch, si, k, l] = _step_grad(coef, levels, gcoef, g_feat, st)
                    if need_planes:
                        for t in range(count):
                            gcoef[t] = (gcoef[t] * st + g_feat[t]) / st
            if need_planes:
                idct(gbuf, tmp, dt)
                for gi in range(count // wb):
                    for r in range(b):
                        y = (br0 + gi) * b + r
                        for m in range(b):
                            src = gbuf[m, r, gi * wb : (gi + 1) * wb]
                            for j in range(wb):
                                padded[j * b + m] = src[j]
                        extra = zero
                        for p in range(w, wb * b):
                            extra += padded[p]
                        padded[w - 1] += extra
                        out = grad_x[i, ch, min(y, h - 1)]
                        if y < h:  # rows past the image come after row h - 1 and fold onto it
                            for p in range(w):
                                out[p] = padded[p]
                        else:
                            for p in range(w):
                                out[p] += padded[p]

    return forward_kernel, backward_kernel


def _step_table(step: Tensor, n: int, block: int) -> np.ndarray:
    """Any step shape of :func:`~sandwich.codecs.blockcodec.tile_step` as a contiguous ``(N, b, b)`` array."""
    return tile_step(step.detach(), n, block).expand(n, 1, 1, block, 1, block).reshape(n, block, block).contiguous().numpy()


def _matrices(block: int, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The DCT matrix and its transpose, contiguous."""
    d = dct_matrix(block, dtype)
    return d.numpy(), d.T.contiguous().numpy()


def _noise_array(noise: Tensor | None, planes: Tensor) -> np.ndarray:
    return planes.new_zeros((1, 1, 1, 1)).numpy() if noise is None else noise.detach().contiguous().numpy()


def forward(planes: Tensor, step: Tensor, block: int, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """The op's forward (see :func:`sandwich.codecs.kernels.reference.forward`), on CPU tensors."""
    planes = planes.detach().contiguous()
    n, c, h, w = planes.shape
    hp, wp = reference.padded_size(h, w, block)
    hb, wb = hp // block, wp // block
    rows = strip_rows(hb, wb)
    recon = torch.empty_like(planes)
    dc = planes.new_empty((n, c, hb, wb))
    stats = torch.empty((n, c, -(-hb // rows), 3), dtype=torch.float64)
    dtype = planes.numpy().dtype
    run_items(
        _kernels(block)[0], n * c * stats.shape[2],
        planes.numpy(), *_matrices(block, planes.dtype), _step_table(step, n, block), _noise_array(noise, planes),
        noise is not None, _constants(dtype), _log_table(dtype), wb, rows, recon.numpy(), dc.view(n, c, hb * wb).numpy(), stats.numpy(),
    )  # fmt: skip
    sums = stats.sum(dim=(1, 2))
    dc_diff = reference.dc_diff_log(dc.reshape(n, c, -1))
    count = torch.full((n,), float(c * dc.shape[2] * dc.shape[3]), dtype=torch.float64)
    features = torch.stack([sums[:, 0], sums[:, 1], dc_diff, sums[:, 2], count], dim=1).to(planes.dtype)
    return recon, features, dc


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
    """The op's backward (see :func:`sandwich.codecs.kernels.reference.backward`), on CPU tensors."""
    planes = planes.detach().contiguous()
    n, c, h, w = planes.shape
    hb, wb = dc.shape[2:]
    rows = strip_rows(hb, wb)
    strips = -(-hb // rows)
    gdc = reference.dc_grad(dc.reshape(n, c, hb * wb), grad_features).contiguous()
    grad_planes = torch.empty_like(planes) if need_planes else planes.new_empty(0)
    partials = torch.empty((n, c, strips, block, block) if need_step else (1, 1, 1, 1, 1), dtype=torch.float64)
    run_items(
        _kernels(block)[1], n * c * strips,
        grad_recon.detach().contiguous().numpy(), planes.numpy(), *_matrices(block, planes.dtype), _step_table(step, n, block),
        gdc.numpy(), grad_features.detach().contiguous().numpy(), _noise_array(noise, planes), noise is not None, need_planes,
        need_step, _constants(planes.numpy().dtype), wb, rows,
        (grad_planes if need_planes else planes.new_empty((1, 1, 1, 1))).numpy(), partials.numpy(),
    )  # fmt: skip
    grad_step = step.new_empty(0)
    if need_step:
        tiled = tile_step(step, n, block)
        per_image = partials.sum(dim=(1, 2)).view(n, 1, 1, block, 1, block)
        grad_step = per_image.sum_to_size(tiled.shape).reshape(step.shape).to(step.dtype)
    return grad_planes, grad_step

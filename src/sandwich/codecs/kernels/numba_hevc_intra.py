"""Fused CPU kernel (numba) of the HEVC-intra proxy's closed-loop block coding: its forward decisions.

:func:`decide` codes a plane group at one transform size, block by block in raster order, each block
predicted from the decoded samples of its neighbours (as an HEVC decoder sees them), with the same
decisions and values as :func:`sandwich.codecs.hevc_proxy.intra.wavefront_decisions` (the torch
reference, which runs the same process in batched wavefronts). Per block, in one pass that reads the
block once and writes its result once: the references (left column, corner, top row of every plane);
every mode's predicted coefficients (a ``(2s + 1) x (35 s²)`` map per availability case, read once per
block for all the images of a work item) and their SATD, summed over the planes; the cheapest mode
(the first on ties); ``u = (c - pred) / Δ``, HEVC's dead-zone levels, the dequantised coefficients and
their inverse transform (the samples before rounding); and the rounded samples the next blocks read.

Nothing here is differentiated: :func:`sandwich.codecs.hevc_proxy.intra.code_size` builds the
gradient from these decisions in one batched pass (the decoded samples' gradient is the input's,
the rate statistics' reaches the references through the chosen mode's map).

Floating point: values in the input's dtype with the same elementwise operations as the torch
reference; the predictions' and transforms' sums run in another order (and with fused multiply-adds),
so a value can differ by float rounding, and a mode decision between two modes of equal cost (to that
rounding) can fall the other way. Work items are images (:func:`~sandwich.codecs.kernels.numba_runtime.run_items`).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

from sandwich.codecs.hevc_proxy.transforms import INTRA_DEADZONE
from sandwich.codecs.kernels.numba_runtime import JIT, run_items
from sandwich.codecs.quantize import CLIP_MARGIN


@njit(**JIT)
def _transform(matrix, block, tmp, out, inverse, zero):  # pragma: no cover - compiled
    """``out = M block Mᵀ`` (``inverse``: ``Mᵀ block M``) of one ``(s, s)`` block; ``tmp`` is scratch, ``zero``
    a zero of the dtype."""
    s = block.shape[0]
    for a in range(s):
        for b in range(s):
            acc = zero
            for k in range(s):
                acc += (matrix[k, a] if inverse else matrix[a, k]) * block[k, b]
            tmp[a, b] = acc
    for a in range(s):
        for b in range(s):
            acc = zero
            for k in range(s):
                acc += tmp[a, k] * (matrix[k, b] if inverse else matrix[b, k])
            out[a, b] = acc


@njit(**{**JIT, "fastmath": {"contract", "reassoc"}})
def _satd(target, pred, bias, zero):  # pragma: no cover - compiled
    """``Σ_k |target[k] - (pred[k] + bias[k])|`` (reassociated, so that it vectorises: the sum only ranks modes)."""
    cost = zero
    for k in range(target.shape[0]):
        cost += abs(target[k] - (pred[k] + bias[k]))
    return cost


@njit(**JIT)
def _code_images(first, last, target, step, maps, biases, matrix, consts, pre, decoded, scaled, modes):  # pragma: no cover - compiled
    """Images ``first .. last - 1`` (module doc).

    Args:
        target: ``(N, R, C, P, s·s)`` each block's transform coefficients.
        step: ``(N,)`` quantiser steps Δ.
        maps: ``(4, 2s + 1, M·s·s)`` every mode's predicted coefficients per reference sample, per availability case.
        biases: ``(4, M·s·s)`` their constant terms.
        matrix: ``(s, s)`` the transform (rows are basis functions).
        consts: ``[1/2, 255 + CLIP_MARGIN, 0, dead-zone offset]`` in the dtype.
        pre, decoded: ``(N, P, H, W)`` out: the samples before and after rounding.
        scaled: ``(N, R, C, P, s·s)`` out: ``u = (c - pred) / Δ``.
        modes: ``(N, R, C)`` out: each block's mode.
    """
    _, rows_n, cols_n, planes, area = target.shape
    refs_n = maps.shape[1]
    s = matrix.shape[0]
    mode_n = maps.shape[2] // area
    half, top, zero, deadzone = consts[0], consts[1], consts[2], consts[3]
    count = last - first
    refs = np.empty((count, planes, refs_n), target.dtype)
    pred = np.empty((count, planes, mode_n * area), target.dtype)
    coef = np.empty((s, s), target.dtype)
    tmp = np.empty((s, s), target.dtype)
    samples = np.empty((s, s), target.dtype)
    for i in range(rows_n):
        for j in range(cols_n):
            case = (i > 0) * 2 + (j > 0)
            y0, x0 = i * s, j * s
            for g in range(count):
                n = first + g
                for p in range(planes):
                    for y in range(s):
                        refs[g, p, y] = decoded[n, p, y0 + y, x0 - 1] if j > 0 else zero
                    refs[g, p, s] = decoded[n, p, y0 - 1, x0 - 1] if i > 0 and j > 0 else zero
                    for x in range(s):
                        refs[g, p, s + 1 + x] = decoded[n, p, y0 - 1, x0 + x] if i > 0 else zero
                    pred[g, p, :] = zero
            for r in range(refs_n):
                row = maps[case, r]
                for g in range(count):
                    for p in range(planes):
                        v = refs[g, p, r]
                        if v != zero:
                            dst = pred[g, p]
                            for k in range(row.shape[0]):
                                dst[k] += v * row[k]
            for g in range(count):
                n = first + g
                best, best_cost = 0, zero
                for m in range(mode_n):
                    cost = zero
                    for p in range(planes):
                        cost += _satd(target[n, i, j, p], pred[g, p, m * area : (m + 1) * area], biases[case, m * area : (m + 1) * area], zero)
                    if m == 0 or cost < best_cost:
                        best, best_cost = m, cost
                modes[n, i, j] = best
                for p in range(planes):
                    for k in range(area):
                        c = pred[g, p, best * area + k] + biases[case, best * area + k]
                        u = (target[n, i, j, p, k] - c) / step[n]
                        scaled[n, i, j, p, k] = u
                        level = np.sign(u) * np.floor(abs(u) + deadzone)
                        coef[k // s, k % s] = c + level * step[n]
                    _transform(matrix, coef, tmp, samples, True, zero)
                    for y in range(s):
                        for x in range(s):
                            value = samples[y, x]
                            pre[n, p, y0 + y, x0 + x] = value
                            decoded[n, p, y0 + y, x0 + x] = np.floor(min(max(value + half, zero), top))


def decide(target: Tensor, step: Tensor, maps: Tensor, biases: Tensor, matrix: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """The closed-loop decisions of one plane group at one transform size (module doc).

    Args:
        target: ``(R, C, N, P, s, s)`` the blocks' transform coefficients (float32 or float64, CPU).
        step: ``(N,)`` quantiser steps Δ.
        maps: ``(4, 2s + 1, M·s·s)``, biases: ``(4, M, s, s)``: every mode's predicted coefficients
            (:func:`~sandwich.codecs.hevc_proxy.intra.coefficient_maps`).
        matrix: ``(s, s)`` the transform.
        height, width: the planes' size ``(R·s, C·s)``.

    Returns:
        ``pre`` ``(N, P, H, W)`` the decoded samples before rounding (to ``floor(x + 1/2)`` on 0..255),
        ``scaled`` ``(R, C, N, P, s, s)`` ``u = (c - pred) / Δ``, ``modes`` ``(R, C, N)`` int64.
    """
    rows_n, cols_n, n, p, s, _ = target.shape
    dtype = target.dtype
    as_np = lambda t: np.ascontiguousarray(t.detach().to(dtype).cpu().numpy())  # noqa: E731
    blocks = as_np(target.permute(2, 0, 1, 3, 4, 5).flatten(4))
    consts = np.array([0.5, 255.0 + CLIP_MARGIN, 0.0, INTRA_DEADZONE], dtype=blocks.dtype)
    pre = np.empty((n, p, height, width), blocks.dtype)
    decoded = np.empty_like(pre)
    scaled = np.empty_like(blocks)
    modes = np.empty((n, rows_n, cols_n), np.int64)
    run_items(
        _code_images, n, blocks, as_np(step), as_np(maps), as_np(biases.flatten(1)), as_np(matrix), consts, pre, decoded, scaled, modes
    )
    back = lambda a: torch.from_numpy(a).to(target.device)  # noqa: E731
    return back(pre), back(scaled).unflatten(-1, (s, s)).permute(1, 2, 0, 3, 4, 5), back(modes).permute(1, 2, 0)

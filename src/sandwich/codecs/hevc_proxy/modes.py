"""HEVC's 35 intra prediction modes as linear maps of a block's neighbours (H.265 8.4.4.2).

Every mode (planar 0, DC 1, angular 2..34 with their 1/32-sample interpolation), the [1 2 1] smoothing
of the reference samples for luma blocks of 8 and more, and the DC / horizontal / vertical edge filters
of luma blocks under 32, is linear in the reference samples once HEVC's integer rounding is dropped.
So each is a matrix, built here once per block size by running the prediction process on a basis.

The proxy codes blocks in wavefronts (:mod:`.intra`), where a block's above-right and below-left
neighbours are not coded yet: the references are the ``2N + 1`` samples ``[left column (top to bottom),
corner, top row]``, and the ``2N`` samples beyond them are substituted by the nearest one, as HEVC
substitutes unavailable samples. The four *availability cases* of a block at a picture edge (both
sides, no top, no left, neither) are folded into the matrices as HEVC substitutes there: from the other
side, else the constant 128 (:data:`MID`, a bias).

Not modelled: the strong (bilinear) smoothing of 32x32 references, which depends on the samples.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

MODES = 35
MID = 128.0
DC_MODE, HORIZONTAL_MODE, VERTICAL_MODE = 1, 10, 26
ANGLE = {m: a for m, a in zip(range(2, 35), (32, 26, 21, 17, 13, 9, 5, 2, 0, -2, -5, -9, -13, -17, -21, -26, -32,
                                                -26, -21, -17, -13, -9, -5, -2, 0, 2, 5, 9, 13, 17, 21, 26, 32))}
INV_ANGLE = {11: -4096, 12: -1638, 13: -910, 14: -630, 15: -482, 16: -390, 17: -315, 18: -256,
             19: -315, 20: -390, 21: -482, 22: -630, 23: -910, 24: -1638, 25: -4096}
_SMOOTHING_THRESHOLD = {8: 7, 16: 1, 32: 0}  # intraHorVerDistThres


def _predict(e: np.ndarray, n: int, mode: int, luma: bool) -> np.ndarray:
    """Prediction ``(B, n, n)`` [row, column] of mode ``mode`` from full references ``e`` ``(B, 4n + 1)``:
    ``e[2n - 1 - y]`` is the left sample of row ``y`` (``y = -1``: the corner), ``e[2n + 1 + x]`` the top
    sample of column ``x``."""
    left = lambda y: e[:, 2 * n - 1 - y]  # noqa: E731
    top = lambda x: e[:, 2 * n + 1 + x]  # noqa: E731
    pred = np.zeros((e.shape[0], n, n))
    if mode == 0:
        for y in range(n):
            for x in range(n):
                pred[:, y, x] = ((n - 1 - x) * left(y) + (x + 1) * top(n) + (n - 1 - y) * top(x) + (y + 1) * left(n)) / (2 * n)
        return pred
    if mode == DC_MODE:
        dc = (sum(top(x) for x in range(n)) + sum(left(y) for y in range(n))) / (2 * n)
        pred[:] = dc[:, None, None]
        if luma and n < 32:
            pred[:, 0, 0] = (left(0) + 2 * dc + top(0)) / 4
            for k in range(1, n):
                pred[:, 0, k] = (top(k) + 3 * dc) / 4
                pred[:, k, 0] = (left(k) + 3 * dc) / 4
        return pred
    angle, vertical = ANGLE[mode], mode >= 18
    main, side = (top, left) if vertical else (left, top)
    ref = {x: main(x - 1) for x in range(0, 2 * n + 1)}
    if angle < 0 and (n * angle) >> 5 < -1:
        for x in range((n * angle) >> 5, 0):
            ref[x] = side(-1 + ((x * INV_ANGLE[mode] + 128) >> 8))
    for a in range(n):  # a: the distance from the main reference (row for vertical modes)
        offset, fraction = ((a + 1) * angle) >> 5, ((a + 1) * angle) & 31
        for b in range(n):  # b: the position along it
            value = ref[b + offset + 1] if fraction == 0 else ((32 - fraction) * ref[b + offset + 1] + fraction * ref[b + offset + 2]) / 32
            if vertical:
                pred[:, a, b] = value
            else:
                pred[:, b, a] = value
    if luma and n < 32 and mode in (HORIZONTAL_MODE, VERTICAL_MODE):
        for k in range(n):
            if vertical:
                pred[:, k, 0] = top(0) + (left(k) - left(-1)) / 2
            else:
                pred[:, 0, k] = left(0) + (top(k) - top(-1)) / 2
    return pred


def _smoothed(e: np.ndarray) -> np.ndarray:
    """HEVC's [1 2 1] / 4 filter over the reference array, its two ends kept."""
    out = e.copy()
    out[:, 1:-1] = (e[:, :-2] + 2 * e[:, 1:-1] + e[:, 2:]) / 4
    return out


def _substitution(n: int, case: int) -> tuple[np.ndarray, np.ndarray]:
    """``(2n + 1, 4n + 1)`` map from the wavefront references ``[left, corner, top]`` to HEVC's full
    reference array, and its ``(4n + 1,)`` bias, for availability case ``case`` (bit 1: top, bit 0: left)."""
    has_top, has_left = bool(case & 2), bool(case & 1)
    corner, first_top = n, n + 1
    source = {}  # full index -> wavefront index
    for y in range(-1, 2 * n):
        full = 2 * n - 1 - y
        source[full] = corner if y == -1 else min(y, n - 1)
    for x in range(2 * n):
        source[2 * n + 1 + x] = first_top + min(x, n - 1)
    matrix, bias = np.zeros((2 * n + 1, 4 * n + 1)), np.zeros(4 * n + 1)
    for full, wave in source.items():
        is_top = wave >= first_top
        is_left = wave < corner
        if has_top and has_left:
            matrix[wave, full] = 1
        elif has_left:  # top row and corner come from the first left sample
            matrix[0 if not is_left else wave, full] = 1
        elif has_top:  # left column and corner come from the first top sample
            matrix[first_top if not is_top else wave, full] = 1
        else:
            bias[full] = MID
    return matrix, bias


@functools.lru_cache(maxsize=None)
def _prediction_maps(n: int, luma: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(4, 2n + 1, MODES, n, n)`` matrices and ``(4, MODES, n, n)`` biases: the predictions of every
    mode in every availability case, from the wavefront references."""
    basis = np.eye(4 * n + 1)
    per_mode = []
    for mode in range(MODES):
        smooth = luma and n >= 8 and mode != DC_MODE and min(abs(mode - 26), abs(mode - 10)) > _SMOOTHING_THRESHOLD[n]
        per_mode.append(_predict(_smoothed(basis) if smooth else basis, n, mode, luma))
    full = np.stack(per_mode, axis=1)  # (4n + 1, MODES, n, n): prediction of each full-reference basis vector
    matrices, biases = [], []
    for case in range(4):
        sub, bias = _substitution(n, case)
        matrices.append(np.einsum("wf,fmyx->wmyx", sub, full))
        biases.append(np.einsum("f,fmyx->myx", bias, full))
    return np.stack(matrices), np.stack(biases)


def prediction_maps(n: int, luma: bool, dtype: torch.dtype, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """:func:`_prediction_maps` as tensors: ``(4, 2n + 1, MODES, n, n)`` and ``(4, MODES, n, n)``."""
    matrices, biases = _prediction_maps(n, luma)
    return torch.as_tensor(matrices, dtype=dtype, device=device), torch.as_tensor(biases, dtype=dtype, device=device)

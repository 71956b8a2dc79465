"""HEVC's laws and tables for 8-bit pictures (ITU-T H.265, 8.6 and 8.7.2), as functions of a real QP.

The proxy codes at non-integer QPs (a training level between two knob values), so every table is
interpolated linearly between integer QPs.
"""

from __future__ import annotations

import numpy as np

# Chroma QP of 4:2:0 for luma QPs 30..43 (Table 8-10); below 30 it equals the luma QP, above 43 it is QP - 6.
_CHROMA_420 = (29, 30, 31, 32, 33, 33, 34, 34, 35, 35, 36, 36, 37, 37)
# beta' for Q = 16..51 (0 below) and tC' for Q = 18..53 (0 below) (Table 8-12), 8-bit samples.
_BETA = (6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62, 64)
_TC = (1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10, 11, 13, 14, 16, 18, 20, 22, 24)
MAX_QP = 51
# x265 in constant-QP mode codes I slices ``6 log2(ipratio)`` below its ``qp`` option (ipratio 1.4 by default:
# 2.91, rounded): the real codec's knob value QP codes an intra picture at slice QP ``QP - 3``.
X265_INTRA_QP_OFFSET = 3
INTRA_BS_QP_OFFSET = 2  # intra edges have boundary strength 2: tC is read at QP + 2


def slice_qp(knob: np.ndarray) -> np.ndarray:
    """The slice QP at which x265 codes an intra picture for its ``qp`` option ``knob``."""
    return np.asarray(knob, dtype=np.float64) - X265_INTRA_QP_OFFSET


def qstep(qp: np.ndarray) -> np.ndarray:
    """Quantiser step on the orthonormal transform's scale (8-bit sample units): ``2**((QP - 4) / 6)``."""
    return np.exp2((np.asarray(qp, dtype=np.float64) - 4.0) / 6.0)


def chroma_qp(qp: np.ndarray, subsampling: str) -> np.ndarray:
    """The chroma QP of luma QP ``qp`` (no chroma QP offsets): 4:2:0's table, else the luma QP."""
    qp = np.clip(np.asarray(qp, dtype=np.float64), 0, MAX_QP)
    if subsampling != "420":
        return qp
    grid = np.arange(0, MAX_QP + 1)
    table = np.where(grid < 30, grid, np.where(grid > 43, grid - 6, np.take(_CHROMA_420, np.clip(grid - 30, 0, 13))))
    return np.interp(qp, grid, table)


def beta(qp: np.ndarray) -> np.ndarray:
    """The deblocking filter's activity threshold beta at QP ``qp``."""
    grid = np.arange(0, MAX_QP + 1)
    return np.interp(np.asarray(qp, dtype=np.float64), grid, np.concatenate([np.zeros(16), _BETA]))


def tc(qp: np.ndarray) -> np.ndarray:
    """The deblocking filter's clipping bound tC of an intra edge (boundary strength 2) at QP ``qp``."""
    grid = np.arange(0, MAX_QP + 3)
    q = np.clip(np.asarray(qp, dtype=np.float64) + INTRA_BS_QP_OFFSET, 0, MAX_QP + 2)
    return np.interp(q, grid, np.concatenate([np.zeros(18), _TC]))


def mode_lambda(qp: np.ndarray) -> np.ndarray:
    """The Lagrangian of intra mode and transform-size decisions, squared 8-bit levels per bit:
    ``0.57 * 2**((QP - 12) / 3)`` (the HM reference encoder's, for intra pictures)."""
    return 0.57 * np.exp2((np.asarray(qp, dtype=np.float64) - 12.0) / 3.0)

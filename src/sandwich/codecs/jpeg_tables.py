"""JPEG quantisation tables: the IJG (Annex K) base tables and libjpeg's quality scaling.

Tables are ``(8, 8)`` integer arrays in natural (row-major, not zig-zag) order; entry ``[u, v]`` is
the step for vertical frequency ``u`` and horizontal frequency ``v``, on the scale of an orthonormal
8x8 DCT of samples centred at 0 (so a step of 16 means coefficients are rounded to multiples of 16).
"""

from __future__ import annotations

import numpy as np

from sandwich.errors import InputError

IJG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)

IJG_CHROMA = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.int64,
)

# Zig-zag scan order of an 8x8 block: ZIGZAG[k] is the natural (row-major) index of the k-th coefficient.
ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ],
    dtype=np.int64,
)


def quality_scale(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: quality 1..100 -> percentage applied to the base tables."""
    if not 1 <= quality <= 100:
        raise InputError(f"JPEG quality {quality} outside [1, 100]")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """The (luma, chroma) tables libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` uses.

    Returns two ``(8, 8)`` int64 arrays with entries in ``[1, 255]``.
    """
    scale = quality_scale(quality)
    return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (IJG_LUMA, IJG_CHROMA))

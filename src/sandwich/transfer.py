"""High-dynamic-range sources as integer samples: scene-linear light -> SMPTE ST 2084 (PQ) code values.

Why PQ. It is the HDR signal of ITU-R BT.2100 (HDR10): what 10- and 12-bit HEVC HDR streams and JPEG XL HDR
images carry, so a sandwich's HDR source is coded the way real HDR content is. PQ spends its code values
perceptually uniformly over 0.005 .. 10000 cd/m2 (a step between code values is about equally visible at any
luminance), so an MSE (and PSNR) on d-bit PQ code values is roughly a perceptual error, where an MSE on
linear light would be ruled by the highlights.

Why an exposure anchor. A scene-referred OpenEXR (a panorama, a render) holds relative linear light with no
absolute scale: a value of 1.0 is no particular luminance. :func:`exr_to_codes` therefore scales each image
so that its median luminance lands on 26 cd/m2, the PQ level ITU-R BT.2408 gives an 18 % grey card (its
reference white, 100 %, is 203 cd/m2), then clips at PQ's 10000 cd/m2 peak. Code values are full range
(``0 .. 2**d - 1``, as every array of :mod:`sandwich.sample_format`), not the 64..940 narrow range of
10-bit video.
"""

from __future__ import annotations

import numpy as np

from sandwich.sample_format import dtype_for, peak

PQ_PEAK_NITS = 10000.0  # cd/m2 at PQ signal 1.0
_M1 = 2610 / 16384
_M2 = 2523 / 4096 * 128
_C1 = 3424 / 4096
_C2 = 2413 / 4096 * 32
_C3 = 2392 / 4096 * 32
BT2100_LUMA = (0.2627, 0.6780, 0.0593)  # luminance weights of linear BT.2020/BT.2100 R, G, B
MEDIAN_NITS = 26.0  # BT.2408's 18 % grey in PQ: where an image's median luminance is put


def pq_encode(nits: np.ndarray) -> np.ndarray:
    """Luminance in cd/m2 (0 .. 10000; values outside are clipped) -> PQ signal in [0, 1], float64, same shape
    (SMPTE ST 2084's inverse EOTF).

    Example:
        >>> pq_encode(np.array([0.0, 100.0, 10000.0])).round(4).tolist()
        [0.0, 0.5081, 1.0]
    """
    y = (np.clip(np.asarray(nits, dtype=np.float64), 0, PQ_PEAK_NITS) / PQ_PEAK_NITS) ** _M1
    return ((_C1 + _C2 * y) / (1 + _C3 * y)) ** _M2


def pq_decode(signal: np.ndarray) -> np.ndarray:
    """PQ signal in [0, 1] (values outside are clipped) -> luminance in cd/m2, float64, same shape (ST 2084's
    EOTF; the inverse of :func:`pq_encode`)."""
    e = np.clip(np.asarray(signal, dtype=np.float64), 0, 1) ** (1 / _M2)
    return PQ_PEAK_NITS * (np.maximum(e - _C1, 0) / (_C2 - _C3 * e)) ** (1 / _M1)


def exr_to_codes(linear: np.ndarray, bit_depth: int) -> np.ndarray:
    """Scene-referred linear RGB ``(H, W, 3)`` float (any scale) -> ``(H, W, 3)`` ``bit_depth``-bit PQ code
    values (uint16 for 9..16), rounded.

    Negative and NaN values become 0; the image is scaled so that the median luminance (BT.2100 weights)
    of its lit pixels (luminance > 0) is 26 cd/m2 (module doc); light above 10000 cd/m2 is clipped. An
    image without a lit pixel is all code 0.

    Example:
        >>> exr_to_codes(np.full((1, 2, 3), 0.18), 10).tolist()  # a grey image: its median at 26 cd/m2, PQ 38 %
        [[[389, 389, 389], [389, 389, 389]]]
    """
    rgb = np.nan_to_num(np.asarray(linear, dtype=np.float64), nan=0.0, posinf=np.inf)
    rgb = np.maximum(rgb, 0)
    luminance = rgb @ np.array(BT2100_LUMA)
    lit = luminance[luminance > 0]
    scale = MEDIAN_NITS / np.median(lit) if lit.size else 0.0
    return pq_codes(rgb * scale, bit_depth)


def pq_codes(nits: np.ndarray, bit_depth: int) -> np.ndarray:
    """Luminance in cd/m2 (any shape; clipped to 0 .. 10000) -> ``bit_depth``-bit PQ code values (uint16 for 9..16),
    :func:`pq_encode` rounded half up."""
    return np.floor(pq_encode(nits) * peak(bit_depth) + 0.5).astype(dtype_for(bit_depth))

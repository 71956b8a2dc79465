"""YUV plumbing shared by the FFmpeg-based codecs (HEVC, AV1): colour conversion, chroma resampling,
padding, and moving planes in and out of PyAV frames.

Images are numpy arrays: RGB ``(H, W, 3)`` or planes ``(H, W)``, float while converting, and integer
samples in ``[0, 2**bit_depth - 1]`` at the codec boundary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sandwich import jfif

if TYPE_CHECKING:  # PyAV (FFmpeg) is imported where a frame is made: JPEG-only work never loads FFmpeg
    import av

# Full-range BT.601 (JFIF) RGB -> YCbCr; Cb/Cr rows get the mid-grey offset added separately.
_RGB_TO_YCC = np.array(jfif.RGB_TO_YCBCR)
_YCC_TO_RGB = np.array(jfif.YCBCR_TO_RGB)


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer (Python or numpy) and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --- colour conversion and chroma resampling (shared with av1.py) ---------------------------------


def rgb_to_ycbcr(rgb: np.ndarray, bit_depth: int) -> np.ndarray:
    """Full-range BT.601 (JFIF) conversion of ``(H, W, 3)`` integer RGB to float64 ``(H, W, 3)`` YCbCr.

    Not rounded: Cb and Cr carry the offset ``2**(bit_depth - 1)``; values lie in ``[0, 2**bit_depth - 1]``.
    """
    ycc = rgb.astype(np.float64) @ _RGB_TO_YCC.T
    ycc[..., 1:] += 2 ** (bit_depth - 1)
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray, bit_depth: int) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: float ``(H, W, 3)`` YCbCr to float64 RGB (not rounded or clipped)."""
    ycc = ycc.astype(np.float64, copy=True)
    ycc[..., 1:] -= 2 ** (bit_depth - 1)
    return ycc @ _YCC_TO_RGB.T


def to_samples(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round and clip floats to ``[0, 2**bit_depth - 1]``; uint8 for 8-bit, uint16 otherwise."""
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.rint(x), 0, 2**bit_depth - 1).astype(dtype)


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad the first two axes at the bottom / right to ``(height, width)`` by edge replication."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    pad = [(0, height - h), (0, width - w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="edge")


def pad_even(image: np.ndarray) -> np.ndarray:
    """Pad the first two axes to even length by replicating the last row / column."""
    h, w = image.shape[:2]
    return pad_to(image, h + h % 2, w + w % 2)


def downsample_420(plane: np.ndarray) -> np.ndarray:
    """2x2 box mean of a float ``(H, W)`` plane with even ``H, W`` (centre-sited chroma)."""
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def upsample_420(plane: np.ndarray) -> np.ndarray:
    """Double both axes of a centre-sited chroma plane with the ``(3/4, 1/4)`` triangle filter.

    Output sample ``2i`` is ``3/4 c[i] + 1/4 c[i-1]`` and ``2i+1`` is ``3/4 c[i] + 1/4 c[i+1]``,
    with edge samples replicated; returns float64 ``(2H, 2W)``.
    """
    out = plane.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        prev = np.take(out, np.r_[0, np.arange(n - 1)], axis=axis)
        nxt = np.take(out, np.r_[np.arange(1, n), n - 1], axis=axis)
        even = 0.75 * out + 0.25 * prev
        odd = 0.75 * out + 0.25 * nxt
        out = np.stack([even, odd], axis=axis + 1).reshape(
            out.shape[:axis] + (2 * n,) + out.shape[axis + 1 :]
        )
    return out


# --- PyAV frame plane access (shared with av1.py) --------------------------------------------------


def frame_from_planes(planes: list[np.ndarray], pix_fmt: str) -> av.VideoFrame:
    """A PyAV frame of ``pix_fmt`` holding ``planes`` (uint8 or little-endian uint16, luma first)."""
    import av

    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for dst, src in zip(frame.planes, planes, strict=True):
        rows = np.frombuffer(dst, np.uint8).reshape(dst.height, dst.line_size)
        raw = np.ascontiguousarray(src).astype(src.dtype.newbyteorder("<"), copy=False).view(np.uint8)
        raw = raw.reshape(src.shape[0], -1)
        rows[: raw.shape[0], : raw.shape[1]] = raw
    frame.pts = 0
    return frame


def planes_from_frame(frame: av.VideoFrame, bit_depth: int) -> list[np.ndarray]:
    """The planes of a decoded planar frame as ``(h, w)`` uint8 / uint16 arrays (copies)."""
    dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype, count=plane.height * plane.line_size // dtype.itemsize)
        rows = rows.reshape(plane.height, plane.line_size // dtype.itemsize)
        out.append(rows[:, : plane.width].astype(dtype.newbyteorder("="), copy=True))
    return out


def pix_fmt_name(base: str, bit_depth: int) -> str:
    """FFmpeg pixel format for a base name (``yuv420p``, ``gray``...) at ``bit_depth``."""
    return base if bit_depth == 8 else f"{base}{bit_depth}le"


# --- Annex-B NAL units -----------------------------------------------------------------------------

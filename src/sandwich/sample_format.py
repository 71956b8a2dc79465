"""Sample format: the one place where image arrays (integer samples) and tensors (floats) meet.

* **Arrays** are what files, shards and real codecs hold: ``(H, W)`` for one channel or ``(H, W, C)``
  for any ``C``; ``uint8`` for bit depth 8, ``uint16`` for 9..16, values ``0 .. 2**d - 1``.
* **Tensors** are what networks and the proxy see: ``(C, H, W)`` float32 on the [0, 1] scale, the sample
  divided by the peak ``2**d - 1`` (with ``normalise=False``, the integer value itself as a float).

A tensor goes back to an array rounded half up and clipped, the way the real encoders are fed. An array
changes bit depth only downwards, rounded (:func:`requantize`). Metrics
on the integer scale (:mod:`sandwich.metrics.psnr`) take the peak from :func:`peak`; nothing else in the
package divides by 255.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sandwich.errors import InputError

BIT_DEPTHS = range(8, 17)  # bit depths an array may have: 8 (uint8) .. 16 (uint16)


def peak(bit_depth: int = 8) -> int:
    """The largest sample value ``2**bit_depth - 1`` of a ``bit_depth``-bit array (8..16)."""
    if bit_depth not in BIT_DEPTHS:
        raise InputError(f"bit depth {bit_depth} not supported; it must be 8..16")
    return 2**bit_depth - 1


def dtype_for(bit_depth: int = 8) -> type[np.unsignedinteger]:
    """``np.uint8`` for 8-bit samples, ``np.uint16`` for 9..16."""
    return np.uint8 if peak(bit_depth) < 256 else np.uint16


def to_tensor(array: np.ndarray, bit_depth: int = 8, normalise: bool = True) -> Tensor:
    """``(H, W)`` or ``(H, W, C)`` integer samples -> ``(C, H, W)`` float32 on [0, 1] (or on ``0..peak``
    with ``normalise=False``).

    Raises:
        InputError: the array's dtype is not the one of ``bit_depth``, or a value exceeds its peak.

    Example:
        >>> to_tensor(np.array([[0, 255]], dtype=np.uint8)).tolist()
        [[[0.0, 1.0]]]
    """
    check_samples(array, bit_depth)
    planes = array[..., None] if array.ndim == 2 else array
    tensor = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)).astype(np.float32))
    return tensor / peak(bit_depth) if normalise else tensor


def requantize(array: np.ndarray, from_bits: int, to_bits: int) -> np.ndarray:
    """``from_bits``-bit samples -> ``to_bits``-bit samples (``to_bits <= from_bits``, both 8..16), any shape:
    ``v * (2**to_bits - 1) / (2**from_bits - 1)`` rounded half up, in integer arithmetic (exact; the
    denominator is odd, so no value falls on a tie). Equal depths return ``array`` itself.

    A 16-bit file (PNG, TIFF; ffmpeg's ``rgb48``, cameras) holds full-range 16-bit samples, so a ``d``-bit
    source read from one is ``requantize(samples, 16, d)``.

    Raises:
        InputError: ``to_bits > from_bits``, or ``array`` is not ``from_bits``-bit samples.

    Example:
        >>> requantize(np.array([0, 32767, 32768, 65535], dtype=np.uint16), 16, 8).tolist()
        [0, 127, 128, 255]
    """
    if to_bits > from_bits:
        raise InputError(f"scaling {from_bits}-bit samples up to {to_bits} bits is not high-bit-depth data")
    check_samples(array, from_bits)
    if to_bits == from_bits:
        return array
    top = peak(from_bits)
    return ((array.astype(np.uint64) * peak(to_bits) + top // 2) // top).astype(dtype_for(to_bits))


def check_samples(array: np.ndarray, bit_depth: int) -> None:
    """InputError unless ``array`` has the dtype of ``bit_depth`` and no value above its peak."""
    if array.dtype != dtype_for(bit_depth):
        raise InputError(f"expected {np.dtype(dtype_for(bit_depth)).name} samples for bit depth {bit_depth}, got {array.dtype}")
    if bit_depth not in (8, 16) and array.size and int(array.max()) > peak(bit_depth):
        raise InputError(f"sample value {int(array.max())} does not fit in {bit_depth} bits")


def to_array(tensor: Tensor, bit_depth: int = 8) -> np.ndarray:
    """``(C, H, W)`` on [0, 1] -> ``(H, W)`` (one channel) or ``(H, W, C)`` integer samples, rounded half
    up and clipped to ``0..peak``; the inverse of :func:`to_tensor` on its outputs.

    Example:
        >>> to_array(torch.tensor([[[0.0, 0.5, 1.2]]])).tolist()
        [[0, 128, 255]]
    """
    top = peak(bit_depth)
    samples = torch.floor(tensor.detach().double() * top + 0.5).clamp(0, top).cpu().numpy().astype(dtype_for(bit_depth))
    return samples[0] if samples.shape[0] == 1 else samples.transpose(1, 2, 0)


def rounded(tensor: Tensor, bit_depth: int = 8) -> Tensor:
    """``(C, H, W)`` on [0, 1] rounded and clipped to ``bit_depth``-bit samples, back on the [0, 1] scale: what
    an image file holds (``to_tensor(to_array(tensor))``), on ``tensor``'s device."""
    return to_tensor(to_array(tensor, bit_depth), bit_depth).to(tensor.device)

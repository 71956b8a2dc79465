"""The interface every real codec implements.

A real codec turns an image array into a standard bitstream and back. Images are numpy arrays:

* ``(H, W)`` for one channel (grayscale / 4:0:0) or ``(H, W, 3)`` for RGB;
* ``uint8`` for 8-bit codecs, ``uint16`` holding values in ``[0, 2**bit_depth - 1]`` for 10/12-bit.

``payload_bits`` counts what a decoder needs to reconstruct the image: the coded data and the
parameter sets / tables it references, but not the encoder's comments (JPEG APPn/COM segments,
x265's encoder-info SEI) and not container boxes that only describe the file. Each codec's
docstring says exactly what it counts.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from sandwich.errors import InputError


@dataclass(frozen=True)
class Encoded:
    """One coded image.

    Attributes:
        data: the complete stream as written, decodable by :meth:`RealCodec.decode`.
        payload_bits: bits a decoder needs (see the module docstring); ``<= 8 * len(data)``.
    """

    data: bytes
    payload_bits: int


class RealCodec(abc.ABC):
    """A real (non-differentiable) codec with one rate knob.

    Attributes:
        name: short name used in configs and reports (``"jpeg"``, ``"hevc"``, ...).
        knob: what ``level`` means for :meth:`encode` (``"quality"`` or ``"qp"``).
        higher_is_better: whether a larger ``level`` gives higher quality and more bits.
        level_range: inclusive ``(min, max)`` of ``level``.
        channels: the number of channels this instance codes (1 or 3).
        bit_depth: bits per sample of the images it accepts and returns.
    """

    name: str
    knob: str
    higher_is_better: bool
    level_range: tuple[int, int]
    channels: int
    bit_depth: int = 8

    @abc.abstractmethod
    def encode(self, image: np.ndarray, level: int) -> Encoded:
        """Code ``image`` (see module docstring for shapes and dtypes) at rate knob ``level``."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode a stream written by :meth:`encode`; returns the same shape and dtype it was given."""

    def check_image(self, image: np.ndarray) -> None:
        """Raise :class:`InputError` unless ``image`` fits this codec's channels and bit depth."""
        if not isinstance(image, np.ndarray):
            raise InputError(f"{self.name}: expected a numpy array, got {type(image).__name__}")
        want_dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        if image.dtype != want_dtype:
            raise InputError(
                f"{self.name}: expected {np.dtype(want_dtype).name} samples for {self.bit_depth}-bit coding, "
                f"got {image.dtype}"
            )
        if self.channels == 1 and image.ndim != 2:
            raise InputError(f"{self.name}: expected a (H, W) grayscale image, got shape {image.shape}")
        if self.channels == 3 and (image.ndim != 3 or image.shape[2] != 3):
            raise InputError(f"{self.name}: expected a (H, W, 3) RGB image, got shape {image.shape}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise InputError(f"{self.name}: empty image of shape {image.shape}")
        if self.bit_depth > 8 and int(image.max()) >= 2**self.bit_depth:
            raise InputError(
                f"{self.name}: sample value {int(image.max())} does not fit in {self.bit_depth} bits"
            )

    def check_level(self, level: int) -> None:
        """Raise :class:`InputError` unless ``level`` lies in :attr:`level_range`."""
        lo, hi = self.level_range
        if not lo <= level <= hi:
            raise InputError(f"{self.name}: {self.knob} {level} outside [{lo}, {hi}]")

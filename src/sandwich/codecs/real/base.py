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
        knob: what the knob value of :meth:`encode` is (``"quality"`` or ``"qp"``). A *knob* is what the
            codec's encoder takes; the processors are told a *level* instead (octaves of step scale,
            :mod:`sandwich.codecs.real.levels`).
        higher_is_better: whether a larger knob value gives higher quality and more bits.
        knob_range: inclusive ``(min, max)`` of the knob values.
        channels: the number of channels this instance codes (1 or 3).
        bit_depth: bits per sample of the images it accepts and returns.
    """

    name: str
    knob: str
    higher_is_better: bool
    knob_range: tuple[int, int]
    channels: int
    bit_depth: int = 8
    takes_tables: bool = False  # whether ``encode_with_tables(image, luma, chroma)`` codes with explicit 8x8 step tables

    def exact_level(self, knob: int) -> float | None:
        """The level (octaves, :mod:`sandwich.codecs.real.levels`) of knob value ``knob`` where the codec's
        own definition gives it (JPEG: its quality's tables); None where it is measured (``levels.json``)."""
        return None

    def payload_bits(self, data: bytes) -> int:
        """The bits of stream ``data`` that a decoder needs (see the module docstring); here all of them.
        A codec whose streams carry more (comments, containers) overrides it; :meth:`encode` counts with it."""
        return 8 * len(data)

    @abc.abstractmethod
    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code ``image`` (see module docstring for shapes and dtypes) at knob value ``knob`` (a quality or QP)."""

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

    def checked_stream(self, data: object) -> bytes:
        """``data`` as ``bytes`` for :meth:`decode` (a bytes-like stream); InputError for anything else."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(f"{self.name}: expected bytes, got {type(data).__name__}")
        return bytes(data)

    def check_knob(self, knob: int) -> None:
        """Raise :class:`InputError` unless knob value ``knob`` lies in :attr:`knob_range`."""
        lo, hi = self.knob_range
        if not lo <= knob <= hi:
            raise InputError(f"{self.name}: {self.knob} {knob} outside [{lo}, {hi}]")

"""JPEG XL through libjxl (``imagecodecs.jpegxl_encode`` / ``jpegxl_decode``); RGB or grayscale.

The knob is a cjxl-style ``quality`` 0..100, turned into libjxl's Butteraugli ``distance`` here with
the formula of libjxl's ``JxlEncoderDistanceFromQuality`` (the same one cjxl ``-q`` uses)::

    quality >= 30:  distance = 0.1 + (100 - quality) * 0.09     (90 -> 1.0, 30 -> 6.4)
    quality <  30:  distance = 53/3000 * quality**2 - 23/20 * quality + 25   (0 -> 25)

and ``quality == 100`` means mathematically lossless coding (modular mode), as in cjxl. Lossy
coding is VarDCT in the XYB colour space with libjxl's default effort 7; the input is declared
sRGB (or sRGB-transfer grayscale) with ``bit_depth`` bits per sample.

``data`` is the bare JPEG XL codestream (signature ``FF 0A``), not the ISOBMFF container
(``usecontainer=False``), so there are no boxes to strip: ``payload_bits == 8 * len(data)``. (For
16-bit lossless coding libjxl writes the container anyway, to carry a ``jxll`` box declaring
codestream level 10; this codec keeps only the codestream from its ``jxlc`` / ``jxlp`` boxes, which
libjxl decodes without the level box.)

Decoding returns the samples at the coded bit depth (a 10-bit stream decodes to uint16 values in
``[0, 1023]``). A stream whose channel count or sample type (uint8 vs uint16) does not match this
codec raises :class:`InputError`; a 10/12/16-bit mismatch is caught only when a sample exceeds this
codec's range.
"""

from __future__ import annotations

import imagecodecs
import numpy as np

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.yuv import is_int
from sandwich.errors import InputError

BIT_DEPTHS = (8, 10, 12, 16)
CHANNELS = (1, 3)
_EFFORT = 7
_SIGNATURE = b"\xff\x0a"


def bare_codestream(data: bytes) -> bytes:
    """The codestream of a JPEG XL file: ``data`` itself, or the ``jxlc`` / ``jxlp`` boxes' contents.

    Raises:
        InputError: a container without codestream boxes, or a box running past the end.
    """
    if data.startswith(_SIGNATURE):
        return data
    parts: list[bytes] = []
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise InputError(f"jxl: corrupt container (box {kind!r} runs past the end)")
        if kind == b"jxlc":
            parts.append(data[pos + header : pos + size])
        elif kind == b"jxlp":
            parts.append(data[pos + header + 4 : pos + size])  # skip the 4-byte part index
        pos += size
    if not parts:
        raise InputError("jxl: container holds no codestream")
    return b"".join(parts)


def distance_from_quality(quality: float) -> float:
    """libjxl's ``JxlEncoderDistanceFromQuality``: cjxl quality (0..100) to Butteraugli distance."""
    if quality >= 100:
        return 0.0
    if quality >= 30:
        return 0.1 + (100 - quality) * 0.09
    return 53.0 / 3000.0 * quality * quality - 23.0 / 20.0 * quality + 25.0


class JxlCodec(RealCodec):
    """JPEG XL via libjxl.

    Args:
        bit_depth: 8 (uint8 images) or 10 / 12 / 16 (uint16 images holding that many bits).
        channels: 3 for ``(H, W, 3)`` RGB, 1 for ``(H, W)`` grayscale.
    """

    name = "jxl"
    knob = "quality"
    higher_is_better = True
    knob_range = (0, 100)

    def __init__(self, bit_depth: int = 8, channels: int = 3) -> None:
        if not is_int(bit_depth) or bit_depth not in BIT_DEPTHS:
            raise InputError(f"jxl: bit_depth {bit_depth!r} not one of {', '.join(map(str, BIT_DEPTHS))}")
        if not is_int(channels) or channels not in CHANNELS:
            raise InputError(f"jxl: channels {channels!r} not one of 1, 3")
        self.bit_depth = int(bit_depth)
        self.channels = int(channels)

    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code at cjxl quality ``knob`` (0..100, higher is better; 100 is lossless)."""
        self.check_knob(knob)
        self.check_image(image)
        distance = distance_from_quality(knob)
        try:
            data = imagecodecs.jpegxl_encode(
                np.ascontiguousarray(image),
                distance=None if distance == 0 else distance,
                lossless=distance == 0,
                effort=_EFFORT,
                bitspersample=self.bit_depth,
                usecontainer=False,
            )
        except Exception as exc:  # libjxl rejects some inputs (e.g. sizes beyond its limits)
            raise InputError(f"jxl: libjxl cannot code this image ({exc})") from None
        data = bare_codestream(bytes(data))
        return Encoded(data=data, payload_bits=self.payload_bits(data))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode with libjxl; returns ``(H, W)`` or ``(H, W, 3)`` uint8 / uint16."""
        data = self.checked_stream(data)
        if not data.startswith(_SIGNATURE):
            raise InputError("jxl: not a bare JPEG XL codestream (no FF 0A signature)")
        try:
            image = imagecodecs.jpegxl_decode(data)
        except Exception as exc:  # imagecodecs raises ValueError / JpegxlError / RuntimeError
            raise InputError(f"jxl: cannot decode stream ({exc})") from None
        want_dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        if image.dtype != want_dtype:
            raise InputError(f"jxl: stream decodes to {image.dtype}, this codec decodes {np.dtype(want_dtype).name}")
        got_channels = 1 if image.ndim == 2 else image.shape[2]
        if got_channels != self.channels:
            raise InputError(f"jxl: stream has {got_channels} channel(s), this codec decodes {self.channels}")
        if self.bit_depth not in (8, 16) and int(image.max()) >= 2**self.bit_depth:
            raise InputError(f"jxl: stream holds samples beyond {self.bit_depth} bits")
        return image

"""Lossy WebP (VP8 key frame) through libwebp (Pillow's wheel); 8-bit RGB.

Encoding uses Pillow's ``quality`` (libwebp's 0..100 quality factor) with ``method=6`` (libwebp's
slowest, best-compressing search, as ``cwebp -m 6``) and otherwise libwebp's defaults: its own
RGB -> YUV conversion (BT.601 limited range, 4:2:0, no "sharp YUV") and default filtering.
Decoding uses libwebp's defaults ("fancy" chroma up-sampling).

``data`` is the complete RIFF file (``RIFF`` size ``WEBP`` then, for Pillow's output, one ``VP8 ``
chunk). ``payload_bits`` counts only the VP8 bitstream: the data of the ``VP8 `` (or ``VP8L``)
chunk, i.e. the VP8 frame header (with the image size) and its partitions. It excludes the 12-byte
RIFF/WEBP header, the 8-byte chunk header, the RIFF pad byte of an odd-sized chunk, and any VP8X,
ICCP, EXIF or XMP chunks (Pillow writes none of these for a plain RGB array).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.pillow_decode import pillow_decode
from sandwich.errors import InputError

_BITSTREAM_CHUNKS = (b"VP8 ", b"VP8L")
_METHOD = 6


def webp_payload_bytes(data: bytes) -> int:
    """Bytes of the VP8 / VP8L bitstream chunk(s) of a RIFF WebP file (see module docstring).

    Raises:
        InputError: not a RIFF/WEBP file, a chunk running past the end, or no bitstream chunk.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InputError("webp: not a RIFF WEBP file")
    payload = 0
    found = False
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if pos + 8 + size > len(data):
            raise InputError(f"webp: corrupt file (chunk {fourcc!r} runs past the end)")
        if fourcc in _BITSTREAM_CHUNKS:
            payload += size
            found = True
        pos += 8 + size + (size & 1)
    if not found:
        raise InputError("webp: no VP8/VP8L bitstream chunk")
    return payload


class WebpCodec(RealCodec):
    """Lossy WebP via libwebp; ``(H, W, 3)`` uint8 RGB in and out."""

    name = "webp"
    knob = "quality"
    higher_is_better = True
    knob_range = (0, 100)
    channels = 3
    bit_depth = 8
    subsampling = "420"

    def payload_bits(self, data: bytes) -> int:  # noqa: D102
        return 8 * webp_payload_bytes(data)

    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code at libwebp quality ``knob`` (0..100, higher is better)."""
        self.check_knob(knob)
        self.check_image(image)
        if image.shape[0] > 16383 or image.shape[1] > 16383:
            raise InputError(f"webp: image {image.shape[:2]} exceeds WebP's 16383x16383 limit")
        buf = io.BytesIO()
        Image.fromarray(image, mode="RGB").save(buf, format="WEBP", quality=int(knob), method=_METHOD)
        data = buf.getvalue()
        return Encoded(data=data, payload_bits=self.payload_bits(data))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode with libwebp; returns ``(H, W, 3)`` uint8."""
        data = self.checked_stream(data)
        webp_payload_bytes(data)  # structural check: catches truncation and non-WebP input
        return pillow_decode(data, "webp", "WEBP", "RGB")

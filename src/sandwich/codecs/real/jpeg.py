"""JPEG through libjpeg-turbo (Pillow's wheel): quality or explicit tables; 4:4:4, 4:2:0, 4:0:0.

Encoding always uses optimised Huffman tables, the accurate integer DCT (``JDCT_ISLOW``) and no
smoothing; decoding uses libjpeg-turbo's defaults (ISLOW IDCT, "fancy" triangle up-sampling).

``payload_bits`` counts every byte of the file except APPn and COM segments (the JFIF header and
comments, which a decoder does not need): SOI, DQT, SOF, DHT, SOS, the entropy-coded data and EOI.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.levels import level_of_steps
from sandwich.codecs.real.pillow_decode import pillow_decode
from sandwich.errors import InputError

SUBSAMPLINGS = ("444", "420", "400")
_PIL_SUBSAMPLING = {"444": 0, "420": 2}


def _header_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, position, length)`` of each header segment of a JPEG stream, from after SOI up to the scan (SOS).

    Raises:
        InputError: a byte where a marker should be.
    """
    pos = 2  # after SOI
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InputError("jpeg: corrupt stream (marker expected)")
        marker = data[pos + 1]
        if marker == 0xDA:  # SOS: entropy-coded data follows; no more header segments
            return
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield marker, pos, length
        pos += 2 + length


def with_comment(data: bytes, text: bytes) -> bytes:
    """JPEG stream ``data`` with one COM segment holding ``text`` (at most 65,533 bytes), placed after the
    APPn segments that follow SOI (JFIF's APP0 must come first). Decoders skip it and the decoded samples
    do not change; :func:`jpeg_payload_bytes` does not count it."""
    if len(text) > 65533:
        raise InputError(f"jpeg: a comment holds at most 65533 bytes, got {len(text)}")
    pos = next((p for marker, p, _ in _header_segments(data) if not 0xE0 <= marker <= 0xEF), None)
    if pos is None:
        raise InputError("jpeg: corrupt stream (no segment after SOI)")
    return data[:pos] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[pos:]


def comments(data: bytes) -> list[bytes]:
    """The text of every COM segment of JPEG stream ``data`` (before its scan), in order.

    Raises:
        InputError: not a JPEG stream (no SOI) or a corrupt header.
    """
    if not data.startswith(b"\xff\xd8"):
        raise InputError("jpeg: not a JPEG stream (no SOI marker)")
    return [data[pos + 4 : pos + 2 + length] for marker, pos, length in _header_segments(data) if marker == 0xFE]


def jpeg_payload_bytes(data: bytes) -> int:
    """Bytes of a JPEG stream that a decoder needs: all but APPn (0xFFE0-0xFFEF) and COM segments."""
    return len(data) - sum(2 + length for marker, _, length in _header_segments(data) if 0xE0 <= marker <= 0xEF or marker == 0xFE)


class JpegCodec(RealCodec):
    """Baseline 8-bit JPEG via libjpeg-turbo.

    Args:
        subsampling: ``"444"`` or ``"420"`` for RGB input (JFIF YCbCr), ``"400"`` for one channel.
        gray_pictures: an RGB picture whose three channels are equal is written as a grayscale (4:0:0)
            JPEG, as an encoder of a gray plane (e.g. an alpha channel) would; it decodes to the same
            samples as its colour coding (Y = R = G = B, the chroma flat) without the chroma's tables and
            blocks. Decoding returns it as three equal channels.
    """

    name = "jpeg"
    knob = "quality"
    higher_is_better = True
    knob_range = (1, 100)
    bit_depth = 8
    takes_tables = True

    def __init__(self, subsampling: str = "420", gray_pictures: bool = False) -> None:
        if subsampling not in SUBSAMPLINGS:
            raise InputError(f"jpeg: subsampling {subsampling!r} not one of {', '.join(SUBSAMPLINGS)}")
        self.subsampling = subsampling
        self.channels = 1 if subsampling == "400" else 3
        self.gray_pictures = gray_pictures and self.channels == 3

    def payload_bits(self, data: bytes) -> int:  # noqa: D102
        return 8 * jpeg_payload_bytes(data)

    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code at libjpeg quality ``knob`` (1..100, IJG tables scaled as ``jpeg_set_quality``)."""
        self.check_knob(knob)
        return self._save(image, quality=int(knob))

    def exact_level(self, knob: int) -> float:
        """The level of quality ``knob``: the log2 ratio of its mean luma step to IJG quality 50's."""
        return level_of_steps(ijg_tables(int(knob))[0])

    def encode_with_tables(self, image: np.ndarray, luma: np.ndarray, chroma: np.ndarray | None = None) -> Encoded:
        """Code with explicit ``(8, 8)`` natural-order tables, entries rounded to integers in [1, 255].

        ``chroma`` defaults to ``luma``; it is ignored for 4:0:0.
        """
        tables = [_table_list(luma)]
        if self.channels == 3 and not self._gray(image):
            tables.append(_table_list(luma if chroma is None else chroma))
        return self._save(image, qtables=tables)

    def _gray(self, image: np.ndarray) -> bool:
        """Whether ``image`` is written as a grayscale JPEG (``gray_pictures`` and three equal channels)."""
        return self.gray_pictures and image.ndim == 3 and bool((image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all())

    def _save(self, image: np.ndarray, **options) -> Encoded:
        self.check_image(image)
        if self._gray(image):
            pil = Image.fromarray(np.ascontiguousarray(image[..., 0]), mode="L")
        else:
            pil = Image.fromarray(image, mode="L" if self.channels == 1 else "RGB")
        if pil.mode == "RGB":
            options["subsampling"] = _PIL_SUBSAMPLING[self.subsampling]
        buf = io.BytesIO()
        pil.save(buf, format="JPEG", optimize=True, **options)
        data = buf.getvalue()
        return Encoded(data=data, payload_bits=self.payload_bits(data))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode with libjpeg-turbo; returns ``(H, W)`` or ``(H, W, 3)`` uint8 (a gray picture of
        ``gray_pictures`` as three equal channels)."""
        if self.gray_pictures and _components(data) == 1:
            return np.repeat(pillow_decode(data, "jpeg", "JPEG", "L")[..., None], 3, axis=2)
        return pillow_decode(data, "jpeg", "JPEG", "L" if self.channels == 1 else "RGB")


def _components(data: bytes) -> int:
    """The number of colour components in a JPEG stream's frame header (SOF0..SOF2); 0 if none is found."""
    for marker, pos, _ in _header_segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            return data[pos + 9] if pos + 9 < len(data) else 0
    return 0


def _table_list(table: np.ndarray) -> list[int]:
    """An (8, 8) natural-order table as the flat list Pillow's ``qtables`` takes."""
    table = np.asarray(table)
    if table.shape != (8, 8):
        raise InputError(f"jpeg: quantisation table must be 8x8, got shape {table.shape}")
    flat = np.rint(table).astype(np.int64).reshape(-1)
    if flat.min() < 1 or flat.max() > 255:
        raise InputError(f"jpeg: quantisation table entries must lie in [1, 255], got [{flat.min()}, {flat.max()}]")
    return flat.tolist()

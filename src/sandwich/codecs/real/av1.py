"""AV1 (4:2:0, 8 or 10 bit) through SVT-AV1 (PyAV's ``libsvtav1``), decoded with dav1d (``libdav1d``).

One picture, coded as a key frame in SVT-AV1's all-intra mode (``keyint=1``) at a constant
quantiser: ``rc=0`` (CRF/CQP) with ``qp=NN`` and adaptive quantisation off (``aq-mode=0``), so
SVT-AV1 reports "CQP" and codes the frame at quantiser ``qp`` (1..63 on SVT-AV1's scale, which it
maps to AV1's ``base_q_idx`` up to 255). Preset 4 (on a 512x512 photo about 0.2 s per encode on
one core and ~23% fewer bytes than preset 8 at the same ``qp``) with SVT-AV1's default tune (PSNR).

The stream is the raw low-overhead OBU sequence SVT-AV1 emits for one temporal unit (no IVF / MP4 /
AVIF container; :func:`avif_file` wraps it in one): a temporal delimiter OBU, the sequence header OBU and one frame OBU, every OBU with
its size field. ``payload_bits`` counts the bytes of every OBU (headers and size fields included)
except temporal delimiters (type 2), metadata (5), padding (15) and reserved types, which a decoder
does not need to reconstruct the picture; in practice ``payload_bits == 8 * (len(data) - 2)``.

Colour: as :mod:`sandwich.codecs.real.hevc` — full-range BT.601 (JFIF) conversion in numpy, 2x2
box-mean chroma down-sampling (centre-sited) and the ``(3/4, 1/4)`` triangle up-sampling on decode.
The sequence header signals full range and matrix_coefficients 6 (BT.601); the chroma sample
position stays "unknown" (AV1 cannot signal centre siting). Odd sizes are coded natively (AV1
4:2:0 allows them; chroma planes have ``ceil(H/2) x ceil(W/2)`` samples, computed from the image
padded by edge replication). SVT-AV1 refuses images smaller than 4x4, and so does this codec.

SVT-AV1 logs to stderr at "info" level by default; importing this module sets ``SVT_LOG=1``
(errors only) unless the environment already sets ``SVT_LOG``.

Corrupt streams: the OBU structure is checked first (every size field must fit the data, which
catches truncation), then dav1d's errors become :class:`InputError`.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction

import numpy as np

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.yuv import (
    downsample_420,
    frame_from_planes,
    is_int,
    pad_even,
    pix_fmt_name,
    planes_from_frame,
    rgb_to_ycbcr,
    to_samples,
    upsample_420,
    ycbcr_to_rgb,
)
from sandwich.errors import InputError

os.environ.setdefault("SVT_LOG", "1")

BIT_DEPTHS = (8, 10)
MIN_SIZE = 4
_PRESET = 4

OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, OBU_FRAME_HEADER, OBU_TILE_GROUP = 1, 2, 3, 4
OBU_METADATA, OBU_FRAME, OBU_REDUNDANT_FRAME_HEADER, OBU_TILE_LIST, OBU_PADDING = 5, 6, 7, 8, 15
_DECODER_OBUS = frozenset(
    {OBU_SEQUENCE_HEADER, OBU_FRAME_HEADER, OBU_TILE_GROUP, OBU_FRAME, OBU_REDUNDANT_FRAME_HEADER, OBU_TILE_LIST}
)


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 at ``pos``; returns ``(value, position after it)``."""
    value = 0
    for i in range(8):
        if pos >= len(data):
            raise InputError("av1: corrupt stream (truncated OBU size)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise InputError("av1: corrupt stream (OBU size longer than 8 bytes)")


def split_obus(data: bytes) -> list[tuple[int, int]]:
    """``(obu_type, total bytes incl. header and size field)`` for each OBU of a low-overhead stream.

    Raises:
        InputError: an OBU without a size field, a set forbidden bit, or a size past the end of ``data``.
    """
    obus = []
    pos = 0
    while pos < len(data):
        start = pos
        header = data[pos]
        if header & 0x80:
            raise InputError("av1: corrupt stream (forbidden bit set in OBU header)")
        if not header & 0x02:
            raise InputError("av1: corrupt stream (OBU without size field)")
        pos += 2 if header & 0x04 else 1  # extension byte
        size, pos = _leb128(data, pos)
        pos += size
        if pos > len(data):
            raise InputError("av1: corrupt stream (truncated OBU)")
        obus.append(((header >> 3) & 0x0F, pos - start))
    return obus


def av1_payload_bytes(data: bytes) -> int:
    """Bytes of the OBUs a decoder needs (sequence / frame headers, tile data; see module docstring)."""
    return sum(size for kind, size in split_obus(data) if kind in _DECODER_OBUS)


def avif_file(stream: bytes) -> bytes:
    """The AVIF file (ISOBMFF, one still image) of a stream from :meth:`Av1Codec.encode`, muxed by FFmpeg: its
    OBUs (less the temporal delimiter) in the image item, the sequence header in ``av1C`` and the colour as
    coded in ``colr`` (full-range BT.601), so that AVIF readers (libheif, browsers) convert it as we do."""
    import av

    with av.open(io.BytesIO(stream), format="obu") as source:
        coded = source.streams.video[0].codec_context
        out_buffer = io.BytesIO()
        with av.open(out_buffer, "w", format="avif") as out:
            image = out.add_stream("libsvtav1")
            image.time_base = Fraction(1, 25)
            context = image.codec_context
            context.width, context.height, context.pix_fmt = coded.width, coded.height, coded.format.name
            context.extradata = coded.extradata
            context.color_range, context.colorspace, context.color_primaries, context.color_trc = 2, 6, 6, 6  # full range, BT.601
            for packet in source.demux():
                if packet.size:
                    packet.stream, packet.pts, packet.dts, packet.time_base = image, 0, 0, image.time_base
                    out.mux(packet)
    return out_buffer.getvalue()


def avif_stream(data: bytes) -> bytes:
    """The AV1 stream of the image in AVIF file ``data`` (what :meth:`Av1Codec.decode` takes).

    Raises:
        InputError: not an AVIF file, or not one image.
    """
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            packets = [bytes(p) for p in container.demux() if p.size]
    except (av.FFmpegError, EOFError) as exc:
        raise InputError(f"av1: not a readable AVIF file ({exc})") from None
    if len(packets) != 1:
        raise InputError(f"av1: the AVIF file holds {len(packets)} pictures, expected 1")
    return packets[0]


class Av1Codec(RealCodec):
    """AV1 Main profile (4:2:0) via SVT-AV1; RGB ``(H, W, 3)`` input, at least 4x4.

    Args:
        bit_depth: 8 (uint8 images) or 10 (uint16 images holding 10 bits).
    """

    name = "av1"
    knob = "qp"
    higher_is_better = False
    knob_range = (1, 63)
    channels = 3
    subsampling = "420"

    def __init__(self, bit_depth: int = 8) -> None:
        if not is_int(bit_depth) or bit_depth not in BIT_DEPTHS:
            raise InputError(f"av1: bit_depth {bit_depth!r} not one of {', '.join(map(str, BIT_DEPTHS))}")
        self.bit_depth = int(bit_depth)
        self.pix_fmt = pix_fmt_name("yuv420p", self.bit_depth)

    def payload_bits(self, data: bytes) -> int:  # noqa: D102
        return 8 * av1_payload_bytes(data)

    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code ``image`` as one key frame at constant quantiser ``knob`` (1..63, lower is better)."""
        self.check_knob(knob)
        self.check_image(image)
        height, width = image.shape[:2]
        if height < MIN_SIZE or width < MIN_SIZE:
            raise InputError(f"av1: SVT-AV1 needs at least {MIN_SIZE}x{MIN_SIZE} pixels, got {height}x{width}")
        ycc = rgb_to_ycbcr(pad_even(image), self.bit_depth)
        luma = to_samples(ycc[:height, :width, 0], self.bit_depth)
        chroma = [to_samples(downsample_420(ycc[..., c]), self.bit_depth) for c in (1, 2)]

        params = [
            "rc=0",
            f"qp={int(knob)}",
            "aq-mode=0",
            "keyint=1",
            "color-range=1",
            "matrix-coefficients=6",
        ]
        import av  # PyAV (FFmpeg) is imported where a picture is coded: JPEG-only work never loads FFmpeg

        ctx = av.CodecContext.create("libsvtav1", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.options = {"preset": str(_PRESET), "svtav1-params": ":".join(params)}
        packets = ctx.encode(frame_from_planes([luma, *chroma], self.pix_fmt)) + ctx.encode(None)
        data = b"".join(bytes(p) for p in packets)
        return Encoded(data=data, payload_bits=self.payload_bits(data))

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a stream from :meth:`encode` with dav1d; returns ``(H, W, 3)`` uint8 / uint16."""
        y, cb, cr = (p.astype(np.float64) for p in self.decode_planes(data))
        height, width = y.shape
        cb, cr = (upsample_420(c)[:height, :width] for c in (cb, cr))
        return to_samples(ycbcr_to_rgb(np.stack([y, cb, cr], axis=-1), self.bit_depth), self.bit_depth)

    def decode_planes(self, data: bytes) -> list[np.ndarray]:
        """The Y, Cb, Cr planes of a stream from :meth:`encode` as any AV1 decoder outputs them (before
        up-sampling and colour conversion)."""
        data = self.checked_stream(data)
        kinds = [kind for kind, _ in split_obus(data)]
        if OBU_SEQUENCE_HEADER not in kinds or not {OBU_FRAME, OBU_TILE_GROUP} & set(kinds):
            raise InputError("av1: corrupt stream (missing sequence header or frame)")
        import av

        ctx = av.CodecContext.create("libdav1d", "r")
        try:
            frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
        except (av.FFmpegError, EOFError) as exc:
            raise InputError(f"av1: cannot decode stream ({exc})") from None
        if len(frames) != 1:
            raise InputError(f"av1: stream decodes to {len(frames)} pictures, expected 1")
        frame = frames[0]
        if frame.format.name != self.pix_fmt:
            raise InputError(f"av1: stream is {frame.format.name}, this codec decodes {self.pix_fmt}")
        return planes_from_frame(frame, self.bit_depth)

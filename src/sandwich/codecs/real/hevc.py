"""HEVC-intra through x265 (PyAV's ``libx265``), decoded with FFmpeg's native HEVC decoder.

One picture, coded as an IDR frame at a constant QP (``qp=NN``; x265 applies no adaptive
quantisation in constant-QP mode) with x265's ``medium`` preset otherwise. The knob is x265's ``qp``
option: x265 codes an I slice ``6 log2(ipratio) = 2.9`` below it (ipratio 1.4), so knob value 17 has
slice QP 14 (what a decoder reads; the HEVC proxy models it). The stream is a raw
Annex-B elementary stream (no container): VPS, SPS, PPS and the slice NAL unit(s), each behind a
start code. x265 is run with ``info=0`` (no ~2 KB encoder-version SEI), ``repeat-headers=0``,
``aud=0``, ``hrd=0`` and no VUI timing/HRD info; any SEI NAL unit (types 39/40) that still appears
is stripped from the stream before it is returned, so ``payload_bits == 8 * len(data)`` counts
only what a decoder needs (start codes included).

Colour: RGB input is converted in numpy with the full-range BT.601 (JFIF) matrix, scaled to the
bit depth ``n`` (``Cb, Cr`` offset ``2**(n-1)``, everything rounded and clipped to
``[0, 2**n - 1]``); the stream signals full range and matrix_coefficients 6 (BT.601). For 4:2:0
the chroma planes are 2x2 box means (centre-sited; signalled as chroma_sample_loc_type 1) and the
decoder up-samples them with the separable triangle filter ``(3/4, 1/4)`` (libjpeg's "fancy"
up-sampling) before converting back with the inverse matrix. Decoding never uses FFmpeg's own
colour conversion.

Padding: an HEVC 4:2:0 picture must have even width and height (the conformance window is in
units of two luma samples), and x265 refuses pictures narrower or shorter than 16 samples. So an
image is padded by edge replication to at least 16x16 and, for 4:2:0, to even sizes before coding
(4:4:4 and 4:0:0 images of at least 16x16 are coded at their own size, odd or not). The decoder
crops the padding off using one extra NAL unit of the *unspecified* type 48 (which HEVC decoders
ignore) placed first in the stream: 7 bytes (4-byte start code, 2-byte NAL header, one byte holding
the padded columns in its high nibble and the padded rows in its low nibble). It is counted in
``payload_bits`` because this codec's decoder needs it; streams of images that need no padding
(e.g. even-sized 4:2:0 of at least 16x16) contain no such NAL unit.

Corrupt streams: the NAL unit structure is checked first (start codes, headers, VPS/SPS/PPS then
an IRAP slice), then FFmpeg's errors become :class:`InputError`. Random bytes and truncations that
cut into the parameter sets or slice header raise. FFmpeg's HEVC decoder silently conceals missing
slice data, except that with slice threads (used here) it checks x265's wavefront (WPP) entry points
against the slice size, which catches a truncation that removes the start of a later CTU row in
pictures at least three 64-sample CTUs (129 samples) wide. Any other truncation inside the slice
data (e.g. within the last CTU row, or anywhere in a picture at most 128 samples wide) decodes to a
damaged image without an error.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.yuv import (
    downsample_420,
    frame_from_planes,
    is_int,
    pad_to,
    pix_fmt_name,
    planes_from_frame,
    rgb_to_ycbcr,
    to_samples,
    upsample_420,
    ycbcr_to_rgb,
)
from sandwich.errors import InputError

if TYPE_CHECKING:  # PyAV (FFmpeg) is imported where a picture is coded: JPEG-only work never loads FFmpeg
    import av

SUBSAMPLINGS = ("420", "444", "400")
BIT_DEPTHS = (8, 10, 12)

NAL_VPS, NAL_SPS, NAL_PPS = 32, 33, 34
NAL_SEI_PREFIX, NAL_SEI_SUFFIX = 39, 40
NAL_CROP = 48  # UNSPEC48: this module's crop marker
_IRAP_SLICES = frozenset(range(16, 22))  # BLA/IDR/CRA slice segments

MIN_SIZE = 16  # x265 refuses smaller pictures
_PRESET = "medium"

def split_nal_units(data: bytes) -> list[bytes]:
    """NAL units (header + payload, start codes removed) of an Annex-B byte stream.

    Raises:
        InputError: the stream does not start with a start code or holds an empty NAL unit.
    """
    starts = []
    pos = data.find(b"\x00\x00\x01")
    if pos < 0 or any(data[:pos]):
        raise InputError("hevc: not an Annex-B stream (no leading start code)")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        unit = data[start + 3 : end].rstrip(b"\x00")  # zero bytes before a start code belong to it
        if len(unit) < 2:
            raise InputError("hevc: corrupt stream (empty NAL unit)")
        units.append(unit)
    return units


def nal_type(unit: bytes) -> int:
    """``nal_unit_type`` from the first byte of a NAL unit header."""
    return (unit[0] >> 1) & 0x3F


def join_nal_units(units: list[bytes]) -> bytes:
    """Annex-B stream of ``units`` (one access unit).

    4-byte start codes (with ``zero_byte``) where H.265 Annex B requires them: the first NAL unit
    and parameter sets; 3-byte start codes elsewhere.
    """
    out = bytearray()
    for i, unit in enumerate(units):
        long_code = i == 0 or nal_type(unit) in (NAL_VPS, NAL_SPS, NAL_PPS)
        out += (b"\x00\x00\x00\x01" if long_code else b"\x00\x00\x01") + unit
    return bytes(out)


class HevcCodec(RealCodec):
    """HEVC-intra (Main / Main 10 / Main 12 / RExt 4:4:4 and 4:0:0 profiles) via x265.

    Args:
        subsampling: ``"420"`` or ``"444"`` for ``(H, W, 3)`` RGB input, ``"400"`` for ``(H, W)``.
        bit_depth: 8 (uint8 images) or 10 / 12 (uint16 images holding that many bits).
    """

    name = "hevc"
    knob = "qp"
    higher_is_better = False
    knob_range = (0, 51)

    def __init__(self, subsampling: str = "420", bit_depth: int = 8) -> None:
        if subsampling not in SUBSAMPLINGS:
            raise InputError(f"hevc: subsampling {subsampling!r} not one of {', '.join(SUBSAMPLINGS)}")
        if not is_int(bit_depth) or bit_depth not in BIT_DEPTHS:
            raise InputError(f"hevc: bit_depth {bit_depth!r} not one of {', '.join(map(str, BIT_DEPTHS))}")
        self.subsampling = subsampling
        self.bit_depth = int(bit_depth)
        self.channels = 1 if subsampling == "400" else 3
        base = {"420": "yuv420p", "444": "yuv444p", "400": "gray"}[subsampling]
        self.pix_fmt = pix_fmt_name(base, self.bit_depth)

    def encode(self, image: np.ndarray, knob: int) -> Encoded:
        """Code ``image`` as one IDR picture at constant QP ``knob`` (0..51, lower is better).

        Returns the Annex-B stream (see the module docstring); ``payload_bits == 8 * len(data)``.
        """
        self.check_knob(knob)
        self.check_image(image)
        height, width = image.shape[:2]
        even = self.subsampling == "420"
        coded_h = max(MIN_SIZE, height + (height % 2 if even else 0))
        coded_w = max(MIN_SIZE, width + (width % 2 if even else 0))
        image = pad_to(image, coded_h, coded_w)
        if self.channels == 1:
            planes = [image]
        else:
            ycc = rgb_to_ycbcr(image, self.bit_depth)
            chroma = [ycc[..., 1], ycc[..., 2]]
            if self.subsampling == "420":
                chroma = [downsample_420(c) for c in chroma]
            planes = [to_samples(p, self.bit_depth) for p in [ycc[..., 0], *chroma]]

        units = self._x265(planes, int(knob))
        if (coded_h, coded_w) != (height, width):
            units.insert(0, bytes([NAL_CROP << 1, 1, (coded_w - width) << 4 | (coded_h - height)]))
        data = join_nal_units(units)
        return Encoded(data=data, payload_bits=self.payload_bits(data))

    def _x265(self, planes: list[np.ndarray], qp: int) -> list[bytes]:
        """Run libx265 on one frame; returns its NAL units without SEI."""
        height, width = planes[0].shape
        params = [
            f"qp={qp}",
            "keyint=1",
            "min-keyint=1",
            "scenecut=0",
            "bframes=0",
            "info=0",
            "annexb=1",
            "repeat-headers=0",
            "aud=0",
            "hrd=0",
            "vui-timing-info=0",
            "vui-hrd-info=0",
            "wpp=1",
            "frame-threads=1",
            "range=full",
            "log-level=error",
        ]
        if self.channels == 3:
            params.append("colormatrix=smpte170m")
        if self.subsampling == "420":
            params.append("chromaloc=1")
        import av

        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.options = {"preset": _PRESET, "x265-params": ":".join(params)}
        packets = ctx.encode(frame_from_planes(planes, self.pix_fmt)) + ctx.encode(None)
        units = split_nal_units(b"".join(bytes(p) for p in packets))
        return [u for u in units if nal_type(u) not in (NAL_SEI_PREFIX, NAL_SEI_SUFFIX)]

    def decode(self, data: bytes) -> np.ndarray:
        """Decode a stream from :meth:`encode`; returns ``(H, W)`` or ``(H, W, 3)`` uint8 / uint16."""
        planes, (crop_w, crop_h) = self._decode_planes(data)
        height, width = planes[0].shape
        if crop_h >= height or crop_w >= width:
            raise InputError("hevc: corrupt stream (crop exceeds the picture)")
        if self.channels == 1:
            return np.ascontiguousarray(planes[0][: height - crop_h, : width - crop_w])
        y = planes[0].astype(np.float64)
        cb, cr = (p.astype(np.float64) for p in planes[1:])
        if self.subsampling == "420":
            cb, cr = upsample_420(cb), upsample_420(cr)
        rgb = to_samples(ycbcr_to_rgb(np.stack([y, cb, cr], axis=-1), self.bit_depth), self.bit_depth)
        return np.ascontiguousarray(rgb[: height - crop_h, : width - crop_w])

    def decode_planes(self, data: bytes) -> list[np.ndarray]:
        """The planes (Y, or Y, Cb, Cr) of a stream from :meth:`encode` as any HEVC decoder outputs them: at the
        coded size (padding included), before up-sampling and colour conversion."""
        return self._decode_planes(data)[0]

    def _decode_planes(self, data: bytes) -> tuple[list[np.ndarray], tuple[int, int]]:
        """(:meth:`decode_planes`, the padding ``(columns, rows)`` its crop NAL unit names)."""
        data = self.checked_stream(data)
        units = split_nal_units(data)
        crop_w = crop_h = 0
        if nal_type(units[0]) == NAL_CROP:
            if len(units[0]) != 3:
                raise InputError("hevc: corrupt stream (bad crop NAL unit)")
            padding = units.pop(0)[2]
            crop_w, crop_h = padding >> 4, padding & 0x0F
        types = [nal_type(u) for u in units]
        for unit, kind in zip(units, types):
            if unit[0] & 0x80 or unit[0] & 0x01 or unit[1] != 1:
                raise InputError("hevc: corrupt stream (bad NAL unit header)")
            if kind not in (NAL_VPS, NAL_SPS, NAL_PPS, NAL_SEI_PREFIX, NAL_SEI_SUFFIX) and kind not in _IRAP_SLICES:
                raise InputError(f"hevc: unexpected NAL unit type {kind} in an intra stream")
        if types[:3] != [NAL_VPS, NAL_SPS, NAL_PPS] or not any(t in _IRAP_SLICES for t in types):
            raise InputError("hevc: corrupt stream (missing parameter sets or slice)")

        frame = self._ffmpeg(join_nal_units(units))
        want = {self.pix_fmt, self.pix_fmt.replace("yuv", "yuvj")} if self.bit_depth == 8 else {self.pix_fmt}
        if self.pix_fmt == "gray":
            want.add("yuvj400p")
        if frame.format.name not in want:
            raise InputError(f"hevc: stream is {frame.format.name}, this codec decodes {self.pix_fmt}")
        return planes_from_frame(frame, self.bit_depth), (crop_w, crop_h)

    @staticmethod
    def _ffmpeg(stream: bytes) -> av.VideoFrame:
        """Decode exactly one picture with FFmpeg's HEVC decoder (slice threads: entry points checked)."""
        import av

        ctx = av.CodecContext.create("hevc", "r")
        ctx.thread_type = "SLICE"
        ctx.thread_count = 2
        ctx.options = {"err_detect": "explode"}
        try:
            frames = ctx.decode(av.Packet(stream)) + ctx.decode(None)
        except (av.FFmpegError, EOFError) as exc:
            raise InputError(f"hevc: cannot decode stream ({exc})") from None
        if len(frames) != 1:
            raise InputError(f"hevc: stream decodes to {len(frames)} pictures, expected 1")
        return frames[0]

"""Round trips, bit accounting and bad-input handling of the real codecs (small photo crops)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from sandwich.codecs.real.av1 import Av1Codec, split_obus
from sandwich.codecs.real.base import RealCodec
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.codecs.real.jxl import JxlCodec
from sandwich.codecs.real.registry import CODECS
from sandwich.codecs.real.webp import WebpCodec
from sandwich.errors import InputError

_RGB8 = np.ascontiguousarray(data.astronaut()[100:177, 150:251])  # 77 x 101, odd both ways
_GRAY8 = np.ascontiguousarray(data.chelsea()[60:137, 120:221, 1])  # 77 x 101


def photo(channels: int, bit_depth: int) -> np.ndarray:
    """The test crop at ``bit_depth`` (8-bit photo scaled to the full range of the deeper depth)."""
    image = _RGB8 if channels == 3 else _GRAY8
    if bit_depth == 8:
        return image.copy()
    scaled = np.rint(image.astype(np.float64) * (2**bit_depth - 1) / 255.0)
    return scaled.astype(np.uint16)


def psnr(a: np.ndarray, b: np.ndarray, bit_depth: int) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10((2**bit_depth - 1) ** 2 / mse)


# (id, factory, levels from best to worst quality, PSNR floor in dB at the best level)
CASES = (
    [(f"jpeg-{s}", lambda s=s: JpegCodec(s), (95, 75, 30), 36.0) for s in ("444", "420", "400")]
    + [
        (f"hevc-{s}-{b}", lambda s=s, b=b: HevcCodec(s, b), (12, 27, 42), 38.0)
        for s in ("420", "444", "400")
        for b in (8, 10, 12)
    ]
    + [(f"av1-{b}", lambda b=b: Av1Codec(b), (8, 30, 55), 37.0) for b in (8, 10)]
    + [("webp", WebpCodec, (95, 70, 20), 36.0)]
    + [
        (f"jxl-{c}ch-{b}", lambda c=c, b=b: JxlCodec(b, c), (95, 70, 20), 37.0)
        for c in (3, 1)
        for b in (8, 10, 12, 16)
    ]
)


@pytest.mark.parametrize(("factory", "levels", "floor"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_round_trip_quality_and_rate(factory, levels, floor) -> None:
    codec: RealCodec = factory()
    image = photo(codec.channels, codec.bit_depth)
    bits = []
    for i, level in enumerate(levels):
        enc = codec.encode(image, level)
        assert 0 < enc.payload_bits <= 8 * len(enc.data)
        out = codec.decode(enc.data)
        assert out.shape == image.shape and out.dtype == image.dtype
        if i == 0:
            assert psnr(image, out, codec.bit_depth) > floor
        bits.append(enc.payload_bits)
    assert bits[0] > bits[1] > bits[2], bits


def test_levels_run_the_right_way() -> None:
    for name, cls in ((n, CODECS.get(n)) for n in CODECS):
        lo, hi = cls.knob_range
        assert lo < hi
        assert cls.higher_is_better == (cls.knob == "quality"), name


# --- payload accounting ----------------------------------------------------------------------------


@pytest.mark.parametrize("subsampling", ["444", "420", "400"])
def test_jpeg_payload_excludes_jfif_header(subsampling: str) -> None:
    codec = JpegCodec(subsampling)
    enc = codec.encode(photo(codec.channels, 8), 80)
    assert enc.data[2:4] == b"\xff\xe0"  # Pillow writes the 18-byte JFIF APP0 segment
    assert enc.payload_bits == 8 * (len(enc.data) - 18)


def _hevc_nal_types(stream: bytes) -> list[int]:
    """NAL unit types of an Annex-B stream, parsed independently of the codec module."""
    types = []
    pos = stream.find(b"\x00\x00\x01")
    while pos >= 0:
        types.append((stream[pos + 3] >> 1) & 0x3F)
        pos = stream.find(b"\x00\x00\x01", pos + 3)
    return types


@pytest.mark.parametrize(("subsampling", "bit_depth"), [("420", 8), ("444", 10), ("400", 12)])
def test_hevc_stream_has_no_sei_and_no_encoder_info(subsampling: str, bit_depth: int) -> None:
    codec = HevcCodec(subsampling, bit_depth)
    enc = codec.encode(photo(codec.channels, bit_depth), 51)
    types = _hevc_nal_types(enc.data)
    assert 39 not in types and 40 not in types
    assert enc.data.find(b"x265") < 0  # x265's version/options string lives in the info SEI
    assert set(types) <= {48, 32, 33, 34, 19, 20}
    assert types.count(32) == types.count(33) == types.count(34) == 1
    # x265's encoder-info SEI alone is ~2 KB; the whole stream is far smaller than that at QP 51.
    assert len(enc.data) < 600
    assert enc.payload_bits == 8 * len(enc.data)


def test_hevc_odd_and_tiny_sizes_are_padded_and_cropped() -> None:
    even = HevcCodec("420").encode(_RGB8[:76, :100].copy(), 30)
    assert _hevc_nal_types(even.data)[0] == 32  # nothing but VPS/SPS/PPS/slice
    for subsampling in ("420", "444", "400"):
        codec = HevcCodec(subsampling)
        for shape in [(77, 101), (1, 1), (5, 17), (16, 16)]:
            image = photo(codec.channels, 8)[: shape[0], : shape[1]].copy()
            out = codec.decode(codec.encode(image, 4).data)
            assert out.shape == image.shape
            assert np.abs(out.astype(int) - image).max() < 40


def test_av1_payload_excludes_temporal_delimiter() -> None:
    enc = Av1Codec().encode(_RGB8, 30)
    kinds = [kind for kind, _ in split_obus(enc.data)]
    assert kinds[0] == 2 and 1 in kinds and 6 in kinds  # TD, sequence header, frame
    assert enc.payload_bits == 8 * (len(enc.data) - 2)


def test_webp_payload_is_vp8_chunk() -> None:
    enc = WebpCodec().encode(_RGB8, 80)
    assert enc.data[:4] == b"RIFF" and enc.data[8:16] == b"WEBPVP8 "
    assert enc.payload_bits == 8 * int.from_bytes(enc.data[16:20], "little")
    assert enc.payload_bits == 8 * (len(enc.data) - 20)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_jxl_bare_codestream_and_lossless_at_100(bit_depth: int) -> None:
    codec = JxlCodec(bit_depth)
    image = photo(3, bit_depth)
    enc = codec.encode(image, 100)
    assert enc.data[:2] == b"\xff\x0a"  # bare codestream, even where libjxl writes a container
    assert enc.payload_bits == 8 * len(enc.data)
    np.testing.assert_array_equal(codec.decode(enc.data), image)


def test_av1_odd_and_small_sizes() -> None:
    codec = Av1Codec()
    image = _RGB8[:5, :7].copy()
    assert codec.decode(codec.encode(image, 10).data).shape == image.shape
    with pytest.raises(InputError, match="4x4"):
        codec.encode(_RGB8[:3, :9].copy(), 10)


# --- bad input -------------------------------------------------------------------------------------

BAD_CASES = [
    ("jpeg-420", lambda: JpegCodec("420")),
    ("jpeg-400", lambda: JpegCodec("400")),
    ("hevc-420-8", lambda: HevcCodec("420", 8)),
    ("hevc-444-10", lambda: HevcCodec("444", 10)),
    ("hevc-400-12", lambda: HevcCodec("400", 12)),
    ("av1-8", lambda: Av1Codec(8)),
    ("av1-10", lambda: Av1Codec(10)),
    ("webp", WebpCodec),
    ("jxl-8", lambda: JxlCodec(8)),
    ("jxl-12-gray", lambda: JxlCodec(12, 1)),
]
_BAD_IDS = [c[0] for c in BAD_CASES]
_BAD_FACTORIES = [c[1] for c in BAD_CASES]


def _good_level(codec: RealCodec) -> int:
    lo, hi = codec.knob_range
    return (lo + hi) // 2


@pytest.mark.parametrize("factory", _BAD_FACTORIES, ids=_BAD_IDS)
def test_bad_images_raise_input_error(factory) -> None:
    codec: RealCodec = factory()
    good = photo(codec.channels, codec.bit_depth)
    level = _good_level(codec)
    wrong_channels = photo(1, codec.bit_depth) if codec.channels == 3 else photo(3, codec.bit_depth)
    bad_images = [
        good.astype(np.float32),  # float samples
        good.astype(np.uint16) if codec.bit_depth == 8 else (good >> 2).astype(np.uint8),  # wrong integer type
        wrong_channels,
        np.zeros(good.shape[:2] + (4,), good.dtype),  # RGBA
        good[:0],  # empty
        good.tolist(),  # not an array
    ]
    if codec.bit_depth > 8:
        too_big = good.copy()
        too_big.flat[0] = 2**codec.bit_depth
        bad_images.append(too_big)
    for image in bad_images:
        with pytest.raises(InputError):
            codec.encode(image, level)
    lo, hi = codec.knob_range
    for level in (lo - 1, hi + 1):
        with pytest.raises(InputError, match=codec.knob):
            codec.encode(good, level)


@pytest.mark.parametrize("factory", _BAD_FACTORIES, ids=_BAD_IDS)
def test_corrupt_streams_raise_input_error(factory) -> None:
    codec: RealCodec = factory()
    stream = codec.encode(photo(codec.channels, codec.bit_depth), _good_level(codec)).data
    rng = np.random.default_rng(0)
    bad_streams = [
        b"",
        rng.bytes(len(stream)),
        b"\x00\x00\x01" + rng.bytes(200),  # random bytes behind an Annex-B start code
        stream[:40],  # truncated inside the headers
    ]
    if not isinstance(codec, HevcCodec):  # FFmpeg conceals HEVC truncation within the slice data
        bad_streams += [stream[: len(stream) // 2], stream[:-1]]
    for bad in bad_streams:
        with pytest.raises(InputError):
            codec.decode(bad)


def test_hevc_truncated_slice_detected_for_wide_pictures() -> None:
    codec = HevcCodec("420")
    stream = codec.encode(np.ascontiguousarray(data.astronaut()[:192, :200]), 30).data
    with pytest.raises(InputError):
        codec.decode(stream[: len(stream) // 2])


@pytest.mark.parametrize(
    ("writer", "reader"),
    [
        (lambda: HevcCodec("444"), lambda: HevcCodec("420")),
        (lambda: HevcCodec("420", 8), lambda: HevcCodec("420", 10)),
        (lambda: HevcCodec("420"), lambda: HevcCodec("400")),
        (lambda: Av1Codec(8), lambda: Av1Codec(10)),
        (lambda: JxlCodec(8, 3), lambda: JxlCodec(8, 1)),
        (lambda: JxlCodec(8, 3), lambda: JxlCodec(10, 3)),
        (lambda: WebpCodec(), lambda: JxlCodec()),
        (lambda: JpegCodec("420"), lambda: WebpCodec()),
        (lambda: JpegCodec("420"), lambda: HevcCodec("420")),
        (lambda: JpegCodec("420"), lambda: Av1Codec()),
    ],
)
def test_stream_of_another_kind_raises_input_error(writer, reader) -> None:
    source: RealCodec = writer()
    stream = source.encode(photo(source.channels, source.bit_depth), _good_level(source)).data
    with pytest.raises(InputError):
        reader().decode(stream)


# --- registry --------------------------------------------------------------------------------------


def test_registry_creates_each_codec() -> None:
    assert set(CODECS) == {"jpeg", "hevc", "av1", "webp", "jxl", "ultrahdr"}
    assert isinstance(CODECS.create("jpeg", subsampling="444"), JpegCodec)
    hevc = CODECS.create("hevc", subsampling="400", bit_depth=12)
    assert isinstance(hevc, HevcCodec) and hevc.channels == 1 and hevc.bit_depth == 12
    assert CODECS.create("av1", bit_depth=10).bit_depth == 10
    assert isinstance(CODECS.create("webp"), WebpCodec)
    jxl = CODECS.create("jxl", bit_depth=16, channels=1)
    assert jxl.bit_depth == 16 and jxl.channels == 1
    for name, cls in ((n, CODECS.get(n)) for n in CODECS):
        assert CODECS.create(name).name == name and isinstance(CODECS.create(name), cls)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("mp3", {}, "valid names: jpeg, hevc, av1, webp, jxl, ultrahdr"),
        ("ultrahdr", {"bit_depth": 8}, "bit_depth"),
        ("HEVC", {}, "unknown codec"),
        ("hevc", {"subsampling": "422"}, "subsampling"),
        ("jpeg", {"subsampling": "422"}, "subsampling"),
        ("hevc", {"bit_depth": 16}, "bit_depth"),
        ("hevc", {"bit_depth": 10.0}, "bit_depth"),
        ("av1", {"bit_depth": 12}, "bit_depth"),
        ("jxl", {"bit_depth": 9}, "bit_depth"),
        ("jxl", {"channels": 4}, "channels"),
        ("av1", {"subsampling": "444"}, "unknown option"),
        ("webp", {"quality": 90}, "unknown option"),
    ],
)
def test_registry_rejects_bad_arguments(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        CODECS.create(name, **kwargs)

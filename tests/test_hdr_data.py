"""High-bit-depth data: 16-bit PNG, TIFF and OpenEXR sources through read_image, `sandwich shards --bit-depth`
and the DataModule bit-exactly; refusals; PQ against published values; requantization against float rounding;
the hdr sample set (Blender's HDR panoramas from Debian's blender-data)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import OpenEXR
import pytest
import tifffile
from PIL import Image

from sandwich.cli import main
from sandwich.data import samples
from sandwich.data.datamodule import ShardDataModule
from sandwich.data.images import read_image
from sandwich.data.samples import BLENDER_WORLDS, SAMPLE_SETS, load_photo, sample_set
from sandwich.data.shards import ensure_sample_shards, read_index, write_array_shards
from sandwich.transfer import exr_to_codes, pq_decode, pq_encode
from sandwich.errors import InputError
from sandwich.sample_format import requantize

needs_blender = pytest.mark.skipif(not BLENDER_WORLDS.is_dir(), reason="needs Debian's blender-data (.ci/run installs it)")


def _deep_photo(top: int, left: int, h: int, w: int) -> np.ndarray:
    """A real ``(h, w, 3)`` uint16 array that uses all 16 bits: one photo in the high byte, another in the low byte."""
    high = load_photo("skimage/coffee")[top : top + h, left : left + w].astype(np.uint16)
    low = load_photo("skimage/rocket")[top : top + h, left : left + w].astype(np.uint16)
    return (high << 8) | low


def _write_16bit(path: Path, rgb: np.ndarray) -> None:
    if path.suffix == ".png":
        path.write_bytes(imagecodecs.png_encode(rgb))
    else:
        tifffile.imwrite(path, rgb, photometric="rgb")


def _exr_pixels(path: Path) -> np.ndarray:
    with OpenEXR.File(str(path)) as exr:
        return exr.channels()["RGB"].pixels


def _write_exr(path: Path, rgb: np.ndarray) -> None:
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}) as exr:
        exr.write(str(path))


def _val_arrays(bit_depth: int, **data: object) -> list[np.ndarray]:
    """The val images of ``ShardDataModule(bit_depth=bit_depth, **data)`` as ``(H, W, 3)`` integers on the ``bit_depth`` scale."""
    data = ShardDataModule(bit_depth=bit_depth, **data)
    data.setup("validate")
    return [np.rint(b[0].double().numpy().transpose(1, 2, 0) * (2**bit_depth - 1)).astype(np.int64) for b in data.val_dataloader()]


def _sources(kind: str, folder: Path) -> dict[str, Callable[[int], np.ndarray]]:
    """Two files of ``kind`` (different sizes) in ``folder``; returns {name: bit depth -> the codes it must read as}."""
    folder.mkdir()
    if kind == "exr":
        city = BLENDER_WORLDS / "city.exr"  # the real file: DWAB-compressed, 1024 x 512
        shutil.copy(city, folder / "city.exr")
        crop = _exr_pixels(city)[200:297, 300:421]
        _write_exr(folder / "crop.exr", crop)
        return {"city.exr": functools.partial(exr_to_codes, _exr_pixels(city)), "crop.exr": functools.partial(exr_to_codes, crop)}
    deep = {f"a.{kind}": _deep_photo(30, 40, 97, 121), f"b.{kind}": _deep_photo(150, 200, 64, 80)}
    for name, rgb in deep.items():
        _write_16bit(folder / name, rgb)
    return {name: functools.partial(requantize, rgb, 16) for name, rgb in deep.items()}


@pytest.mark.parametrize("kind", ["png", "tif", pytest.param("exr", marks=needs_blender)])
def test_16_bit_sources_survive_read_image_shards_and_the_datamodule_bit_exactly(kind: str, tmp_path: Path) -> None:
    codes = _sources(kind, tmp_path / "src")
    for name, at in codes.items():
        rgb = at(16)
        assert np.count_nonzero(rgb & 0xFF) > 0.9 * rgb.size and np.count_nonzero(rgb & 1) > 0.3 * rgb.size  # the low bits are used
        for depth in (16, 12):
            read = read_image(tmp_path / "src" / name, bit_depth=depth)
            assert read.dtype == np.uint16 and np.array_equal(read, at(depth))

    for depth, model_depth in ((16, 16), (16, 10), (12, 12)):  # a 10-bit model over 16-bit shards rounds them down once
        shards = tmp_path / f"s{depth}"
        if not shards.exists():
            assert main(["shards", str(tmp_path / "src"), str(shards), "--bit-depth", str(depth), "--val-fraction", "0.5"]) == 0
        index = read_index(shards)
        assert (index["bit_depth"], index["train"]["count"], index["val"]["count"], index["skipped"]) == (depth, 1, 1, [])
        (val,) = _val_arrays(model_depth, shards=str(shards), val_crop=4096)  # whole images
        (stored,) = [codes_at(depth) for codes_at in codes.values() if codes_at(depth).shape == val.shape]
        assert np.array_equal(val, requantize(stored, depth, model_depth)), (depth, model_depth)
        assert val.max() <= 2**model_depth - 1 and stored.max() > 2 ** (depth - 1)  # d-bit values, not rescaled to 16 bits


def test_gray_and_alpha_16_bit_files_read_as_rgb(tmp_path: Path) -> None:
    rgb = _deep_photo(0, 0, 40, 50)
    tifffile.imwrite(tmp_path / "gray.tif", rgb[..., 0])
    (tmp_path / "rgba.png").write_bytes(imagecodecs.png_encode(np.dstack([rgb, rgb[..., :1]])))
    (tmp_path / "gray_alpha.png").write_bytes(imagecodecs.png_encode(np.ascontiguousarray(rgb[..., 1:])))  # gray, then alpha
    assert np.array_equal(read_image(tmp_path / "gray.tif", bit_depth=16), np.repeat(rgb[..., :1], 3, axis=2))
    assert np.array_equal(read_image(tmp_path / "gray_alpha.png", bit_depth=16), np.repeat(rgb[..., 1:2], 3, axis=2))
    assert np.array_equal(read_image(tmp_path / "rgba.png", bit_depth=16), rgb)
    assert np.array_equal(read_image(tmp_path / "rgba.png", bit_depth=11), requantize(rgb, 16, 11))


def test_a_16_bit_rgb_file_is_refused_at_8_bits(tmp_path: Path) -> None:
    """Pillow would read a 16-bit RGB PNG or TIFF as 8-bit without a word; read_image says what it is."""
    rgb = _deep_photo(0, 0, 40, 50)
    for name in ("deep.png", "deep.tif"):
        _write_16bit(tmp_path / name, rgb)
        with pytest.raises(InputError, match=rf"{name}: RGB;16[BL] image has more than 8 bits per sample; expected 8-bit"):
            read_image(tmp_path / name)


def _refused(argv: list[str], capfd: pytest.CaptureFixture, out: Path) -> str:
    """Run the CLI, which must exit 2 with one error line and write nothing; returns that line."""
    assert main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("sandwich: error: ")]
    assert len(errors) == 1 and all(line.startswith("sandwich: ") for line in err)  # no library chatter
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))  # no output, no temp folder
    return errors[0]


def test_refusals_are_one_line_and_write_nothing(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    eight = tmp_path / "eight"
    eight.mkdir()
    for name, crop in (("a.png", (slice(0, 60), slice(0, 70))), ("b.png", (slice(100, 150), slice(100, 190)))):
        Image.fromarray(load_photo("skimage/astronaut")[crop]).save(eight / name)
    line = _refused(["shards", str(eight), str(tmp_path / "out"), "--bit-depth", "12"], capfd, tmp_path / "out")
    assert "none of the 2 images is readable" in line
    with pytest.raises(InputError, match=r"a\.png: 8-bit image; expected 16-bit samples for bit depth 12$"):
        read_image(eight / "a.png", bit_depth=12)
    with pytest.raises(InputError, match="bit depth 16 reads RGB images"):
        read_image(eight / "a.png", channels=4, bit_depth=16)
    with pytest.raises(InputError, match="bit depth 17 not supported"):
        read_image(eight / "a.png", bit_depth=17)

    assert main(["shards", str(eight), str(tmp_path / "s8"), "--val-fraction", "0.5"]) == 0
    with pytest.raises(InputError, match=r"s8: samples have 8 bits, fewer than the model's 16 \(scenario.bit_depth\)") as raised:
        ShardDataModule(str(tmp_path / "s8"), bit_depth=16).setup("fit")
    assert "\n" not in str(raised.value)
    with pytest.raises(InputError, match="8-bit samples; turn them off for bit depth 10"):
        ShardDataModule(str(tmp_path / "s8"), bit_depth=10, colour_augment=True)


@needs_blender
def test_a_truncated_exr_is_refused_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    src = tmp_path / "src"
    src.mkdir()
    whole = (BLENDER_WORLDS / "night.exr").read_bytes()
    (src / "night.exr").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"night\.exr: not a readable OpenEXR image") as raised:
        read_image(src / "night.exr", bit_depth=16)
    assert "\n" not in str(raised.value)
    assert capfd.readouterr() == ("", "")  # OpenEXR's own messages (C++ stdout and stderr) are silenced
    line = _refused(["shards", str(src), str(tmp_path / "out"), "--bit-depth", "16"], capfd, tmp_path / "out")
    assert "none of the 1 images is readable" in line
    with pytest.raises(InputError, match=r"night\.exr: OpenEXR image has more than 8 bits per sample; expected 8-bit"):
        read_image(BLENDER_WORLDS / "night.exr")


def test_pq_matches_published_values() -> None:
    """ST 2084 / BT.2100 PQ: 100 cd/m2 -> 0.5081, 1000 -> 0.7518, 10000 -> 1; 0 -> c1^m2; BT.2408's 18 % grey
    (26 cd/m2) -> 38 % and its HDR reference white (203 cd/m2) -> 58 %."""
    for nits, signal in {100.0: 0.5081, 1000.0: 0.7518, 10000.0: 1.0}.items():
        assert pq_encode(np.array(nits)) == pytest.approx(signal, abs=5e-5)
    for nits, percent in {26.0: 38, 203.0: 58}.items():
        assert 100 * pq_encode(np.array(nits)) == pytest.approx(percent, abs=0.5)
    assert pq_encode(np.array(0.0)) == pytest.approx((3424 / 4096) ** (2523 / 4096 * 128), rel=1e-12)
    assert pq_encode(np.array(0.0)) == pytest.approx(7.3e-7, rel=0.01)
    nits = np.geomspace(0.005, 10000, 200)
    np.testing.assert_allclose(pq_decode(pq_encode(nits)), nits, rtol=1e-9)
    assert pq_decode(np.array(0.5081)) == pytest.approx(100, rel=1e-3)


def test_exr_codes_put_the_median_at_26_nits_and_clip_at_10000() -> None:
    grey = np.full((5, 8, 3), 0.18)
    grey[0, 0] = [-1.0, np.nan, 0.0]  # negative and NaN light: black
    grey[0, 1] = 0.18 * 1e6  # far above 10000 cd/m2: clipped to the peak
    codes = exr_to_codes(grey, 16)
    assert codes.dtype == np.uint16
    assert codes[2, 2, 0] == round(float(pq_encode(np.array(26.0))) * 65535)
    assert codes[0, 0].tolist() == [0, 0, 0] and codes[0, 1].tolist() == [65535] * 3
    assert np.array_equal(exr_to_codes(grey * 37.5, 16), codes)  # scene-referred: no absolute scale
    assert exr_to_codes(np.zeros((2, 2, 3)), 12).max() == 0


def test_requantize_is_exact() -> None:
    every = np.arange(65536, dtype=np.uint16)
    assert requantize(every, 16, 16) is every
    assert np.array_equal(requantize(every, 16, 10), np.floor(every.astype(np.float64) * 1023 / 65535 + 0.5).astype(np.uint16))
    to8 = requantize(every, 16, 8)
    assert to8.dtype == np.uint8 and np.array_equal(to8, np.floor(every.astype(np.float64) * 255 / 65535 + 0.5))
    assert np.array_equal(requantize(np.arange(4096, dtype=np.uint16), 12, 9), np.floor(np.arange(4096) * 511 / 4095 + 0.5))
    with pytest.raises(InputError, match="scaling 8-bit samples up to 12 bits is not high-bit-depth data"):
        requantize(np.zeros(3, np.uint8), 8, 12)
    with pytest.raises(InputError, match="sample value 4096 does not fit in 12 bits"):
        requantize(np.array([4096], np.uint16), 12, 10)


@needs_blender
def test_the_hdr_sample_set_packs_16_bit_shards_split_by_panorama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hdr = sample_set("hdr")
    train, val, held_out = hdr.photos(hdr.train), hdr.photos(hdr.val), hdr.names(hdr.held_out)
    assert held_out == ("blender_held_out/night", "blender_held_out/sunrise")
    names = [p.split("/")[1] for p in train + val + held_out]
    assert sorted(names) == sorted(p.stem for p in BLENDER_WORLDS.glob("*.exr")) and len(set(names)) == 8  # every panorama in one role
    loaded = hdr.load(val + held_out)
    for photo, codes in loaded.items():
        assert codes.dtype == np.uint16 and codes.shape == (512, 1024, 3)
        assert np.array_equal(codes, exr_to_codes(_exr_pixels(BLENDER_WORLDS / f"{photo.split('/')[1]}.exr"), 16))

    path = ensure_sample_shards(tmp_path / "cache", "hdr")
    assert path == tmp_path / "cache" / "shards" / "hdr-v1"
    index = read_index(path)
    assert (index["bit_depth"], index["train"]["count"], index["val"]["count"], index["skipped"]) == (16, 5, 1, [])
    monkeypatch.setenv("SANDWICH_CACHE", str(tmp_path / "cache"))
    (sunset,) = _val_arrays(16, samples="hdr", val_crop=256)
    assert np.array_equal(sunset, loaded["blender/sunset"][128:384, 384:640])  # the 256 x 256 centre crop, bit-exact


def test_missing_blender_data_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(samples, "BLENDER_WORLDS", tmp_path / "nowhere")
    samples._blender_codes.cache_clear()
    try:
        with pytest.raises(InputError, match=r"install the Debian package blender-data \(apt-get install blender-data\)"):
            SAMPLE_SETS["hdr"].load(("blender/city",))
    finally:
        samples._blender_codes.cache_clear()


def test_in_memory_arrays_of_another_depth_are_skipped_and_named(tmp_path: Path) -> None:
    """write_array_shards at 12 bits: an 8-bit array and a uint16 array holding a 13-bit value are skipped (each
    named, with why), a true 12-bit array is packed."""
    good = np.full((8, 8, 3), 4095, dtype=np.uint16)
    index = write_array_shards(
        {"good": good, "eight": good.astype(np.uint8), "wide": good + 1}, tmp_path / "s", validate_on_train=True, bit_depth=12
    )
    reasons = {entry["file"]: entry["reason"] for entry in index["skipped"]}
    assert index["train"]["count"] == 1 and set(reasons) == {"eight", "wide"}, reasons
    assert "uint8" in reasons["eight"] and "4096 does not fit in 12 bits" in reasons["wide"]

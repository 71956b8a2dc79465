"""More channels than the codec has: N-channel sources coded as groups of the codec's width.

Checked against the real codec called directly on each group (an independent path): identity networks give
exactly the per-group baseline, every group reaches the codec as its own picture, the group rates sum to
the total, RGBA's alpha picture decodes to what a plain gray JPEG of the alpha decodes to. N-channel
samples survive shards and the DataModule bit-exactly; a source of another channel count is one line,
exit 2, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from sandwich.cli import main
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.config import compose
from sandwich.data.datamodule import ShardDataModule
from sandwich.data.images import centre_crop
from sandwich.data.samples import OPENCV_DATA, OXYGEN_ICONS, SAMPLE_SETS
from sandwich.data.shards import read_index, write_array_shards
from sandwich.errors import InputError
from sandwich.nets.channel_maps import ChannelPack, ChannelUnpack
from sandwich.sample_format import to_array, to_tensor
from sandwich.scenarios.base import picture_levels
from sandwich.scenarios.registry import create_module


def stereo_pair(h: int = 77, w: int = 101) -> np.ndarray:
    """``(h, w, 6)`` uint8: a crop of scikit-image's motorcycle stereo pair, left RGB then right RGB."""
    left, right, _ = skimage.data.stereo_motorcycle()
    return np.concatenate([left, right], axis=2)[200 : 200 + h, 300 : 300 + w].copy()


def rgba(h: int = 90, w: int = 70) -> np.ndarray:
    """``(h, w, 4)`` uint8: a crop of scikit-image's logo across an edge of its alpha."""
    return skimage.data.logo()[150 : 150 + h, 40 : 40 + w].copy()


def identity_module(experiment: str):
    return create_module(compose([f"experiment={experiment}", "net=none"])).eval()


@pytest.mark.parametrize("quality", [20, 80])
def test_identity_stereo_sandwich_is_each_view_coded_on_its_own(quality: int) -> None:
    """net=none: two pictures reach libjpeg, each one view of the right shape; the sandwich equals the
    per-group baseline; bits are the two views' payloads summed and each view decodes to libjpeg's decode
    of that view alone."""
    module = identity_module("stereo_jpeg")
    pair = stereo_pair()
    x = to_tensor(pair)[None]
    pictures: list[np.ndarray] = []
    encode = module.codec.real.encode
    module.codec.real.encode = lambda image, knob: pictures.append(image) or encode(image, knob)
    out = module.code_real(x, quality)
    baseline = module.code_real(x, quality, module.baselines()["per_group"]["per_group"])
    assert [p.shape for p in pictures[:2]] == [(77, 101, 3), (77, 101, 3)]
    assert np.array_equal(pictures[0], pair[..., :3]) and np.array_equal(pictures[1], pair[..., 3:])
    assert torch.equal(out.recon, baseline.recon) and torch.equal(out.bits, baseline.bits)

    codec = JpegCodec("420")
    views = [codec.encode(np.ascontiguousarray(pair[..., c : c + 3]), quality) for c in (0, 3)]
    assert float(out.bits[0]) == sum(v.payload_bits for v in views)
    assert float(out.bpp(x)[0]) == pytest.approx(sum(v.payload_bits for v in views) / (77 * 101))
    decoded = np.concatenate([codec.decode(v.data) for v in views], axis=2)
    assert np.array_equal(to_array(out.recon[0]), decoded)


@pytest.mark.parametrize(("overrides", "pictures"), [(["codec=jpeg444"], 2), (["codec=jpeg400", "scenario.groups=6"], 6)])
def test_the_codec_layout_and_group_count_are_config(overrides: list[str], pictures: int) -> None:
    """A stereo pair over JPEG 4:4:4 is two colour pictures; over grayscale JPEG with 6 groups, six gray
    pictures, one per channel; identity networks equal the per-group baseline and the bits sum."""
    module = create_module(compose(["experiment=stereo_jpeg", "net=none", *overrides])).eval()
    pair = stereo_pair(40, 56)
    seen: list[np.ndarray] = []
    encode = module.codec.real.encode
    module.codec.real.encode = lambda image, knob: seen.append(image) or encode(image, knob)
    out = module.code_real(to_tensor(pair)[None], 60)
    assert len(seen) == pictures and all(p.shape[:2] == (40, 56) for p in seen)
    assert np.array_equal(np.dstack(seen), pair)
    assert float(out.bits[0]) == sum(encode(p, 60).payload_bits for p in seen)


def test_identity_rgba_sandwich_codes_rgb_in_colour_and_alpha_as_gray() -> None:
    """RGBA: the first picture is the RGB, the second the alpha repeated (R = G = B = alpha), which rgba_jpeg's
    codec (``gray_pictures``) writes as a grayscale JPEG: the bits are a colour JPEG of the RGB plus a plain
    gray (4:0:0) JPEG of the alpha, and the output is their decodes. Without ``gray_pictures`` the alpha
    picture decodes to the same samples and costs more (the flat chroma planes and their tables)."""
    module = identity_module("rgba_jpeg")
    image = rgba()
    x = to_tensor(image)[None]
    out = module.code_real(x, 50)
    colour, gray = JpegCodec("420"), JpegCodec("400")
    rgb, alpha = colour.encode(np.ascontiguousarray(image[..., :3]), 50), gray.encode(np.ascontiguousarray(image[..., 3]), 50)
    assert float(out.bits[0]) == rgb.payload_bits + alpha.payload_bits
    recon = to_array(out.recon[0])
    assert np.array_equal(recon[..., 3], gray.decode(alpha.data))
    assert np.array_equal(recon[..., :3], colour.decode(rgb.data))
    alpha3 = colour.encode(np.repeat(image[..., 3:], 3, axis=2), 50)
    assert np.array_equal(colour.decode(alpha3.data)[..., 1], gray.decode(alpha.data)) and alpha3.payload_bits > alpha.payload_bits


def test_rgba_second_picture_stays_gray_under_a_learned_pre_processor() -> None:
    """With U-Nets that change every channel (heads perturbed), rgba's second picture still reaches the codec
    with three equal channels (``gray_groups``) and is written as a grayscale JPEG; the first is colour."""
    module = create_module(compose(["experiment=rgba_jpeg", "net=u8_16"])).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for head in (module.pre.unet.head, module.post.unet.head):
            head.weight.normal_(0, 0.05)
    pictures: list[np.ndarray] = []
    encode = module.codec.real.encode
    module.codec.real.encode = lambda image, knob: pictures.append(image) or encode(image, knob)
    out = module.code_real(to_tensor(rgba())[None], 50)
    first, second = pictures
    assert not np.array_equal(first[..., 0], first[..., 1])
    assert np.array_equal(second[..., 0], second[..., 1]) and np.array_equal(second[..., 0], second[..., 2])
    gray = JpegCodec("400").encode(np.ascontiguousarray(second[..., 0]), 50)
    assert float(out.bits[0]) == JpegCodec("420").encode(first, 50).payload_bits + gray.payload_bits


def test_proxy_codes_each_group_at_its_images_level() -> None:
    """Training path: the bits of each image are the proxy's bits of its two pictures, each coded at that
    image's level (the levels differ per image), summed; the decoded groups are the proxy's decodes."""
    module = identity_module("stereo_jpeg")
    x = torch.stack([to_tensor(stereo_pair(64, 64)), to_tensor(stereo_pair(64, 64)[::-1].copy())])
    level = torch.tensor([-2.0, 1.5])
    out = module(x, level)
    for i in range(2):
        views = torch.stack([x[i, :3], x[i, 3:]])
        decoded, bits = module.codec(views, level[i].repeat(2))
        assert torch.allclose(out.bits[i], bits.sum(), rtol=1e-5)
        assert torch.allclose(out.decoded[i], decoded.reshape(6, 64, 64), atol=1e-6)
    assert torch.equal(picture_levels(level, torch.zeros(4, 3, 8, 8)), torch.tensor([-2.0, -2.0, 1.5, 1.5]))


def test_shared_view_networks_swap_with_the_views_and_see_the_other_view() -> None:
    """stereo's processors share one U-Net by the two views (share_groups): swapping the input views swaps
    the outputs exactly, and a view's output changes when only the other view changes."""
    module = create_module(compose(["experiment=stereo_jpeg", "net=u8_16"])).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        module.pre.unet.head.weight.normal_(0, 0.05)
    pre, level = module.pre, torch.tensor([0.5, -1.0])
    x = torch.stack([to_tensor(stereo_pair(32, 48)), to_tensor(stereo_pair(32, 48)[::-1].copy())])
    swapped = torch.cat([x[:, 3:], x[:, :3]], dim=1)
    y, y_swapped = pre(x, level), pre(swapped, level)
    assert torch.allclose(torch.cat([y_swapped[:, 3:], y_swapped[:, :3]], dim=1), y, atol=1e-6)
    other = x.clone()
    other[:, 3:] = other[:, 3:].flip(-1)
    changed = pre(other, level)
    assert not torch.allclose(changed[:, :3], y[:, :3]) and torch.equal(other[:, :3], x[:, :3])


def test_channel_maps_invert_and_refuse_uncarried_channels() -> None:
    x = torch.rand(2, 4, 5, 6)
    packed = ChannelPack([0, 1, 2, 3, 3, 3])(x)
    assert packed.shape == (2, 6, 5, 6) and torch.equal(packed[:, 5], x[:, 3])
    assert torch.allclose(ChannelUnpack([0, 1, 2, 3, 3, 3])(packed), x)
    with pytest.raises(InputError, match=r"source channels \[1\] are carried by no bottleneck channel"):
        ChannelPack([0, 2, 2])


@pytest.mark.parametrize(("channels", "make"), [(6, stereo_pair), (4, rgba)])
def test_n_channel_samples_survive_shards_and_the_datamodule_bit_exactly(tmp_path: Path, channels: int, make) -> None:
    """6-channel samples go to shards as .npy, RGBA as PNG; the val loader returns them unchanged and
    train crops have every channel."""
    images = {"a": make(), "b": make()[::-1].copy()}
    out = tmp_path / "shards"
    index = write_array_shards(images, out, val_names=frozenset({"a"}), channels=channels)
    assert index["channels"] == channels and read_index(out)["channels"] == channels
    data = ShardDataModule(str(out), crop=32, batch_size=2, batches_per_epoch=1, val_crop=512, channels=channels)
    data.setup("fit")
    val = next(iter(data.val_dataloader()))
    assert torch.equal(val[0], to_tensor(images["a"]))
    assert next(iter(data.train_dataloader())).shape == (2, channels, 32, 32)
    wrong = ShardDataModule(str(out), channels=3)
    with pytest.raises(InputError, match=f"samples have {channels} channels, the model takes 3"):
        wrong.setup("fit")


def test_shards_command_packs_npy_and_rgba_files(tmp_path: Path, capsys) -> None:
    """`sandwich shards --channels 6` packs .npy arrays; `--channels 4` packs RGBA PNGs and skips a file
    without alpha with one line."""
    npy, pngs = tmp_path / "npy", tmp_path / "png"
    npy.mkdir()
    pngs.mkdir()
    np.save(npy / "pair.npy", stereo_pair())
    np.save(npy / "other.npy", stereo_pair()[:, ::-1].copy())
    assert main(["shards", str(npy), str(tmp_path / "s6"), "--channels", "6", "--val-fraction", "0.5"]) == 0
    assert read_index(tmp_path / "s6")["channels"] == 6
    Image.fromarray(rgba()).save(pngs / "logo.png")
    Image.fromarray(rgba()[..., :3]).save(pngs / "opaque.png")
    capsys.readouterr()
    assert main(["shards", str(pngs), str(tmp_path / "s4"), "--channels", "4", "--val-fraction", "0"]) == 0
    assert "opaque.png: RGB image has no alpha channel; expected 4 channels (RGBA)" in capsys.readouterr().err
    assert read_index(tmp_path / "s4")["train"]["count"] == 1


def tiny_training(experiment: str, shards: Path, out: Path) -> list[str]:
    return ["train", f"experiment={experiment}", "net=u8_16", f"data.shards={shards}", "data.crop=32", "data.val_crop=48", "data.batch_size=2",
            "data.batches_per_epoch=2", "trainer.max_steps=2", "logger=csv", f"out_dir={out}"]


def test_stereo_trains_and_evaluates_from_the_cli_with_per_view_distortion(tmp_path: Path, capsys) -> None:
    """Two steps of stereo_jpeg on shards of stereo crops, then `sandwich eval` on a folder of .npy pairs: the
    report has the per-group baseline, each view's PSNR as a metric of its own with its plot, and rates of
    the two pictures summed. A 3-channel shard folder or image folder for the 6-channel model: one line, exit 2."""
    pair = stereo_pair(96, 128)
    shards = tmp_path / "shards"
    write_array_shards({"p": pair, "q": pair[::-1].copy()}, shards, val_names=frozenset({"q"}), channels=6)
    run = tmp_path / "run"
    assert main(tiny_training("stereo_jpeg", shards, run)) == 0
    images = tmp_path / "images"
    images.mkdir()
    np.save(images / "pair.npy", pair)
    out = tmp_path / "eval"
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--images", str(images), "--levels", "20", "40", "60", "80", "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report["bd"]) == {"psnr-rgb", "psnr-y", "ms-ssim-db", "psnr-part-left", "psnr-part-right"}
    assert set(report["baselines"]) == {"per_group"}
    assert (out / "rd_psnr-part-right.png").is_file() and (out / "examples.png").is_file()
    results = report["results"]
    assert [a + b for a, b in zip(results["bpp-picture-0"], results["bpp-picture-1"])] == pytest.approx(results["bpp"], rel=1e-6)
    codec = JpegCodec("420")
    assert results["bpp-picture-1"][0] > 0 and report["baselines"]["per_group"]["results"]["bpp-picture-1"][0] == pytest.approx(
        codec.encode(np.ascontiguousarray(pair[..., 3:]), 20).payload_bits / (96 * 128)
    )  # the per-group baseline's second picture is the right view alone, at q20
    mean_mse = [(10 ** (-l / 10) + 10 ** (-r / 10)) / 2 for l, r in zip(results["psnr-part-left"], results["psnr-part-right"])]
    assert [10 ** (-p / 10) for p in results["psnr-rgb"]] == pytest.approx(mean_mse, rel=1e-4)  # one image: the total is the views' mean MSE

    rgb_shards = tmp_path / "rgb"
    write_array_shards({"c": pair[..., :3].copy(), "d": pair[..., 3:].copy()}, rgb_shards, val_names=frozenset({"d"}))
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(tiny_training("stereo_jpeg", rgb_shards, bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "samples have 3 channels, the model takes 6" in err[0], err
    assert not (bad / "checkpoints").exists()
    rgb_images = tmp_path / "rgb_images"
    rgb_images.mkdir()
    Image.fromarray(pair[..., :3]).save(rgb_images / "left.png")
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--images", str(rgb_images), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "left.png: image files hold 3 (RGB) or 4 (RGBA) channels, not 6" in err[0], err
    assert not (tmp_path / "x").exists()


def test_family_report_of_two_stereo_models_has_per_view_fronts(tmp_path: Path) -> None:
    """`sandwich report` over two stereo runs (two λ): the front and the BD figures per view, and the curves
    cached in each run folder carry the per-view PSNR (a second report reads them back unchanged)."""
    pair = stereo_pair(96, 128)
    shards = tmp_path / "shards"
    write_array_shards({"p": pair, "q": pair[::-1].copy()}, shards, val_names=frozenset({"q"}), channels=6)
    runs = tmp_path / "runs"
    for lmbda in (10, 40):
        assert main([*tiny_training("stereo_jpeg", shards, runs / f"lmbda{lmbda}"), f"lmbda={lmbda}"]) == 0
    images = tmp_path / "images"
    images.mkdir()
    np.save(images / "pair.npy", pair)
    levels = ["--levels", "20", "40", "60", "80"]
    reports = []
    for name in ("report", "again"):
        assert main(["report", str(runs), "--images", str(images), *levels, "--out", str(tmp_path / name)]) == 0
        reports.append(json.loads((tmp_path / name / "results.json").read_text()))
    first, again = reports
    assert {"psnr-part-left", "psnr-part-right"} <= set(first["bd"]) and (tmp_path / "report" / "rd_psnr-part-left.png").is_file()
    assert first["fronts"]["psnr-part-right"]["psnr-part-right"] == again["fronts"]["psnr-part-right"]["psnr-part-right"]
    assert all(len(m["results"]["psnr-part-left"]) == 4 and len(m["results"]["bpp-picture-1"]) == 4 for m in first["models"].values())
    assert first["models"] == again["models"]  # the second report reads every curve back from the runs' caches


def test_rgba_trains_and_evaluates_on_the_held_out_wheel_images(tmp_path: Path) -> None:
    """Two steps of rgba_jpeg on shards of RGBA crops, evaluated on the rgba set's held-out source (the
    RGBA images in the scikit-image and matplotlib wheels): rgb and alpha PSNR reported."""
    shards = tmp_path / "shards"
    write_array_shards({"a": rgba(96, 96), "b": rgba(64, 80)}, shards, val_names=frozenset({"b"}), channels=4)
    run = tmp_path / "run"
    assert main(tiny_training("rgba_jpeg", shards, run)) == 0
    out = tmp_path / "eval"
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--samples", "pypi", "--levels", "20", "40", "60", "80", "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == ["pypi/skimage_logo", "pypi/matplotlib_logo", "pypi/minduka_sprite"]
    assert {"psnr-part-rgb", "psnr-part-alpha"} <= set(report["bd"])


def test_eval_refuses_a_source_the_sample_set_lacks(tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    write_array_shards({"a": rgba(96, 96), "b": rgba(64, 80)}, shards, val_names=frozenset({"b"}), channels=4)
    run = tmp_path / "run"
    assert main(tiny_training("rgba_jpeg", shards, run)) == 0
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--samples", "sporco", "--out", str(tmp_path / "x")]) == 2
    assert "sample set 'rgba' has no source 'sporco'; its sources: oxygen, oxygen_places, pypi" in capsys.readouterr().err


@pytest.mark.skipif(not (OPENCV_DATA.is_dir() and OXYGEN_ICONS.is_dir()), reason="needs Debian's opencv-doc and oxygen-icon-theme (.ci/run installs them)")
def test_the_debian_sample_sets_load_with_their_channels_and_disjoint_sources() -> None:
    """The stereo and rgba sets: every train and val photo loads with the set's channels, and the held-out
    source is none of the training or validation sources."""
    for name in ("stereo", "rgba"):
        chosen = SAMPLE_SETS[name]
        train, val = chosen.photos(chosen.train), chosen.photos(chosen.val)
        assert train and val and not set(train) & set(val)
        assert chosen.held_out not in {p.split("/")[0] for p in train + val}
        for photo, image in chosen.load(train[:3] + val[:2] + chosen.names(chosen.held_out)).items():
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == chosen.channels, photo
    assert len(SAMPLE_SETS["rgba"].photos(("oxygen",))) > 400


def test_missing_debian_data_is_one_line_naming_the_package(monkeypatch, tmp_path: Path) -> None:
    from sandwich.data import samples

    monkeypatch.setattr(samples, "OPENCV_DATA", tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"install the Debian package opencv-doc \(apt-get install opencv-doc\)"):
        SAMPLE_SETS["stereo"].load(("opencv/aloe",))
    monkeypatch.setattr(samples, "OXYGEN_ICONS", tmp_path / "nowhere")
    samples.oxygen_icons.cache_clear()
    with pytest.raises(InputError, match=r"install the Debian package oxygen-icon-theme"):
        SAMPLE_SETS["rgba"].photos(("oxygen",))


def test_examples_tile_parts_and_pictures() -> None:
    from sandwich.evaluate.run import tile_channels

    image = rgba(20, 30)
    tiled = tile_channels(image, [slice(0, 3), slice(3, 4)])
    assert tiled.shape == (20, 64, 3)
    assert np.array_equal(tiled[:, :30], image[..., :3]) and np.array_equal(tiled[:, 34:, 1], image[..., 3])
    assert tile_channels(centre_crop(image[..., :3], 8), []).shape == (8, 8, 3)

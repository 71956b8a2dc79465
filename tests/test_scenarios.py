"""Sandwich modules, training runs and evaluation, end to end on real photos and the real codec."""

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
from sandwich.config import compose, group_options
from sandwich.evaluate.checkpoint import load_module
from sandwich.sample_format import to_array
from sandwich.scenarios.registry import create_module
from sandwich.train import train

TINY = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "log_images=1"]


def tiny_config(tmp_path: Path, experiment: str, *extra: str) -> dict:
    return compose([f"experiment={experiment}", f"out_dir={tmp_path / experiment}", *TINY, *extra])


def photo(name: str, h: int, w: int) -> torch.Tensor:
    from sandwich.data.samples import load_photo

    return torch.from_numpy(load_photo(f"skimage/{name}")[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_fast_dev_run_every_experiment(tmp_path, experiment):
    last = train(tiny_config(tmp_path, experiment, "+trainer.fast_dev_run=true"))
    module = load_module(last)
    assert module.config["name"] == experiment


@pytest.mark.parametrize("experiment", ["rgb_jpeg420", "rgb_jpeg444", "gray_jpeg"])
def test_identity_sandwich_is_the_plain_codec(tmp_path, experiment):
    """Identity processors (net=none, rgb) or the luma map (gray, no texture): the sandwich is the codec."""
    bypass = ["scenario.pre_bypass=luma", "scenario.post_bypass=gray_to_rgb"] if experiment == "gray_jpeg" else []
    module = create_module(tiny_config(tmp_path, experiment, "net=none", *bypass)).eval()
    x = photo("coffee", 45, 61)
    codec = module.codec
    plain_input = x if codec.channels == 3 else module.pre(x)
    with torch.no_grad():
        out = module(x)
        plain, plain_bits = codec(plain_input)
    torch.testing.assert_close(out.decoded, plain, rtol=0, atol=0)
    torch.testing.assert_close(out.bits, plain_bits)
    real = module.code_real(x, 60)
    encoded = JpegCodec(codec.proxy.subsampling).encode(to_array(plain_input[0]), 60)
    decoded = JpegCodec(codec.proxy.subsampling).decode(encoded.data)
    assert np.array_equal(to_array(real.decoded[0]), decoded)
    assert float(real.bits[0]) == encoded.payload_bits
    if codec.channels == 3:
        assert torch.equal(real.recon, real.decoded)


def test_gray_bottleneck_is_one_channel_in_the_real_codec(tmp_path):
    module = create_module(tiny_config(tmp_path, "gray_jpeg")).eval()
    x = photo("rocket", 40, 56)
    real = module.code_real(x, 50)
    assert real.bottleneck.shape == (1, 1, 40, 56)
    encoded = module.codec.real.encode(to_array(real.bottleneck[0]), 50)
    with Image.open(io.BytesIO(encoded.data)) as jpeg:
        assert jpeg.mode == "L" and jpeg.layers == 1  # one component in the frame header
    assert float(real.bits[0]) == encoded.payload_bits


def test_seeded_runs_are_reproducible(tmp_path):
    weights = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        last = train(tiny_config(tmp_path / run, "gray_jpeg", f"seed={seed}", "trainer.max_steps=3", "net=u8_16"))
        weights.append(torch.load(last, map_location="cpu", weights_only=False)["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_resume_continues_from_last_checkpoint(tmp_path):
    config = tiny_config(tmp_path, "rgb_jpeg420", "trainer.max_steps=2", "checkpoint_every=1")
    last = train(config)
    assert torch.load(last, weights_only=False)["global_step"] == 2
    best = torch.load(last.with_name("best.ckpt"), weights_only=False)  # the epoch's validation selected it
    assert best["global_step"] == 2 and "val/loss" in str(best["callbacks"])
    config["trainer"]["max_steps"] = 4
    last = train(config)
    assert torch.load(last, weights_only=False)["global_step"] == 4


@pytest.fixture(scope="module")
def gray_checkpoint(tmp_path_factory) -> Path:
    return train(tiny_config(tmp_path_factory.mktemp("run"), "gray_jpeg", "trainer.max_steps=2"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    from sandwich.data.samples import load_photo

    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(load_photo("skimage/coffee")[:70, :93]).save(folder / "coffee.png")
    Image.fromarray(load_photo("skimage/rocket")[50:131, 100:161]).save(folder / "rocket.jpg", quality=95)
    return folder


def test_eval_writes_compressai_results_with_baselines_and_bd(gray_checkpoint, image_folder, tmp_path):
    out = tmp_path / "report"
    assert main(["eval", "--ckpt", str(gray_checkpoint), "--images", str(image_folder), "--out", str(out), "--qualities", "20", "40", "60", "80"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert {"name", "description", "results", "baselines", "bd"} <= set(report)
    assert len(report["results"]["bpp"]) == len(report["results"]["psnr-rgb"]) == len(report["results"]["ms-ssim-rgb"]) == 4
    assert set(report["baselines"]) == set(report["bd"]) == {"codec", "texture_embedding"}
    for baseline in report["baselines"].values():
        assert {"name", "description", "results"} <= set(baseline) and baseline["results"]["bpp"]
    for bd in report["bd"].values():
        assert {"bd_rate_percent", "bd_psnr_db", "interpolation", "note"} <= set(bd)
    for name in ("rd.png", "examples.png", "index.html"):
        assert (out / name).stat().st_size > 0
    # bpp is the real codec's payload per source pixel, averaged over the images.
    module = load_module(gray_checkpoint)
    bpp = []
    for path in sorted(image_folder.iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            encoded = module.codec.real.encode(to_array(module.pre(x, torch.tensor([module.codec.real_level(20)]))[0]), 20)
        bpp.append(encoded.payload_bits / (x.shape[-2] * x.shape[-1]))
    assert report["results"]["bpp"][0] == pytest.approx(np.mean(bpp), rel=1e-6)  # float32 division


def _refused(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sandwich: error:") and match in err[0]


def test_eval_refusals_leave_nothing_behind(gray_checkpoint, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--out", str(out), "--qualities", "20", "40", "60", "80"]
    _refused(capsys, ["eval", "--ckpt", str(tmp_path / "missing.ckpt"), "--images", str(image_folder), *args], "no such checkpoint")
    other = torch.load(gray_checkpoint, weights_only=False)
    assert other["sandwich_config"]["net"]["unet"] != "slim"
    other["sandwich_config"]["net"]["unet"] = "slim"  # weights of another U-Net
    torch.save(other, tmp_path / "mismatch.ckpt")
    _refused(capsys, ["eval", "--ckpt", str(tmp_path / "mismatch.ckpt"), "--images", str(image_folder), *args], "do not match")
    old = torch.load(gray_checkpoint, weights_only=False)
    del old["sandwich_config"]["lmbda_level_exponent"]  # a checkpoint from before the key existed
    torch.save(old, tmp_path / "old.ckpt")
    _refused(capsys, ["eval", "--ckpt", str(tmp_path / "old.ckpt"), "--images", str(image_folder), *args], "'lmbda_level_exponent'")
    (tmp_path / "empty").mkdir()
    _refused(capsys, ["eval", "--ckpt", str(gray_checkpoint), "--images", str(tmp_path / "empty"), *args], "no images")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes((image_folder / "coffee.png").read_bytes()[:200])
    _refused(capsys, ["eval", "--ckpt", str(gray_checkpoint), "--images", str(bad), *args], "a.png")
    assert not out.exists()


def test_train_refuses_bad_config(capsys, tmp_path):
    _refused(capsys, ["train", "experiment=gray_jpeg", "trainer.max_steps=abc"], "trainer.max_steps")
    _refused(capsys, ["train", "experiment=nope"], "experiment/nope")
    _refused(capsys, ["train", "lmbda=-1"], "lmbda")
    _refused(capsys, ["train", "typo_key=1"], "typo_key")


def test_eval_on_an_embedded_source(gray_checkpoint, tmp_path):
    """``--samples matplotlib``: the validation source's photo, never trained on, instead of a folder."""
    out = tmp_path / "report"
    assert main(["eval", "--ckpt", str(gray_checkpoint), "--samples", "matplotlib", "--out", str(out), "--qualities", "20", "50", "80", "95"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == ["matplotlib/grace_hopper"]
    gap = report["bd"]["texture_embedding"]["psnr_gap"]
    assert gap["min_gain_db"] is None or gap["min_gain_db"] <= gap["max_gain_db"]


def test_training_lowers_the_loss_on_a_tiny_overfit(tmp_path):
    """A zero-started sandwich must learn: 80 steps on one batch at one codec level gain PSNR through the proxy.

    Fails when no gradient reaches the networks or the optimiser does not move them (a detached
    decode, a frozen U-Net, a zero learning rate). The subtler failures met in real training (dying
    ReLUs, a loss dominated by smooth crops) show only over many varied batches; they are measured by
    the validation curves, not here.
    """
    torch.manual_seed(0)
    config = tiny_config(tmp_path, "rgb_jpeg420", "codec.stage.level_range=[1.2,1.2]", "optim.warmup_steps=10")
    module = create_module(config)
    optimiser = module.configure_optimizers()
    adam, schedule = optimiser["optimizer"], optimiser["lr_scheduler"]["scheduler"]
    batch = torch.cat([photo("coffee", 64, 64), photo("astronaut", 64, 64), photo("chelsea", 64, 64)])
    module.train()
    with torch.no_grad():
        start = module._losses(batch, module(batch))
    for _ in range(80):
        loss = module._losses(batch, module(batch))["loss"]
        adam.zero_grad()
        loss.backward()
        adam.step()
        schedule.step()
    with torch.no_grad():
        end = module._losses(batch, module(batch))
    assert float(end["loss"]) < float(start["loss"])
    assert float(end["psnr"] - start["psnr"]) > 0.1


def test_an_interrupted_run_saves_its_step_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) at step 3 of 5 writes last.ckpt at step 3; the same command then resumes
    from it and stops at step 5, having run the two missing steps only."""
    import lightning as L

    from sandwich import train as train_module

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 3:
                raise KeyboardInterrupt

    class CountSteps(L.Callback):
        steps = 0

        def on_train_batch_end(self, trainer, *args) -> None:
            CountSteps.steps += 1

    def build_with(callback: L.Callback):
        def build(config: dict):
            module, data, trainer = unpatched(config)
            trainer.callbacks.append(callback)
            return module, data, trainer

        return build

    unpatched = train_module.build
    config = tiny_config(tmp_path, "gray_jpeg", "trainer.max_steps=5", "checkpoint_every=100", "net=u8_16")
    last = Path(config["out_dir"]) / "checkpoints" / "last.ckpt"
    monkeypatch.setattr(train_module, "build", build_with(Interrupt()))
    with pytest.raises(SystemExit):  # Lightning runs the on_exception hooks, then exits
        train(config)
    assert torch.load(last, weights_only=False)["global_step"] == 3
    monkeypatch.setattr(train_module, "build", build_with(CountSteps()))
    train(config)
    assert torch.load(last, weights_only=False)["global_step"] == 5
    assert CountSteps.steps == 2

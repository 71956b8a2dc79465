"""Sandwich modules, training runs and evaluation, end to end on real photos and the real codec."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from sandwich.cli import main
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.codecs.real.registry import CODECS
from sandwich.config import compose, group_options
from sandwich.data.samples import BLENDER_WORLDS, OPENCV_DATA, OXYGEN_ICONS
from sandwich.evaluate.checkpoint import load_module
from sandwich.metrics.backbones import BACKBONES
from sandwich.metrics.psnr import mse
from sandwich.sample_format import to_array, to_tensor
from sandwich.scenarios.registry import create_module
from sandwich.training import train

TINY = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "log_images=1"]


def tiny_config(tmp_path: Path, experiment: str, *extra: str) -> dict:
    return compose([f"experiment={experiment}", f"out_dir={tmp_path / experiment}", *TINY, *extra])


def photo(name: str, h: int, w: int) -> torch.Tensor:
    from sandwich.data.samples import load_photo

    return torch.from_numpy(load_photo(f"skimage/{name}")[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255


REAL_CODEC = {"rgb_jpeg420": "jpeg", "rgb_jpeg444": "jpeg", "gray_jpeg": "jpeg", "rgb_hevc": "hevc", "gray_hevc": "hevc"}
REAL_CODEC |= {f"{e}{v}": c for e, c in (("sr2_jpeg", "jpeg"), ("sr4_jpeg", "jpeg"), ("sr2_hevc", "hevc")) for v in ("", "_postonly")}
REAL_CODEC |= {"stereo_jpeg": "jpeg", "rgba_jpeg": "jpeg", "rgb_av1": "av1", "sr2_av1": "av1", "sr2_av1_postonly": "av1", "rgb_av1_postonly": "av1", "rgb_hevc_postonly": "hevc"}
CROPS = {"sr4_jpeg": ["data.crop=64", "data.val_crop=64"], "sr4_jpeg_postonly": ["data.crop=64", "data.val_crop=64"]}  # the codec's 16-pixel block at 1/4
REAL_CODEC |= {"hdr10_hevc": "hevc", "hdr12_jpeg": "jpeg", "hdr16_jpeg": "jpeg"}
DEBIAN_DATA = {"stereo_jpeg": OPENCV_DATA, "rgba_jpeg": OXYGEN_ICONS} | {e: BLENDER_WORLDS for e in ("hdr10_hevc", "hdr12_jpeg", "hdr16_jpeg")}
# their embedded sample sets come from Debian packages (make debian-data)
REAL_CODEC |= {"lpips_jpeg": "jpeg", "lpips_jpeg_preonly": "jpeg", "lpips_hevc": "hevc", "msssim_jpeg": "jpeg"}
ALEXNET = BACKBONES["alexnet"]  # the lpips_* experiments' loss runs it (sandwich weights lpips installs it)


@pytest.mark.parametrize("experiment", group_options("experiment"))
def test_fast_dev_run_every_experiment(tmp_path, experiment):
    """One training step and one validation with the configured real codec: the step moves the weights
    (the checkpoint's differ from the seeded initial ones; that they are the EMA is
    tests/test_training_contracts.py's) and the checkpoint rebuilds a module whose real codec is the one
    the experiment names."""
    if experiment in DEBIAN_DATA and not DEBIAN_DATA[experiment].is_dir():
        pytest.skip(f"{experiment} trains on {DEBIAN_DATA[experiment]} (make debian-data)")
    if experiment.startswith("lpips") and not (ALEXNET.official_path().is_file() or ALEXNET.converted_path().is_file()):
        pytest.skip(f"{experiment} trains on LPIPS, whose ImageNet backbone is not installed (sandwich weights lpips)")
    config = tiny_config(tmp_path, experiment, "+trainer.fast_dev_run=true", *CROPS.get(experiment, []))
    torch.manual_seed(config["seed"])
    initial = {k: v.clone() for k, v in create_module(config).state_dict().items()}
    last = train(config)
    trained = torch.load(last, weights_only=True)["state_dict"]
    assert any(not torch.equal(initial[k], trained[k]) for k in initial if "unet" in k)
    module = load_module(last)
    assert module.codec.real.name == REAL_CODEC[experiment]
    assert module.codec.real.channels == (1 if experiment.startswith("gray") else 3)


@pytest.mark.parametrize("experiment", ["rgb_jpeg420", "rgb_jpeg444", "gray_jpeg", "rgb_hevc"])
def test_identity_sandwich_is_the_plain_codec(tmp_path, experiment):
    """Identity processors (net=none, rgb) or the luma map (gray, no texture): the sandwich is its codec.

    The proxy pass is checked against real libjpeg (the proxy's decode within 1 level RMS of
    libjpeg's, its bits within 20% of libjpeg's payload); the real pass against the codec called
    directly (same bytes decoded, same payload bits)."""
    # (a bypass given in Hydra's dict syntax merges into the configured one: delete the texture options first)
    bypass = [f"~scenario.{side}.{key}" for side in ("pre", "post") for key in ("alpha", "trainable")]
    bypass = [*bypass, "scenario.pre.name=luma", "scenario.post.name=gray_to_rgb"] if experiment == "gray_jpeg" else []
    module = create_module(tiny_config(tmp_path, experiment, "net=none", *bypass)).eval()
    x = photo("coffee", 128, 160)
    codec_input = x if module.codec.channels == 3 else module.pre(x)
    real_codec = CODECS.create(module.config["codec"]["real"]["name"], subsampling=module.config["codec"]["subsampling"])
    knob = 50 if module.codec.real.name == "jpeg" else module.codec.knobs[len(module.codec.knobs) // 2]
    if module.codec.real.name == "jpeg":  # the proxy is JPEG's, at q50 with exactly the real codec's tables
        level = torch.tensor([module.codec.level_of(knob)])
        with torch.no_grad():
            out = module(x, level)
        encoded = real_codec.encode(to_array(codec_input[0]), knob)
        libjpeg = to_tensor(real_codec.decode(encoded.data))[None]
        assert float(mse(libjpeg.expand_as(out.decoded), out.decoded)[0]) < 1.0
        assert abs(float(out.bits[0]) / encoded.payload_bits - 1) < 0.2
    real = module.code_real(x, knob)
    encoded = real_codec.encode(to_array(codec_input[0]), knob)
    assert np.array_equal(to_array(real.decoded[0]), real_codec.decode(encoded.data))
    assert float(real.bits[0]) == encoded.payload_bits
    if module.codec.channels == 3:
        assert torch.equal(real.recon, real.decoded)


def test_proxy_fidelity_sees_a_codec_the_proxy_does_not_model(tmp_path):
    """Validation's proxy-fidelity metrics: near zero bias and a near-exact decode where the real codec is
    JPEG at the proxy's own tables (q50), a large rate bias where it is x265 under the JPEG proxy (which
    over-charges it), and a bias within 10 % under the HEVC-intra proxy (``rgb_hevc``'s)."""
    x = photo("coffee", 128, 160)
    jpeg = create_module(tiny_config(tmp_path, "rgb_jpeg420", "net=none")).eval()
    fidelity = jpeg._proxy_fidelity(jpeg.code_real(x, 50))
    assert abs(float(fidelity["bits_bias"])) < 0.01 and float(fidelity["decode_psnr"]) > 49  # measured: -0.2 %, 50.2 dB
    hevc_through_jpeg = create_module(tiny_config(tmp_path, "rgb_hevc", "net=none", "codec/proxy=jpeg")).eval()
    fidelity = hevc_through_jpeg._proxy_fidelity(hevc_through_jpeg.code_real(x, 35))
    assert float(fidelity["bits_bias"]) > 0.5 and float(fidelity["bits_spread"]) >= abs(float(fidelity["bits_bias"]))
    hevc = create_module(tiny_config(tmp_path, "rgb_hevc", "net=none")).eval()
    fidelity = hevc._proxy_fidelity(hevc.code_real(x, 35))
    assert abs(float(fidelity["bits_bias"])) < 0.1


def test_gray_bottleneck_is_one_channel_in_the_real_codec(tmp_path):
    """The gray sandwich's real pass codes one channel: its bits are those of a one-component JPEG that
    Pillow writes itself from the bottleneck (file size less the 18-byte JFIF header), and its decoded
    bottleneck is Pillow's decode of that file."""
    module = create_module(tiny_config(tmp_path, "gray_jpeg")).eval()
    x = photo("rocket", 40, 56)
    real = module.code_real(x, 50)
    assert real.bottleneck.shape == (1, 1, 40, 56)
    buffer = io.BytesIO()
    Image.fromarray(to_array(real.bottleneck[0]), mode="L").save(buffer, format="JPEG", quality=50, optimize=True)
    with Image.open(io.BytesIO(buffer.getvalue())) as jpeg:
        assert jpeg.mode == "L" and jpeg.layers == 1  # one component in the frame header
        assert np.array_equal(np.asarray(jpeg), to_array(real.decoded[0]))
    assert float(real.bits[0]) == 8 * (len(buffer.getvalue()) - 18)


def test_gray_sandwich_ties_the_decoder_gain_to_the_encoder():
    module = create_module(compose(["experiment=gray_jpeg"]))
    with torch.no_grad():
        module.pre.gain().log_alpha.add_(0.3)
    assert float(module.post.gain().alpha()) == pytest.approx(float(module.pre.gain().alpha())) == pytest.approx(1.5 * math.exp(0.3))
    untied = create_module(compose(["experiment=gray_jpeg", "scenario.tie_alpha=false"]))
    with torch.no_grad():
        untied.pre.gain().log_alpha.add_(0.3)
    assert float(untied.post.gain().alpha()) == pytest.approx(1.5)


def test_a_configuration_with_its_own_adapter_needs_no_change_to_the_base(tmp_path):
    """A thin subclass that resamples around the codec (super-resolution's shape of flow): the codec codes
    the half-size picture, bits count per source pixel, and the baselines run through the same adapter."""
    import torch.nn.functional as F

    from sandwich.scenarios.adapters import Adapter
    from sandwich.scenarios.base import SandwichModule

    class HalfSize(Adapter):
        def to_codec(self, bottleneck):
            return F.avg_pool2d(bottleneck, 2)

        def from_codec(self, decoded, bits, size):
            return F.interpolate(decoded, size=size, mode="bilinear", align_corners=False), bits

    class Downsampled(SandwichModule):
        def make_adapter(self):
            return HalfSize()

    module = Downsampled(tiny_config(tmp_path, "rgb_jpeg420", "net=none")).eval()
    x = photo("coffee", 64, 96)
    real = module.code_real(x, 50)
    encoded = JpegCodec("420").encode(to_array(F.avg_pool2d(x, 2)[0]), 50)
    assert float(real.bits[0]) == encoded.payload_bits and real.recon.shape == x.shape
    assert float(real.bpp(x)[0]) == pytest.approx(encoded.payload_bits / (64 * 96))
    baseline = module.code_real(x, 50, module.baselines()["codec"]["codec"])
    assert float(baseline.bits[0]) == encoded.payload_bits


def test_seeded_runs_are_reproducible(tmp_path):
    weights = []
    for run, seed in (("a", 3), ("b", 3), ("c", 4)):
        last = train(tiny_config(tmp_path / run, "gray_jpeg", f"seed={seed}", "trainer.max_steps=3", "net=u8_16"))
        weights.append(torch.load(last, map_location="cpu", weights_only=True)["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


class CountSteps(L.Callback):
    """Counts the training batches a run actually runs (a fresh run to step 4 would run 4)."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer, *args) -> None:  # noqa: D102
        self.steps += 1



def test_resume_continues_from_last_checkpoint(tmp_path):
    """A run to step 2, then the same run to step 4: the second run resumes at step 2 (it runs two batches,
    not four) with the first run's optimiser state (Adam's step count carries on), and selects best.ckpt."""
    config = tiny_config(tmp_path, "rgb_jpeg420", "trainer.max_steps=2", "checkpoint_every=1")
    last = train(config)
    assert torch.load(last, weights_only=True)["global_step"] == 2
    best = torch.load(last.with_name("best.ckpt"), weights_only=True)  # the epoch's validation selected it
    assert best["global_step"] == 2 and "val/loss" in str(best["callbacks"])
    config["trainer"]["max_steps"] = 4
    counter = CountSteps()
    last = train(config, [counter])
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 4 and counter.steps == 2
    assert all(int(s["step"]) == 4 for s in checkpoint["optimizer_states"][0]["state"].values())


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
    assert main(["eval", "--ckpt", str(gray_checkpoint), "--images", str(image_folder), "--out", str(out), "--levels", "20", "40", "60", "80"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert {"name", "description", "results", "baselines", "bd"} <= set(report)
    assert len(report["results"]["bpp"]) == len(report["results"]["psnr-rgb"]) == len(report["results"]["ms-ssim-rgb"]) == 4
    assert report["codec"] == "jpeg 4:0:0 (quality)"
    assert set(report["baselines"]) == {"codec", "texture_embedding"} and set(report["bd"]) == {"psnr-rgb", "psnr-y", "ms-ssim-db"}
    for baseline in report["baselines"].values():
        assert {"name", "description", "results"} <= set(baseline) and baseline["results"]["bpp"]
    for per_baseline in report["bd"].values():
        assert set(per_baseline) == {"codec", "texture_embedding"}
        for bd in per_baseline.values():
            assert {"bd_rate_percent", "bd_psnr_db", "interpolation", "note", "gap"} <= set(bd)
    for name in ("rd.png", "rd_ms-ssim.png", "examples.png", "index.html"):
        assert (out / name).stat().st_size > 0
    # bpp is the real codec's payload per source pixel, averaged over the images.
    module = load_module(gray_checkpoint)
    bpp = []
    for path in sorted(image_folder.iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            encoded = JpegCodec("400").encode(to_array(module.pre(x, torch.tensor([module.codec.level_of(20)]))[0]), 20)
        bpp.append(encoded.payload_bits / (x.shape[-2] * x.shape[-1]))
    assert report["results"]["bpp"][0] == pytest.approx(np.mean(bpp), rel=1e-6)  # float32 division


def test_eval_of_an_hevc_sandwich_sweeps_qps_with_x265(image_folder, tmp_path):
    """``rgb_hevc`` from the CLI: trained two steps, evaluated over QPs; the report names x265's HEVC, and its
    bpp at a QP is x265's payload for the trained pre-processor's bottleneck, averaged over the images."""
    from sandwich.codecs.real.hevc import HevcCodec

    checkpoint = train(tiny_config(tmp_path, "rgb_hevc", "trainer.max_steps=2"))
    out = tmp_path / "report"
    assert main(["eval", "--ckpt", str(checkpoint), "--images", str(image_folder), "--out", str(out), "--levels", "30", "36", "42", "48"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["codec"] == "hevc 4:2:0 (qp)" and report["results"]["qp"] == [30, 36, 42, 48]
    assert set(report["bd"]["psnr-rgb"]) == {"codec"}
    module = load_module(checkpoint)
    bpp = []
    for path in sorted(image_folder.iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            bottleneck = module.pre(x, torch.tensor([module.codec.level_of(36)]))
        bpp.append(HevcCodec("420").encode(to_array(bottleneck[0]), 36).payload_bits / (x.shape[-2] * x.shape[-1]))
    assert report["results"]["bpp"][1] == pytest.approx(np.mean(bpp), rel=1e-6)


def test_a_checkpoint_from_before_the_knob_rename_evaluates_as_today(gray_checkpoint, image_folder, tmp_path):
    """A checkpoint whose config has ``codec.levels``/``val_levels`` and no ``codec.signal``/``workers`` (as
    written before the rename) loads and evaluates to the same results as the same weights stored today."""
    checkpoint = torch.load(gray_checkpoint, weights_only=True)
    codec = dict(checkpoint["sandwich_config"]["codec"])
    codec["levels"], codec["val_levels"] = codec.pop("knobs"), codec.pop("val_knobs")
    del codec["signal"], codec["workers"]
    checkpoint["sandwich_config"] = checkpoint["sandwich_config"] | {"codec": codec}
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    reports = []
    for name, path in (("old", old), ("new", gray_checkpoint)):
        assert main(["eval", "--ckpt", str(path), "--images", str(image_folder), "--out", str(tmp_path / name), "--knobs", "20", "40", "60", "80"]) == 0
        reports.append(json.loads((tmp_path / name / "results.json").read_text()))
    assert reports[0]["results"] == reports[1]["results"] and reports[0]["results"]["quality"] == [20, 40, 60, 80]


def _refused(capsys, argv: list[str], match: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sandwich: error:") and match in err[0]


def test_eval_refusals_leave_nothing_behind(gray_checkpoint, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--out", str(out), "--levels", "20", "40", "60", "80"]
    _refused(capsys, ["eval", "--ckpt", str(tmp_path / "missing.ckpt"), "--images", str(image_folder), *args], "no such checkpoint")
    other = torch.load(gray_checkpoint, weights_only=True)
    assert other["sandwich_config"]["net"]["unet"] != "slim"
    other["sandwich_config"]["net"]["unet"] = "slim"  # weights of another U-Net
    torch.save(other, tmp_path / "mismatch.ckpt")
    _refused(capsys, ["eval", "--ckpt", str(tmp_path / "mismatch.ckpt"), "--images", str(image_folder), *args], "do not match")
    old = torch.load(gray_checkpoint, weights_only=True)
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
    assert main(["eval", "--ckpt", str(gray_checkpoint), "--samples", "matplotlib", "--out", str(out), "--levels", "20", "50", "80", "95"]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == ["matplotlib/grace_hopper"]
    gap = report["bd"]["psnr-rgb"]["texture_embedding"]["gap"]
    assert gap["min_gain_db"] is None or gap["min_gain_db"] <= gap["max_gain_db"]


def test_training_lowers_the_loss_on_a_tiny_overfit(tmp_path):
    """A zero-started sandwich must learn: 80 steps on one batch at one codec level gain PSNR through the proxy.

    Fails when no gradient reaches the networks or the optimiser does not move them (a detached
    decode, a frozen U-Net, a zero learning rate). The subtler failures met in real training (dying
    ReLUs, a loss dominated by smooth crops) show only over many varied batches; they are measured by
    the validation curves, not here.
    """
    torch.manual_seed(0)
    config = tiny_config(tmp_path, "rgb_jpeg420", "codec.level_range=[1.2,1.2]", "optim.warmup_steps=10")
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


def test_an_interrupted_run_saves_its_step_and_a_rerun_finishes_it(tmp_path):
    """Ctrl-C (KeyboardInterrupt) at step 3 of 5 writes last.ckpt at step 3 (CheckpointOnInterrupt); the same
    command then resumes from it and stops at step 5, having run the two missing steps only."""

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.global_step == 3:
                raise KeyboardInterrupt

    config = tiny_config(tmp_path, "gray_jpeg", "trainer.max_steps=5", "checkpoint_every=100", "net=u8_16")
    last = Path(config["out_dir"]) / "checkpoints" / "last.ckpt"
    with pytest.raises(SystemExit):  # Lightning runs the on_exception hooks, then exits
        train(config, [Interrupt()])
    assert torch.load(last, weights_only=True)["global_step"] == 3
    counter = CountSteps()
    train(config, [counter])
    assert torch.load(last, weights_only=True)["global_step"] == 5
    assert counter.steps == 2

"""HDR sandwiches: the floor / midpoint bit-depth adapter against integer arithmetic, identity networks over a
lossless 8-bit codec within 2^(t-1) levels, baselines with a real codec of their own (x265 at 12 bits, JPEG XL
at 16 bits, Ultra HDR), the tone-curve bypass, the saturation point, and the experiments from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sandwich.cli import main
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.ultrahdr import UltraHdrCodec
from sandwich.config import compose
from sandwich.data.samples import BLENDER_WORLDS, load_photo
from sandwich.errors import InputError
from sandwich.evaluate.run import saturation_psnr
from sandwich.nets.tone_curves import PowerCurve
from sandwich.sample_format import peak, to_array, to_tensor
from sandwich.scenarios.adapters import BitDepth
from sandwich.scenarios.registry import create_module

EXPERIMENTS = {"hdr10_hevc": 10, "hdr12_jpeg": 12, "hdr16_jpeg": 16}


def every_code(bits: int) -> torch.Tensor:
    """Every d-bit code value (a random 2^16 of them beyond 16 bits is all of them) as a (1, 1, 1, n) tensor on [0, 1]."""
    return torch.arange(2**bits, dtype=torch.float64).reshape(1, 1, 1, -1) / peak(bits)


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_floor_and_midpoint_match_integer_arithmetic_and_err_at_most_half_a_bin(bits: int) -> None:
    """Through a lossless 8-bit path (the codec's own sample conversion), every d-bit code v comes back as
    ((v >> t) << t) + 2^(t-1), computed here in integers; the error is at most 2^(t-1) levels."""
    adapter, t = BitDepth(bits), bits - 8
    x = every_code(bits).float()
    coded = adapter.to_codec(x)
    lossless = to_tensor(to_array(coded[0], 8), 8)[None]
    assert torch.equal(lossless, coded)
    recon, _ = adapter.from_codec(lossless, torch.zeros(1), tuple(x.shape[-2:]))
    codes = np.arange(2**bits)
    expected = ((codes >> t) << t) + (1 << (t - 1))
    got = np.round(recon.double().numpy().ravel() * peak(bits))
    assert np.array_equal(got, expected)
    assert np.abs(got - codes).max() <= 2 ** (t - 1)


def test_the_floor_passes_the_identity_gradient() -> None:
    adapter = BitDepth(12)
    x = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    adapter.to_codec(x).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, peak(12) / 16 / 255))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_identity_networks_over_lossless_jpeg_xl_err_at_most_half_a_bin(experiment: str) -> None:
    """The module itself (net=none: the processors are identities) over a lossless 8-bit codec (JPEG XL at
    quality 100): the output is within 2^(t-1) d-bit levels of the source, and equals the floor_midpoint baseline."""
    bits = EXPERIMENTS[experiment]
    module = create_module(compose([f"experiment={experiment}", "net=none", "codec=jxl"])).eval()
    rng = np.random.default_rng(bits)
    source = rng.integers(0, 2**bits, (48, 64, 3), dtype=np.uint16)
    x = to_tensor(source, bits)[None]
    out = module.code_real(x, 100)
    error = np.abs(to_array(out.recon[0], bits).astype(np.int64) - source)
    assert error.max() <= 2 ** (bits - 9) and error.max() >= 2 ** (bits - 9) - 1
    baseline = module.code_real(x, 100, module.baselines()["floor_midpoint"]["floor_midpoint"])
    assert torch.equal(baseline.recon, out.recon)


def test_a_baseline_with_its_own_codec_codes_the_source_at_that_codecs_depth() -> None:
    """hdr16_jpeg's x265 baseline: the 16-bit source rounded to 12 bits, coded by x265 at 12 bits at that
    baseline's QP; bits and output are x265's own (coded here directly)."""
    module = create_module(compose(["experiment=hdr16_jpeg", "net=none"])).eval()
    variant = module.baselines()["x265_12bit"]["x265_12bit"]
    assert variant.knobs and variant.codec.bit_depth == 12
    rng = np.random.default_rng(0)
    source = (np.cumsum(rng.integers(0, 600, (64, 64, 3)), axis=1) % 65536).astype(np.uint16)
    x = to_tensor(source, 16)[None]
    out = module.code_real(x, 22, variant)
    codec = HevcCodec("420", 12)
    encoded = codec.encode(to_array(x[0], 12), 22)
    assert float(out.bits[0]) == encoded.payload_bits
    assert np.array_equal(to_array(out.recon[0], 12), codec.decode(encoded.data))


def test_power_curves_invert_each_other() -> None:
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(PowerCurve(2.0)(PowerCurve(0.5)(x)), x, atol=1e-6)
    assert torch.allclose(PowerCurve(0.5)(torch.tensor([0.25])), torch.tensor([0.5]))
    with pytest.raises(InputError, match="exponent"):
        PowerCurve(0.0)


def test_ultra_hdr_round_trips_pq_codes_and_refuses_garbage() -> None:
    """A smooth 16-bit PQ ramp from 0.1 to 1000 cd/m2 through Ultra HDR at quality 95 comes back within 1 %
    of its code range on average, and at quality 10 worse; bytes that are not Ultra HDR are one InputError."""
    from sandwich.transfer import pq_encode

    nits = np.geomspace(0.1, 1000, 256)[None, :, None] * np.ones((64, 1, 3))
    codes = np.floor(pq_encode(nits) * 65535 + 0.5).astype(np.uint16)
    codec = UltraHdrCodec(16)
    errors = {}
    for quality in (10, 95):
        encoded = codec.encode(codes, quality)
        assert encoded.payload_bits == 8 * len(encoded.data)
        errors[quality] = np.abs(codec.decode(encoded.data).astype(float) - codes).mean() / 65535
    assert errors[95] < 0.01 and errors[10] > errors[95]
    with pytest.raises(InputError, match="ultrahdr"):
        codec.decode(b"\xff\xd8 not an ultra hdr file")


def test_saturation_point_is_the_psnr_of_rounding_to_8_bits() -> None:
    """Against numpy: round(v * 255 / (2^d - 1)) back to d bits, PSNR on the d-bit scale."""
    rng = np.random.default_rng(1)
    source = rng.integers(0, 4096, (32, 40, 3), dtype=np.uint16)
    eight = np.floor(source / 4095 * 255 + 0.5)
    mse = np.mean((eight / 255 * 4095 - source) ** 2)
    assert saturation_psnr([to_tensor(source, 12)[None]], 12, 8) == pytest.approx(10 * np.log10(4095**2 / mse), abs=1e-3)
    assert saturation_psnr([to_tensor(source, 12)[None]], 12, 12) is None


def test_a_source_bit_depth_not_above_the_codecs_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", "experiment=hdr12_jpeg", "scenario.bit_depth=8", "logger=csv", f"out_dir={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scenario.bit_depth=8" in err[0], err
    assert not out.exists()


@pytest.mark.skipif(not BLENDER_WORLDS.is_dir(), reason="needs Debian's blender-data (.ci/run installs it)")
def test_hdr12_jpeg_trains_and_evaluates_from_the_cli_on_held_out_panoramas(tmp_path: Path) -> None:
    """Two training steps on the embedded panoramas, then `sandwich eval` on the held-out ones: the report has
    the d-bit PSNR of every baseline (x265 swept over its own QPs), BD figures against each, and the saturation point."""
    run, out = tmp_path / "run", tmp_path / "eval"
    assert main(["train", "experiment=hdr12_jpeg", "net=u8_16", "data.crop=32", "data.val_crop=64", "data.batch_size=1",
                 "data.batches_per_epoch=2", "trainer.max_steps=2", "logger=csv", f"out_dir={run}"]) == 0
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--samples", "blender_held_out", "--levels", "30", "50", "70", "90",
                 "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == ["blender_held_out/night", "blender_held_out/sunrise"]
    baselines = report["baselines"]
    assert set(baselines) == {"rounding", "floor_midpoint", "tone_curve", "x265_12bit", "ultrahdr"}
    assert baselines["x265_12bit"]["results"]["qp"] and "12-bit" in baselines["x265_12bit"]["description"]
    assert set(report["bd"]["psnr-rgb"]) == set(baselines)
    assert 55 < report["saturation_psnr_db"] < 62 and max(report["results"]["psnr-rgb"]) < report["saturation_psnr_db"]


def _scene(name: str, rows: slice, cols: slice) -> np.ndarray:
    """A linear-light HDR scene (nits, float32) from a photo: its samples as display light (gamma 2.2) at up to
    100 nits, its brightest tenth lifted to 4,000 nits (highlights the 8-bit photo clipped)."""
    rgb = (load_photo(name)[rows, cols].astype(np.float32) / 255) ** 2.2
    luma = rgb.mean(axis=2, keepdims=True)
    return (100 * rgb * np.where(luma > np.quantile(luma, 0.9), 40.0, 1.0)).astype(np.float32)


def test_hdr_training_and_evaluation_run_on_our_own_exr_files_without_debian_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a user with their own OpenEXR photos runs, with no Debian data (the blender-data folder pointed
    nowhere): `sandwich shards --bit-depth 12` of EXR files, two training steps of hdr12_jpeg on them,
    `sandwich eval` on other EXR files (12-bit PSNR below the saturation point of rounding to 8 bits)."""
    from test_hdr_data import _write_exr

    from sandwich.data import samples

    monkeypatch.setattr(samples, "BLENDER_WORLDS", tmp_path / "no-blender-data")

    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    train_dir.mkdir()
    eval_dir.mkdir()
    for i, (name, rows, cols) in enumerate([("skimage/astronaut", slice(0, 160), slice(0, 192)), ("skimage/chelsea", slice(0, 160), slice(0, 192)),
                                            ("skimage/rocket", slice(100, 260), slice(0, 192))]):
        _write_exr(train_dir / f"scene{i}.exr", _scene(name, rows, cols))
    _write_exr(eval_dir / "coffee.exr", _scene("skimage/coffee", slice(100, 228), slice(100, 260)))
    shards, run, out = tmp_path / "shards", tmp_path / "run", tmp_path / "report"
    assert main(["shards", str(train_dir), str(shards), "--bit-depth", "12", "--val-fraction", "0.34"]) == 0
    assert main(["train", "experiment=hdr12_jpeg", "net=u8_16", f"data.shards={shards}", "data.crop=32", "data.val_crop=64", "data.batch_size=1",
                 "data.batches_per_epoch=2", "trainer.max_steps=2", "logger=csv", f"out_dir={run}"]) == 0
    assert main(["eval", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--images", str(eval_dir), "--knobs", "30", "50", "70", "90",
                 "--out", str(out)]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["images"] == ["coffee"] and "rounding" in report["baselines"]
    assert max(report["results"]["psnr-rgb"]) < report["saturation_psnr_db"]

"""The codec stage: proxies and real codecs by name, levels of JPEG qualities and HEVC QPs, the losses on them."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sandwich.codecs.jpeg_proxy.proxy import jpeg_proxy
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.codecs.real.levels import KnobLevels
from sandwich.codecs.stage import CodecStage
from sandwich.config import compose, group_options
from sandwich.data.samples import load_photo
from sandwich.errors import InputError
from sandwich.losses import RateDistortionLoss, msssim_distortion
from sandwich.metrics.psnr import mse
from sandwich.scenarios.base import STAGE_KEYS
from sandwich.sample_format import to_array, to_tensor


def jpeg_stage(subsampling: str = "420", real: str = "jpeg", **proxy) -> CodecStage:
    return CodecStage({"name": "jpeg", "subsampling": subsampling, **proxy}, {"name": real, "subsampling": subsampling}, [20, 50, 80, 95])


@pytest.mark.parametrize(("quality", "level"), [(50, 0.0), (25, 1.0), (100, math.log2(1 / 57.625))])
def test_level_of_ijg_qualities(quality, level):
    """IJG q25 doubles every q50 step (scale 200% vs 100%), q100 sets every step to 1 (q50's luma mean is 57.625)."""
    assert float(np.mean(ijg_tables(50)[0])) == 57.625
    assert KnobLevels(JpegCodec("420")).level(quality) == pytest.approx(level, abs=0.02)


@pytest.mark.parametrize("level", [-2.0, 0.0, 1.0])
def test_hevc_qp_of_a_level_has_the_error_of_jpeg_at_that_level(level):
    """The measured QP <-> level map (fitted on the training photos) carries over to a held-out photo:
    HEVC at the QP of a level and JPEG at the quality of that level make errors within 40% of each other."""
    image = load_photo("sporco/kodim23")[128:384, 128:384]
    hevc, jpeg = HevcCodec("420"), JpegCodec("420")
    qp, quality = KnobLevels(hevc).knob(level), KnobLevels(jpeg).knob(level)
    errors = [float(np.mean((c.decode(c.encode(image, k).data).astype(float) - image) ** 2)) for c, k in ((hevc, qp), (jpeg, quality))]
    assert 1 / 1.4 < errors[0] / errors[1] < 1.4, (qp, quality, errors)


def test_hevc_levels_double_the_step_about_every_six_qp():
    """HEVC's step doubles every 6 QP; matched by error to JPEG, an octave of level spans 4 to 7 QP over
    the levels trained on (JPEG q95 to q25)."""
    levels = KnobLevels(HevcCodec("420"))
    assert 4.0 < (levels.knob(1.0) - levels.knob(-3.0)) / 4 < 7.0


def test_training_levels_cover_the_range_and_eval_uses_the_base_steps():
    stage = CodecStage({"name": "jpeg", "subsampling": "400"}, {"name": "jpeg", "subsampling": "400"}, [50], level_range=(-3.0, 1.5))
    torch.manual_seed(0)
    levels = stage.train().sample_levels(4000)
    assert levels.min() >= -3.0 and levels.max() <= 1.5 and levels.min() < -2.9 and levels.max() > 1.4
    assert torch.equal(stage.eval().sample_levels(3), torch.zeros(3))


def test_proxy_at_a_level_codes_with_the_steps_scaled_by_two_to_that_level():
    stage = jpeg_stage()
    x = torch.rand(2, 3, 24, 40)
    decoded, bits = stage(x, torch.tensor([1.0, -2.0]))
    luma, chroma = (torch.tensor(t, dtype=torch.float32) for t in ijg_tables(50))
    for i, scale in enumerate((2.0, 0.25)):
        out = jpeg_proxy(x[i : i + 1] * 255, luma * scale, chroma * scale, "420")
        torch.testing.assert_close(decoded[i : i + 1], out.recon / 255)
        torch.testing.assert_close(bits[i : i + 1], stage.proxy.rate(out.planes))


@pytest.mark.parametrize(
    ("proxy", "real", "levels", "match"),
    [
        ({"name": "jpeg", "subsampling": "420"}, {"name": "jpeg", "subsampling": "420"}, [20], None),
        ({"name": "jpeg", "subsampling": "400"}, {"name": "hevc", "subsampling": "420"}, [30], "1 channels"),
        ({"name": "jpeg"}, {"name": "x266"}, [30], "valid names: jpeg, hevc"),
        ({"name": "vvc"}, {"name": "hevc"}, [30], "unknown proxy 'vvc'"),
        ({"name": "jpeg", "subsampling": "420"}, {"name": "hevc", "preset": "slow"}, [30], "unknown option"),
        ({"name": "jpeg", "subsampling": "420"}, {"name": "hevc"}, [52], "qp 52 outside"),
    ],
)
def test_stage_refuses_what_cannot_work(proxy, real, levels, match):
    if match is None:
        with pytest.raises(InputError, match="level_range"):
            CodecStage(proxy, real, levels, level_range=(1.0, -1.0))
        return
    with pytest.raises(InputError, match=match):
        CodecStage(proxy, real, levels)


def test_real_hevc_stage_codes_with_x265_at_the_qp_and_reads_back_bits():
    """The stage's real side is x265 itself: its bits and decode equal a direct HevcCodec call."""
    stage = CodecStage({"name": "jpeg", "subsampling": "420"}, {"name": "hevc", "subsampling": "420"}, [30, 35, 40, 45])
    image = load_photo("skimage/coffee")[:64, :96]
    decoded, bits = stage.code_real(to_tensor(image)[None], 35)
    encoded = HevcCodec("420").encode(image, 35)
    assert float(bits[0]) == encoded.payload_bits
    assert np.array_equal(to_array(decoded[0]), HevcCodec("420").decode(encoded.data))
    learned_qp = KnobLevels(HevcCodec("420")).knob(0.0)  # the proxy's steps are IJG q50's: level 0
    assert float(stage.code_real(to_tensor(image)[None])[1][0]) == HevcCodec("420").encode(image, learned_qp).payload_bits


def test_db_form_is_minus_psnr_plus_lambda_bpp_up_to_a_constant():
    loss = RateDistortionLoss({"mse": 1.0}, "db", lmbda=4.0)
    value = loss({"mse": torch.tensor([65.025, 6.5025])}, torch.tensor([0.5, 2.0]), torch.zeros(2))
    constant = 20 * math.log10(255)
    torch.testing.assert_close(value, torch.tensor([-30.0 + 2.0, -40.0 + 8.0]) + constant)


def test_lambda_follows_the_level_with_its_exponent():
    """``lmbda_level_exponent`` γ: the rate term of an image at level ℓ is ``λ · 2**(γ·ℓ) · bpp``; weights mix terms."""
    loss = RateDistortionLoss({"mse": 1.0, "msssim": 100.0}, "linear", lmbda=10, lmbda_level_exponent=1.5)
    value = loss({"mse": torch.tensor([1.0, 4.0]), "msssim": torch.tensor([0.01, 0.0])}, torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0]))
    torch.testing.assert_close(value, torch.tensor([1 + 1 + 10 * 1.0, 4 + 10 * 2**3 * 2.0]))


def test_bad_loss_configs_are_refused():
    with pytest.raises(InputError, match="unknown distortion 'vmaf'"):
        RateDistortionLoss({"vmaf": 1.0}, "linear", 1.0)
    with pytest.raises(InputError, match="form"):
        RateDistortionLoss({"mse": 1.0}, "log", 1.0)
    with pytest.raises(InputError, match="lmbda"):
        RateDistortionLoss({"mse": 1.0}, "linear", -1.0)


def test_msssim_distortion_is_differentiable_and_its_descent_raises_ms_ssim():
    """1 - MS-SSIM: 0 for a copy, larger for noisier copies, per image; gradient steps on it raise MS-SSIM
    (and the value equals torchmetrics' own module with the standard five scales on a 256-pixel image)."""
    from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure

    x = to_tensor(load_photo("skimage/astronaut")[:256, :256])[None]
    torch.manual_seed(0)
    noisy = torch.cat([x + 0.02 * torch.randn_like(x), x + 0.08 * torch.randn_like(x)]).clamp(0, 1)
    distortion = msssim_distortion()
    d = distortion(x.expand(2, -1, -1, -1), noisy, 8)
    assert d.shape == (2,) and float(distortion(x, x, 8)[0]) < 1e-6 and 0 < d[0] < d[1]
    reference = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0)(noisy[1:], x)
    assert float(1 - d[1]) == pytest.approx(float(reference), abs=1e-4)
    recon = noisy[1:].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([recon], lr=0.01)
    for _ in range(20):
        optimiser.zero_grad()
        distortion(x, recon, 8).sum().backward()
        optimiser.step()
    assert float(distortion(x, recon.detach(), 8)[0]) < 0.7 * float(d[1])


def test_the_real_codec_writes_the_rounded_learned_steps():
    """Trainable steps moved off the IJG tables: the file's DQT (read back by Pillow) holds them rounded,
    and ``code_real`` without a knob decodes that file."""
    stage = jpeg_stage(trainable=True)
    luma, chroma = (np.asarray(t, dtype=np.float64) for t in ijg_tables(50))
    wanted = (luma * 1.3713 + 0.0917, chroma * 0.618 + 1.0917)  # every entry at least 0.01 away from a rounding tie
    with torch.no_grad():
        stage.proxy.proxy.luma_param.copy_(torch.tensor(wanted[0] - 1))
        stage.proxy.proxy.chroma_param.copy_(torch.tensor(wanted[1] - 1))
    expected = [np.clip(np.floor(w + 0.5), 1, 255).astype(int) for w in wanted]
    x = to_tensor(load_photo("skimage/coffee")[:64, :80])[None]
    data = JpegCodec("420").encode_with_tables(to_array(x[0]), *stage.proxy.learned_tables()).data
    written = Image.open(io.BytesIO(data)).quantization
    assert np.array_equal(np.array(written[0]).reshape(8, 8), expected[0])
    assert np.array_equal(np.array(written[1]).reshape(8, 8), expected[1])
    decoded, bits = stage.code_real(x)
    assert np.array_equal(to_array(decoded[0]), JpegCodec("420").decode(data))
    assert float(bits[0]) == JpegCodec("420").encode_with_tables(to_array(x[0]), *expected).payload_bits
    assert float(mse(x, decoded)[0]) > 0


@pytest.mark.parametrize("codec", group_options("codec"))
def test_every_codec_option_builds_its_real_codec_with_a_sweep_that_coarsens_with_the_level(codec):
    """Each ``conf/codec`` option: the stage's real codec is the one named, coded bits fall and the
    knob's level rises from the sweep's finest to its coarsest knob value, and decoding returns the shape
    it was given."""
    config = compose([f"codec={codec}"])["codec"]
    stage = CodecStage(**{key: config[key] for key in STAGE_KEYS})
    assert stage.real.name == config["real"]["name"]
    image = load_photo("sporco/monarch")[100:164, 200:296]
    x = to_tensor(image)[None] if stage.channels == 3 else to_tensor(image)[None].mean(1, keepdim=True)
    by_level = sorted(stage.knobs, key=stage.level_of)
    finest, coarsest = by_level[0], by_level[-1]
    assert stage.level_of(coarsest) - stage.level_of(finest) > 3  # the sweep spans several octaves
    fine, coarse = (stage.code_real(x, knob) for knob in (finest, coarsest))
    assert fine[0].shape == x.shape and float(coarse[1][0]) < 0.5 * float(fine[1][0])
    assert float(mse(x, coarse[0])[0]) > float(mse(x, fine[0])[0])


@pytest.mark.parametrize("side", [11, 43, 44, 88, 96, 98, 99, 175, 176])
def test_ms_ssim_measures_every_side_from_11_pixels(side: int) -> None:
    """Every size takes as many scales as fit; sides of 88-98 pixels once crashed inside torchmetrics, whose
    own size check for 4 scales is stricter than the window fitting at the coarsest scale."""
    from sandwich.metrics.ms_ssim import ms_ssim

    x = to_tensor(load_photo("skimage/astronaut")[:side, : side + 7])[None]
    value = ms_ssim(x, (x + 0.05).clamp(0, 1))
    assert value.shape == (1,) and 0 < float(value[0]) < 1 and float(ms_ssim(x, x)[0]) == pytest.approx(1, abs=1e-6)

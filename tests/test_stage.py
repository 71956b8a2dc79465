"""The codec stage's levels (step scale in octaves) and the losses built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sandwich.codecs.jpeg_proxy import jpeg_proxy
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.stage import JpegStage
from sandwich.errors import InputError
from sandwich.scenarios.base import psnr_rate


@pytest.mark.parametrize(("quality", "level"), [(50, 0.0), (25, 1.0), (100, math.log2(1 / 57.625))])
def test_level_of_ijg_qualities(quality, level):
    """IJG q25 doubles every q50 step (scale 200% vs 100%), q100 sets every step to 1 (q50's luma mean is 57.625)."""
    assert float(np.mean(ijg_tables(50)[0])) == 57.625
    assert JpegStage("420", quality=50).real_level(quality) == pytest.approx(level, abs=0.02)


def test_training_levels_cover_the_range_and_eval_uses_the_base_steps():
    stage = JpegStage("400", quality=50, level_range=(-3.0, 1.5))
    torch.manual_seed(0)
    levels = stage.train().sample_levels(4000)
    assert levels.min() >= -3.0 and levels.max() <= 1.5 and levels.min() < -2.9 and levels.max() > 1.4
    assert torch.equal(stage.eval().sample_levels(3), torch.zeros(3))


def test_proxy_at_a_level_codes_with_the_steps_scaled_by_two_to_that_level():
    stage = JpegStage("420", quality=50)
    x = torch.rand(2, 3, 24, 40)
    decoded, bits = stage(x, torch.tensor([1.0, -2.0]))
    luma, chroma = (torch.tensor(t, dtype=torch.float32) for t in ijg_tables(50))
    for i, scale in enumerate((2.0, 0.25)):
        out = jpeg_proxy(x[i : i + 1] * 255, luma * scale, chroma * scale, "420")
        torch.testing.assert_close(decoded[i : i + 1], out.recon / 255)
        torch.testing.assert_close(bits[i : i + 1], stage.rate(out.planes))


def test_bad_level_range_is_refused():
    with pytest.raises(InputError, match="level_range"):
        JpegStage("420", quality=50, level_range=(1.0, -1.0))


def test_psnr_rate_is_minus_psnr_plus_lambda_bpp():
    mse, bpp = torch.tensor([65.025, 6.5025]), torch.tensor([0.5, 2.0])
    torch.testing.assert_close(psnr_rate(mse, bpp, 4.0), torch.tensor([-30.0 + 2.0, -40.0 + 8.0]))


def test_lambda_follows_the_level_with_its_exponent(tmp_path):
    """``lmbda_level_exponent`` γ: the rate term of an image at level ℓ is ``λ · 2**(γ·ℓ) · bpp``."""
    from sandwich.config import compose
    from sandwich.scenarios.base import SandwichOutput
    from sandwich.scenarios.registry import create_module

    module = create_module(compose(["experiment=rgb_jpeg420", "loss=mse_rate", "lmbda=10", "lmbda_level_exponent=1.5", f"out_dir={tmp_path}"]))
    source = torch.full((2, 3, 8, 8), 0.5)
    recon = source + torch.tensor([1.0, 2.0])[:, None, None, None] / 255  # MSE 1 and 4
    out = SandwichOutput(source, source, recon, bits=torch.tensor([64.0, 128.0]), level=torch.tensor([0.0, 2.0]))  # 1 and 2 bpp
    expected = ((1 + 10 * 1) + (4 + 10 * 2**3 * 2)) / 2
    assert float(module._losses(source, out)["loss"]) == pytest.approx(expected, rel=1e-6)


def test_the_real_codec_writes_the_rounded_learned_steps():
    """Trainable steps moved off the IJG tables: the file's DQT (read back by Pillow) holds them rounded,
    and ``code_real`` without a quality decodes that file."""
    import io

    from PIL import Image

    from sandwich.codecs.real.jpeg import JpegCodec
    from sandwich.data.samples import load_photo
    from sandwich.sample_format import to_array, to_tensor

    stage = JpegStage("420", quality=50, trainable=True)
    luma, chroma = (np.asarray(t, dtype=np.float64) for t in ijg_tables(50))
    wanted = (luma * 1.3713 + 0.0917, chroma * 0.618 + 1.0917)  # every entry at least 0.01 away from a rounding tie
    with torch.no_grad():
        stage.proxy.luma_param.copy_(torch.tensor(wanted[0] - 1))
        stage.proxy.chroma_param.copy_(torch.tensor(wanted[1] - 1))
    expected = [np.clip(np.floor(w + 0.5), 1, 255).astype(int) for w in wanted]
    x = to_tensor(load_photo("skimage/coffee")[:64, :80])[None]
    data = JpegCodec("420").encode_with_tables(to_array(x[0]), *stage.learned_tables()).data
    written = Image.open(io.BytesIO(data)).quantization
    assert np.array_equal(np.array(written[0]).reshape(8, 8), expected[0])
    assert np.array_equal(np.array(written[1]).reshape(8, 8), expected[1])
    decoded, bits = stage.code_real(x)
    assert np.array_equal(to_array(decoded[0]), JpegCodec("420").decode(data))

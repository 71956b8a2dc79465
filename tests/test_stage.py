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

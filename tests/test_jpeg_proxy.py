"""The JPEG proxy against libjpeg-turbo's own output, and its parts against references."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sandwich.codecs.color import rgb_to_ycbcr, ycbcr_to_rgb
from sandwich.codecs.jpeg_proxy.pair import code_pair, tables_for
from sandwich.codecs.jpeg_proxy.proxy import JpegProxy, jpeg_proxy
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.codecs.resample import box_down2, triangle_up2
from sandwich.errors import InputError
from sandwich.metrics.psnr import psnr_db


@pytest.mark.parametrize("subsampling", ["444", "420", "400"])
@pytest.mark.parametrize("setting", [dict(quality=10), dict(quality=50), dict(quality=90), dict(flat_step=12)])
def test_proxy_reconstruction_matches_libjpeg(photo_crops, subsampling: str, setting: dict) -> None:
    """Same tables, same input: the proxy's decode is within 48 dB of libjpeg-turbo's decode on every crop
    (measured 48.6 dB at worst over these crops, settings and layouts; README: 52-54 dB on whole photos)."""
    for rgb in photo_crops:
        pair = code_pair(rgb, subsampling, *tables_for(**setting))
        assert pair.proxy_decoded().shape == pair.real_decoded.shape
        assert psnr_db(pair.proxy_decoded(), pair.real_decoded) >= 48.0


def test_ijg_tables_equal_libjpeg_quality_tables(photo_crop) -> None:
    """Our quality->table mapping against the tables libjpeg itself wrote into the file."""
    for quality in (1, 10, 25, 50, 75, 90, 100):
        data = JpegCodec("420").encode(photo_crop, quality).data
        written = Image.open(io.BytesIO(data)).quantization
        luma, chroma = ijg_tables(quality)
        assert np.array_equal(np.array(written[0]).reshape(8, 8), luma)
        assert np.array_equal(np.array(written[1]).reshape(8, 8), chroma)


def test_triangle_upsampling_is_libjpeg_formula() -> None:
    """Interior samples are (9a + 3b + 3c + d) / 16; edges repeat the edge sample."""
    x = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    up = triangle_up2(x, 10, 12)[0, 0]
    c = x[0, 0]
    # Output (2i+1, 2j): nearest c[i, j], row neighbour below c[i+1, j], column neighbour left c[i, j-1].
    i, j = 2, 3
    expected = (9 * c[i, j] + 3 * c[i + 1, j] + 3 * c[i, j - 1] + c[i + 1, j - 1]) / 16
    assert torch.isclose(up[2 * i + 1, 2 * j], expected)
    assert torch.isclose(up[0, 0], c[0, 0])  # corner: every neighbour is the sample itself
    assert triangle_up2(x, 9, 11).shape[-2:] == (9, 11)
    flat = torch.full((1, 2, 4, 4), 7.0)
    assert torch.equal(triangle_up2(flat, 8, 8), torch.full((1, 2, 8, 8), 7.0))


def test_box_down_bias_alternates_like_libjpeg() -> None:
    """libjpeg computes (sum + bias) >> 2 with bias 1, 2, 1, 2, ... along the row."""
    x = torch.tensor([[[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]]])  # every 2x2 sum is 2
    assert torch.floor(box_down2(x)).tolist() == [[[[0.0, 1.0]]]]  # (2+1)>>2 = 0, (2+2)>>2 = 1


def test_colour_round_trip() -> None:
    rgb = torch.rand(2, 3, 8, 8, dtype=torch.float64) * 255
    luma, chroma = rgb_to_ycbcr(rgb)
    assert torch.allclose(ycbcr_to_rgb(luma, chroma), rgb, atol=1e-2)  # the forward matrix has 16-bit coefficients
    gray = torch.full((1, 3, 1, 1), 100.0, dtype=torch.float64)
    luma, chroma = rgb_to_ycbcr(gray)
    assert torch.allclose(luma, torch.tensor(100.0, dtype=torch.float64)) and torch.allclose(chroma, torch.tensor(128.0, dtype=torch.float64))


def test_fine_steps_are_nearly_lossless(photo_crop) -> None:
    x = torch.from_numpy(photo_crop).permute(2, 0, 1)[None].float()
    out = jpeg_proxy(x, torch.tensor(1.0), torch.tensor(1.0), "444")
    assert psnr_db(out.recon[0].permute(1, 2, 0).numpy(), photo_crop) > 45  # only colour rounding remains


@pytest.mark.parametrize("subsampling", ["444", "420", "400"])
def test_gradients_reach_input_and_steps(subsampling: str) -> None:
    proxy = JpegProxy(subsampling, quality=50, trainable=True)
    c = 1 if subsampling == "400" else 3
    x = (torch.rand(2, c, 20, 28) * 200 + 20).requires_grad_(True)
    out = proxy(x)
    assert out.recon.shape == x.shape
    (out.recon.mean() + sum(p.features.sum() for p in out.planes)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert proxy.luma_param.grad.abs().sum() > 0
    if subsampling != "400":
        assert proxy.chroma_param.grad.abs().sum() > 0


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="expected \\(N, 3, H, W\\)"):
        jpeg_proxy(torch.zeros(1, 1, 8, 8), torch.tensor(1.0), torch.tensor(1.0), "420")
    with pytest.raises(InputError, match="subsampling '422'"):
        jpeg_proxy(torch.zeros(1, 3, 8, 8), torch.tensor(1.0), torch.tensor(1.0), "422")
    with pytest.raises(InputError, match="exactly one"):
        JpegProxy("420")
    with pytest.raises(InputError, match="quality 0"):
        JpegProxy("420", quality=0)

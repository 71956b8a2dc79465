"""Networks: the U-Net presets against the papers' Table II, processors, the texture embedding."""

from __future__ import annotations

import math

import pytest
import torch

from sandwich.data.samples import load_photo
from sandwich.errors import InputError
from sandwich.nets.colour_maps import TextureEmbed, TextureExtract, extract_planes, haar2, ihaar2, rgb_to_ycc, ycc_to_rgb
from sandwich.nets.mlp import PointwiseMLP
from sandwich.nets.processor import Processor
from sandwich.nets.processor import create_unet
from sandwich.nets.unet import UNET_PRESETS

# Table II of the sandwich papers (3 -> 3 channels), and the paper's full U-Net. The table's totals
# include the 387-parameter pointwise MLP branch.
TABLE_II = {
    "paper": 7_847_491,
    "u32_64": 472_387,
    "u16_128": 1_963_043,
    "u16_32": 118_691,
    "u8_64": 491_347,
    "u8_16": 29_971,
    "slim": 57_219,
}
MLP_PARAMS = 387


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("preset", sorted(UNET_PRESETS))
def test_unet_parameter_counts_match_table_ii(preset):
    assert count(create_unet(preset, 3, 3)) == TABLE_II[preset]


def test_mlp_branch_parameter_count():
    assert count(PointwiseMLP(3, 3)) == MLP_PARAMS


@pytest.mark.parametrize("shape", [(1, 3, 37, 50), (2, 3, 8, 8), (1, 3, 1, 5)])
def test_unet_any_size_and_channels(shape):
    net = create_unet("u8_64", 3, 1)
    assert net(torch.randn(shape)).shape == (shape[0], 1, *shape[2:])


def test_unet_unknown_preset():
    with pytest.raises(InputError, match="preset 'huge'"):
        create_unet("huge", 3, 3)


def test_processor_starts_as_its_bypass_and_its_unet_learns_from_step_one():
    """Zero last layers: the untrained processor is exactly its bypass (identity here), yet the U-Net's last
    layer gets a gradient at once (with the papers' s = 0 it would be scaled to nothing)."""
    x = torch.rand(2, 3, 33, 40)
    pre = Processor(3, 3, "identity", mlp=True, unet="u8_16")
    assert torch.equal(pre(x), x)
    loss = pre(x).square().sum()
    loss.backward()
    assert pre.unet.head.weight.grad.abs().sum() > 0 and pre.mlp.layers[-1].weight.grad.abs().sum() > 0


def test_processor_channel_mismatch_and_foreign_bypass_options_are_refused():
    with pytest.raises(InputError, match="maps 3 -> 1"):
        Processor(3, 3, "luma")
    with pytest.raises(InputError, match="bypass luma: unknown option.s. alpha; it takes no options"):
        Processor(3, 1, {"name": "luma", "alpha": 1.5})
    with pytest.raises(InputError, match="unknown bypass 'lumma'"):
        Processor(3, 1, "lumma")


def test_haar_and_colour_transforms_invert():
    x = torch.rand(2, 1, 6, 10, dtype=torch.float64)
    torch.testing.assert_close(ihaar2(*haar2(x)), x)
    rgb = torch.rand(1, 3, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(ycc_to_rgb(*rgb_to_ycc(rgb)), rgb)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_texture_decoder_inverts_encoder(alpha):
    """The decoder reads back exactly the 2x2-averaged chroma and the luma minus its LH/HL detail."""
    rgb = torch.rand(1, 3, 16, 22, dtype=torch.float64)
    gray = TextureEmbed(alpha)(rgb)
    y, cb, cr = extract_planes(gray, torch.tensor(alpha, dtype=torch.float64))
    y_ref, cb_ref, cr_ref = rgb_to_ycc(rgb)
    ll, _, _, hh = haar2(y_ref)
    zero = torch.zeros_like(ll)
    torch.testing.assert_close(y, ihaar2(ll, zero, zero, hh))
    torch.testing.assert_close(cb, torch.nn.functional.avg_pool2d(cb_ref, 2))
    torch.testing.assert_close(cr, torch.nn.functional.avg_pool2d(cr_ref, 2))


@pytest.mark.parametrize("name", ["coffee", "astronaut"])
def test_texture_embedding_recovers_colour_without_codec(name):
    """Without a codec, colour comes back well above the gray image's PSNR (and above 27 dB)."""
    rgb = torch.from_numpy(load_photo(f"skimage/{name}")[:203, :301]).permute(2, 0, 1)[None].float() / 255
    recon = TextureExtract(1.0)(TextureEmbed(1.0)(rgb)).clamp(0, 1)
    gray = rgb_to_ycc(rgb)[0].expand(-1, 3, -1, -1)
    psnr = lambda a: float(10 * torch.log10(1 / (a - rgb).square().mean()))  # noqa: E731
    assert recon.shape == rgb.shape
    assert psnr(recon) > 27
    assert psnr(recon) > psnr(gray) + 4


@pytest.mark.parametrize("bypass", ["identity", "texture"])
def test_conditioned_processor_starts_as_its_bypass_at_every_level(bypass):
    """Level-conditioned branches also start at zero: the untrained processor is its bypass whatever the level."""
    x = torch.rand(3, 3, 20, 24)
    levels = torch.tensor([-3.0, 0.0, 1.5])
    if bypass == "identity":
        pre = Processor(3, 3, "identity", mlp=True, unet="u8_16", conditioned=True)
        assert torch.equal(pre(x, levels), x)
    else:
        pre = Processor(3, 1, {"name": "texture_embed", "alpha": 1.5, "trainable": True}, unet="u8_16", conditioned=True)
        assert torch.equal(pre(x, levels), TextureEmbed(1.5)(x))


def test_texture_gain_is_affine_in_the_level_and_the_decoder_follows():
    """alpha(l) = exp(log_alpha + slope * l): the embedding at level l equals a fixed embedding at that gain,
    and the tied extractor reads the chroma back at the same gain."""
    rgb = torch.rand(2, 3, 16, 20, dtype=torch.float64)
    embed, extract = TextureEmbed(1.0, trainable=True).double(), TextureExtract(1.0, trainable=True).double()
    extract.tie_to(embed)
    with torch.no_grad():
        embed.alpha_slope.fill_(0.5)
    levels = torch.tensor([-2.0, 2.0], dtype=torch.float64)
    gray = embed(rgb, levels)
    for i, level in enumerate(levels.tolist()):
        alpha = math.exp(0.5 * level)
        torch.testing.assert_close(gray[i : i + 1], TextureEmbed(alpha).double()(rgb[i : i + 1]))
        torch.testing.assert_close(extract(gray, levels)[i : i + 1], TextureExtract(alpha).double()(gray[i : i + 1]))


def test_conditioned_processor_uses_the_level():
    torch.manual_seed(0)
    post = Processor(3, 3, "identity", mlp=True, unet="u8_16", conditioned=True)
    for p in post.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(post(x, torch.tensor([-2.0])), post(x, torch.tensor([1.0])))
    plain = Processor(3, 3, "identity", mlp=True, unet="u8_16")
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.1)
    assert torch.equal(plain(x, torch.tensor([-2.0])), plain(x, torch.tensor([1.0])))  # unconditioned: level ignored


def test_step_scaled_corrections_are_proportional_to_the_quantiser_step():
    """step_scaled multiplies the learned corrections by 2**level (the step relative to IJG q50's)."""
    torch.manual_seed(1)
    plain = Processor(3, 3, "identity", mlp=True, unet="u8_16", conditioned=True)
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.1)
    scaled = Processor(3, 3, "identity", mlp=True, unet="u8_16", conditioned=True, step_scaled=True)
    scaled.load_state_dict(plain.state_dict())
    x, levels = torch.rand(2, 3, 16, 16), torch.tensor([-3.0, 1.5])
    correction = plain(x, levels) - x
    torch.testing.assert_close(scaled(x, levels) - x, correction * torch.exp2(levels)[:, None, None, None])
    with pytest.raises(InputError, match="step_scaled needs conditioned"):
        Processor(3, 3, "identity", mlp=True, step_scaled=True)

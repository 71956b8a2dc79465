"""The fused transform-quantize op against the same computation written as plain autograd ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sandwich.codecs.block_levels import FEATURES, TIE_TOLERANCE, quantize_levels, tile_step
from sandwich.codecs.blockcodec import transform_quantize
from sandwich.codecs.dct import block_dct, block_idct
from sandwich.errors import InputError


def _st(fn, u):
    """fn(round(u)) forward, grad of fn(u) backward."""
    return fn(u) + (fn(quantize_levels(u)) - fn(u)).detach()


def reference(planes, step, block, noise=None):
    """The op's documented forward and surrogate gradients, composed from autograd primitives."""
    n, c, h, w = planes.shape
    view = (n, c, h // block, block, w // block, block)
    tiled = tile_step(step, n, block)
    u = block_dct(planes, block).reshape(view) / tiled
    q = u + (quantize_levels(u) - u).detach() if noise is None else u + noise
    recon = block_idct((q * tiled).reshape(n, c, h, w), block)
    log_mag = lambda t: torch.log2(1 + t.abs())  # noqa: E731
    ac_mask = torch.ones(block, 1, block, dtype=torch.bool)
    ac_mask[0, 0, 0] = False
    ac = u * ac_mask
    dc = u[:, :, :, 0, :, 0].reshape(n, c, -1)
    diff = dc - torch.cat([torch.zeros_like(dc[..., :1]), dc[..., :-1]], dim=-1)
    features = torch.stack(
        [
            _st(log_mag, ac).sum(dim=(1, 2, 3, 4, 5)),
            _st(lambda t: t.abs().clamp(max=1), ac).sum(dim=(1, 2, 3, 4, 5)),
            (log_mag(diff) + (log_mag(quantize_levels(dc) - torch.cat([torch.zeros_like(dc[..., :1]), quantize_levels(dc)[..., :-1]], -1)) - log_mag(diff)).detach()).sum(dim=(1, 2)),
            _st(log_mag, dc).sum(dim=(1, 2)),
            torch.full((n,), float(c * (h // block) * (w // block)), dtype=planes.dtype),
        ],
        dim=1,
    )
    return recon, features



def make_step(kind: str, n: int, block: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    shape = {"flat": (), "table": (block, block), "per_image": (n,), "per_image_table": (n, block, block)}[kind]
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 6 + 2).requires_grad_(True)


@pytest.mark.parametrize("block", [4, 8, 16, 32])
@pytest.mark.parametrize("step_kind", ["flat", "table", "per_image", "per_image_table"])
def test_forward_and_gradients_match_reference(block: int, step_kind: str) -> None:
    n = 2
    gen = torch.Generator().manual_seed(block)
    planes = (torch.rand(n, 2, 2 * block, 3 * block, generator=gen, dtype=torch.float64) * 255 - 128).requires_grad_(True)
    step = make_step(step_kind, n, block)
    w_recon = torch.randn(planes.shape, generator=gen, dtype=torch.float64)
    w_feat = torch.randn(n, len(FEATURES), generator=gen, dtype=torch.float64)

    out = transform_quantize(planes, step, block)
    ref_recon, ref_feat = reference(planes, step, block)
    assert torch.allclose(out.recon, ref_recon, atol=1e-9)
    assert torch.allclose(out.features, ref_feat, atol=1e-9)

    grads = torch.autograd.grad((out.recon * w_recon).sum() + (out.features * w_feat).sum(), (planes, step))
    ref_grads = torch.autograd.grad((ref_recon * w_recon).sum() + (ref_feat * w_feat).sum(), (planes, step))
    for ours, ref in zip(grads, ref_grads):
        assert torch.allclose(ours, ref, rtol=1e-7, atol=1e-9)


def test_noise_mode_matches_reference_with_same_noise() -> None:
    planes = (torch.rand(1, 1, 16, 16, dtype=torch.float64) * 200 - 100).requires_grad_(True)
    step = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    out = transform_quantize(planes, step, 8, quantizer="noise")
    torch.manual_seed(5)
    u = block_dct(planes.detach(), 8).reshape(1, 1, 2, 8, 2, 8) / 7.0
    noise = torch.rand_like(u) - 0.5
    ref_recon, ref_feat = reference(planes, step, 8, noise=noise)
    assert torch.allclose(out.recon, ref_recon, atol=1e-9)
    assert torch.allclose(out.features, ref_feat, atol=1e-9)  # statistics are of the rounded levels in both modes
    g = torch.autograd.grad(out.recon.sum() + out.features.sum(), (planes, step))
    g_ref = torch.autograd.grad(ref_recon.sum() + ref_feat.sum(), (planes, step))
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(g, g_ref))


def test_statistics_count_integer_levels() -> None:
    """Statistics against a direct numpy count on the quantised levels of a real photo block set."""
    from sandwich.data.samples import load_photo

    gray = load_photo("skimage/rocket")[:64, :64, 1].astype(np.float64) - 128
    out = transform_quantize(torch.from_numpy(gray)[None, None], torch.tensor(10.0, dtype=torch.float64), 8)
    coef = block_dct(torch.from_numpy(gray)[None, None], 8)[0, 0].numpy()
    levels = np.sign(coef) * np.floor(np.abs(coef / 10) + 0.5 + TIE_TOLERANCE)  # near-ties count as ties
    blocks = levels.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)  # block index, 64 coefs
    dc, ac = blocks[:, 0], blocks[:, 1:]
    dc_diff = np.diff(dc, prepend=0)
    expected = [np.log2(1 + np.abs(ac)).sum(), (ac != 0).sum(), np.log2(1 + np.abs(dc_diff)).sum(), np.log2(1 + np.abs(dc)).sum(), 64]
    assert np.allclose(out.features[0].numpy(), expected)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="divisible by 8"):
        transform_quantize(torch.zeros(1, 1, 12, 16), torch.tensor(2.0))
    with pytest.raises(InputError, match="quantisation step of shape"):
        transform_quantize(torch.zeros(2, 1, 16, 16), torch.ones(3))
    with pytest.raises(InputError, match="quantizer"):
        transform_quantize(torch.zeros(1, 1, 16, 16), torch.tensor(2.0), quantizer="soft")

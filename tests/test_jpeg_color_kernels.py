"""The fused numba colour stages of the JPEG proxy against the torch composition they replace."""

from __future__ import annotations

import pytest
import torch

from sandwich.codecs.jpeg_proxy import proxy as proxy_module
from sandwich.codecs.blockcodec import CodedPlanes
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.kernels import numba_jpeg_color

SIZES = [(16, 16), (37, 53), (1, 1), (17, 8)]


def _torch_planes(x: torch.Tensor, subsampling: str) -> list[torch.Tensor]:
    return [g - 128.0 for g in proxy_module._sample_planes(x, subsampling)]


def _torch_rgb(luma: torch.Tensor, chroma: torch.Tensor, h: int, w: int, subsampling: str) -> torch.Tensor:
    return proxy_module._decoded_image([CodedPlanes(luma, luma, "luma"), CodedPlanes(chroma, chroma, "chroma")], h, w, subsampling)


@pytest.mark.parametrize("subsampling", ["444", "420"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_planes_matches_torch(subsampling: str, size: tuple[int, int], dtype: torch.dtype) -> None:
    """Samples beyond [0, 255] (clipped), odd sizes (padded): same planes, same gradient."""
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, *size, dtype=dtype, generator=generator) * 300 - 20
    grads = None
    results = []
    for fn in (numba_jpeg_color.to_planes, _torch_planes):
        leaf = x.clone().requires_grad_(True)
        planes = list(fn(leaf, subsampling))
        if grads is None:
            grads = [torch.randn(p.shape, dtype=dtype, generator=generator) for p in planes]
        sum((p * g).sum() for p, g in zip(planes, grads)).backward()
        results.append(([p.detach() for p in planes], leaf.grad))
    (ours, ours_grad), (ref, ref_grad) = results
    for a, b in zip(ours, ref):
        assert torch.equal(a, b)
    torch.testing.assert_close(ours_grad, ref_grad, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert ref_grad.abs().sum() > 0 and (ref_grad == 0).any()  # the clip blocked some samples, not all


@pytest.mark.parametrize("subsampling", ["444", "420"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_rgb_matches_torch(subsampling: str, size: tuple[int, int], dtype: torch.dtype) -> None:
    """Reconstructions beyond the sample range (clipped), odd sizes (cropped, up-sampled): same image
    (but for samples within float rounding of a rounding threshold), same gradients."""
    h, w = size
    generator = torch.Generator().manual_seed(2)
    hp, wp = -(-h // 16) * 16, -(-w // 16) * 16
    chroma_shape = (2, 2, hp // 2, wp // 2) if subsampling == "420" else (2, 2, hp, wp)
    luma = torch.rand(2, 1, hp, wp, dtype=dtype, generator=generator) * 320 - 160
    chroma = torch.rand(chroma_shape, dtype=dtype, generator=generator) * 320 - 160
    grad = torch.randn(2, 3, h, w, dtype=dtype, generator=generator)
    results = []
    for fn in (numba_jpeg_color.to_rgb, _torch_rgb):
        leaves = luma.clone().requires_grad_(True), chroma.clone().requires_grad_(True)
        rgb = fn(*leaves, h, w, subsampling)
        (rgb * grad).sum().backward()
        results.append((rgb.detach(), leaves[0].grad, leaves[1].grad))
    (ours, ours_luma, ours_chroma), (ref, ref_luma, ref_chroma) = results
    differ = ours != ref
    assert differ.float().mean() <= 1e-3 and (ours - ref).abs().max() <= 1
    if not differ.any():  # the same samples clipped: the gradients must agree
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(ours_luma, ref_luma, rtol=tol, atol=tol)
        torch.testing.assert_close(ours_chroma, ref_chroma, rtol=tol, atol=tol)
    assert ref_luma.abs().sum() > 0 and (ref_luma == 0).any()


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_proxy_fused_and_torch_colour_agree_on_a_photo(photo_crop, subsampling: str, monkeypatch) -> None:
    """The whole proxy with the fused colour stages (``impl="numba"``) against the torch composition
    around the same numba block codec: same decode, same bits statistics, same step gradient."""
    x = torch.from_numpy(photo_crop).permute(2, 0, 1)[None].float()
    luma, chroma = (torch.tensor(t, dtype=torch.float32) for t in ijg_tables(50))
    results = []
    for fused in (True, False):
        step = luma.clone().requires_grad_(True)
        leaf = x.clone().requires_grad_(True)
        monkeypatch.setattr(proxy_module, "_fused_colour", lambda *_, fused=fused: fused)
        out = proxy_module.jpeg_proxy(leaf, step, chroma, subsampling, impl="numba")
        (out.recon.mean() + sum(p.features.sum() for p in out.planes)).backward()
        results.append((out.recon.detach(), torch.stack([p.features for p in out.planes]), step.grad, leaf.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fused_colour_is_chosen_where_it_applies(monkeypatch) -> None:
    """``auto`` and ``numba`` on CPU float tensors take the fused stages; ``reference``, float16 and the
    environment's ``SANDWICH_KERNELS=reference`` take the torch composition."""
    x = torch.zeros(1, 3, 8, 8)
    assert proxy_module._fused_colour(x, "auto") and proxy_module._fused_colour(x, "numba")
    assert not proxy_module._fused_colour(x, "reference") and not proxy_module._fused_colour(x, "compiled")
    assert not proxy_module._fused_colour(x.half(), "auto")
    monkeypatch.setenv("SANDWICH_KERNELS", "reference")
    assert not proxy_module._fused_colour(x, None)

"""Block DCT against a float64 reference (scipy), its inverse, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from sandwich.codecs.dct import BLOCK_SIZES, block_dct, block_idct, dct_matrix
from sandwich.errors import InputError


def reference_block_dct(x: np.ndarray, block: int) -> np.ndarray:
    """Per-block orthonormal 2-D DCT-II in float64 with scipy, spatial layout."""
    out = np.empty_like(x, dtype=np.float64)
    h, w = x.shape[-2:]
    for i in range(0, h, block):
        for j in range(0, w, block):
            out[..., i : i + block, j : j + block] = scipy.fft.dctn(
                x[..., i : i + block, j : j + block].astype(np.float64), type=2, norm="ortho", axes=(-2, -1)
            )
    return out


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_matches_float64_reference(block: int) -> None:
    rng = np.random.default_rng(block)
    x = rng.uniform(-128, 128, size=(2, 3, 2 * block, 3 * block)).astype(np.float32)
    ours = block_dct(torch.from_numpy(x), block).double().numpy()
    ref = reference_block_dct(x, block)
    assert np.abs(ours - ref).max() < 1e-3  # float32 transform on values up to 128
    back = block_idct(torch.from_numpy(ref.astype(np.float32)), block).double().numpy()
    assert np.abs(back - x).max() < 1e-3


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_matrix_is_orthonormal(block: int) -> None:
    d = dct_matrix(block, torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(block, dtype=torch.float64), atol=1e-12)


def test_float64_path_is_exact_to_reference() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, size=(1, 1, 16, 16))
    ours = block_dct(torch.from_numpy(x), 8).numpy()
    assert np.abs(ours - reference_block_dct(x, 8)).max() < 1e-12


@pytest.mark.parametrize("block", [4, 8])
def test_gradcheck(block: int) -> None:
    x = torch.randn(1, 2, 2 * block, block, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: block_dct(t, block), (x,))
    assert torch.autograd.gradcheck(lambda t: block_idct(t, block), (x,))
    assert torch.autograd.gradgradcheck(lambda t: block_dct(t, block).square().sum(), (x,))


def test_inverse_and_errors() -> None:
    x = torch.randn(1, 1, 8, 16)
    assert torch.allclose(block_idct(block_dct(x, 8), 8), x, atol=1e-5)
    with pytest.raises(InputError, match="divisible by 8"):
        block_dct(torch.randn(1, 1, 9, 16), 8)
    with pytest.raises(InputError, match="block size 6"):
        block_dct(torch.randn(1, 1, 12, 12), 6)

"""Sample format: arrays of d-bit integers <-> tensors on [0, 1], and the d-bit MSE / PSNR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sandwich.errors import InputError
from sandwich.metrics.psnr import mse, psnr, psnr_db
from sandwich.sample_format import dtype_for, peak, to_array, to_tensor


@pytest.mark.parametrize("bit_depth", [8, 10, 12, 16])
@pytest.mark.parametrize("channels", [1, 3, 6])
def test_round_trip_is_exact_at_every_bit_depth_and_channel_count(bit_depth, channels):
    rng = np.random.default_rng(bit_depth + channels)
    top = 2**bit_depth - 1
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    array = rng.integers(0, top + 1, size=shape).astype(np.uint8 if bit_depth == 8 else np.uint16)
    array.flat[0], array.flat[-1] = 0, top  # both ends of the range
    tensor = to_tensor(array, bit_depth)
    assert tensor.dtype == torch.float32 and tensor.shape == (channels, 5, 7)
    planes = array[None] if channels == 1 else array.transpose(2, 0, 1)
    np.testing.assert_allclose(tensor.numpy(), planes / top, rtol=0, atol=1e-7)  # float64 reference
    back = to_array(tensor, bit_depth)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    assert np.array_equal(to_tensor(array, bit_depth, normalise=False).numpy(), planes.astype(np.float32))


def test_to_array_rounds_to_nearest_and_clips():
    values = torch.tensor([[[-0.2, 0.0, 0.6 / 255, 1.4 / 255, 127.6 / 255, 1.0, 1.3]]])
    assert to_array(values).tolist() == [[0, 0, 1, 1, 128, 255, 255]]
    assert to_array(torch.tensor([[[0.6 / 1023, 1022.4 / 1023]]]), 10).tolist() == [[1, 1022]]


def test_wrong_dtype_depth_or_value_is_refused():
    with pytest.raises(InputError, match="uint16"):
        to_tensor(np.zeros((2, 2), np.uint8), 10)
    with pytest.raises(InputError, match="uint8"):
        to_tensor(np.zeros((2, 2), np.uint16), 8)
    with pytest.raises(InputError, match="does not fit in 10 bits"):
        to_tensor(np.full((2, 2), 1024, np.uint16), 10)
    with pytest.raises(InputError, match="bit depth 7"):
        peak(7)
    assert dtype_for(8) is np.uint8 and dtype_for(9) is np.uint16 and peak(12) == 4095


@pytest.mark.parametrize("bit_depth", [8, 10, 16])
def test_mse_and_psnr_on_the_d_bit_scale_match_numpy(bit_depth):
    rng = np.random.default_rng(1)
    top = 2**bit_depth - 1
    a = rng.integers(0, top + 1, size=(2, 3, 8, 9))
    b = np.clip(a + rng.integers(-9, 10, size=a.shape), 0, top)
    ta, tb = torch.tensor(a / top, dtype=torch.float64), torch.tensor(b / top, dtype=torch.float64)
    reference = ((a - b) ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(mse(ta, tb, bit_depth).numpy(), reference, rtol=1e-9)
    np.testing.assert_allclose(psnr(mse(ta, tb, bit_depth), bit_depth).numpy(), 10 * np.log10(top**2 / reference), rtol=1e-9)
    assert psnr_db(a[0], b[0], bit_depth) == pytest.approx(10 * math.log10(top**2 / reference[0]), rel=1e-12)
    assert psnr_db(a[0], a[0], bit_depth) == math.inf

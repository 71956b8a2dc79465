"""Each quantizer's forward and backward."""

from __future__ import annotations

import pytest
import torch

from sandwich.codecs.quantize import (
    param_from_step,
    round_half_away,
    round_samples,
    ste_floor,
    step_from_param,
)
from sandwich.errors import InputError


def test_round_half_away_from_zero() -> None:
    x = torch.tensor([-2.5, -1.5, -0.5, -0.49, 0.49, 0.5, 1.5, 2.5, 3.2])
    assert round_half_away(x).tolist() == [-3, -2, -1, -0, 0, 1, 2, 3, 3]


def test_ste_floor_forward_and_identity_backward() -> None:
    x = torch.tensor([-1.6, -0.4, 0.7, 2.5], requires_grad=True)
    y = ste_floor(x)
    assert y.tolist() == [-2.0, -1.0, 0.0, 2.0]
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    (y * weights).sum().backward()
    assert torch.equal(x.grad, weights)


def test_round_samples_clips_and_masks_gradient() -> None:
    x = torch.tensor([-3.0, 0.2, 100.5, 254.6, 300.0], requires_grad=True)
    y = round_samples(x)
    assert y.tolist() == [0.0, 0.0, 101.0, 255.0, 255.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # blocked only where floor(x + 0.5) left [0, 255]


def test_round_samples_gradient_is_that_of_clamp_at_the_bounds() -> None:
    """At the clip bounds themselves, and with a per-channel offset, the gradient is torch.clamp's (the
    floor passes it straight through)."""
    x = torch.tensor([[-0.5, -0.51, 10.2, 255.499, 255.5], [-0.25, 0.0, 17.0, 255.75, 255.74]], requires_grad=True)
    offset = torch.tensor([[0.5], [0.25]])
    round_samples(x, offset=offset).sum().backward()
    expected = x.detach().clone().requires_grad_(True)
    (expected + offset).clamp(0.0, 255.999).sum().backward()
    assert torch.equal(x.grad, expected.grad)


def test_step_parameterisation_round_trip() -> None:
    steps = torch.tensor([1.0, 2.5, 16.0, 200.0])
    assert torch.allclose(step_from_param(param_from_step(steps)), steps)
    assert float(step_from_param(torch.tensor(-100.0))) > 0.98  # ELU keeps Δ above 0.99
    with pytest.raises(InputError):
        param_from_step(torch.tensor(0.5))

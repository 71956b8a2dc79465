"""Rounding with surrogate gradients, and the trainable step-size parameterisation.

* :func:`round_half_away` - C's ``round`` (what libjpeg does to DCT coefficients; no gradient).
* :func:`ste_floor` - forward ``floor(x)``; backward identity.
* :func:`round_samples` - integer samples ``floor(x + offset)``, clipped, with a straight-through floor.
* :func:`step_from_param` / :func:`param_from_step` - the published trainable quantisation step.

The proxies' coefficient quantisers (straight-through rounding, uniform noise) are
:data:`~sandwich.codecs.block_levels.QUANTIZER_MODES`, which every kernel shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sandwich.errors import InputError


def round_half_away(x: Tensor) -> Tensor:
    """Round to the nearest integer, ties away from zero (C's ``round``; not differentiable)."""
    return torch.trunc(x + torch.copysign(torch.tensor(0.5, dtype=x.dtype, device=x.device), x))


def ste_floor(x: Tensor) -> Tensor:
    """Forward ``floor(x)``; backward identity (bit-depth truncation, e.g. 10 -> 8 bits as ``floor(B / 2**t)``).
    Shapes and dtype preserved."""
    return x + (torch.floor(x) - x).detach()


def step_from_param(param: Tensor) -> Tensor:
    """The published trainable step: ``Δ = ELU(param, α=0.01) + 1`` (so ``Δ > 0.99``, smooth in param)."""
    return F.elu(param, alpha=0.01) + 1.0


def param_from_step(step: Tensor) -> Tensor:
    """Inverse of :func:`step_from_param` for ``step >= 1`` (the useful range for 8-bit codecs)."""
    if torch.any(step < 1):
        raise InputError("initial quantisation step must be >= 1")
    return step - 1.0


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, offset: float | Tensor) -> Tensor:  # noqa: D102
        return torch.floor(x + offset)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad, None


class _ClipFloorSTE(torch.autograd.Function):
    """``floor(clamp(x + offset, 0, hi))``; backward: the gradient where ``0 < x + offset < hi``, else 0
    (``clamp``'s own rule).

    Saves a boolean mask (1 byte per sample) instead of a float tensor and computes in place: fewer
    whole-tensor passes than ``clamp`` followed by :class:`_FloorSTE`, in both directions.
    """

    @staticmethod
    def forward(ctx, x: Tensor, offset: float | Tensor, hi: float) -> Tensor:  # noqa: D102
        shifted = x + offset
        inside = (shifted > 0.0) & (shifted < hi)
        ctx.save_for_backward(inside)
        return shifted.clamp_(0.0, hi).floor_()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


CLIP_MARGIN = 0.999  # round_samples clips to [0, peak + CLIP_MARGIN] before its floor


def round_samples(x: Tensor, offset: float | Tensor = 0.5, peak: float | None = 255.0) -> Tensor:
    """Integer samples ``floor(x + offset)``, clipped to ``[0, peak]`` unless ``peak`` is None.

    ``offset=0.5`` rounds half up (libjpeg's ``+ ONE_HALF`` before a shift); ``offset`` may be a
    tensor broadcasting against ``x`` (e.g. per channel). Backward: the floor is straight-through (the
    gradient passes unchanged, without a pass over the tensor); the clip passes it exactly where
    ``floor(x + offset)`` lies in ``[0, peak]`` (saturated values included) and blocks it outside.
    Pass ``peak=None`` where the value cannot leave the range (it saves two passes).
    """
    if peak is None:
        return _FloorSTE.apply(x, offset)
    return _ClipFloorSTE.apply(x, offset, peak + CLIP_MARGIN)

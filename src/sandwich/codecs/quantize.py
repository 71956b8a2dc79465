"""Quantizers with surrogate gradients, and the trainable step-size parameterisation.

Each quantizer maps a real tensor to (nearly) integer levels and documents its forward and backward:

* :func:`ste_round` - forward: round half away from zero (what libjpeg does to DCT coefficients);
  backward: identity (straight-through estimator).
* :func:`noise_round` - forward: ``x + u`` with ``u ~ U(-1/2, 1/2)`` i.i.d. (a training-time stand-in
  for rounding with the same error variance); backward: identity (the noise is a constant).
* :func:`ste_floor` - forward: ``floor(x)`` (bit-depth truncation, e.g. 10 -> 8 bits as
  ``floor(B / 2**t)``); backward: identity.

:func:`quantize` applies a quantizer to ``x / step`` and scales back, ``Q(x) = q(x / step) * step``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from sandwich.errors import InputError


def round_half_away(x: Tensor) -> Tensor:
    """Round to the nearest integer, ties away from zero (C's ``round``; not differentiable)."""
    return torch.trunc(x + torch.copysign(torch.tensor(0.5, dtype=x.dtype, device=x.device), x))


def ste_round(x: Tensor) -> Tensor:
    """Forward ``round_half_away(x)``; backward identity. Shapes and dtype preserved."""
    return x + (round_half_away(x) - x).detach()


def ste_floor(x: Tensor) -> Tensor:
    """Forward ``floor(x)``; backward identity. Shapes and dtype preserved."""
    return x + (torch.floor(x) - x).detach()


def noise_round(x: Tensor) -> Tensor:
    """Forward ``x + U(-1/2, 1/2)``; backward identity. Uses the global torch RNG."""
    return x + (torch.rand_like(x) - 0.5)


QUANTIZERS: dict[str, Callable[[Tensor], Tensor]] = {
    "ste": ste_round,
    "noise": noise_round,
    "floor": ste_floor,
}


def get_quantizer(name: str) -> Callable[[Tensor], Tensor]:
    """The quantizer called ``name`` (``"ste"``, ``"noise"`` or ``"floor"``)."""
    if name not in QUANTIZERS:
        raise InputError(f"quantizer {name!r} not one of {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name]


def quantize(x: Tensor, step: Tensor | float, quantizer: str = "ste") -> Tensor:
    """``q(x / step) * step`` with the named quantizer; ``step`` broadcasts against ``x``."""
    return get_quantizer(quantizer)(x / step) * step


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

"""Global tone curves: the same fixed map applied to every sample, a classic way to fit a high-bit-depth
source into fewer code values (and, with the inverse exponent, to expand it back)."""

from __future__ import annotations

from torch import Tensor, nn

from sandwich.errors import InputError


class PowerCurve(nn.Module):
    """``x -> x ** exponent`` on [0, 1] (values clipped to [0, 1] first), any ``(N, C, H, W)``.

    ``PowerCurve(1 / g)`` followed by ``PowerCurve(g)`` is the identity; ``g > 1`` spends more code values
    on the dark end. Example: ``PowerCurve(0.5)(torch.tensor([0.25]))`` is ``tensor([0.5])``.
    """

    def __init__(self, exponent: float) -> None:
        super().__init__()
        if not float(exponent) > 0:
            raise InputError(f"bypass power: exponent={exponent!r} must be > 0")
        self.exponent = float(exponent)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return x.clamp(0, 1) ** self.exponent

"""The quantiser and entropy-statistics definitions every block-codec kernel shares.

The torch reference, the numba and the Triton kernels (:mod:`sandwich.codecs.kernels`) and the op's
entry point (:mod:`sandwich.codecs.blockcodec`, whose docstring defines the statistics) all take them
from here, so that none of them reaches into another's internals.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sandwich.codecs.quantize import round_half_away
from sandwich.errors import InputError

FEATURES = ("ac_log", "ac_nonzero", "dc_diff_log", "dc_log", "blocks")
QUANTIZER_MODES = ("ste", "noise")
TIE_TOLERANCE = 1e-4  # in units of the step; float32 DCT error is ~1e-5 of a step of 1 at 8-bit scale


def tile_step(step: Tensor, n: int, block: int) -> Tensor:
    """Broadcast a step to the block view ``(N, C, H/b, b, W/b, b)`` as a 6-D tensor.

    Accepted ``step`` shapes: ``()`` flat; ``(b, b)`` a per-frequency table; ``(N,)`` a flat step per
    image; ``(N, b, b)`` a table per image.
    """
    if step.dim() == 0:
        return step.view(1, 1, 1, 1, 1, 1)
    if step.shape == (block, block):
        return step.view(1, 1, 1, block, 1, block)
    if step.shape == (n,):
        return step.view(n, 1, 1, 1, 1, 1)
    if step.shape == (n, block, block):
        return step.view(n, 1, 1, block, 1, block)
    raise InputError(
        f"quantisation step of shape {tuple(step.shape)} fits neither (), ({block},{block}), ({n},) nor ({n},{block},{block})"
    )


def quantize_levels(u: Tensor) -> Tensor:
    """Integer levels of ``u = c / Δ``: round half away from zero, near-ties (:data:`TIE_TOLERANCE`) as ties."""
    return round_half_away(u + torch.copysign(torch.tensor(TIE_TOLERANCE, dtype=u.dtype, device=u.device), u))


def dc_values(blocks: Tensor) -> Tensor:
    """``(N, C, Hb, b, Wb, b)`` -> ``(N, C, Hb*Wb)`` DC values in raster block order (a copy)."""
    n, c = blocks.shape[:2]
    return blocks[:, :, :, 0, :, 0].reshape(n, c, -1)


def log_feature_grad(u: Tensor) -> Tensor:
    """d/du log2(1 + |u|)."""
    return torch.sign(u) / ((1.0 + u.abs()) * math.log(2.0))

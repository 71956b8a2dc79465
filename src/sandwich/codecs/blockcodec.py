"""The proxy's hot path: block DCT -> quantise -> dequantise -> inverse DCT, on one plane batch.

This is the part every transform-codec proxy shares (JPEG, and the JPEG-style proxy used for
HEVC-intra) and the part the fused kernels replace.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from sandwich.codecs.dct import block_dct, block_idct
from sandwich.codecs.quantize import get_quantizer
from sandwich.errors import InputError


@dataclass
class CodedPlanes:
    """What a block codec produced for a batch of planes.

    Attributes:
        recon: ``(N, C, H, W)`` reconstructed samples (before rounding / clipping), same units as input.
        scaled: ``(N, C, H, W)`` coefficients divided by their step, ``c / Δ``, in spatial layout
            (before quantisation; rate models round these themselves).
        block: the transform block size.
        kind: ``"luma"`` or ``"chroma"`` - which entropy-coder statistics the planes follow.
    """

    recon: Tensor
    scaled: Tensor
    block: int
    kind: str


def tile_step(step: Tensor, n: int, block: int) -> Tensor:
    """Broadcast a step to the block view ``(N, 1, 1, b, 1, b)`` used by :func:`transform_quantize`.

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
    raise InputError(f"quantisation step of shape {tuple(step.shape)} fits neither (), ({block},{block}), ({n},) nor ({n},{block},{block})")


def transform_quantize(planes: Tensor, step: Tensor, block: int = 8, quantizer: str = "ste", kind: str = "luma") -> CodedPlanes:
    """Code ``planes`` with a block DCT and a uniform quantiser of step ``step``.

    Args:
        planes: ``(N, C, H, W)`` samples centred at 0 (e.g. pixel - 128), H and W divisible by ``block``.
        step: quantisation step(s), see :func:`tile_step`; same units as the DCT coefficients.
        block: DCT block size (4, 8, 16, 32).
        quantizer: ``"ste"`` (round, straight-through) or ``"noise"`` (additive uniform noise).
        kind: passed through to the result for the rate model.

    Returns:
        :class:`CodedPlanes` with the dequantised inverse transform and the scaled coefficients.
    """
    n, c, h, w = planes.shape
    view = (n, c, h // block, block, w // block, block)
    tiled = tile_step(step, n, block)
    scaled = (block_dct(planes, block).reshape(view) / tiled)
    dequant = (get_quantizer(quantizer)(scaled) * tiled).reshape(n, c, h, w)
    return CodedPlanes(recon=block_idct(dequant, block), scaled=scaled.reshape(n, c, h, w), block=block, kind=kind)

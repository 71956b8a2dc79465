"""Orthonormal block DCT-II and its inverse, as separable matrix products.

For a block size ``b`` the 1-D DCT matrix is ``D[k, i] = c_k cos(pi (2i + 1) k / (2b))`` with
``c_0 = sqrt(1/b)`` and ``c_k = sqrt(2/b)``; it is orthonormal (``D @ D.T == I``), so the transform
preserves energy and its inverse is its transpose. For 8x8 blocks of samples centred at 0 this is
exactly the scaling of JPEG's forward DCT: a quantisation step equals a JPEG table entry.

Layout: coefficients stay where their block's pixels were ("spatial layout"): coefficient ``(u, v)`` of
the block at block-row ``i`` and block-column ``j`` sits at ``[..., i*b + u, j*b + v]``. Each transform is
two matrix products on views of the input (no permutes, no copies besides the outputs); the autograd
rule of the forward transform is the inverse transform of the gradient and vice versa.

Example:
    >>> x = torch.rand(2, 3, 16, 24)
    >>> y = block_dct(x, 8)
    >>> torch.allclose(block_idct(y, 8), x, atol=1e-5)
    True
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from sandwich.errors import InputError

BLOCK_SIZES = (4, 8, 16, 32)


@functools.lru_cache(maxsize=None)
def _dct_matrix_cached(block: int, dtype: torch.dtype, device: str) -> Tensor:
    k = torch.arange(block, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(block, dtype=torch.float64).unsqueeze(0)
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * block)) * math.sqrt(2.0 / block)
    matrix[0] /= math.sqrt(2.0)
    return matrix.to(dtype=dtype, device=device)


def dct_matrix(block: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The ``(block, block)`` orthonormal DCT-II matrix ``D`` (rows are basis functions)."""
    if block not in BLOCK_SIZES:
        raise InputError(f"DCT block size {block} not one of {BLOCK_SIZES}")
    return _dct_matrix_cached(block, dtype, str(torch.device(device)))


def separable(x: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """``left @ X_blk @ right`` for every ``b x b`` block ``X_blk`` of ``x`` (..., H, W)."""
    b = left.shape[0]
    *lead, h, w = x.shape
    cols = torch.matmul(left, x.reshape(*lead, h // b, b, w))  # transform along H within blocks
    return torch.matmul(cols.reshape(*lead, h, w // b, b), right).reshape(*lead, h, w)


def _check_shape(x: Tensor, block: int) -> None:
    if x.dim() < 2 or x.shape[-1] % block or x.shape[-2] % block:
        raise InputError(f"block transform needs H and W divisible by {block}, got shape {tuple(x.shape)}")


class _BlockDCT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, block: int, inverse: bool) -> Tensor:  # noqa: D102
        d = dct_matrix(block, x.dtype, x.device)
        ctx.block, ctx.inverse = block, inverse
        return separable(x, d.T, d) if inverse else separable(x, d, d.T)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        d = dct_matrix(ctx.block, grad.dtype, grad.device)
        # Orthonormal: the adjoint of the forward transform is the inverse transform and vice versa.
        return (separable(grad, d, d.T) if ctx.inverse else separable(grad, d.T, d)), None, None


def block_dct(x: Tensor, block: int = 8) -> Tensor:
    """Orthonormal 2-D DCT-II of every ``block x block`` tile of ``x``.

    Args:
        x: ``(..., H, W)`` float tensor, H and W divisible by ``block``; any value range.
        block: 4, 8, 16 or 32.

    Returns:
        ``(..., H, W)`` coefficients in spatial layout (see module docstring), same units as ``x``.
    """
    _check_shape(x, block)
    dct_matrix(block)  # validates the block size
    return _BlockDCT.apply(x, block, False)


def block_idct(y: Tensor, block: int = 8) -> Tensor:
    """Inverse of :func:`block_dct`: ``(..., H, W)`` coefficients -> ``(..., H, W)`` samples."""
    _check_shape(y, block)
    dct_matrix(block)
    return _BlockDCT.apply(y, block, True)

"""The torch implementation of the transform-quantize op: the reference, and the fallback everywhere.

Three functions of the same computation (the math is in :mod:`sandwich.codecs.blockcodec`):

* :func:`forward` / :func:`backward` - whole-tensor passes with the hand-derived backward; these are the
  op's torch kernel (any device under ``SANDWICH_KERNELS=reference``; dtypes the fused kernels do not
  take), and what the numba and Triton kernels are tested against. ``backward`` recomputes
  the coefficients from the input instead of saving them, so the op saves nothing of the input's size
  besides the input itself (one more block DCT in the backward pass);
* :func:`composite` - the same forward written with autograd primitives (block DCT, straight-through
  rounding, sums): the "eager composition" the fused kernels are measured against, and what
  ``torch.compile`` can fuse end to end.

Edges: ``H`` and ``W`` need not be multiples of the block. Partial edge blocks are completed by
repeating the last row / column (replicate padding, what libjpeg and the JPEG proxy do), the padded
blocks are coded and counted like any other, and the reconstruction is cropped back to ``H x W``; the
gradient of the padding folds the padded rows / columns back onto the last real one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sandwich.codecs.block_levels import FEATURES, dc_values, log_feature_grad, quantize_levels, tile_step
from sandwich.codecs.dct import block_dct, block_idct, dct_matrix, separable


def padded_size(h: int, w: int, block: int) -> tuple[int, int]:
    """``(Hp, Wp)``: ``H`` and ``W`` rounded up to whole blocks (the coefficient grid, and the noise shape)."""
    return -(-h // block) * block, -(-w // block) * block


def _pad(x: Tensor, block: int) -> Tensor:
    h, w = x.shape[-2:]
    hp, wp = padded_size(h, w, block)
    return x if (hp, wp) == (h, w) else F.pad(x, (0, wp - w, 0, hp - h), mode="replicate")


def _fold(g: Tensor, h: int, w: int) -> Tensor:
    """Adjoint of :func:`_pad`: add the padded rows / columns onto the last real one, crop (modifies ``g``)."""
    if g.shape[-2] > h:
        g[..., h - 1, :] += g[..., h:, :].sum(dim=-2)
        g = g[..., :h, :]
    if g.shape[-1] > w:
        g[..., :, w - 1] += g[..., :, w:].sum(dim=-1)
        g = g[..., :w]
    return g.contiguous()


def _features(u: Tensor, levels: Tensor, dc_u: Tensor) -> Tensor:
    """``(N, 5)`` statistics of :data:`~sandwich.codecs.blockcodec.FEATURES` from the levels.

    The sums accumulate in float64 (a float32 sum of a million log terms drifts by 1e-5 under
    ``torch.compile``'s reductions); the result has ``u``'s dtype.
    """
    n, c, hb, _, wb, _ = u.shape
    acc = torch.float64
    mags = levels.abs()
    log_mag = torch.log2(mags + 1.0)
    dc_log = dc_values(log_mag).sum(dim=(1, 2), dtype=acc)
    ac_log = log_mag.sum(dim=(1, 2, 3, 4, 5), dtype=acc) - dc_log
    nonzero = (mags > 0).sum(dim=(1, 2, 3, 4, 5)) - (dc_values(mags) > 0).sum(dim=(1, 2))
    count = torch.full_like(ac_log, float(c * hb * wb))
    return torch.stack([ac_log, nonzero.to(acc), dc_diff_log(dc_u), dc_log, count], dim=1).to(u.dtype)


def dc_diff_log(dc_u: Tensor) -> Tensor:
    """``(N,)`` float64 ``Σ log2(1 + |q_DC - q_DC,previous|)`` from ``(N, C, L)`` DC ``u`` in raster block order."""
    dc = quantize_levels(dc_u)
    dc_diff = torch.diff(dc, dim=-1, prepend=torch.zeros_like(dc[..., :1]))
    return torch.log2(dc_diff.abs() + 1.0).sum(dim=(1, 2), dtype=torch.float64)


def forward(planes: Tensor, step: Tensor, block: int, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """The op's forward: ``(recon (N,C,H,W), features (N,5), dc (N,C,Hb,Wb))``.

    ``dc`` is ``u = c / Δ`` at the DC positions (unrounded), saved for the backward pass's DC-difference
    terms. ``noise`` (``"noise"`` quantiser) is ``(N, C, Hp, Wp)`` in the coefficients' spatial layout.
    """
    return forward_with_matrix(planes, step, dct_matrix(block, planes.dtype, planes.device), noise)


def forward_with_matrix(planes: Tensor, step: Tensor, d: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`forward` with the DCT matrix ``d`` given (what ``torch.compile`` compiles)."""
    block = d.shape[0]
    n, c, h, w = planes.shape
    x = _pad(planes, block)
    hp, wp = x.shape[-2:]
    view = (n, c, hp // block, block, wp // block, block)
    tiled = tile_step(step, n, block)
    u = separable(x, d, d.T).view(view).div_(tiled)
    levels = quantize_levels(u)
    dc_u = dc_values(u)
    features = _features(u, levels, dc_u)
    coded = levels if noise is None else u + noise.view(view)
    recon = separable(coded.mul_(tiled).view(n, c, hp, wp), d.T, d)
    if (hp, wp) != (h, w):
        recon = recon[..., :h, :w].contiguous()
    return recon, features, dc_u.reshape(n, c, hp // block, wp // block).contiguous()


def dc_grad(dc_u: Tensor, grad_features: Tensor) -> Tensor:
    """``(N, C, Hb*Wb)`` gradient of the DC statistics (``dc_diff_log``, ``dc_log``) w.r.t. the DC ``u``."""
    n = dc_u.shape[0]
    dc_diff = torch.diff(dc_u, dim=-1, prepend=torch.zeros_like(dc_u[..., :1]))
    g_diff = log_feature_grad(dc_diff) * grad_features[:, 2].view(n, 1, 1)
    g_dc = g_diff - F.pad(g_diff[..., 1:], (0, 1))
    return g_dc + log_feature_grad(dc_u) * grad_features[:, 3].view(n, 1, 1)


def backward(
    grad_recon: Tensor,
    grad_features: Tensor,
    planes: Tensor,
    step: Tensor,
    dc: Tensor,
    block: int,
    noise: Tensor | None,
    need_planes: bool,
    need_step: bool,
) -> tuple[Tensor, Tensor]:
    """The op's backward: ``(grad_planes, grad_step)``; an unneeded one is an empty tensor."""
    d = dct_matrix(block, planes.dtype, planes.device)
    return backward_with_matrix(grad_recon, grad_features, planes, step, dc, d, noise, need_planes, need_step)


def backward_with_matrix(
    grad_recon: Tensor,
    grad_features: Tensor,
    planes: Tensor,
    step: Tensor,
    dc: Tensor,
    d: Tensor,
    noise: Tensor | None,
    need_planes: bool,
    need_step: bool,
) -> tuple[Tensor, Tensor]:
    """:func:`backward` with the DCT matrix ``d`` given (what ``torch.compile`` compiles)."""
    block = d.shape[0]
    n, c, h, w = planes.shape
    x = _pad(planes, block)
    hp, wp = x.shape[-2:]
    hb, wb = hp // block, wp // block
    view = (n, c, hb, block, wb, block)
    tiled = tile_step(step, n, block)
    u = separable(x, d, d.T).view(view).div_(tiled)
    if (hp, wp) != (h, w):
        grad_recon = F.pad(grad_recon, (0, wp - w, 0, hp - h))
    # Gradient w.r.t. the dequantised coefficients q·Δ (adjoint of the inverse DCT).
    g_coded = separable(grad_recon, d, d.T).view(view)
    # Rate statistics, differentiated as functions of the unrounded u.
    gf = grad_features.view(n, len(FEATURES), 1, 1, 1, 1, 1)
    g_feat = log_feature_grad(u) * gf[:, 0] + torch.sign(u) * (u.abs() < 1) * gf[:, 1]
    g_feat[:, :, :, 0, :, 0] = dc_grad(dc.reshape(n, c, hb * wb), grad_features).view(n, c, hb, wb)
    grad_planes = grad_step = planes.new_empty(0)
    if need_planes:
        # Straight-through rounding: d(q·Δ)/du = Δ.
        g_u = g_coded * tiled + g_feat
        grad_planes = _fold(separable(g_u.div_(tiled).view(n, c, hp, wp), d.T, d), h, w)
    if need_step:
        levels = u + noise.view(view) if noise is not None else quantize_levels(u)
        # recon depends on Δ through q(c/Δ)·Δ -> q - u; the statistics through u = c/Δ -> -u/Δ.
        g_tiled = g_coded * (levels - u) - g_feat * u / tiled
        grad_step = g_tiled.sum_to_size(tiled.shape).reshape(step.shape)
    return grad_planes, grad_step


def _st(fn, u: Tensor) -> Tensor:
    """``fn(levels(u))`` forward, the gradient of ``fn(u)`` backward."""
    return fn(u) + (fn(quantize_levels(u)) - fn(u)).detach()


def _log1p_abs(t: Tensor) -> Tensor:
    return torch.log2(1 + t.abs())


def composite(planes: Tensor, step: Tensor, block: int, noise: Tensor | None) -> tuple[Tensor, Tensor]:
    """The op's ``(recon, features)`` from autograd primitives (same values and surrogate gradients)."""
    n, c, h, w = planes.shape
    x = _pad(planes, block)
    hp, wp = x.shape[-2:]
    view = (n, c, hp // block, block, wp // block, block)
    tiled = tile_step(step, n, block)
    u = block_dct(x, block).reshape(view) / tiled
    q = u + (quantize_levels(u) - u).detach() if noise is None else u + noise.view(view)
    recon = block_idct((q * tiled).reshape(n, c, hp, wp), block)[..., :h, :w]
    ac_mask = torch.ones(block, 1, block, dtype=torch.bool, device=planes.device)
    ac_mask[0, 0, 0] = False
    ac = u * ac_mask
    dc = u[:, :, :, 0, :, 0].reshape(n, c, -1)
    prev = torch.cat([torch.zeros_like(dc[..., :1]), dc[..., :-1]], dim=-1)
    level_dc = quantize_levels(dc)
    level_prev = torch.cat([torch.zeros_like(level_dc[..., :1]), level_dc[..., :-1]], dim=-1)
    diff = _log1p_abs(dc - prev)
    features = torch.stack(
        [
            _st(_log1p_abs, ac).sum(dim=(1, 2, 3, 4, 5)),
            _st(lambda t: t.abs().clamp(max=1), ac).sum(dim=(1, 2, 3, 4, 5)),
            (diff + (_log1p_abs(level_dc - level_prev) - diff).detach()).sum(dim=(1, 2)),
            _st(_log1p_abs, dc).sum(dim=(1, 2)),
            torch.full((n,), float(c * view[2] * view[4]), dtype=planes.dtype, device=planes.device),
        ],
        dim=1,
    )
    return recon, features


"""The proxy's hot path as one autograd op: block DCT -> quantise -> rate statistics -> dequantise ->
inverse DCT, on a batch of planes.

This is the part every transform-codec proxy shares (JPEG, and the JPEG-style proxy used for
HEVC-intra) and the part the fused GPU kernels replace. Written as one ``torch.autograd.Function``
with a hand-derived backward, it runs a handful of whole-tensor passes instead of the ~40 of the
equivalent autograd graph.

Forward, with ``c = DCT(x)`` and ``u = c / Δ`` (spatial layout, see :mod:`sandwich.codecs.dct`):

* levels ``q = round_half_away(u)`` (``"ste"``) or ``q = u + U(-1/2, 1/2)`` (``"noise"``); values
  within :data:`TIE_TOLERANCE` below a tie count as ties, because libjpeg's integer DCT hits exact ties
  (e.g. a DC of a block whose sum is an odd multiple of 4Δ) that float32 misses by a rounding error;
* ``recon = IDCT(q · Δ)``;
* per-image entropy-coder statistics of the integer levels ``round_half_away(u)`` (both modes), in the
  order of :data:`FEATURES`:

  - ``ac_log``: ``Σ_AC log2(1 + |q|)`` - about the magnitude bits;
  - ``ac_nonzero``: the number of non-zero AC levels - about the number of Huffman symbols;
  - ``dc_diff_log``: ``Σ log2(1 + |q_DC - q_DC,previous|)`` over each plane's blocks in raster order
    (JPEG codes DC differences), the first against 0;
  - ``dc_log``: ``Σ log2(1 + |q_DC|)``;
  - ``blocks``: the number of blocks (each codes an end-of-block or a run).

Backward: rounding is straight-through (``dq/du = 1``), so ``∂recon/∂Δ`` is ``q - u`` per coefficient;
each statistic's gradient is that of the same function of the *unrounded* ``u`` (``log2(1 + |u|)``,
and ``min(|u|, 1)`` for the non-zero count), so coefficients just below one half still feel the rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sandwich.codecs.dct import _separable, dct_matrix
from sandwich.codecs.quantize import round_half_away
from sandwich.errors import InputError

FEATURES = ("ac_log", "ac_nonzero", "dc_diff_log", "dc_log", "blocks")
QUANTIZER_MODES = ("ste", "noise")
TIE_TOLERANCE = 1e-4  # in units of the step; float32 DCT error is ~1e-5 of a step of 1 at 8-bit scale


@dataclass
class CodedPlanes:
    """What a block codec produced for a batch of planes.

    Attributes:
        recon: ``(N, C, H, W)`` reconstructed samples (before rounding / clipping), same units as input.
        features: ``(N, len(FEATURES))`` entropy-coder statistics summed over the C planes of each image.
        kind: ``"luma"`` or ``"chroma"`` - which entropy-coder tables the planes use.
    """

    recon: Tensor
    features: Tensor
    kind: str


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


def _dc(blocks: Tensor) -> Tensor:
    """``(N, C, Hb, b, Wb, b)`` -> ``(N, C, Hb*Wb)`` DC values in raster block order (a copy)."""
    n, c = blocks.shape[:2]
    return blocks[:, :, :, 0, :, 0].reshape(n, c, -1)


def _log_feature_grad(u: Tensor) -> Tensor:
    """d/du log2(1 + |u|)."""
    return torch.sign(u) / ((1.0 + u.abs()) * math.log(2.0))


class _TransformQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, planes: Tensor, step: Tensor, block: int, noisy: bool) -> tuple[Tensor, Tensor]:  # noqa: D102
        n, c, h, w = planes.shape
        view = (n, c, h // block, block, w // block, block)
        d = dct_matrix(block, planes.dtype, planes.device)
        tiled = tile_step(step, n, block)
        u = _separable(planes, d, d.T).view(view).div_(tiled)
        levels = quantize_levels(u)
        mags = levels.abs()
        log_mag = torch.log2(mags + 1.0)
        dc_log = _dc(log_mag).sum(dim=(1, 2))
        ac_log = log_mag.sum(dim=(1, 2, 3, 4, 5)) - dc_log
        nonzero = (mags > 0).sum(dim=(1, 2, 3, 4, 5)) - (_dc(mags) > 0).sum(dim=(1, 2))
        dc = _dc(levels)
        dc_diff = torch.diff(dc, dim=-1, prepend=torch.zeros_like(dc[..., :1]))
        dc_diff_log = torch.log2(dc_diff.abs() + 1.0).sum(dim=(1, 2))
        count = torch.full_like(ac_log, float(c * (h // block) * (w // block)))
        features = torch.stack([ac_log, nonzero.to(ac_log.dtype), dc_diff_log, dc_log, count], dim=1)
        if noisy:
            noise = torch.rand_like(u).sub_(0.5)
            coded = u + noise
        else:
            noise, coded = None, levels
        recon = _separable(coded.mul_(tiled).view(n, c, h, w), d.T, d)
        ctx.save_for_backward(u, step, noise)
        ctx.block = block
        return recon, features

    @staticmethod
    def backward(ctx, grad_recon: Tensor, grad_features: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:  # noqa: D102
        u, step, noise = ctx.saved_tensors
        block = ctx.block
        n, c, hb, _, wb, _ = u.shape
        d = dct_matrix(block, u.dtype, u.device)
        tiled = tile_step(step, n, block)
        # Gradient w.r.t. the dequantised coefficients q·Δ (adjoint of the inverse DCT).
        g_coded = _separable(grad_recon, d, d.T).view(u.shape)
        # Straight-through rounding: d(q·Δ)/du = Δ.
        g_u = g_coded * tiled
        # Rate statistics, differentiated as functions of the unrounded u.
        gf = grad_features.view(n, len(FEATURES), 1, 1, 1, 1, 1)
        g_feat = _log_feature_grad(u) * gf[:, 0] + torch.sign(u) * (u.abs() < 1) * gf[:, 1]
        dc_view = g_feat[:, :, :, 0, :, 0]
        dc_u = _dc(u)
        dc_diff = torch.diff(dc_u, dim=-1, prepend=torch.zeros_like(dc_u[..., :1]))
        g_diff = _log_feature_grad(dc_diff) * grad_features[:, 2].view(n, 1, 1)
        g_dc = g_diff - torch.nn.functional.pad(g_diff[..., 1:], (0, 1))
        g_dc = g_dc + _log_feature_grad(dc_u) * grad_features[:, 3].view(n, 1, 1)
        dc_view.copy_(g_dc.view(n, c, hb, wb))  # DC positions: replace the AC formulas with the DC ones
        g_u = g_u + g_feat
        grad_planes = grad_step = None
        if ctx.needs_input_grad[0]:
            grad_planes = _separable((g_u / tiled).view(n, c, hb * block, wb * block), d.T, d)
        if ctx.needs_input_grad[1]:
            levels = u + noise if noise is not None else quantize_levels(u)
            # recon depends on Δ through q(c/Δ)·Δ -> q - u; the statistics through u = c/Δ -> -u/Δ.
            g_tiled = g_coded * (levels - u) - g_feat * u / tiled
            grad_step = g_tiled.sum_to_size(tiled.shape).reshape(step.shape)
        return grad_planes, grad_step, None, None


def transform_quantize(
    planes: Tensor, step: Tensor, block: int = 8, quantizer: str = "ste", kind: str = "luma"
) -> CodedPlanes:
    """Code ``planes`` with a block DCT and a uniform quantiser of step ``step`` (see module docstring).

    Args:
        planes: ``(N, C, H, W)`` float samples centred at 0 (e.g. pixel - 128), H and W divisible by ``block``.
        step: quantisation step(s) > 0, see :func:`tile_step`; same units as the DCT coefficients.
        block: DCT block size (4, 8, 16, 32).
        quantizer: ``"ste"`` (round, straight-through) or ``"noise"`` (additive uniform noise).
        kind: passed through to the result for the rate model.

    Returns:
        :class:`CodedPlanes`.
    """
    if quantizer not in QUANTIZER_MODES:
        raise InputError(f"quantizer {quantizer!r} not one of {', '.join(QUANTIZER_MODES)}")
    dct_matrix(block)
    if planes.dim() != 4 or planes.shape[-1] % block or planes.shape[-2] % block:
        raise InputError(f"block codec needs (N, C, H, W) with H, W divisible by {block}, got {tuple(planes.shape)}")
    step = torch.as_tensor(step, dtype=planes.dtype, device=planes.device)
    tile_step(step, planes.shape[0], block)
    recon, features = _TransformQuantize.apply(planes, step, block, quantizer == "noise")
    return CodedPlanes(recon=recon, features=features, kind=kind)

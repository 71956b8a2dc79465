"""The proxy's hot path as one autograd op: block DCT -> quantise -> rate statistics -> dequantise ->
inverse DCT, on a batch of planes.

This is the part every transform-codec proxy shares (JPEG, and the JPEG-style proxy used for
HEVC-intra) and the part the fused GPU kernels replace. It is one custom op,
``sandwich::transform_quantize`` (:mod:`sandwich.codecs.kernels.ops`), with a hand-derived backward:
fused Triton kernels on CUDA, fused numba kernels on CPU, and a torch implementation that runs a handful
of whole-tensor passes instead of the ~40 of the equivalent autograd graph (the reference, and the
fallback for other devices and dtypes). ``SANDWICH_KERNELS=reference`` forces it everywhere.

Forward, with ``c = DCT(x)`` and ``u = c / Δ`` (spatial layout, see :mod:`sandwich.codecs.dct`):

* levels ``q = round_half_away(u)`` (``"ste"``) or ``q = u + U(-1/2, 1/2)`` (``"noise"``); values
  within :data:`~sandwich.codecs.block_levels.TIE_TOLERANCE` below a tie count as ties, because libjpeg's integer DCT hits exact ties
  (e.g. a DC of a block whose sum is an odd multiple of 4Δ) that float32 misses by a rounding error;
* ``recon = IDCT(q · Δ)``;
* per-image entropy-coder statistics of the integer levels ``round_half_away(u)`` (both modes), in the
  order of :data:`~sandwich.codecs.block_levels.FEATURES`:

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

from dataclasses import dataclass

import torch
from torch import Tensor

from sandwich.codecs.block_levels import QUANTIZER_MODES, tile_step
from sandwich.codecs.dct import BLOCK_SIZES
from sandwich.codecs.kernels import ops, reference
from sandwich.errors import InputError

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


def transform_quantize(
    planes: Tensor,
    step: Tensor,
    block: int = 8,
    quantizer: str = "ste",
    kind: str = "luma",
    *,
    impl: str | None = None,
    pad_edges: bool = False,
) -> CodedPlanes:
    """Code ``planes`` with a block DCT and a uniform quantiser of step ``step`` (see module docstring).

    Runs the ``sandwich::transform_quantize`` op (:mod:`sandwich.codecs.kernels.ops`): fused Triton
    kernels on CUDA, fused numba kernels on CPU.

    Args:
        planes: ``(N, C, H, W)`` float samples centred at 0 (e.g. pixel - 128), H and W divisible by
            ``block`` unless ``pad_edges``.
        step: quantisation step(s) > 0, see :func:`tile_step`; same units as the DCT coefficients.
        block: DCT block size (4, 8, 16, 32).
        quantizer: ``"ste"`` (round, straight-through) or ``"noise"`` (additive uniform noise, drawn
            here from the global torch RNG and passed to the op as a tensor).
        kind: passed through to the result for the rate model.
        impl: which kernels: ``"auto"``, ``"reference"``, ``"numba"``, ``"compiled"``, ``"triton"`` or
            ``"composite"`` (see :mod:`sandwich.codecs.kernels.ops`); default: the environment
            variable ``SANDWICH_KERNELS``, else ``"auto"``.
        pad_edges: accept any H, W: partial edge blocks are completed by repeating the last row and
            column (as libjpeg pads), coded and counted, and the reconstruction is cropped to H x W.

    Returns:
        :class:`CodedPlanes`.
    """
    if quantizer not in QUANTIZER_MODES:
        raise InputError(f"quantizer {quantizer!r} not one of {', '.join(QUANTIZER_MODES)}")
    ops.check_kernels(impl, "transform_quantize")
    impl = ops.default_impl() if impl is None else impl
    if block not in BLOCK_SIZES:
        raise InputError(f"DCT block size {block} not one of {BLOCK_SIZES}")
    if planes.dim() != 4 or (not pad_edges and (planes.shape[-1] % block or planes.shape[-2] % block)):
        raise InputError(f"block codec needs (N, C, H, W) with H, W divisible by {block}, got {tuple(planes.shape)}")
    step = torch.as_tensor(step, dtype=planes.dtype, device=planes.device)
    tile_step(step, planes.shape[0], block)
    noise = None
    if quantizer == "noise":
        n, c, h, w = planes.shape
        noise = torch.rand((n, c, *reference.padded_size(h, w, block)), dtype=planes.dtype, device=planes.device) - 0.5
    if impl == "composite":
        recon, features = reference.composite(planes, step, block, noise)
    else:
        recon, features, _ = ops.transform_quantize(planes.contiguous(), step, block, noise, impl)
    return CodedPlanes(recon=recon, features=features, kind=kind)

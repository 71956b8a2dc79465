"""The transform-quantize op registered with ``torch.library``: which kernel runs is the dispatcher's business.

Ops (namespace ``sandwich``):

* ``torch.ops.sandwich.transform_quantize(planes, step, block, noise, impl) -> (recon, features, dc)``
* ``torch.ops.sandwich.transform_quantize_backward(grad_recon, grad_features, planes, step, dc, block,
  noise, need_planes, need_step, impl) -> (grad_planes, grad_step)`` (an unneeded gradient comes back as
  an empty tensor)

``planes`` is ``(N, C, H, W)`` float32 or float64, any ``H, W`` (partial edge blocks are replicate-padded
inside the op, see :mod:`sandwich.codecs.kernels.reference`); ``step`` is one of the shapes of
:func:`~sandwich.codecs.blockcodec.tile_step`; ``noise`` is ``None`` (straight-through rounding) or the
``U(-1/2, 1/2)`` noise of the ``"noise"`` quantiser as a ``(N, C, Hp, Wp)`` tensor (``Hp, Wp``: ``H, W``
rounded up to whole blocks), so that the ops are deterministic functions of their inputs; ``dc`` is
``u = c / Δ`` at the DC positions, ``(N, C, Hp/b, Wp/b)``, which the backward op needs. Gradients flow
to ``planes`` and ``step`` (none to ``noise``).

Kernels:

* CPU: :mod:`~sandwich.codecs.kernels.numba_blockcodec` (fused, numba) for float32 / float64;
* CUDA: :mod:`~sandwich.codecs.kernels.triton_blockcodec` (Triton) for float32 / float64;
* every device, and every other dtype: :mod:`~sandwich.codecs.kernels.reference` (torch);
* a fake kernel for each op, so ``torch.compile`` traces through them (the op stays one node), and an
  autograd rule (:func:`torch.library.register_autograd`) that calls the backward op.

The switch: the ``impl`` argument, which :func:`~sandwich.codecs.blockcodec.transform_quantize` takes
from its own ``impl`` argument or else from the environment variable ``SANDWICH_KERNELS``:

* ``auto`` (default): numba on CPU, Triton on CUDA (float32 / float64), else the torch reference;
* ``reference``: the torch reference on every device (forces the fallback);
* ``numba``: the numba kernels (CPU tensors, float32 / float64);
* ``compiled``: the torch reference through ``torch.compile`` (inductor, static shapes: one compile
  per input shape, ~10-40 s each on 2 CPU cores; dynamic shapes made the backward's compile hang);
  ``sandwich bench kernels`` measures whether it pays on this machine;
* ``triton``: the Triton kernels; on CPU tensors only under ``TRITON_INTERPRET=1`` (Triton's
  interpreter, for tests), else an :class:`~sandwich.errors.InputError`;
* ``composite`` (``transform_quantize`` only, not an op argument): bypass the op and run the same
  computation as a graph of autograd primitives (what the fused kernels are measured against).

The HEVC-intra proxy's closed-loop decisions read the same variable
(:func:`sandwich.codecs.hevc_proxy.intra.decisions`): ``auto`` and ``numba`` run the fused numba kernel on
float32 / float64 CPU tensors; ``triton`` its Triton kernel (CUDA, or the interpreter); every other value,
and ``auto`` on CUDA, the torch reference (its batched wavefronts; the Triton kernel codes an image's blocks
one after another, and no GPU has yet measured which is faster: ``sandwich bench kernels`` times both).

The variable is read when ``transform_quantize`` runs; under ``torch.compile`` it is read once, at
tracing, and baked into the compiled graph.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch
from torch import Tensor

from sandwich.codecs.dct import dct_matrix
from sandwich.codecs.kernels import reference
from sandwich.errors import InputError

ENV_VAR = "SANDWICH_KERNELS"
IMPLS = ("auto", "reference", "numba", "compiled", "triton", "composite")
OP_IMPLS = IMPLS[:-1]
FUSED_DTYPES = (torch.float32, torch.float64)  # what the Triton and numba kernels take


def default_impl() -> str:
    """The kernel choice from ``SANDWICH_KERNELS`` (``auto`` when unset or empty)."""
    value = os.environ.get(ENV_VAR, "") or "auto"
    if value not in IMPLS:
        raise InputError(f"{ENV_VAR}={value!r} not one of {', '.join(IMPLS)}")
    return value


def check_kernels(kernels: str | None, what: str) -> None:
    """Refuse a kernel choice (a ``kernels`` config key, an ``impl`` argument) that is not None or one of
    :data:`IMPLS`: an :class:`~sandwich.errors.InputError` naming ``what`` chose it."""
    if kernels is not None and kernels not in IMPLS:
        raise InputError(f"{what}: kernels {kernels!r} not one of {', '.join(IMPLS)}")


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``, read as Triton reads it)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _triton():
    from sandwich.codecs.kernels import triton_blockcodec

    return triton_blockcodec


def _numba():
    from sandwich.codecs.kernels import numba_blockcodec

    return numba_blockcodec


_COMPILED: dict[str, Callable] = {}


def _compiled(name: str) -> Callable:
    """``reference.<name>`` with its torch code through ``torch.compile`` (compiled on first use, cached).

    What is compiled is ``reference.<name>_with_matrix``, the DCT matrix passed in from outside.
    """
    if name not in _COMPILED:
        inner = torch.compile(getattr(reference, f"{name}_with_matrix"), dynamic=False)

        if name == "forward":

            def kernel(planes, step, block, noise):
                return inner(planes, step, dct_matrix(block, planes.dtype, planes.device), noise)

        else:

            def kernel(grad_recon, grad_features, planes, step, dc, block, noise, need_planes, need_step):
                d = dct_matrix(block, planes.dtype, planes.device)
                return inner(grad_recon, grad_features, planes, step, dc, d, noise, need_planes, need_step)

        _COMPILED[name] = kernel
    return _COMPILED[name]


def _check_impl(impl: str) -> None:
    if impl not in OP_IMPLS:
        raise InputError(f"transform_quantize op: impl {impl!r} not one of {', '.join(OP_IMPLS)}")


def _torch_kernel(impl: str, name: str) -> Callable:
    return _compiled(name) if impl == "compiled" else getattr(reference, name)


def numba_applies(impl: str, tensor: Tensor) -> bool:
    """Whether kernel choice ``impl`` runs a numba kernel on ``tensor``: ``numba``, or ``auto`` on a float32 /
    float64 CPU tensor. ``numba`` on any other tensor is an :class:`~sandwich.errors.InputError`."""
    fused = tensor.device.type == "cpu" and tensor.dtype in FUSED_DTYPES
    if impl == "numba" and not fused:
        raise InputError(f"impl='numba' takes float32 and float64 CPU tensors, got {tensor.dtype} on {tensor.device}")
    return impl == "numba" or (impl == "auto" and fused)


def triton_applies(impl: str, tensor: Tensor) -> bool:
    """Whether kernel choice ``impl`` asks for a Triton kernel (``triton``) and it can run on ``tensor``: a
    float32 / float64 tensor on CUDA, or on the CPU under ``TRITON_INTERPRET=1``; ``triton`` on any other
    tensor is an :class:`~sandwich.errors.InputError`."""
    if impl != "triton":
        return False
    if tensor.device.type != "cuda" and not interpreting():
        raise InputError("impl='triton' on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
    if tensor.dtype not in FUSED_DTYPES:
        raise InputError(f"impl='triton' supports float32 and float64, got {tensor.dtype}")
    return True


def _default_kernel(impl: str, name: str, planes: Tensor) -> Callable:
    """Kernel for every device without its own registration (CPU): numba, torch, or Triton's interpreter."""
    _check_impl(impl)
    if numba_applies(impl, planes):
        return getattr(_numba(), name)
    if triton_applies(impl, planes):
        return getattr(_triton(), name)
    return _torch_kernel(impl, name)


def _cuda_kernel(impl: str, name: str, planes: Tensor) -> Callable:
    _check_impl(impl)
    if impl in ("auto", "triton") and planes.dtype in FUSED_DTYPES:
        return getattr(_triton(), name)
    if impl == "triton":
        raise InputError(f"impl='triton' supports float32 and float64, got {planes.dtype}")
    if impl == "numba":
        raise InputError("impl='numba' takes CPU tensors (on CUDA: 'auto' or 'triton')")
    return _torch_kernel(impl, name)


# ---------------------------------------------------------------------------------------------- forward


@torch.library.custom_op("sandwich::transform_quantize", mutates_args=())
def transform_quantize(
    planes: Tensor, step: Tensor, block: int, noise: Optional[Tensor], impl: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Forward op (see module docstring); this body is the kernel of every device but CUDA."""
    return _default_kernel(impl, "forward", planes)(planes, step, block, noise)


@transform_quantize.register_kernel("cuda")
def _transform_quantize_cuda(planes, step, block, noise, impl):
    return _cuda_kernel(impl, "forward", planes)(planes, step, block, noise)


@transform_quantize.register_fake
def _transform_quantize_fake(planes, step, block, noise, impl):
    n, c, h, w = planes.shape
    hb, wb = (h + block - 1) // block, (w + block - 1) // block
    return planes.new_empty(planes.shape), planes.new_empty((n, 5)), planes.new_empty((n, c, hb, wb))


# --------------------------------------------------------------------------------------------- backward


@torch.library.custom_op("sandwich::transform_quantize_backward", mutates_args=())
def transform_quantize_backward(
    grad_recon: Tensor,
    grad_features: Tensor,
    planes: Tensor,
    step: Tensor,
    dc: Tensor,
    block: int,
    noise: Optional[Tensor],
    need_planes: bool,
    need_step: bool,
    impl: str,
) -> tuple[Tensor, Tensor]:
    """Backward op (see module docstring); this body is the kernel of every device but CUDA."""
    kernel = _default_kernel(impl, "backward", planes)
    return kernel(grad_recon, grad_features, planes, step, dc, block, noise, need_planes, need_step)


@transform_quantize_backward.register_kernel("cuda")
def _transform_quantize_backward_cuda(grad_recon, grad_features, planes, step, dc, block, noise, need_planes, need_step, impl):
    kernel = _cuda_kernel(impl, "backward", planes)
    return kernel(grad_recon, grad_features, planes, step, dc, block, noise, need_planes, need_step)


@transform_quantize_backward.register_fake
def _transform_quantize_backward_fake(grad_recon, grad_features, planes, step, dc, block, noise, need_planes, need_step, impl):
    return (
        planes.new_empty(planes.shape if need_planes else (0,)),
        step.new_empty(step.shape if need_step else (0,)),
    )


# --------------------------------------------------------------------------------------------- autograd


def _setup_context(ctx, inputs, output) -> None:
    planes, step, block, noise, impl = inputs
    _, _, dc = output
    ctx.save_for_backward(planes, step, dc, noise)
    ctx.block, ctx.impl = block, impl
    ctx.mark_non_differentiable(dc)


def _backward(ctx, grad_recon, grad_features, _grad_dc):
    planes, step, dc, noise = ctx.saved_tensors
    need_planes, need_step = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_planes or need_step):
        return None, None, None, None, None
    if grad_recon is None:
        grad_recon = torch.zeros_like(planes)
    if grad_features is None:
        grad_features = planes.new_zeros((planes.shape[0], 5))
    grad_planes, grad_step = torch.ops.sandwich.transform_quantize_backward(
        grad_recon.contiguous(), grad_features.contiguous(), planes, step, dc, ctx.block, noise, need_planes, need_step, ctx.impl
    )
    return (grad_planes if need_planes else None), (grad_step if need_step else None), None, None, None


torch.library.register_autograd("sandwich::transform_quantize", _backward, setup_context=_setup_context)

"""Every Triton kernel against the torch reference in Triton's interpreter, on tiny inputs.

Triton decides between compiling and interpreting when a kernel is *defined* (``TRITON_INTERPRET=1``
must be set before :mod:`~sandwich.codecs.kernels.triton_blockcodec` is imported), so the check runs
in a fresh Python process: :func:`run_in_subprocess` starts ``python -m
sandwich.codecs.kernels.interpret_check`` with ``TRITON_INTERPRET=1`` and reads the JSON report it
prints. Used by ``tests/test_kernels.py`` and ``sandwich bench kernels``.

Cases: every block size (4, 8, 16, 32), float64 (tight) and float32, with an odd-sized input (partial
edge blocks, noise quantiser, a step table per image) and a whole-block input (straight-through
rounding, one step table for the batch), plus a flat and a per-image step in float64. Each kernel's
outputs are compared with the reference's; per output the report gives ``abs`` (max abs error) and
``rel`` (that over the reference's max abs value):

* ``forward_kernel``: ``recon``, the statistics it sums (``ac_log``, ``ac_nonzero``, ``dc_log``), ``dc``;
* ``dc_forward_kernel``: ``dc_diff_log``;
* ``dc_backward_kernel``: the DC-statistics gradient;
* ``backward_kernel``: ``grad_planes``, ``grad_step``;
* ``op_autograd``: ``transform_quantize(impl="triton")`` through autograd against ``impl="reference"``
  (the op registration, autograd rule and noise plumbing end to end).

The HEVC-intra proxy's decisions (:mod:`~sandwich.codecs.kernels.triton_hevc_intra`) against the torch
wavefronts (:func:`~sandwich.codecs.hevc_proxy.intra.wavefront_decisions`), per block size and dtype, on
integer planes of two images with their own steps (:data:`HEVC_CASES`: luma with the DST-VII, two chroma
planes sharing a mode, blocks at the picture's edges and inside): ``hevc_cases`` gives per case the
samples before rounding (``pre``: ``abs``, ``rel``), the count of blocks whose mode differs
(``modes_differing``), of levels that differ (``levels_differing``), and the share of rounded samples
that agree (``samples_agree``); ``max_abs_err[dtype]["hevc_decisions"]`` the largest ``pre`` error.

With ``--opcheck`` it also runs :func:`torch.library.opcheck` on both ops with ``impl="triton"``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

BLOCKS = (4, 8, 16, 32)
KERNEL_NAMES = ("forward_kernel", "dc_forward_kernel", "dc_backward_kernel", "backward_kernel", "op_autograd")
# size -> (luma, (N, P, H, W)); the interpreter runs each reference of each block as a few numpy calls, so
# the pictures are small: 2 x 2 blocks or more, except 32 (1 x 2 blocks, ~10 s)
HEVC_CASES = {4: (True, (2, 1, 12, 16)), 8: (False, (2, 2, 16, 24)), 16: (True, (2, 1, 32, 32)), 32: (True, (1, 1, 32, 64))}


def _cases(blocks: tuple[int, ...], dtypes: tuple[str, ...]) -> list[dict]:
    cases = []
    for dtype in dtypes:
        for block in blocks:
            cases.append(dict(block=block, dtype=dtype, shape=(2, 2, 2 * block - 3, block + 5), step="per_image_table", quantizer="noise"))
            cases.append(dict(block=block, dtype=dtype, shape=(2, 1, 2 * block, 2 * block), step="table", quantizer="ste"))
            if dtype == "float64":
                cases.append(dict(block=block, dtype=dtype, shape=(1, 1, block + 1, 3 * block), step="flat", quantizer="ste"))
                cases.append(dict(block=block, dtype=dtype, shape=(3, 1, block, block - 1), step="per_image", quantizer="noise"))
    return cases


def _err(ours: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    abs_err = float((ours.double() - ref.double()).abs().max()) if ref.numel() else 0.0
    scale = float(ref.double().abs().max()) if ref.numel() else 0.0
    return {"abs": abs_err, "rel": abs_err / scale if scale > 0 else abs_err}


def _inputs(case: dict, seed: int = 0):
    from sandwich.codecs.kernels.reference import padded_size

    dtype = getattr(torch, case["dtype"])
    n, c, h, w = case["shape"]
    block = case["block"]
    gen = torch.Generator().manual_seed(seed + block)
    planes = torch.rand(case["shape"], generator=gen, dtype=torch.float64).mul(255).sub(128).to(dtype)
    step_shape = {"flat": (), "table": (block, block), "per_image": (n,), "per_image_table": (n, block, block)}[case["step"]]
    step = torch.rand(step_shape, generator=gen, dtype=torch.float64).mul(6).add(2).to(dtype)
    noise = None
    if case["quantizer"] == "noise":
        noise = torch.rand((n, c, *padded_size(h, w, block)), generator=gen, dtype=torch.float64).sub(0.5).to(dtype)
    grad_recon = torch.randn(case["shape"], generator=gen, dtype=torch.float64).to(dtype)
    grad_features = torch.randn((n, 5), generator=gen, dtype=torch.float64).to(dtype)
    return planes, step, noise, grad_recon, grad_features


def check_case(case: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Errors of every kernel on one case (run under ``TRITON_INTERPRET=1``)."""
    from sandwich.codecs.blockcodec import transform_quantize
    from sandwich.codecs.kernels import reference
    from sandwich.codecs.kernels import triton_blockcodec as tb

    block = case["block"]
    planes, step, noise, grad_recon, grad_features = _inputs(case)
    n, c = planes.shape[:2]
    recon, features, dc = tb.forward(planes, step, block, noise)
    ref_recon, ref_features, ref_dc = reference.forward(planes, step, block, noise)
    summed = [0, 1, 3]
    errors = {
        "forward_kernel": {
            "recon": _err(recon, ref_recon),
            "features": _err(features[:, summed], ref_features[:, summed]),
            "dc": _err(dc, ref_dc),
        },
        "dc_forward_kernel": {"dc_diff_log": _err(features[:, 2], ref_features[:, 2])},
        "dc_backward_kernel": {
            "grad_dc": _err(
                tb.dc_grad(ref_dc, grad_features), reference.dc_grad(ref_dc.reshape(n, c, -1), grad_features).view_as(ref_dc)
            )
        },
    }
    grads = tb.backward(grad_recon, grad_features, planes, step, ref_dc, block, noise, True, True)
    ref_grads = reference.backward(grad_recon, grad_features, planes, step, ref_dc, block, noise, True, True)
    errors["backward_kernel"] = {"grad_planes": _err(grads[0], ref_grads[0]), "grad_step": _err(grads[1], ref_grads[1])}

    quantizer = case["quantizer"]
    results = {}
    for impl in ("triton", "reference"):
        x, s = planes.clone().requires_grad_(True), step.clone().requires_grad_(True)
        torch.manual_seed(7)
        out = transform_quantize(x, s, block, quantizer, impl=impl, pad_edges=True)
        loss = (out.recon * grad_recon).sum() + (out.features * grad_features).sum()
        results[impl] = (out.recon, out.features, *torch.autograd.grad(loss, (x, s)))
    names = ("recon", "features", "grad_planes", "grad_step")
    errors["op_autograd"] = {k: _err(a, b) for k, a, b in zip(names, results["triton"], results["reference"])}
    return errors


def check_hevc_case(size: int, dtype: str) -> dict:
    """The Triton decisions against the torch wavefronts on one case of :data:`HEVC_CASES` (module doc)."""
    from sandwich.codecs.hevc_proxy.intra import decisions, uses_dst
    from sandwich.codecs.hevc_proxy.transforms import deadzone_levels, forward_2d, transform_matrix
    from sandwich.codecs.quantize import round_samples

    luma, (n, p, h, w) = HEVC_CASES[size]
    gen = torch.Generator().manual_seed(size)
    planes = torch.randint(0, 256, (n, p, h, w), generator=gen).to(getattr(torch, dtype))
    blocks = planes.view(n, p, h // size, size, w // size, size).permute(2, 4, 0, 1, 3, 5)
    target = forward_2d(blocks, transform_matrix(size, uses_dst(size, luma), planes.dtype))
    step = torch.tensor([5.0, 13.0][:n], dtype=planes.dtype)
    pre, scaled, modes = decisions(target, step, size, luma, h, w, impl="triton")
    ref_pre, ref_scaled, ref_modes = decisions(target, step, size, luma, h, w, impl="reference")
    return {
        "pre": _err(pre, ref_pre),
        "modes_differing": int((modes != ref_modes).sum()),
        "levels_differing": int((deadzone_levels(scaled) != deadzone_levels(ref_scaled)).sum()),
        "samples_agree": float((round_samples(pre) == round_samples(ref_pre)).double().mean()),
    }


def opcheck(dtype: str = "float64") -> dict[str, dict[str, str]]:
    """:func:`torch.library.opcheck` on both ops with ``impl="triton"`` (float64, odd size, noise)."""
    case = dict(block=8, dtype=dtype, shape=(2, 1, 13, 11), step="per_image_table", quantizer="noise")
    planes, step, noise, grad_recon, grad_features = _inputs(case)
    fwd_args = (planes.clone().requires_grad_(True), step.clone().requires_grad_(True), 8, noise, "triton")
    report = {"forward": torch.library.opcheck(torch.ops.sandwich.transform_quantize.default, fwd_args)}
    _, _, dc = torch.ops.sandwich.transform_quantize(planes, step, 8, noise, "triton")
    bwd_args = (grad_recon, grad_features, planes, step, dc, 8, noise, True, True, "triton")
    report["backward"] = torch.library.opcheck(torch.ops.sandwich.transform_quantize_backward.default, bwd_args)
    return report


def check(blocks: tuple[int, ...] = BLOCKS, dtypes: tuple[str, ...] = ("float64", "float32"), with_opcheck: bool = False) -> dict:
    """The report of the module docstring (this process must interpret Triton)."""
    from sandwich.codecs.kernels import ops  # also registers the ops

    if not ops.interpreting():
        raise RuntimeError("interpret_check needs TRITON_INTERPRET=1 before Triton is imported; use run_in_subprocess")

    torch.set_num_threads(1)
    cases = []
    for case in _cases(blocks, dtypes):
        cases.append({**case, "errors": check_case(case)})
    max_abs = {}
    for dtype in dtypes:
        max_abs[dtype] = {
            kernel: max(out["abs"] for case in cases if case["dtype"] == dtype for out in case["errors"][kernel].values())
            for kernel in KERNEL_NAMES
        }
    hevc_cases = [
        {"size": size, "luma": HEVC_CASES[size][0], "shape": HEVC_CASES[size][1], "dtype": dtype, "errors": check_hevc_case(size, dtype)}
        for dtype in dtypes
        for size in blocks
    ]
    for dtype in dtypes:
        max_abs[dtype]["hevc_decisions"] = max(c["errors"]["pre"]["abs"] for c in hevc_cases if c["dtype"] == dtype)
    report = {"cases": cases, "hevc_cases": hevc_cases, "max_abs_err": max_abs}
    if with_opcheck:
        report["opcheck"] = opcheck()
    return report


def run_in_subprocess(
    blocks: tuple[int, ...] = BLOCKS, dtypes: tuple[str, ...] = ("float64", "float32"), with_opcheck: bool = False, timeout: float = 600
) -> dict:
    """Run :func:`check` in a fresh interpreter with ``TRITON_INTERPRET=1``; returns its report."""
    cmd = [sys.executable, "-m", "sandwich.codecs.kernels.interpret_check", "--blocks", *map(str, blocks), "--dtypes", *dtypes]
    if with_opcheck:
        cmd.append("--opcheck")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"interpret check failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=list(BLOCKS))
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--opcheck", action="store_true", help="also run torch.library.opcheck with impl='triton'")
    args = parser.parse_args(argv)
    report = check(tuple(args.blocks), tuple(args.dtypes), args.opcheck)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

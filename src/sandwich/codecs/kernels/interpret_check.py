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
    report = {"cases": cases, "max_abs_err": max_abs}
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

"""``sandwich bench kernels``: the transform-quantize op's kernels (torch, torch.compile, Triton) side by side.

Everything is measured in one run on this machine; times are medians, the CPU variants timed
round-robin so that a changing load weighs on all alike. Prints a table and key figures,
writes JSON (``--json PATH``).

CPU, the op alone (float32 planes ``--cpu-shape``, default 8x1x1024x1024 = 32 MiB, larger than the
caches; 8x8 blocks, flat step, straight-through rounding; forward + backward to planes and step):

* ``cpu_fwd_bwd_fraction_of_copy``: the throughput of the default CPU kernel (``auto`` on CPU: the
  numba kernel) against a memory-copy bound of the same size, ``(B / t) / (2 S / t_copy)``: ``B = 20``
  bytes per pixel, the least a float32 forward + backward can move (the forward reads the planes and
  writes the reconstruction, the backward reads the planes and the incoming gradient and writes the
  planes' gradient; statistics and DC terms are negligible), ``t`` its time, ``S`` the planes' bytes
  and ``t_copy`` the time of ``planes.clone()`` (``2 S`` bytes moved; like the kernels, it writes
  into a fresh tensor). 1.0 would be copy speed;
* ``cpu_reference_*``: the same for the torch kernel (``SANDWICH_KERNELS=reference``);
* ``cpu_numba_*``: the numba kernel (``SANDWICH_KERNELS=numba``): throughput, fraction, speed-up over
  the torch kernel, first call (compile or load from numba's cache), and its deviation from the torch
  kernel: the largest, and the fraction of samples off by more than 1e-3 (the two sum the DCT in a
  different order, so a coefficient within float32 rounding of a rounding threshold can get the other
  level: a difference of one step's basis function in that block);
* ``cpu_compiled_*``: the torch kernel through ``torch.compile`` (``SANDWICH_KERNELS=compiled``), its
  one-off compile time, its deviation from the eager kernel, and ``cpu_compile_speedup`` /
  ``cpu_compile_pays``.

CPU, the full JPEG proxy (4:2:0, IJG quality 50, trainable steps) with the linear rate model, forward +
backward on ``--proxy-shape`` RGB (default 8x3x256x256), MPix/s of source pixels, variants:

* ``eager_composite``: the block codec as a graph of autograd primitives (``SANDWICH_KERNELS=composite``);
* ``eager_reference_op``: the op with its torch kernel;
* ``eager_numba_op``: the op with the numba kernel and the colour stages as fused numba kernels
  (:mod:`~sandwich.codecs.kernels.numba_jpeg_color`; the default on CPU; every other variant runs the
  colour stages as torch compositions);
* ``eager_compiled_kernel_op``: the op with its torch kernel through ``torch.compile``;
* ``compiled_proxy_op`` / ``compiled_proxy_numba_op``: ``torch.compile`` of proxy + rate model, the op
  one opaque node (fake kernel) running the torch / numba kernel;
* ``compiled_proxy_composite``: ``torch.compile`` of proxy + rate model with the composite block codec.

Interpreter: ``interpret_max_abs_err`` - per Triton kernel, the max abs error against the torch
reference over tiny float32 inputs (every block size, odd sizes, both quantisers) in Triton's
interpreter (a subprocess with ``TRITON_INTERPRET=1``; float64 figures beside them).

CUDA, when present (float32, ``--gpu-shape``, default 64x1x1024x1024 = 256 MiB, every block size): each
Triton kernel's achieved bandwidth (its bytes read + written over its time) as a fraction of a device
copy of a tensor of the same size (``gpu_copy_fraction``; goal >= 0.7), and forward + backward of the
op with Triton against the eager composition and against the torch kernel on the GPU
(``speedup_vs_eager_composite``; goal >= 10). The DC kernels move only ``1/b^2`` of the data: their
fractions are reported but are launch-bound. And the HEVC-intra proxy (4:2:0, every transform size)
forward + backward on a training batch (``--hevc-shape``, default 8x3x64x64) with its closed-loop decisions
by the torch wavefronts (``reference``; ``auto`` on CUDA) and by the Triton kernel (``triton``):
``gpu_hevc_wavefronts_ms``, ``gpu_hevc_triton_ms`` and ``gpu_hevc_triton_speedup`` (above 1: the Triton
kernel should become ``auto``'s choice on CUDA). Without CUDA these figures are null and ``gpu_note``
says that they were not measured.

Measured on the 2-core development machine (2 threads, ``--repeats 9``, no GPU; a slow spell of the
VM, copy bandwidth 3.7 GB/s): the op alone runs at 7.0 MPix/s with the torch kernel (copy fraction
0.038: dozens of whole-tensor passes, each into fresh pages), 29.7 compiled (0.16) and 87.8 with the
numba kernel (0.47, 12.6x the torch kernel). The full proxy: 7.7 (eager composite), 10.0 (torch-kernel
op), 23.6 (numba op and fused colour stages), 11.1 (compiled-kernel op), 13.9 / 21.7 (compiled proxy
around the torch / numba op) and 22.1 MPix/s (compiled proxy with the composite block codec, which
inductor fuses with the colour conversion and rate model). One-off compiles took 1-14 s here with
inductor's on-disk cache partly warm, 10-45 s cold (``compile_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
from pathlib import Path
from typing import Callable, Iterator

import torch

from sandwich.bench.timing import call_seconds, interleaved_medians, print_table
from sandwich.codecs.blockcodec import transform_quantize
from sandwich.codecs.kernels.ops import ENV_VAR
from sandwich.errors import InputError
from sandwich.files import write_json

BYTES_PER_PIXEL_FWD_BWD = 20  # float32: fwd reads x, writes recon; bwd reads x and grad_recon, writes grad_x
GPU_BLOCKS = (4, 8, 16, 32)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (median reported; default 5)")
    parser.add_argument("--cpu-shape", type=int, nargs=4, default=[8, 1, 1024, 1024], metavar=("N", "C", "H", "W"),
                        help="planes for the CPU op figures (default 8 1 1024 1024)")  # fmt: skip
    parser.add_argument("--hevc-shape", type=int, nargs=3, default=[8, 64, 64], metavar=("N", "H", "W"),
                        help="RGB batch for the HEVC proxy's GPU figures (default 8 64 64)")  # fmt: skip
    parser.add_argument("--proxy-shape", type=int, nargs=3, default=[8, 256, 256], metavar=("N", "H", "W"),
                        help="RGB batch for the full-proxy figures (default 8 256 256)")  # fmt: skip
    parser.add_argument("--gpu-shape", type=int, nargs=4, default=[64, 1, 1024, 1024], metavar=("N", "C", "H", "W"),
                        help="planes for the CUDA figures (default 64 1 1024 1024 = 256 MiB)")  # fmt: skip
    parser.add_argument("--no-compile", action="store_true", help="skip every torch.compile variant (each compiles for 10-45 s on 2 cores)")
    parser.add_argument("--no-interpret", action="store_true", help="skip the Triton-interpreter accuracy check")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


@contextlib.contextmanager
def _kernels(impl: str) -> Iterator[None]:
    """Set ``SANDWICH_KERNELS`` for the duration (and restore it)."""
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = impl
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old


def _op_fwd_bwd(planes: torch.Tensor, impl: str, block: int = 8) -> Callable[[], None]:
    """One forward + backward of the op (gradients to planes and step) with preallocated upstream grads."""
    step = torch.tensor(6.0, device=planes.device, requires_grad=True)
    grad_recon = torch.randn_like(planes)
    grad_features = torch.randn(planes.shape[0], 5, device=planes.device)
    x = planes.detach().requires_grad_(True)

    def run() -> None:
        x.grad = step.grad = None
        out = transform_quantize(x, step, block, impl=impl)
        torch.autograd.backward([out.recon, out.features], [grad_recon, grad_features])

    return run


def measure_cpu_op(shape: list[int], repeats: int, compile_: bool) -> dict:
    """The CPU op figures of the module docstring."""
    generator = torch.Generator().manual_seed(0)
    planes = torch.rand(shape, generator=generator) * 255 - 128
    mpix = planes.numel() / 1e6
    fns = {"copy": lambda: planes.clone(), "reference": _op_fwd_bwd(planes, "reference"), "numba": _op_fwd_bwd(planes, "numba")}
    if compile_:
        fns["compiled"] = _op_fwd_bwd(planes, "compiled")
    first = {name: call_seconds(fn) for name, fn in fns.items()}  # warm-up, compiles
    seconds = interleaved_medians(fns, repeats)
    copy_bytes_per_s = 2 * planes.numel() * 4 / seconds["copy"]

    def fraction(t: float) -> float:
        return (BYTES_PER_PIXEL_FWD_BWD * planes.numel() / t) / copy_bytes_per_s

    def deviation(impl: str) -> dict[str, float]:
        step = torch.tensor(6.0)
        ref, other = transform_quantize(planes, step, impl="reference"), transform_quantize(planes, step, impl=impl)
        return {
            f"cpu_{impl}_recon_max_abs_err": float((ref.recon - other.recon).abs().max()),
            f"cpu_{impl}_recon_mismatch_fraction": float(((ref.recon - other.recon).abs() > 1e-3).float().mean()),
            f"cpu_{impl}_features_max_rel_err": float(((ref.features - other.features).abs() / ref.features.abs().clamp_min(1)).max()),
        }

    report = {
        "cpu_shape": "x".join(map(str, shape)),
        "cpu_copy_gb_per_s": copy_bytes_per_s / 1e9,
        "cpu_fwd_bwd_fraction_of_copy": fraction(seconds["numba"]),
        "cpu_reference_fwd_bwd_mpix_per_s": mpix / seconds["reference"],
        "cpu_reference_fwd_bwd_fraction_of_copy": fraction(seconds["reference"]),
        "cpu_numba_fwd_bwd_mpix_per_s": mpix / seconds["numba"],
        "cpu_numba_fwd_bwd_fraction_of_copy": fraction(seconds["numba"]),
        "cpu_numba_speedup_vs_reference": seconds["reference"] / seconds["numba"],
        "cpu_numba_first_call_s": first["numba"],
        **deviation("numba"),
        "cpu_compiled_fwd_bwd_mpix_per_s": None,
        "cpu_compiled_fwd_bwd_fraction_of_copy": None,
        "cpu_compiled_compile_s": None,
        "cpu_compile_speedup": None,
        "cpu_compile_pays": None,
        "cpu_compiled_recon_max_abs_err": None,
        "cpu_compiled_recon_mismatch_fraction": None,
        "cpu_compiled_features_max_rel_err": None,
    }
    if compile_:
        report["cpu_compiled_fwd_bwd_mpix_per_s"] = mpix / seconds["compiled"]
        report["cpu_compiled_fwd_bwd_fraction_of_copy"] = fraction(seconds["compiled"])
        report["cpu_compiled_compile_s"] = max(first["compiled"] - seconds["compiled"], 0.0)
        report["cpu_compile_speedup"] = seconds["reference"] / seconds["compiled"]
        report["cpu_compile_pays"] = seconds["compiled"] < seconds["reference"]
        report.update(deviation("compiled"))
    return report


# The proxy + rate model's loss, once per variant: torch.compile caches per code object and reads the
# kernel choice (SANDWICH_KERNELS) only when tracing, so two compiled variants need two functions.
def _loss_eager(proxy, rate_model, x):  # noqa: D103
    out = proxy(x)
    return out.recon.square().mean() + rate_model(out.planes).mean()


def _loss_compiled_op(proxy, rate_model, x):  # noqa: D103
    out = proxy(x)
    return out.recon.square().mean() + rate_model(out.planes).mean()


def _loss_compiled_composite(proxy, rate_model, x):  # noqa: D103
    out = proxy(x)
    return out.recon.square().mean() + rate_model(out.planes).mean()


def _loss_compiled_numba_op(proxy, rate_model, x):  # noqa: D103
    out = proxy(x)
    return out.recon.square().mean() + rate_model(out.planes).mean()


PROXY_VARIANTS = (
    # name, SANDWICH_KERNELS, loss function, torch.compile it
    ("eager_composite", "composite", _loss_eager, False),
    ("eager_reference_op", "reference", _loss_eager, False),
    ("eager_numba_op", "numba", _loss_eager, False),
    ("eager_compiled_kernel_op", "compiled", _loss_eager, False),
    ("compiled_proxy_op", "reference", _loss_compiled_op, True),
    ("compiled_proxy_numba_op", "numba", _loss_compiled_numba_op, True),
    ("compiled_proxy_composite", "composite", _loss_compiled_composite, True),
)


def measure_proxy(shape: list[int], repeats: int, compile_: bool) -> list[dict]:
    """Forward + backward of the JPEG proxy (4:2:0) and its rate model, per variant of :data:`PROXY_VARIANTS`."""
    from sandwich.codecs.jpeg_proxy.proxy import JpegProxy
    from sandwich.codecs.jpeg_proxy.rate import LinearJpegRate

    n, h, w = shape
    source = torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(0)) * 255
    mpix = n * h * w / 1e6
    proxy, rate_model = JpegProxy("420", quality=50, trainable=True), LinearJpegRate()
    torch._dynamo.reset()
    rows, fns, first = [], {}, {}
    for name, impl, loss, compiled in PROXY_VARIANTS:
        row = {"variant": name, "kernels": impl, "torch_compile": compiled, "fwd_bwd_mpix_per_s": None, "compile_s": None, "note": ""}
        rows.append(row)
        if not compile_ and (compiled or impl == "compiled"):
            row["note"] = "skipped (--no-compile)"
            continue
        fn = torch.compile(loss) if compiled else loss

        def step(fn=fn, impl=impl) -> None:
            with _kernels(impl):
                x = source.clone().requires_grad_(True)
                fn(proxy, rate_model, x).backward()

        try:
            first[name] = call_seconds(step)
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a figure too
            row["note"] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            continue
        fns[name] = step
    seconds = interleaved_medians(fns, repeats)
    for row in rows:
        name = row["variant"]
        if name in seconds:
            row["fwd_bwd_mpix_per_s"] = mpix / seconds[name]
            if row["torch_compile"] or row["kernels"] == "compiled":
                row["compile_s"] = max(first[name] - seconds[name], 0.0)
    base = next(r["fwd_bwd_mpix_per_s"] for r in rows if r["variant"] == "eager_reference_op")
    for row in rows:
        row["speedup_vs_reference_op"] = row["fwd_bwd_mpix_per_s"] / base if row["fwd_bwd_mpix_per_s"] and base else None
    return rows


def measure_interpret() -> dict:
    """Max abs error of every Triton kernel vs the reference in the interpreter (float32 and float64)."""
    from sandwich.codecs.kernels.interpret_check import run_in_subprocess

    report = run_in_subprocess(dtypes=("float32", "float64"))
    return {"interpret_max_abs_err": report["max_abs_err"]["float32"], "interpret_max_abs_err_float64": report["max_abs_err"]["float64"]}


def _gpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    import triton.testing

    return triton.testing.do_bench(fn, rep=max(100, 20 * repeats), return_mode="median") / 1e3


def measure_gpu(shape: list[int], repeats: int, device: str = "cuda") -> dict:
    """Per-kernel bandwidth fractions and the op's speedups on the current CUDA device (float32)."""
    from sandwich.codecs.kernels import triton_blockcodec as tb

    device = torch.device(device)
    planes = torch.rand(shape, device=device) * 255 - 128
    nbytes = planes.numel() * planes.element_size()
    copy_out = torch.empty_like(planes)
    copy_s = _gpu_seconds(lambda: copy_out.copy_(planes), repeats)
    copy_bps = 2 * nbytes / copy_s
    grad_recon = torch.randn_like(planes)
    rows = []
    n, c, h, w = shape
    for block in GPU_BLOCKS:
        step = torch.tensor(6.0, device=device)
        hb, wb = -(-h // block), -(-w // block)
        recon = torch.empty_like(planes)
        dc = torch.empty((n, c, hb, wb), device=device)
        features = torch.zeros((n, 5), dtype=torch.float64, device=device)
        grad_features = torch.randn(n, 5, device=device)
        tb.launch_forward(planes, step, block, None, recon, dc, features)
        g_dc = tb.dc_grad(dc, grad_features)
        grad_planes = torch.empty_like(planes)
        acc = tb.step_accumulator(step, n, block)
        dc_bytes = dc.numel() * 4
        kernels = {
            "forward_kernel": (lambda: tb.launch_forward(planes, step, block, None, recon, dc, features), 2 * nbytes + dc_bytes),
            "dc_forward_kernel": (lambda: tb.launch_dc_forward(dc, features), dc_bytes),
            "dc_backward_kernel": (lambda: tb.dc_grad(dc, grad_features), 2 * dc_bytes),
            "backward_kernel": (
                lambda: tb.launch_backward(grad_recon, grad_features, planes, step, g_dc, block, None, grad_planes, acc),
                3 * nbytes + dc_bytes,
            ),
        }
        for name, (fn, moved) in kernels.items():
            seconds = _gpu_seconds(fn, repeats)
            rows.append({"block": block, "kernel": name, "ms": seconds * 1e3, "gb_per_s": moved / seconds / 1e9,
                         "gpu_copy_fraction": moved / seconds / copy_bps})  # fmt: skip
    speed = {}
    for block in (8,):
        times = {impl: _gpu_seconds(_op_fwd_bwd(planes, impl, block), repeats) for impl in ("triton", "composite", "reference")}
        speed = {
            "gpu_op_block": block,
            "gpu_triton_fwd_bwd_mpix_per_s": planes.numel() / 1e6 / times["triton"],
            "gpu_composite_fwd_bwd_mpix_per_s": planes.numel() / 1e6 / times["composite"],
            "gpu_reference_fwd_bwd_mpix_per_s": planes.numel() / 1e6 / times["reference"],
            "speedup_vs_eager_composite": times["composite"] / times["triton"],
            "speedup_vs_reference_op": times["reference"] / times["triton"],
        }
    return {
        "gpu_device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "gpu_shape": "x".join(map(str, shape)),
        "gpu_copy_gb_per_s": copy_bps / 1e9,
        "gpu_kernels": rows,
        "gpu_min_copy_fraction_main_kernels": min(r["gpu_copy_fraction"] for r in rows if r["kernel"] in ("forward_kernel", "backward_kernel")),
        **speed,
    }


def measure_gpu_hevc(shape: list[int], repeats: int, device: str = "cuda") -> dict:
    """Forward + backward of the HEVC-intra proxy (4:2:0) on CUDA, its decisions by the torch wavefronts
    and by the Triton kernel (float32, ``shape`` = N, H, W of the RGB batch)."""
    from sandwich.codecs.hevc_proxy.proxy import HevcIntraProxy

    n, h, w = shape
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(n, 3, h, w, generator=gen, device=device).requires_grad_(True)
    level = torch.linspace(-3.0, 1.5, n, device=device)
    grads = [torch.randn(x.shape, generator=gen, device=device), torch.randn(n, generator=gen, device=device)]
    proxies = {impl: HevcIntraProxy("420", kernels=impl).to(device) for impl in ("reference", "triton")}  # reference: the wavefronts

    def step(impl: str) -> None:
        x.grad = None
        torch.autograd.backward(list(proxies[impl](x, level)), grads)

    ms = {impl: _gpu_seconds(lambda impl=impl: step(impl), repeats) * 1e3 for impl in proxies}
    return {"gpu_hevc_shape": f"{n}x3x{h}x{w}", "gpu_hevc_wavefronts_ms": ms["reference"], "gpu_hevc_triton_ms": ms["triton"],
            "gpu_hevc_triton_speedup": ms["reference"] / ms["triton"]}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark, print its table and figures, write JSON; returns the report."""
    if args.repeats < 1:
        raise InputError(f"--repeats {args.repeats} must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if min(args.cpu_shape) < 1 or min(args.proxy_shape) < 1 or min(args.gpu_shape) < 1 or min(args.hevc_shape) < 1:
        raise InputError("shapes must be positive")
    report: dict = {"benchmark": "kernels", "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    report.update(measure_cpu_op(args.cpu_shape, args.repeats, not args.no_compile))
    report["proxy_shape"] = f"{args.proxy_shape[0]}x3x{args.proxy_shape[1]}x{args.proxy_shape[2]}"
    report["proxy"] = measure_proxy(args.proxy_shape, args.repeats, not args.no_compile)
    if not args.no_interpret:
        report.update(measure_interpret())
    if torch.cuda.is_available():
        report.update(measure_gpu(args.gpu_shape, args.repeats))
        report.update(measure_gpu_hevc(args.hevc_shape, args.repeats))
        report["gpu_note"] = "measured"
    else:
        report.update({"gpu_device": None, "gpu_kernels": None, "gpu_min_copy_fraction_main_kernels": None, "speedup_vs_eager_composite": None})
        report["gpu_note"] = "no CUDA device on this machine: GPU figures were not measured"
    pays = report["cpu_compile_pays"]
    report["cpu_compile_note"] = (
        "not measured (--no-compile)" if pays is None
        else f"torch.compile of the CPU kernel {'pays' if pays else 'does not pay'}: {report['cpu_compile_speedup']:.2f}x the eager torch kernel "
        f"after a one-off compile of {report['cpu_compiled_compile_s']:.0f} s"
    )  # fmt: skip

    print_table(
        [{**r, "fwd_bwd_mpix_per_s": r["fwd_bwd_mpix_per_s"] or float("nan"), "compile_s": r["compile_s"] or float("nan"),
          "speedup_vs_reference_op": r["speedup_vs_reference_op"] or float("nan")} for r in report["proxy"]],
        [("variant", "proxy variant", "s"), ("fwd_bwd_mpix_per_s", "MPix/s", ".3f"),
         ("speedup_vs_reference_op", "vs ref op", ".2f"), ("compile_s", "compile s", ".1f")],
    )  # fmt: skip
    if report["gpu_kernels"]:
        print_table(report["gpu_kernels"], [("block", "block", "d"), ("kernel", "kernel", "s"), ("ms", "ms", ".3f"),
                                            ("gb_per_s", "GB/s", ".0f"), ("gpu_copy_fraction", "of copy", ".2f")])  # fmt: skip
    for key, value in report.items():
        if key in ("proxy", "gpu_kernels"):
            continue
        if isinstance(value, dict):
            value = "  ".join(f"{k}={v:.2e}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        print(f"{key:40s} {value}")
    write_json(args.json, report)
    return report

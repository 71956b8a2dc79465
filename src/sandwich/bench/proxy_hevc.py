"""``sandwich bench proxy --codec hevc``: the HEVC-intra proxy against real x265.

For every image (a centre crop of at most 192x192, even-sized, as in the rate fit) and QP 17, 22, ..., 47 it codes the image with x265
(:mod:`sandwich.codecs.real.hevc`) and with the proxy (:mod:`sandwich.codecs.hevc_proxy`) at that QP,
and reports per QP (means over images) the same fields as the JPEG benchmark:

* ``real_bpp`` / ``proxy_bpp``: x265's payload bits and the rate model's estimate per source pixel;
* ``psnr_real_db`` / ``psnr_proxy_db``: each decode against the source; ``psnr_gap_db``: their
  difference (goal: at most 2 dB at every QP);
* ``recon_psnr_vs_real_db``: the proxy's decode against x265's.

The summary gives the rate model's median |relative error| overall and per photo source (the goal is
<= 10 % outside the fit set) and forward+backward throughput on a training batch (8x3x64x64) beside the
JPEG proxy's and beside the HEVC proxy's with the torch reference of its closed-loop decisions instead of
the fused numba kernel (``fused_vs_reference_time``), timed alternately in the same run.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from tqdm import tqdm

from sandwich.bench.proxy_report import error_summary, load_images, print_report
from sandwich.bench.timing import interleaved_medians
from sandwich.codecs.color import luma8
from sandwich.fitting.hevc_rate import CROP, as_batch
from sandwich.codecs.hevc_proxy import tables
from sandwich.codecs.hevc_proxy.proxy import HevcIntraProxy, hevc_intra_proxy
from sandwich.codecs.hevc_proxy.rate import HevcRate
from sandwich.codecs.jpeg_proxy.proxy import JpegProxyCodec
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.data.images import centre_crop
from sandwich.files import write_json
from sandwich.metrics.psnr import psnr_db

QPS = (17, 22, 27, 32, 37, 42, 47)
SPEED_SHAPE = (8, 64, 64)


def _as_image(recon: torch.Tensor) -> np.ndarray:
    """``(1, C, H, W)`` 0..255 -> ``(H, W, C)`` (or ``(H, W)``) uint8."""
    image = recon[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return image[..., 0] if image.shape[-1] == 1 else image


@torch.no_grad()
def measure_rd(images: dict[str, np.ndarray], subsampling: str) -> tuple[list[dict], list[tuple[str, float]], list[float]]:
    """Per-QP points, every (image name, rate error) pair, and every per-image recon PSNR."""
    rate, codec = HevcRate(), HevcCodec(subsampling)
    points, rate_errors, recon_all = [], [], []
    for qp in tqdm(QPS, desc=f"hevc {subsampling} x265 vs proxy", unit="qp"):
        acc: dict[str, list[float]] = {k: [] for k in ("real_bpp", "proxy_bpp", "psnr_real_db", "psnr_proxy_db", "recon_psnr_vs_real_db")}
        for name, rgb in images.items():
            rgb = centre_crop(rgb, CROP, multiple=2)
            source = luma8(rgb) if subsampling == "400" else rgb
            encoded = codec.encode(source, qp)
            real = codec.decode(encoded.data)
            out = hevc_intra_proxy(as_batch(rgb, subsampling), torch.tensor(tables.slice_qp([qp])), subsampling, rate)
            proxy, proxy_bits = _as_image(out.recon), float(rate(out.features)[0])
            pixels = rgb.shape[0] * rgb.shape[1]
            acc["real_bpp"].append(encoded.payload_bits / pixels)
            acc["proxy_bpp"].append(proxy_bits / pixels)
            acc["psnr_real_db"].append(psnr_db(real, source))
            acc["psnr_proxy_db"].append(psnr_db(proxy, source))
            acc["recon_psnr_vs_real_db"].append(psnr_db(proxy, real))
            rate_errors.append((name, abs(proxy_bits - encoded.payload_bits) / encoded.payload_bits))
        recon_all.extend(acc["recon_psnr_vs_real_db"])
        point = {"qp": qp, **{k: float(np.mean(v)) for k, v in acc.items()}}
        points.append(point | {"psnr_gap_db": point["psnr_real_db"] - point["psnr_proxy_db"]})
    return points, rate_errors, recon_all


def measure_speed(subsampling: str) -> dict[str, float]:
    """Forward+backward MPix/s of the HEVC proxy (its decisions by the default kernel, and by the torch
    reference) and of the JPEG proxy on one training batch."""
    n, h, w = SPEED_SHAPE
    channels = 1 if subsampling == "400" else 3
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, channels, h, w, generator=generator).requires_grad_(True)
    level = torch.linspace(-3.0, 1.5, n)
    grad_image, grad_bits = torch.randn(x.shape, generator=generator), torch.randn(n, generator=generator)
    proxies = {"hevc": HevcIntraProxy(subsampling), "hevc_reference": HevcIntraProxy(subsampling, kernels="reference"), "jpeg": JpegProxyCodec(subsampling)}

    def step(name: str) -> None:
        x.grad = None
        torch.autograd.backward(list(proxies[name](x, level)), [grad_image, grad_bits])

    for name in proxies:
        step(name)  # warm-up (numba's first-call compile)
    seconds = interleaved_medians({name: (lambda name=name: step(name)) for name in proxies}, repeats=7)
    mpix = n * h * w / 1e6
    return {
        "fwd_bwd_mpix_per_s": mpix / seconds["hevc"],
        "jpeg_proxy_fwd_bwd_mpix_per_s": mpix / seconds["jpeg"],
        "hevc_vs_jpeg_proxy_time": seconds["hevc"] / seconds["jpeg"],
        "reference_decisions_fwd_bwd_mpix_per_s": mpix / seconds["hevc_reference"],
        "fused_vs_reference_time": seconds["hevc"] / seconds["hevc_reference"],
    }


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark, print its table and summary, write JSON; returns the report."""
    images = load_images(args.images)
    points, named_errors, recon_all = measure_rd(images, args.subsampling)
    errors, by_source = error_summary(named_errors, points, recon_all)
    summary = {**errors, "psnr_gap_db_max": max(p["psnr_gap_db"] for p in points), **measure_speed(args.subsampling)}
    report = {
        "benchmark": "proxy",
        "codec": "hevc",
        "subsampling": args.subsampling,
        "images": sorted(images),
        "crop": CROP,
        "rate_model": "HevcRate (sandwich/codecs/hevc_proxy/hevc_linear.json)",
        "speed_input": f"{SPEED_SHAPE[0]}x{1 if args.subsampling == '400' else 3}x{SPEED_SHAPE[1]}x{SPEED_SHAPE[2]}",
        "torch_threads": torch.get_num_threads(),
        "points": points,
        "rate_by_source": by_source,
        "summary": summary,
    }
    print_report(
        points,
        [
            ("qp", "qp", "d"),
            ("real_bpp", "real_bpp", ".3f"),
            ("proxy_bpp", "proxy_bpp", ".3f"),
            ("psnr_real_db", "psnr_real", ".2f"),
            ("psnr_proxy_db", "psnr_proxy", ".2f"),
            ("psnr_gap_db", "gap_db", ".2f"),
            ("recon_psnr_vs_real_db", "proxy_vs_real", ".2f"),
        ],
        by_source,
        summary,
    )
    write_json(args.json, report)
    return report

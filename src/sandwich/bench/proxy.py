"""``sandwich bench proxy``: the JPEG proxy against real libjpeg-turbo, and its speed against kornia
(``--codec hevc``: the HEVC-intra proxy against x265, :mod:`sandwich.bench.proxy_hevc`).

For every image and quality 10, 20, ..., 90, 95 it codes the image with libjpeg-turbo and with the proxy
using the same IJG tables. The default images are every sample photo source, each marked as in or out
of the rate model's fit set: scikit-image and matplotlib (fitted on), SPORCO (held out), and SPORCO
defocused (held out; smooth content like shallow-depth-of-field photos). It reports, per quality (means
over images):

* ``real_bpp`` / ``proxy_bpp``: libjpeg payload bits and the calibration-free rate model's estimate,
  per source pixel;
* ``psnr_real_db`` / ``psnr_proxy_db``: each decode against the source (8-bit scale);
* ``recon_psnr_vs_real_db``: the proxy's reconstruction against libjpeg's decode.

The summary adds the median |relative error| of the rate model over all (image, quality) pairs and per
photo source (``rate_by_source``; the goal is <= 5% on every source outside the fit set), the
worst quality point of ``recon_psnr_vs_real_db``, and forward+backward throughput of the proxy with
its rate model on a 16x3x256x256 batch (16x1x256x256 for 4:0:0), beside kornia's differentiable JPEG
(RGB 4:2:0 only, the same RGB batch) measured in the same run, the two timed alternately (medians of 7)
so that a load changing during the run weighs on both alike. Each timed step is one forward pass and
one backward pass from fixed random gradients of the outputs (the image, and for the proxy its bits),
into an input leaf that already exists: nothing but the codec and its autograd is timed (no loss
function, no copy of the input).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sandwich.bench import proxy_hevc
from sandwich.bench.proxy_report import error_summary, load_images, print_report
from sandwich.bench.timing import interleaved_medians
from sandwich.codecs.jpeg_proxy.pair import code_pair, tables_for
from sandwich.codecs.jpeg_proxy.proxy import JpegProxy
from sandwich.codecs.jpeg_proxy.rate import LinearJpegRate
from sandwich.errors import InputError
from sandwich.files import write_json
from sandwich.metrics.psnr import psnr_db

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
SPEED_SHAPE = (16, 256, 256)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument("--codec", default="jpeg", choices=["jpeg", "hevc"], help="codec whose proxy to compare with it (hevc: x265)")
    parser.add_argument("--subsampling", default="420", choices=["444", "420", "400"], help="chroma subsampling")
    parser.add_argument("--images", type=Path, default=None, help="folder of PNG/JPEG photos (default: held-out sample photos)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for the speed test (default: torch's)")


def measure_rd(images: dict[str, np.ndarray], subsampling: str) -> tuple[list[dict], list[tuple[str, float]], list[float]]:
    """Per-quality points, every (image name, rate error) pair, and every per-image recon PSNR."""
    rate_model = LinearJpegRate()
    points, rate_errors, recon_all = [], [], []
    for quality in tqdm(QUALITIES, desc=f"jpeg {subsampling} real vs proxy", unit="quality"):
        acc = {k: [] for k in ("real_bpp", "proxy_bpp", "psnr_real_db", "psnr_proxy_db", "recon_psnr_vs_real_db")}
        for name, rgb in images.items():
            pair = code_pair(rgb, subsampling, *tables_for(quality=quality))
            pixels = rgb.shape[0] * rgb.shape[1]
            with torch.no_grad():
                proxy_bits = float(rate_model(pair.proxy.planes)[0])
            proxy_decoded = pair.proxy_decoded()
            acc["real_bpp"].append(pair.real_bits / pixels)
            acc["proxy_bpp"].append(proxy_bits / pixels)
            acc["psnr_real_db"].append(psnr_db(pair.real_decoded, pair.source))
            acc["psnr_proxy_db"].append(psnr_db(proxy_decoded, pair.source))
            acc["recon_psnr_vs_real_db"].append(psnr_db(proxy_decoded, pair.real_decoded))
            rate_errors.append((name, abs(proxy_bits - pair.real_bits) / pair.real_bits))
        recon_all.extend(acc["recon_psnr_vs_real_db"])
        points.append({"quality": quality, **{k: float(np.mean(v)) for k, v in acc.items()}})
    return points, rate_errors, recon_all


def measure_speed(subsampling: str) -> dict[str, float]:
    """Forward+backward MPix/s of proxy+rate and of kornia's differentiable JPEG on the same batch."""
    import kornia.enhance

    n, h, w = SPEED_SHAPE
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(n, 3, h, w, generator=generator) * 255
    source = rgb.mean(dim=1, keepdim=True) if subsampling == "400" else rgb
    proxy, rate_model = JpegProxy(subsampling, quality=50, trainable=True), LinearJpegRate()
    x_ours = source.clone().requires_grad_(True)
    x_theirs = (rgb / 255).requires_grad_(True)
    grad_rgb = torch.randn(rgb.shape, generator=generator)
    grad_image = grad_rgb[:, :1].contiguous() if subsampling == "400" else grad_rgb
    grad_bits = torch.randn(n, generator=generator)

    def ours() -> None:
        x_ours.grad = None
        out = proxy(x_ours)
        torch.autograd.backward([out.recon, rate_model(out.planes)], [grad_image, grad_bits])

    def theirs() -> None:
        x_theirs.grad = None
        y = kornia.enhance.jpeg_codec_differentiable(x_theirs, torch.tensor([50.0]))
        y.backward(grad_rgb)

    mpix = n * h * w / 1e6
    ours(), theirs()  # warm-up (and numba's first-call compile)
    seconds = interleaved_medians({"ours": ours, "theirs": theirs}, repeats=7)
    ours_s, theirs_s = seconds["ours"], seconds["theirs"]
    return {
        "fwd_bwd_mpix_per_s": mpix / ours_s,
        "kornia_fwd_bwd_mpix_per_s": mpix / theirs_s,
        "speedup_vs_kornia": theirs_s / ours_s,
    }


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark, print its table and summary, write JSON; returns the report."""
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.codec == "hevc":
        return proxy_hevc.run(args)
    images = load_images(args.images)
    points, named_errors, recon_all = measure_rd(images, args.subsampling)
    errors, by_source = error_summary(named_errors, points, recon_all)
    summary = {**errors, **measure_speed(args.subsampling)}
    report = {
        "benchmark": "proxy",
        "codec": args.codec,
        "subsampling": args.subsampling,
        "images": sorted(images),
        "rate_model": "LinearJpegRate (calibration-free, sandwich/codecs/jpeg_proxy/jpeg_linear.json)",
        "speed_input": f"{SPEED_SHAPE[0]}x{1 if args.subsampling == '400' else 3}x{SPEED_SHAPE[1]}x{SPEED_SHAPE[2]}",
        "torch_threads": torch.get_num_threads(),
        "points": points,
        "rate_by_source": by_source,
        "summary": summary,
    }
    print_report(
        points,
        [
            ("quality", "quality", "d"),
            ("real_bpp", "real_bpp", ".3f"),
            ("proxy_bpp", "proxy_bpp", ".3f"),
            ("psnr_real_db", "psnr_real", ".2f"),
            ("psnr_proxy_db", "psnr_proxy", ".2f"),
            ("recon_psnr_vs_real_db", "proxy_vs_real", ".2f"),
        ],
        by_source,
        summary,
    )
    write_json(args.json, report)
    return report

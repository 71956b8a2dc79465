"""The calibration-free JPEG rate model: a linear model of entropy-coder statistics.

``bits = Σ_kind w_kind · features_kind + header_luma + header_chroma · [has chroma]`` with the
statistics of :mod:`sandwich.codecs.blockcodec` (:data:`~sandwich.codecs.blockcodec.FEATURES`) for
luma and chroma planes separately (JPEG codes them with separate Huffman tables), plus one derived
statistic per kind, ``run_log = nz · log2(1 + 63 · blocks / (nz + 1))`` with ``nz`` the non-zero AC
count: each non-zero AC symbol also codes the zero run before it, whose information grows like
``log2(1 / density)``. Without it the model charges every symbol the same and over-estimates smooth
photos (sparse blocks: defocused backgrounds, sky) by 8-11% at low quality.

The weights are fitted once, by ``python -m sandwich.fitting.jpeg_rate``, against libjpeg-turbo's
optimised-Huffman payload bytes on the rate-fit sample photos (:data:`sandwich.data.samples.RATE_FIT_PHOTOS`,
each also defocused) over IJG qualities and flat steps in 4:4:4, 4:2:0 and 4:0:0, and stored beside this
file in ``jpeg_linear.json``. Units: bits per image; divide by source pixels for bpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from sandwich.codecs.block_levels import FEATURES
from sandwich.codecs.blockcodec import CodedPlanes

PARAMS_PATH = Path(__file__).with_name("jpeg_linear.json")
KIND_FEATURES = (*FEATURES, "run_log")
FEATURE_NAMES = [f"{kind}.{f}" for kind in ("luma", "chroma") for f in KIND_FEATURES] + ["header_luma", "header_chroma"]
AC_PER_BLOCK = 63


def run_log(features: Tensor) -> Tensor:
    """``(N, len(FEATURES))`` statistics -> ``(N, 1)``: ``nz · log2(1 + 63 · blocks / (nz + 1))`` (see the module doc)."""
    nonzero = features[:, FEATURES.index("ac_nonzero")]
    blocks = features[:, FEATURES.index("blocks")]
    return (nonzero * torch.log2(1 + AC_PER_BLOCK * blocks / (nonzero + 1)))[:, None]


def feature_vector(planes: list[CodedPlanes]) -> Tensor:
    """``(N, len(FEATURE_NAMES))``: luma statistics and run_log, chroma statistics and run_log, 1, [has chroma]."""
    n = planes[0].features.shape[0]
    sums = {"luma": planes[0].features.new_zeros(n, len(FEATURES)), "chroma": planes[0].features.new_zeros(n, len(FEATURES))}
    for plane in planes:
        sums[plane.kind] = sums[plane.kind] + plane.features
    ones = sums["luma"].new_ones(n, 1)
    has_chroma = float(any(p.kind == "chroma" for p in planes))
    per_kind = [torch.cat([sums[kind], run_log(sums[kind])], dim=1) for kind in ("luma", "chroma")]
    return torch.cat([*per_kind, ones, ones * has_chroma], dim=1)


class LinearJpegRate(nn.Module):
    """Bits per image, ``(N,)``, from the planes of a JPEG proxy; weights from ``jpeg_linear.json``.

    Example:
        >>> from sandwich.codecs.jpeg_proxy.proxy import JpegProxy
        >>> out = JpegProxy("420", quality=50)(torch.rand(2, 3, 64, 64) * 255)
        >>> LinearJpegRate()(out.planes).shape
        torch.Size([2])
    """

    def __init__(self, params_path: Path = PARAMS_PATH) -> None:
        super().__init__()
        params = json.loads(Path(params_path).read_text())
        if params["features"] != FEATURE_NAMES:
            raise ValueError(f"{params_path}: features {params['features']} do not match the code's {FEATURE_NAMES}")
        self.register_buffer("weights", torch.tensor(params["weights"], dtype=torch.float32))

    def forward(self, planes: list[CodedPlanes]) -> Tensor:  # noqa: D102
        return feature_vector(planes) @ self.weights.to(planes[0].features.dtype)

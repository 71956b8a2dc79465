"""The calibration-free JPEG rate model: a linear model of entropy-coder statistics.

``bits = Σ_kind w_kind · features_kind + header_luma + header_chroma · [has chroma]`` with the
statistics of :mod:`sandwich.codecs.blockcodec` (:data:`~sandwich.codecs.blockcodec.FEATURES`) for
luma and chroma planes separately (JPEG codes them with separate Huffman tables). The weights are
fitted once, by ``python -m sandwich.codecs.rate.fit``, against libjpeg-turbo's optimised-Huffman
payload bytes on the *fit* sample photos over IJG qualities and flat steps in 4:4:4, 4:2:0 and 4:0:0,
and stored beside this file in ``jpeg_linear.json``. Units: bits per image; divide by source pixels
for bpp.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from sandwich.codecs.blockcodec import FEATURES, CodedPlanes

PARAMS_PATH = Path(__file__).with_name("jpeg_linear.json")
FEATURE_NAMES = [f"{kind}.{f}" for kind in ("luma", "chroma") for f in FEATURES] + ["header_luma", "header_chroma"]


def feature_vector(planes: list[CodedPlanes]) -> Tensor:
    """``(N, len(FEATURE_NAMES))``: luma statistics, chroma statistics, 1, [has chroma]."""
    n = planes[0].features.shape[0]
    sums = {"luma": planes[0].features.new_zeros(n, len(FEATURES)), "chroma": planes[0].features.new_zeros(n, len(FEATURES))}
    for plane in planes:
        sums[plane.kind] = sums[plane.kind] + plane.features
    ones = sums["luma"].new_ones(n, 1)
    has_chroma = float(any(p.kind == "chroma" for p in planes))
    return torch.cat([sums["luma"], sums["chroma"], ones, ones * has_chroma], dim=1)


class LinearJpegRate(nn.Module):
    """Bits per image, ``(N,)``, from the planes of a JPEG proxy; weights from ``jpeg_linear.json``.

    Example:
        >>> from sandwich.codecs.jpeg_proxy import JpegProxy
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

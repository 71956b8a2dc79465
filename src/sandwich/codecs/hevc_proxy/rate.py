"""The HEVC proxy's rate model: linear in per-block statistics, fitted on x265's payload bits.

``bits = Σ_kind Σ_f w_kind,f · F_kind,f + w_header`` over luma and chroma (CABAC codes them with separate
contexts) and the statistics of :data:`~sandwich.codecs.hevc_proxy.transforms.BLOCK_FEATURES` summed
over the blocks the proxy chose: ``log_mag`` (``Σ log2(1 + |q|)``: the levels' magnitude bits),
``nonzero`` (significance flags and signs), ``nz_log`` (``nz · log2(1 + area / (nz + 1))``: where the
non-zero levels are, per block), ``blocks`` (per transform block: split flags, modes, coded-block flags).
The header term is the parameter sets and slice header of one picture.

The weights are fitted by ``python -m sandwich.fitting.hevc_rate`` and stored beside this file in
``hevc_linear.json``. Units: bits per image.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from sandwich.codecs.hevc_proxy.transforms import BLOCK_FEATURES
from sandwich.errors import InputError

PARAMS_PATH = Path(__file__).with_name("hevc_linear.json")
KINDS = ("luma", "chroma")
FEATURE_NAMES = [f"{kind}.{f}" for kind in KINDS for f in BLOCK_FEATURES] + ["header"]
# Rough per-statistic bits that rank transform sizes before a fit exists (the fit's first round).
INITIAL_WEIGHTS = (1.6, 1.5, 0.5, 2.0, 1.6, 1.5, 0.5, 1.0, 400.0)


def load_weights(path: Path = PARAMS_PATH) -> list[float]:
    """The fitted weights, in the order of :data:`FEATURE_NAMES`."""
    if not path.is_file():
        raise InputError(f"hevc proxy: no rate model at {path}; run: python -m sandwich.fitting.hevc_rate")
    params = json.loads(path.read_text())
    if params["features"] != FEATURE_NAMES:
        raise InputError(f"{path}: features {params['features']} do not match the code's {FEATURE_NAMES}")
    return [float(w) for w in params["weights"]]


class HevcRate(nn.Module):
    """Bits per image ``(N,)`` from the proxy's feature vectors ``(N, len(FEATURE_NAMES))``.

    Args:
        weights: one per feature name; None: the fitted ones (:func:`load_weights`).
    """

    def __init__(self, weights: list[float] | None = None) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(load_weights() if weights is None else weights, dtype=torch.float32))

    def per_kind(self, kind: str) -> Tensor:
        """``(len(BLOCK_FEATURES),)`` the weights of one kind's statistics (what ranks transform sizes)."""
        start = KINDS.index(kind) * len(BLOCK_FEATURES)
        return self.weights[start : start + len(BLOCK_FEATURES)]

    def forward(self, features: Tensor) -> Tensor:  # noqa: D102
        return features @ self.weights.to(features.dtype)

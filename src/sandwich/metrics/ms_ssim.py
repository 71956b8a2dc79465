"""MS-SSIM (Wang et al. 2003) via torchmetrics, per image, differentiable, usable on small images too."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

# The standard five scale weights; small images use the first k, renormalised.
_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_KERNEL = 11


def ms_ssim(a: Tensor, b: Tensor) -> Tensor:
    """MS-SSIM ``(N,)`` of two ``(N, C, H, W)`` batches on [0, 1] (data range 1; ``b`` clipped), in [0, 1].

    Uses as many of the five standard scales as the image size allows (each scale halves it and the
    11-tap window must fit, and torchmetrics' size check must pass), so images down to 11 pixels a side are measured. Differentiable (the
    contrast-structure terms are ReLU-normalised, torchmetrics' ``normalize="relu"``), so it serves as a
    loss as well as a metric.
    """
    side = min(a.shape[-2:])
    scales = 1
    while scales < len(_BETAS) and side // 2**scales >= _KERNEL and side // scales**2 >= _KERNEL:
        scales += 1  # the second test is torchmetrics' own size check for scales + 1 weights (it refuses e.g. 96 pixels at 4)
    betas = _BETAS[:scales]
    betas = tuple(beta / sum(betas) for beta in betas)
    return multiscale_structural_similarity_index_measure(
        b.clamp(0, 1), a, data_range=1.0, kernel_size=_KERNEL, betas=betas, reduction="none", normalize="relu"
    )


def ms_ssim_db(value: Tensor | float) -> Tensor:
    """MS-SSIM on a rising dB scale, ``-10 log10(1 - MS-SSIM)`` (1 - MS-SSIM floored at 1e-10)."""
    return -10 * torch.log10((1 - torch.as_tensor(value, dtype=torch.float64)).clamp_min(1e-10))

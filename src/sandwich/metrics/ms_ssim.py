"""MS-SSIM (Wang et al. 2003) via torchmetrics, usable on small images too."""

from __future__ import annotations

from torch import Tensor
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

# The standard five scale weights; small images use the first k, renormalised.
_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_KERNEL = 11


def ms_ssim(a: Tensor, b: Tensor) -> float:
    """MS-SSIM of two ``(1, C, H, W)`` images on [0, 1] (data range 1), in [0, 1].

    Uses as many of the five standard scales as the image size allows (each scale halves it and the
    11-tap window must fit), so images down to 11 pixels a side are measured.
    """
    side = min(a.shape[-2:])
    scales = 1
    while scales < len(_BETAS) and side // 2**scales >= _KERNEL:
        scales += 1
    betas = _BETAS[:scales]
    betas = tuple(beta / sum(betas) for beta in betas)
    value = multiscale_structural_similarity_index_measure(
        a.clamp(0, 1), b.clamp(0, 1), data_range=1.0, kernel_size=_KERNEL, betas=betas
    )
    return float(value)

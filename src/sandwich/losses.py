"""Rate-distortion losses: a weighted mix of per-image distortions plus λ times the rate.

Distortions (built by name from :data:`DISTORTIONS`) map a source and its reconstruction, ``(N, C, H, W)`` on
[0, 1] with ``bit_depth``-bit samples, to one differentiable value per image ``(N,)``:

* ``mse``: the MSE in squared ``bit_depth``-bit levels (on an 8-bit source, 0..255 squared);
* ``msssim``: ``1 - MS-SSIM`` (dimensionless, 0 for a perfect copy);
* ``lpips`` / ``lpips_vgg``: LPIPS v0.1 on AlexNet / VGG16 features, ``dists``: DISTS
  (:mod:`sandwich.metrics.perceptual`; dimensionless, 0 for a perfect copy; RGB or gray sources).

The ``loss`` config group (``conf/loss/``) gives the weight of each (``distortion: {mse: 1.0}``) and
the *form* of the loss per image, with ``D`` the weighted sum and ``bpp`` bits per source pixel:

* ``linear``: ``D + λ·bpp``. With ``mse`` alone, λ is in squared levels per bpp (the papers' loss;
  raising the rate by 0.1 bpp must buy ``0.1 λ`` of MSE). Weights put other distortions in the same
  units: ``msssim`` weighted by the MSE-to-(1 - MS-SSIM) ratio of the codec's own errors keeps λ's
  meaning (``conf/loss/msssim.yaml`` says how it was measured); ``lpips`` weighted by ``s`` with
  ``s·LPIPS ≈ MSE`` on small errors, as the papers scale it (``conf/loss/lpips.yaml``: s and its measurement);
* ``db``: ``10·log10(D) + λ·bpp``, λ in dB per bpp (with ``mse``: ``-PSNR + λ·bpp`` up to a constant):
  the slope of an RD curve in the PSNR-bpp plane, about the same at every quality. It weighs each
  crop by ``1/D``, so a batch's smooth crops (which no filter improves) own the gradient and a
  zero-started U-Net hardly learns (``rgb_jpeg420``: +0.01 dB at q20 after 400 steps, where ``linear``
  gave +0.15 dB).

``lmbda_level_exponent`` γ lets λ follow the codec's level ``ℓ`` (octaves, :mod:`sandwich.codecs.stage`):
the rate weight of an image is ``λ · 2**(γ·ℓ)``, so λ is its value at IJG quality 50's step. A codec's
own RD slope ``-dMSE/dbpp`` grows with its step: JPEG 4:2:0 on SPORCO's photos goes from 4.7 (q90-95)
to 350 (q10-20) squared levels per bpp, ``≈ 59 · 2**(1.37·ℓ)``. With one λ for the whole sweep
(γ = 0) the pre-processor buys bits at the coarse qualities and sells them at the fine ones far below
the codec's own price (measured: -0.8 dB at q90, -1.0 dB at q95 for 8% fewer bits); with γ ≈ 1.4 the
trade has the codec's price at every level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from sandwich.errors import InputError
from sandwich.metrics.ms_ssim import ms_ssim
from sandwich.metrics.perceptual import dists, lpips, network
from sandwich.metrics.psnr import mse
from sandwich.registry import Registry

Distortion = Callable[[Tensor, Tensor, int], Tensor]
DISTORTIONS: Registry[Distortion] = Registry("distortion")
"""Distortion factories by name: each builds what it needs (a network, once) and returns the :data:`Distortion`."""
FORMS = ("linear", "db")


@DISTORTIONS.register("mse")
def mse_distortion() -> Distortion:
    """MSE ``(N,)`` in squared ``bit_depth``-bit levels."""
    return mse


@DISTORTIONS.register("msssim")
def msssim_distortion() -> Distortion:
    """``1 - MS-SSIM`` ``(N,)`` (the bit depth does not matter: MS-SSIM is scale-free)."""
    return lambda source, recon, bit_depth: 1 - ms_ssim(source, recon)


@DISTORTIONS.register("lpips")
def lpips_distortion() -> Distortion:
    """LPIPS ``(N,)`` on AlexNet features (scale-free); InputError now if the backbone is not installed."""
    network("lpips-alex")
    return lambda source, recon, bit_depth: lpips(source, recon, "alex")


@DISTORTIONS.register("lpips_vgg")
def lpips_vgg_distortion() -> Distortion:
    """LPIPS ``(N,)`` on VGG16 features."""
    network("lpips-vgg")
    return lambda source, recon, bit_depth: lpips(source, recon, "vgg")


@DISTORTIONS.register("dists")
def dists_distortion() -> Distortion:
    """DISTS ``(N,)``."""
    network("dists")
    return lambda source, recon, bit_depth: dists(source, recon)


class RateDistortionLoss:
    """``D + λ·bpp`` or ``10·log10(D) + λ·bpp`` per image (module doc).

    Args:
        distortion: ``{distortion name: weight}``, e.g. ``{"mse": 1.0}`` or ``{"mse": 0.5, "msssim": 1500}``.
        form: ``"linear"`` or ``"db"``.
        lmbda: λ at level 0, in the form's units.
        lmbda_level_exponent: γ; the rate weight at level ℓ is ``λ · 2**(γ·ℓ)``.
        bit_depth: the source's bits per sample (the scale of ``mse``).
    """

    def __init__(
        self, distortion: Mapping[str, float], form: str, lmbda: float, lmbda_level_exponent: float = 0.0, bit_depth: int = 8
    ) -> None:
        if not distortion:
            raise InputError("loss: distortion needs at least one term, e.g. {mse: 1.0}")
        self.terms: dict[str, tuple[float, Distortion]] = {name: (float(w), DISTORTIONS.get(name)()) for name, w in distortion.items()}
        if form not in FORMS:
            raise InputError(f"loss: form={form!r} not one of {', '.join(FORMS)}")
        if lmbda <= 0:
            raise InputError(f"loss: lmbda={lmbda} must be > 0")
        self.form, self.lmbda, self.exponent, self.bit_depth = form, float(lmbda), float(lmbda_level_exponent), bit_depth

    def distortions(self, source: Tensor, recon: Tensor) -> dict[str, Tensor]:
        """Each term's distortion ``(N,)``, unweighted, by name."""
        return {name: fn(source, recon, self.bit_depth) for name, (_, fn) in self.terms.items()}

    def __call__(self, distortions: Mapping[str, Tensor], bpp: Tensor, level: Tensor) -> Tensor:
        """The loss ``(N,)`` from :meth:`distortions`, bits per source pixel ``(N,)`` and levels ``(N,)``."""
        total = sum(self.terms[name][0] * value for name, value in distortions.items())
        if self.form == "db":
            total = 10 * torch.log10(total.clamp_min(1e-10))
        return total + self.lmbda * torch.exp2(self.exponent * level.to(bpp)) * bpp

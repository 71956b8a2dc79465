"""Fixed (non-learned) maps between colour and gray images, on the [0, 1] scale.

They serve as the bypass branch of a processor whose input and output channel counts differ, and as
the classic baselines of the grayscale-codec scenario:

* :class:`Luma` / :class:`GrayToRgb`: the codec carries the luma only; the decoder shows it as gray.
* :class:`TextureEmbed` / :class:`TextureExtract`: colour embedded as texture (de Queiroz & Braun,
  "Color to gray and back", IEEE TIP 2006): a one-level orthonormal Haar transform of the luma; the
  2x2-averaged Cb and Cr replace its LH and HL subbands at gain ``alpha``; the inverse transform is the
  gray image. The decoder reads Cb, Cr back from those subbands (divided by ``alpha``, bilinear 2x up)
  and rebuilds the luma with them zeroed. ``alpha`` trades chroma robustness to the codec against the
  luma detail it covers; it can be trained.

Colour space: analogue YCbCr (BT.601 weights, as JFIF) with Cb, Cr centred on 0 (range about ±0.5).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sandwich.jfif import BT601_LUMA as _LUMA



def rgb_to_ycc(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(N, 3, H, W)`` RGB in [0, 1] -> Y in [0, 1] and Cb, Cr in about [-0.5, 0.5], each ``(N, 1, H, W)``."""
    r, g, b = rgb.split(1, dim=1)
    y = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
    return y, (b - y) / (2 * (1 - _LUMA[2])), (r - y) / (2 * (1 - _LUMA[0]))


def ycc_to_rgb(y: Tensor, cb: Tensor, cr: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycc`: three ``(N, 1, H, W)`` planes -> ``(N, 3, H, W)`` RGB (not clipped)."""
    r = y + 2 * (1 - _LUMA[0]) * cr
    b = y + 2 * (1 - _LUMA[2]) * cb
    g = (y - _LUMA[0] * r - _LUMA[2] * b) / _LUMA[1]
    return torch.cat([r, g, b], dim=1)


def haar2(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One-level orthonormal 2D Haar of ``(N, C, H, W)``, H and W even -> (LL, LH, HL, HH), each half size.

    LH holds vertical differences (horizontal edges), HL horizontal differences.
    """
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2


def ihaar2(ll: Tensor, lh: Tensor, hl: Tensor, hh: Tensor) -> Tensor:
    """Inverse of :func:`haar2`: four ``(N, C, h, w)`` subbands -> ``(N, C, 2h, 2w)``."""
    a = (ll + lh + hl + hh) / 2
    b = (ll + lh - hl - hh) / 2
    c = (ll - lh + hl - hh) / 2
    d = (ll - lh - hl + hh) / 2
    top = torch.stack([a, b], dim=-1).flatten(-2)
    bottom = torch.stack([c, d], dim=-1).flatten(-2)
    return torch.stack([top, bottom], dim=-2).flatten(-3, -2)


def _pad_even(x: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")  # no branch on the size: ONNX export keeps H, W dynamic


class Luma(nn.Module):
    """``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 1, H, W)`` luma in [0, 1]."""

    def __init__(self) -> None:  # no options (the bypass registry refuses any)
        super().__init__()

    def forward(self, rgb: Tensor) -> Tensor:  # noqa: D102
        return rgb_to_ycc(rgb)[0]


class GrayToRgb(nn.Module):
    """``(N, 1, H, W)`` gray -> ``(N, 3, H, W)`` with the gray in every channel."""

    def __init__(self) -> None:  # no options (the bypass registry refuses any)
        super().__init__()

    def forward(self, gray: Tensor) -> Tensor:  # noqa: D102
        return gray.expand(-1, 3, -1, -1)


MAX_HEADROOM = 0.25


class EmbeddingGain(nn.Module):
    """The embedding's parameters, trainable or fixed: the gain ``alpha > 0`` and the headroom ``m`` in
    [0, 0.25], each an affine function of the codec's level (its step scale in octaves, see
    :mod:`sandwich.codecs.stage`; the decoder reads it from the quantisation tables in the bitstream):
    ``log alpha(l) = log_alpha + alpha_slope * l`` and ``m(l) = headroom_param + headroom_slope * l``.

    The headroom maps the gray image ``g`` to ``m + (1 - 2m) g`` (and back in the decoder), leaving room
    at both ends of the codec's range so that strong texture is not clipped; the classic method has
    ``m = 0`` and a gain that does not depend on the level, which is where training starts (slopes 0).
    """

    def __init__(self, alpha: float = 1.0, trainable: bool = False) -> None:
        super().__init__()
        for name, value in (("log_alpha", math.log(alpha)), ("alpha_slope", 0.0), ("headroom_param", 0.0), ("headroom_slope", 0.0)):
            if trainable:
                self.register_parameter(name, nn.Parameter(torch.tensor(value)))
            else:
                self.register_buffer(name, torch.tensor(value))

    @staticmethod
    def _at(level: Tensor | None, ref: Tensor) -> Tensor:
        """``level`` ``(N,)`` as ``(N, 1, 1, 1)`` (0 when None), on ``ref``'s device and dtype."""
        return ref.new_zeros(()) if level is None else level.to(ref)[:, None, None, None]

    def alpha(self, level: Tensor | None = None) -> Tensor:
        """The gain: 0-dim for ``level`` None (level 0), else ``(N, 1, 1, 1)`` for levels ``(N,)``."""
        return (self.log_alpha + self.alpha_slope * self._at(level, self.log_alpha)).exp()

    def headroom(self, level: Tensor | None = None) -> Tensor:
        """The headroom ``m`` (shaped as :meth:`alpha`): clipped to [0, 0.25] straight-through (a plain
        clamp has no gradient at the classic method's m = 0, where training starts)."""
        m = self.headroom_param + self.headroom_slope * self._at(level, self.headroom_param)
        return m + (m.clamp_min(0.0).clamp_max(MAX_HEADROOM) - m).detach()  # two one-sided clamps: the ONNX exporter mistypes clamp(0, float)

    def tie_to(self, other: EmbeddingGain) -> None:
        """Use ``other``'s parameters (the decoder then inverts exactly what the encoder did)."""
        for name in ("log_alpha", "alpha_slope", "headroom_param", "headroom_slope"):
            setattr(self, name, getattr(other, name))


class TextureEmbed(EmbeddingGain):
    """Colour to gray with the chroma as texture: ``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 1, H, W)`` gray.

    The output is about [0, 1] but not clipped (the codec clips). Odd sides are padded by replication
    for the transform and cropped back.

    Example:
        >>> gray = TextureEmbed(alpha=1.0)(torch.rand(1, 3, 17, 20))
        >>> gray.shape
        torch.Size([1, 1, 17, 20])
    """

    def forward(self, rgb: Tensor, level: Tensor | None = None) -> Tensor:  # noqa: D102
        h, w = rgb.shape[-2:]
        y, cb, cr = rgb_to_ycc(_pad_even(rgb))
        ll, _, _, hh = haar2(y)
        alpha = self.alpha(level)
        gray = ihaar2(ll, alpha * F.avg_pool2d(cb, 2), alpha * F.avg_pool2d(cr, 2), hh)
        m = self.headroom(level)
        return (m + (1 - 2 * m) * gray)[..., :h, :w]


def extract_planes(gray: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Read the embedded colour back: ``(N, 1, H, W)`` gray (H, W even) -> (Y ``(N,1,H,W)``, Cb, Cr at half size).

    ``extract_planes(TextureEmbed(alpha)(rgb), alpha)`` returns the luma without its LH and HL detail
    and exactly the 2x2-averaged Cb and Cr of ``rgb``.
    """
    ll, lh, hl, hh = haar2(gray)
    zero = torch.zeros_like(lh)
    return ihaar2(ll, zero, zero, hh), lh / alpha, hl / alpha


class TextureExtract(EmbeddingGain):
    """Gray with embedded colour -> ``(N, 3, H, W)`` RGB on the [0, 1] scale (not clipped)."""

    def forward(self, gray: Tensor, level: Tensor | None = None) -> Tensor:  # noqa: D102
        h, w = gray.shape[-2:]
        m = self.headroom(level)
        padded = _pad_even((gray - m) / (1 - 2 * m))
        y, cb, cr = extract_planes(padded, self.alpha(level))
        size = padded.shape[-2:]
        cb, cr = (F.interpolate(c, size=size, mode="bilinear", align_corners=False) for c in (cb, cr))
        return ycc_to_rgb(y, cb, cr)[..., :h, :w]

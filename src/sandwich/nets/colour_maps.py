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

_LUMA = (0.299, 0.587, 0.114)


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
    return F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else x


class Luma(nn.Module):
    """``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 1, H, W)`` luma in [0, 1]."""

    def forward(self, rgb: Tensor) -> Tensor:  # noqa: D102
        return rgb_to_ycc(rgb)[0]


class GrayToRgb(nn.Module):
    """``(N, 1, H, W)`` gray -> ``(N, 3, H, W)`` with the gray in every channel."""

    def forward(self, gray: Tensor) -> Tensor:  # noqa: D102
        return gray.expand(-1, 3, -1, -1)


MAX_HEADROOM = 0.25


class EmbeddingGain(nn.Module):
    """The embedding's parameters, trainable or fixed: the gain ``alpha > 0`` (held as ``log(alpha)``) and
    the headroom ``m`` in [0, 0.25].

    The headroom maps the gray image ``g`` to ``m + (1 - 2m) g`` (and back in the decoder), leaving room
    at both ends of the codec's range so that strong texture is not clipped; the classic method has
    ``m = 0``, which is where training starts.
    """

    def __init__(self, alpha: float = 1.0, trainable: bool = False) -> None:
        super().__init__()
        for name, value in (("log_alpha", math.log(alpha)), ("headroom_param", 0.0)):
            if trainable:
                self.register_parameter(name, nn.Parameter(torch.tensor(value)))
            else:
                self.register_buffer(name, torch.tensor(value))

    @property
    def alpha(self) -> Tensor:
        """The gain as a 0-dim tensor."""
        return self.log_alpha.exp()

    @property
    def headroom(self) -> Tensor:
        """The headroom ``m`` as a 0-dim tensor: the parameter clipped to [0, 0.25], straight-through (a plain
        clamp has no gradient at the classic method's m = 0, where training starts)."""
        m = self.headroom_param
        return m + (m.clamp(0, MAX_HEADROOM) - m).detach()

    def tie_to(self, other: EmbeddingGain) -> None:
        """Use ``other``'s parameters (the decoder then inverts exactly what the encoder did)."""
        self.log_alpha = other.log_alpha
        self.headroom_param = other.headroom_param


class TextureEmbed(EmbeddingGain):
    """Colour to gray with the chroma as texture: ``(N, 3, H, W)`` RGB in [0, 1] -> ``(N, 1, H, W)`` gray.

    The output is about [0, 1] but not clipped (the codec clips). Odd sides are padded by replication
    for the transform and cropped back.

    Example:
        >>> gray = TextureEmbed(alpha=1.0)(torch.rand(1, 3, 17, 20))
        >>> gray.shape
        torch.Size([1, 1, 17, 20])
    """

    def forward(self, rgb: Tensor) -> Tensor:  # noqa: D102
        h, w = rgb.shape[-2:]
        y, cb, cr = rgb_to_ycc(_pad_even(rgb))
        ll, _, _, hh = haar2(y)
        alpha = self.alpha
        gray = ihaar2(ll, alpha * F.avg_pool2d(cb, 2), alpha * F.avg_pool2d(cr, 2), hh)
        m = self.headroom
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

    def forward(self, gray: Tensor) -> Tensor:  # noqa: D102
        h, w = gray.shape[-2:]
        m = self.headroom
        padded = _pad_even((gray - m) / (1 - 2 * m))
        y, cb, cr = extract_planes(padded, self.alpha)
        size = padded.shape[-2:]
        cb, cr = (F.interpolate(c, size=size, mode="bilinear", align_corners=False) for c in (cb, cr))
        return ycc_to_rgb(y, cb, cr)[..., :h, :w]

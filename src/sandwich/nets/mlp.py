"""The pointwise-MLP bypass branch of the sandwich papers: 1x1 convolutions with sine activations."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PointwiseMLP(nn.Module):
    """Per-pixel MLP ``in -> hidden -> hidden -> out`` as 1x1 convolutions, ``sin`` between layers.

    With 3 -> 3 channels and 16 hidden channels it has 387 parameters, the papers' MLP branch.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``; values unconstrained (the processor
    feeds it normalised images in about [-1, 1]).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 16) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [nn.Conv2d(in_channels, hidden, 1), nn.Conv2d(hidden, hidden, 1), nn.Conv2d(hidden, out_channels, 1)]
        )

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        for layer in self.layers[:-1]:
            x = torch.sin(layer(x))
        return self.layers[-1](x)

"""The U-Net of the sandwich papers, with the presets of their Table II.

Structure (Ronneberger et al.): per encoder level two 3x3 convolutions with leaky ReLU, then 2x2 max-pooling;
a bottleneck of two 3x3 convolutions; per decoder level bilinear 2x up-sampling, concatenation with the
encoder's skip, two 3x3 convolutions with leaky ReLU; a final 3x3 convolution to the output channels (no
activation). No normalisation layers, so the hidden convolutions start from He (Kaiming-normal, fan-in)
weights and zero biases, which keep the activations' scale through the stack (PyTorch's default init
shrinks them layer by layer: a post-filter then learned several times slower, measured on JPEG q20).
The activation is a leaky ReLU (slope :data:`LEAK` below zero) where the papers use a plain ReLU: a
sandwich's U-Nets start as a zero correction (zero head) and are pushed back towards zero wherever
the codec is already good (high qualities), and with plain ReLUs that push kills whole layers (the
post-processor's last decoder layer of ``rgb_jpeg420``: 0.2% of its units active after 600 steps, a
sandwich equal to its codec). A dead leaky unit still passes gradient and comes back. Parameter
counts are unchanged. With these choices the parameter counts equal the papers' Table II
exactly (tested), e.g. 7,847,491 for the paper's ``[32, 64, 128, 256]; [512, 256, 128, 64, 32]`` 3->3.

Inputs of any size work: they are padded (replicate) to a multiple of ``2**levels`` and the output is
cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sandwich.errors import InputError

# name -> (encoder channels, decoder channels); the decoder's first entry is the bottleneck.
# Parameter counts (3 -> 3 channels) and MACs per pixel from the papers' Table II.
UNET_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "paper": ((32, 64, 128, 256), (512, 256, 128, 64, 32)),  # 7,847,491
    "u32_64": ((32, 64), (128, 64, 32)),  # 472,387 (incl. MLP) / 112,531 MACs
    "u16_128": ((16, 32, 64, 128), (256, 128, 64, 32, 16)),  # 1,963,043 / 53,981
    "u16_32": ((16, 32), (64, 32, 16)),  # 118,691 / 28,619
    "u8_64": ((8, 16, 32, 64), (128, 64, 32, 16, 8)),  # 491,347 / 13,743
    "u8_16": ((8, 16), (32, 16, 8)),  # 29,971 / 7,399
    "slim": ((32,), (32, 32)),  # 57,219 / 43,347
}


LEAK = 0.1  # negative slope of the activations (module doc)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions (padding 1), each followed by a leaky ReLU: ``(N, cin, H, W) -> (N, cout, H, W)``."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True), nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(LEAK, inplace=True)
    )


class UNet(nn.Module):
    """U-Net with ``len(encoder)`` down-sampling levels.

    Args:
        in_channels, out_channels: channels of the input and output images.
        encoder: channels per encoder level, e.g. ``(32, 64)``.
        decoder: the bottleneck's channels followed by one entry per decoder level (so
            ``len(decoder) == len(encoder) + 1``), e.g. ``(128, 64, 32)``.

    Shapes: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``, any H, W >= 1; values unconstrained.

    Example:
        >>> net = UNet(3, 1, (8, 16), (32, 16, 8))
        >>> net(torch.zeros(2, 3, 37, 50)).shape
        torch.Size([2, 1, 37, 50])
    """

    def __init__(self, in_channels: int, out_channels: int, encoder: Sequence[int], decoder: Sequence[int]) -> None:
        super().__init__()
        if not encoder or len(decoder) != len(encoder) + 1:
            raise InputError(f"unet: need >= 1 encoder level and len(decoder) == len(encoder) + 1, got {list(encoder)}; {list(decoder)}")
        self.levels = len(encoder)
        self.down = nn.ModuleList()
        channels = in_channels
        for width in encoder:
            self.down.append(double_conv(channels, width))
            channels = width
        self.bottleneck = double_conv(channels, decoder[0])
        self.up = nn.ModuleList()
        channels = decoder[0]
        for width, skip in zip(decoder[1:], reversed(encoder), strict=True):
            self.up.append(double_conv(channels + skip, width))
            channels = width
        self.head = nn.Conv2d(channels, out_channels, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.head:
                nn.init.kaiming_normal_(module.weight, a=LEAK, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h, w = x.shape[-2:]
        multiple = 2**self.levels
        x = F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")  # no branch on the size: ONNX export keeps H, W dynamic
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = self.head(x)
        return out[..., :h, :w]

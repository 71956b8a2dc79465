"""A U-Net over any `timm <https://github.com/huggingface/pytorch-image-models>`_ encoder, built by name.

The encoder is ``timm.create_model(encoder, features_only=True)``: its feature maps (e.g. resnet18's at
strides 2, 4, 8, 16, 32) are the U-Net's skips. The decoder is that of :mod:`sandwich.nets.unet`: from the
deepest feature up, bilinear up-sampling to the next skip's size, concatenation, two 3x3 convolutions with
leaky ReLU (He-initialised); then up-sampling to the input's resolution, concatenation with the input
itself (timm encoders start at stride 2 or more, so the full-resolution detail comes from there), one more
double convolution, and a 3x3 head to the output channels (no activation).

Pretrained ImageNet weights are only ever read from the local Hugging Face cache: building a network
never downloads anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache
from timm.models import PretrainedCfg
from torch import Tensor, nn

from sandwich.errors import InputError
from sandwich.nets.unet import LEAK, double_conv

# Weight files timm reads from a Hugging Face repo, in its order of preference.
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _cached_weights(cfg: PretrainedCfg | None) -> str | None:
    """Path of the weights of timm's pretrained config ``cfg`` in the local Hugging Face cache, or None if
    they are not there (or there are none). Only looks at files on disk (no network)."""
    if cfg is None or not cfg.hf_hub_id:
        return None
    repo, _, revision = cfg.hf_hub_id.partition("@")
    for filename in _HF_WEIGHT_FILES:
        path = try_to_load_from_cache(repo, filename, revision=revision or None)
        if isinstance(path, str):
            return path
    return None


class TimmUNet(nn.Module):
    """U-Net with a timm encoder: ``(N, in_channels, H, W) -> (N, out_channels, H, W)``.

    Args:
        encoder: a timm model name that supports ``features_only`` (see ``timm.list_models()``), e.g.
            ``"resnet18"``, ``"efficientnet_b0"``, ``"mobilenetv3_small_100"``.
        in_channels, out_channels: channels of the input and output images.
        pretrained: ``"auto"``: start the encoder from its ImageNet weights if they are in the local
            Hugging Face cache, else from scratch; ``True``: require the cached weights (InputError if
            absent); ``False``: from scratch. Never downloads. With ``in_channels != 3`` timm adapts the
            pretrained stem to the channel count.
        decoder_channels: width of each decoder stage, one per encoder feature: the stages merging the
            skips from the deepest up, then the full-resolution stage. Default: each stage as wide as the
            skip it merges, the full-resolution stage as wide as the shallowest feature (resnet18:
            ``(256, 128, 64, 64, 64)``).

    Inputs of any size H, W >= 1 work: they are padded (replicate) to a multiple of the encoder's largest
    stride and the output is cropped back. Input values are unconstrained (the Processor feeds images
    normalised to about [-1, 1], near the scale of ImageNet-normalised ones); the output is unbounded.

    Example:
        >>> net = TimmUNet("resnet18", 3, 1, pretrained=False)
        >>> net(torch.zeros(2, 3, 37, 50)).shape
        torch.Size([2, 1, 37, 50])
    """

    def __init__(
        self,
        encoder: str,
        in_channels: int,
        out_channels: int,
        pretrained: bool | str = "auto",
        decoder_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not timm.is_model(encoder):
            raise InputError(f"unknown timm encoder {encoder!r} (see timm.list_models())")
        if pretrained not in ("auto", True, False):
            raise InputError(f"timm encoder {encoder!r}: pretrained must be 'auto', True or False, got {pretrained!r}")
        try:  # the weights of the name's pretrained tag ("resnet18.a1_in1k"), or of timm's default tag
            cfg = timm.models.get_pretrained_cfg(encoder)
        except RuntimeError as err:  # an invalid tag
            raise InputError(f"timm encoder {encoder!r}: {err}") from None
        weights = _cached_weights(cfg) if pretrained else None
        if pretrained is True and weights is None:
            raise InputError(f"timm encoder {encoder!r}: pretrained weights are not in the Hugging Face cache ({hf_constants.HF_HUB_CACHE})")
        # A cached file is loaded as a local file, so timm never goes to the network.
        overlay = {"file": weights} if weights else None
        self.encoder = timm.create_model(
            encoder, features_only=True, pretrained=weights is not None, pretrained_cfg_overlay=overlay, in_chans=in_channels
        )
        channels = self.encoder.feature_info.channels()
        self.multiple = max(self.encoder.feature_info.reduction())
        widths = list(channels[-2::-1]) + [channels[0]] if decoder_channels is None else list(decoder_channels)
        if len(widths) != len(channels):
            raise InputError(f"timm encoder {encoder!r} has {len(channels)} features: need as many decoder channels, got {widths}")
        self.up = nn.ModuleList()
        width = channels[-1]
        for out_width, skip in zip(widths, [*channels[-2::-1], in_channels], strict=True):
            self.up.append(double_conv(width + skip, out_width))
            width = out_width
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)
        for module in self.up.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=LEAK, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        h, w = x.shape[-2:]
        m = self.multiple
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")  # no branch on the size: ONNX export keeps H, W dynamic
        features = self.encoder(x)
        out = features[-1]
        for block, skip in zip(self.up, [*features[-2::-1], x], strict=True):
            out = F.interpolate(out, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            out = block(torch.cat([out, skip], dim=1))
        return self.head(out)[..., :h, :w]

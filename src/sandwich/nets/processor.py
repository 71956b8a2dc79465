"""A pre- or post-processor: a bypass branch plus a U-Net scaled by a trainable scalar ``s``.

``out = bypass(x) + scale · mlp(n) + s · scale · unet(n)`` with ``n = (x - mean) / scale`` and images on
the [0, 1] scale (with ``unet_sees_bypass`` the U-Net also sees the normalised ``bypass(x)``, so it
corrects the bypass's estimate rather than rebuilding it). The bypass is a fixed map (identity, luma,
gray-to-RGB, colour-as-texture embedding or extraction, channels into groups and back); the papers' pointwise MLP is an optional
residual. The MLP's and the U-Net's last layers start at zero, so training starts from the bypass
alone: for the ``identity`` bypass that is the plain codec; for the texture bypasses, the classic
colour embedding. (The papers start ``s`` at 0 instead. With ``s = 0`` and a random U-Net neither moves
for thousands of steps: the gradient of ``s`` is the loss gradient against random U-Net output, and the
U-Net's gradient is scaled by ``s``. We measured ``|s| < 1e-3`` after 1600 steps of ``rgb_jpeg420``, a
sandwich equal to its codec. Here ``s`` starts at 1 and the U-Net's last layer learns from step one.)

**Level conditioning** (``conditioned=True``): the processor is also told the codec's *level*, ``(N,)``,
the step scale in octaves (``log2`` of the mean luma step over that of IJG quality 50; q10 is about +2.3,
q95 about -3.1; see :mod:`sandwich.codecs.stage`). The encoder picks the quality, and the decoder reads
the quantisation tables from the bitstream, so both sides know it at no cost in bits. The MLP and the
U-Net get it as one more input channel (``level / LEVEL_SCALE``), and the texture bypass's gain and
headroom are affine in it. One model then serves the whole quality sweep: it can filter hard at low
quality and stay near its identity start at high quality, where a fixed filter loses to the codec.

**Step-scaled residual** (``step_scaled=True``, needs ``conditioned``): the MLP and U-Net corrections are
multiplied by ``2**level``, the quantiser's step relative to IJG q50's, so the networks work in units
of the step. A codec's error is proportional to its step, and so is then the correction; without this
an Adam update of the output layer moves the output by about the same few 8-bit levels at every
quality, more than the whole coding error at q95 (about 1.4 levels RMS): a post-filter trained over
the sweep then *loses* 0.1-0.7 dB at q95 and cannot refine (measured on ``rgb_jpeg420``). For codecs
whose error is not mostly quantisation (the texture embedding's colour code, ``gray_jpeg``) it stays off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from sandwich.errors import InputError
from sandwich.nets.channel_maps import ChannelPack, ChannelUnpack
from sandwich.nets.colour_maps import EmbeddingGain, GrayToRgb, Luma, TextureEmbed, TextureExtract
from sandwich.nets.mlp import PointwiseMLP
from sandwich.nets.tone_curves import PowerCurve
from sandwich.nets.unet import UNET_PRESETS, UNet
from sandwich.registry import Registry

LEVEL_SCALE = 4.0  # levels (octaves) are divided by this before they enter a network (about [-1, 1] over q10..q95)

# Bypasses by name, each built with its own options (``{"name": "texture_embed", "alpha": 1.5, "trainable": true}``).
# ``CHANNELS`` gives the (input, output) channels each maps (None: any, output as input); a bypass not listed
# there (the channel maps) carries its own ``in_channels`` and ``out_channels``.
BYPASSES: Registry[nn.Module] = Registry(
    "bypass",
    {"identity": lambda: nn.Identity(), "luma": Luma, "gray_to_rgb": GrayToRgb, "texture_embed": TextureEmbed, "texture_extract": TextureExtract,
     "channel_pack": ChannelPack, "channel_unpack": ChannelUnpack, "power": PowerCurve},
)
CHANNELS: dict[str, tuple[int | None, int | None]] = {
    "identity": (None, None), "power": (None, None), "luma": (3, 1), "gray_to_rgb": (1, 3), "texture_embed": (3, 1), "texture_extract": (1, 3)
}


def create_unet(preset: str, in_channels: int, out_channels: int) -> nn.Module:
    """The U-Net ``preset`` for the given channel counts: a key of :data:`~sandwich.nets.unet.UNET_PRESETS`, or ``"timm:<encoder>"``
    for a :class:`~sandwich.nets.timm_unet.TimmUNet` over that timm encoder (pretrained weights if cached).
    Both map ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` and have a last conv ``.head``."""
    if preset.startswith("timm:"):
        from sandwich.nets.timm_unet import TimmUNet  # importing timm takes seconds: only when asked for

        return TimmUNet(preset.removeprefix("timm:"), in_channels, out_channels)
    if preset not in UNET_PRESETS:
        raise InputError(f"unet preset {preset!r} not one of {', '.join(UNET_PRESETS)}, nor 'timm:<encoder>'")
    encoder, decoder = UNET_PRESETS[preset]
    return UNet(in_channels, out_channels, encoder, decoder)


class Processor(nn.Module):
    """Pre- or post-processor ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` on the [0, 1] scale.

    Args:
        in_channels, out_channels: image channels in and out.
        bypass: ``{"name": a key of :data:`BYPASSES`, **its options}`` (or just the name); its channel
            counts must match.
        mlp: add the pointwise-MLP residual to the bypass.
        unet: a U-Net preset name (:data:`~sandwich.nets.unet.UNET_PRESETS`), ``"timm:<encoder>"`` (a U-Net
            over a timm encoder, :mod:`sandwich.nets.timm_unet`), or None for none.
        unet_sees_bypass: feed the U-Net ``bypass(x)`` as extra input channels.
        mean, scale: input normalisation ``(x - mean) / scale`` for the learned branches.
        conditioned: the learned branches and the texture gain take the codec's level (module doc).
        step_scaled: scale the learned corrections by ``2**level`` (module doc; needs ``conditioned``).
        groups: the learned branches are shared by ``groups`` equal channel groups of input and output
            (e.g. the two views of a stereo pair): one network computes each output group's correction
            from every input group, its own first (:func:`shared_over_groups`); 1: one network for all.

    The output is not clipped; the codec clips the bottleneck, the metrics clip the reconstruction.

    Example:
        >>> pre = Processor(3, 1, {"name": "texture_embed", "alpha": 1.5}, unet="u8_16")
        >>> pre(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bypass: str | Mapping[str, Any] = "identity",
        mlp: bool = False,
        unet: str | None = None,
        unet_sees_bypass: bool = False,
        mean: float = 0.5,
        scale: float = 0.5,
        conditioned: bool = False,
        step_scaled: bool = False,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise InputError(f"processor: {in_channels} -> {out_channels} channels cannot be shared by {groups} equal groups")
        self.groups = groups
        options = {"name": bypass} if isinstance(bypass, str) else dict(bypass)
        self.bypass = BYPASSES.from_config(options)
        want_in, want_out = CHANNELS.get(options["name"]) or (self.bypass.in_channels, self.bypass.out_channels)
        want_in = in_channels if want_in is None else want_in
        want_out = want_in if want_out is None else want_out
        if (in_channels, out_channels) != (want_in, want_out):
            raise InputError(
                f"bypass {options['name']!r} maps {want_in} -> {want_out} channels, the processor needs {in_channels} -> {out_channels}"
            )
        if step_scaled and not conditioned:
            raise InputError("processor: step_scaled needs conditioned (the step comes from the level)")
        self.mean, self.scale = mean, scale
        self.conditioned, self.step_scaled = conditioned, step_scaled
        extra = 1 if conditioned else 0
        self.mlp = PointwiseMLP(in_channels + extra, out_channels // groups) if mlp else None
        if self.mlp is not None:
            nn.init.zeros_(self.mlp.layers[-1].weight)
            nn.init.zeros_(self.mlp.layers[-1].bias)
        self.unet_sees_bypass = unet_sees_bypass
        unet_in = in_channels + (out_channels if unet_sees_bypass else 0) + extra
        self.unet = None if unet is None else create_unet(unet, unet_in, out_channels // groups)
        if self.unet is not None:
            nn.init.zeros_(self.unet.head.weight)
            nn.init.zeros_(self.unet.head.bias)
        self.unet_scale = nn.Parameter(torch.ones(())) if unet is not None else None

    def gain(self) -> EmbeddingGain | None:
        """The texture bypass's embedding gain module, if the bypass has one."""
        return next((m for m in self.modules() if isinstance(m, EmbeddingGain)), None)

    def forward(self, x: Tensor, level: Tensor | None = None) -> Tensor:
        """``(N, in_channels, H, W)`` on [0, 1] and the codec's levels ``(N,)`` (octaves; None: level 0)
        -> ``(N, out_channels, H, W)``. An unconditioned processor ignores ``level``."""
        level = level if self.conditioned else None
        out = self.bypass(x, level) if isinstance(self.bypass, EmbeddingGain) else self.bypass(x)
        normalised = (x - self.mean) / self.scale
        condition, gain = [], self.scale
        if self.conditioned:
            octaves = x.new_zeros(x.shape[0]) if level is None else level.to(x)
            condition = [(octaves / LEVEL_SCALE)[:, None, None, None].expand(-1, 1, *x.shape[-2:])]
            if self.step_scaled:
                gain = self.scale * torch.exp2(octaves)[:, None, None, None]
        if self.mlp is not None:
            out = out + gain * shared_over_groups(self.mlp, [normalised], condition, self.groups)
        if self.unet is None:
            return out
        seen = [(out - self.mean) / self.scale] if self.unet_sees_bypass else []
        return out + self.unet_scale * gain * shared_over_groups(self.unet, [normalised, *seen], condition, self.groups)


def shared_over_groups(branch: nn.Module, inputs: list[Tensor], condition: list[Tensor], groups: int) -> Tensor:
    """``branch`` applied once per output group: ``(N, G·c_out, H, W)`` from ``inputs`` (each ``(N, G·c, H, W)``)
    and ``condition`` (``(N, k, H, W)``, given to every group as it is).

    Group g's input is each input's groups rotated to start at g (its own group first, then g + 1, ...),
    then the condition; the G passes run as one batch of ``G·N``. With ``groups`` 1, ``branch`` of the
    concatenated inputs and condition.
    """
    if groups == 1:
        return branch(torch.cat([*inputs, *condition], dim=1))
    chunks = [x.chunk(groups, dim=1) for x in inputs]
    rotated = [torch.cat([c[(g + k) % groups] for c in chunks for k in range(groups)] + condition, dim=1) for g in range(groups)]
    out = branch(torch.cat(rotated, dim=0))
    n = inputs[0].shape[0]
    return out.reshape(groups, n, *out.shape[1:]).transpose(0, 1).reshape(n, groups * out.shape[1], *out.shape[2:])

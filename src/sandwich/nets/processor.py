"""A pre- or post-processor: a bypass branch plus a U-Net scaled by a trainable scalar (initially 0).

``out = bypass(x) + s · scale · unet((x - mean) / scale)``, with images on the [0, 1] scale (with
``unet_sees_bypass`` the U-Net's input is the normalised ``x`` and ``bypass(x)`` side by side, so it
corrects the bypass's estimate rather than rebuilding it). The bypass is
a fixed map (identity, luma, gray-to-RGB, colour-as-texture embedding or extraction), optionally plus the
papers' pointwise MLP as a residual whose last layer starts at zero. Because ``s`` starts at 0 and the MLP
residual at 0, training starts from the bypass alone: for the ``identity`` bypass that is the plain
codec; for the texture bypasses, the classic colour embedding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sandwich.errors import InputError
from sandwich.nets.colour_maps import EmbeddingGain, GrayToRgb, Luma, TextureEmbed, TextureExtract
from sandwich.nets.mlp import PointwiseMLP
from sandwich.nets.unet import create_unet

# name -> (input channels, output channels or None for "same as input", factory(alpha, alpha_trainable)).
BYPASSES: dict[str, tuple[int | None, int | None, Callable[[float, bool], nn.Module]]] = {
    "identity": (None, None, lambda alpha, trainable: nn.Identity()),
    "luma": (3, 1, lambda alpha, trainable: Luma()),
    "gray_to_rgb": (1, 3, lambda alpha, trainable: GrayToRgb()),
    "texture_embed": (3, 1, TextureEmbed),
    "texture_extract": (1, 3, TextureExtract),
}


class ResidualMLP(nn.Module):
    """``base(x) + scale · mlp((x - mean) / scale)``, the MLP's last layer initialised to zero."""

    def __init__(self, base: nn.Module, in_channels: int, out_channels: int, mean: float, scale: float) -> None:
        super().__init__()
        self.base, self.mean, self.scale = base, mean, scale
        self.mlp = PointwiseMLP(in_channels, out_channels)
        nn.init.zeros_(self.mlp.layers[-1].weight)
        nn.init.zeros_(self.mlp.layers[-1].bias)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.base(x) + self.scale * self.mlp((x - self.mean) / self.scale)


class Processor(nn.Module):
    """Pre- or post-processor ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` on the [0, 1] scale.

    Args:
        in_channels, out_channels: image channels in and out.
        bypass: a key of :data:`BYPASSES`; its channel counts must match.
        mlp: add the pointwise-MLP residual to the bypass.
        unet: a U-Net preset name (:data:`~sandwich.nets.unet.UNET_PRESETS`) or None for none.
        alpha, alpha_trainable: the texture bypasses' embedding gain.
        unet_sees_bypass: feed the U-Net ``bypass(x)`` as extra input channels.
        mean, scale: input normalisation ``(x - mean) / scale`` for the learned branches.

    The output is not clipped; the codec clips the bottleneck, the metrics clip the reconstruction.

    Example:
        >>> pre = Processor(3, 1, "texture_embed", mlp=False, unet="u8_16")
        >>> pre(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bypass: str = "identity",
        mlp: bool = False,
        unet: str | None = None,
        alpha: float = 1.0,
        alpha_trainable: bool = False,
        unet_sees_bypass: bool = False,
        mean: float = 0.5,
        scale: float = 0.5,
    ) -> None:
        super().__init__()
        if bypass not in BYPASSES:
            raise InputError(f"bypass {bypass!r} not one of {', '.join(BYPASSES)}")
        want_in, want_out, factory = BYPASSES[bypass]
        want_in = in_channels if want_in is None else want_in
        want_out = want_in if want_out is None else want_out
        if (in_channels, out_channels) != (want_in, want_out):
            raise InputError(
                f"bypass {bypass!r} maps {want_in} -> {want_out} channels, the processor needs {in_channels} -> {out_channels}"
            )
        self.mean, self.scale = mean, scale
        base = factory(alpha, alpha_trainable)
        self.bypass = ResidualMLP(base, in_channels, out_channels, mean, scale) if mlp else base
        self.unet_sees_bypass = unet_sees_bypass
        unet_in = in_channels + out_channels if unet_sees_bypass else in_channels
        self.unet = None if unet is None else create_unet(unet, unet_in, out_channels)
        self.unet_scale = nn.Parameter(torch.zeros(())) if unet is not None else None

    def gain(self) -> EmbeddingGain | None:
        """The texture bypass's embedding gain module, if the bypass has one."""
        return next((m for m in self.modules() if isinstance(m, EmbeddingGain)), None)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        out = self.bypass(x)
        if self.unet is None:
            return out
        features = torch.cat([x, out], dim=1) if self.unet_sees_bypass else x
        return out + self.unet_scale * self.scale * self.unet((features - self.mean) / self.scale)

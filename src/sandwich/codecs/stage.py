"""The codec stage of a sandwich: a differentiable proxy in training, a real codec in evaluation.

Both are chosen by name in the ``codec`` config group: ``proxy`` (:data:`~sandwich.codecs.proxies.PROXIES`)
and ``real`` (:data:`~sandwich.codecs.real.registry.CODECS`: jpeg, hevc, av1, webp, jxl), each with its
own options. Both sides take and return bottleneck images on the [0, 1] scale (``(N, C, H, W)`` float32)
and give bits per image: the proxy's from its rate model (a differentiable estimate), the real codec's
from its payload bytes × 8 (what a decoder needs; see :mod:`sandwich.codecs.real`).

**Level**: how coarse the quantiser is, in octaves of step scale against IJG quality 50
(:mod:`sandwich.codecs.real.levels`). In training each image draws its level uniformly from
``level_range`` and the proxy codes it there, so one model learns the whole sweep evaluation runs. In
evaluation the real codec codes at a *knob* value (JPEG quality, HEVC/AV1 QP, ...) from ``levels``,
and the processors are told that knob's level: exact for JPEG (the decoder reads the tables), measured
for the others (the level of JPEG with the same error; HEVC's follows its 6-QP-per-octave law).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.proxies import PROXIES
from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.levels import KnobLevels
from sandwich.codecs.real.registry import CODECS
from sandwich.errors import InputError
from sandwich.sample_format import to_array, to_tensor


def describe_codec(real: RealCodec) -> str:
    """A real codec in words, for reports: e.g. ``"hevc 4:2:0 (qp)"``, ``"jxl RGB 16-bit (quality)"`` (bit depth when not 8)."""
    subsampling = getattr(real, "subsampling", None)
    layout = ":".join(subsampling) if subsampling else ("gray" if real.channels == 1 else "RGB")
    depth = f" {real.bit_depth}-bit" if real.bit_depth != 8 else ""
    return f"{real.name} {layout}{depth} ({real.knob})"


@torch.no_grad()
def code_images(images: Tensor, real: RealCodec, encode: Callable[[np.ndarray], Encoded]) -> tuple[Tensor, Tensor]:
    """Each ``(C, H, W)`` image of ``images`` ``(N, C, H, W)`` on [0, 1] as ``real``'s samples (rounded to its
    bit depth), coded by ``encode`` and decoded by ``real`` -> (decoded ``(N, C, H, W)`` on [0, 1], payload bits ``(N,)``)."""
    decoded, bits = [], []
    for planes in images:
        encoded = encode(to_array(planes, real.bit_depth))
        decoded.append(to_tensor(real.decode(encoded.data), real.bit_depth))
        bits.append(float(encoded.payload_bits))
    return torch.stack(decoded).to(images.device), torch.tensor(bits, device=images.device)


class CodecStage(nn.Module):
    """A proxy for training and a real codec for evaluation, with the knob sweep they share.

    Args:
        proxy: ``{"name": ..., **options}`` of a proxy (e.g. ``{"name": "jpeg", "subsampling": "420"}``).
        real: ``{"name": ..., **options}`` of a real codec (e.g. ``{"name": "hevc", "subsampling": "420"}``).
        levels: the real codec's knob values swept by ``sandwich eval`` (qualities or QPs).
        val_levels: the knob values of each validation in training.
        level_range: ``(low, high)`` octaves that training levels are drawn from (module doc).

    Example:
        >>> stage = CodecStage({"name": "jpeg", "subsampling": "400"}, {"name": "jpeg", "subsampling": "400"}, [20, 50, 80, 95])
        >>> decoded, bits = stage(torch.rand(2, 1, 32, 32))
        >>> decoded.shape, bits.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2]))
    """

    def __init__(
        self,
        proxy: Mapping[str, Any],
        real: Mapping[str, Any],
        levels: Sequence[int],
        val_levels: Sequence[int] = (),
        level_range: Sequence[float] = (-3.5, 2.0),
    ) -> None:
        super().__init__()
        low, high = (float(v) for v in level_range)
        if not low <= high:
            raise InputError(f"codec: level_range={list(level_range)} needs low <= high")
        self.level_range = (low, high)
        self.proxy = PROXIES.from_config(proxy)
        self.real = CODECS.from_config(real)
        if self.proxy.channels != self.real.channels:
            raise InputError(f"codec: the {proxy['name']} proxy codes {self.proxy.channels} channels, the real {real['name']} {self.real.channels}")
        self.knob_levels = KnobLevels(self.real)
        self.levels = [int(k) for k in levels]
        self.val_levels = [int(k) for k in val_levels]
        for knob in (*self.levels, *self.val_levels):
            self.real.check_level(knob)
        self.channels = self.real.channels

    @property
    def knob(self) -> str:
        """What the knob values are: ``"quality"`` or ``"qp"``."""
        return self.real.knob

    def describe(self) -> str:
        """The real codec in words, for reports (:func:`describe_codec`)."""
        return describe_codec(self.real)

    def sample_levels(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """Levels ``(n,)`` for a batch: uniform over ``level_range`` in training, the proxy's base level otherwise."""
        if not self.training:
            return torch.full((n,), self.proxy.base_level(), device=device)
        low, high = self.level_range
        return low + (high - low) * torch.rand(n, device=device)

    def level_of(self, knob: int | None) -> float:
        """The level of knob value ``knob`` (None: of the proxy's learned steps)."""
        return self.proxy.base_level() if knob is None else self.knob_levels.level(knob)

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Proxy coding: ``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the proxy's base steps)
        -> (decoded ``(N, C, H, W)`` on [0, 1], bits ``(N,)``)."""
        self.check(bottleneck)
        return self.proxy(bottleneck, level)

    @torch.no_grad()
    def code_real(self, bottleneck: Tensor, knob: int | None = None) -> tuple[Tensor, Tensor]:
        """Real coding of each image: ``(N, C, H, W)`` on [0, 1] -> (decoded, payload bits ``(N,)`` float).

        ``knob`` is the real codec's quality or QP; None codes at the proxy's learned steps: a JPEG
        codec writes them as its tables, any other codec codes at the knob of the nearest level.
        """
        self.check(bottleneck)
        tables = None
        if knob is None and self.real.name == "jpeg" and hasattr(self.proxy, "learned_tables"):
            tables = self.proxy.learned_tables()
        elif knob is None:
            knob = self.knob_levels.knob(self.proxy.base_level())
        if tables is not None:
            return code_images(bottleneck, self.real, lambda image: self.real.encode_with_tables(image, *tables))
        return code_images(bottleneck, self.real, lambda image: self.real.encode(image, knob))

    def summary(self) -> dict[str, Tensor]:
        """The proxy's scalars worth logging in training (e.g. its mean steps)."""
        return self.proxy.summary()

    def check(self, bottleneck: Tensor) -> None:
        """Raise InputError unless ``bottleneck`` is ``(N, channels, H, W)``."""
        if bottleneck.dim() != 4 or bottleneck.shape[1] != self.channels:
            raise InputError(f"codec stage: bottleneck must be (N, {self.channels}, H, W), got {tuple(bottleneck.shape)}")

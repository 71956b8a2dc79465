"""The codec stage of a sandwich: a differentiable proxy in training, a real codec in evaluation.

Both are chosen by name in the ``codec`` config group: ``proxy`` (:data:`~sandwich.codecs.proxies.PROXIES`)
and ``real`` (:data:`~sandwich.codecs.real.registry.CODECS`: jpeg, hevc, av1, webp, jxl), each with its
own options. Both sides take and return bottleneck images on the [0, 1] scale (``(N, C, H, W)`` float32)
and give bits per image: the proxy's from its rate model (a differentiable estimate), the real codec's
from its payload bytes × 8 (what a decoder needs; see :mod:`sandwich.codecs.real`).

**Level**: how coarse the quantiser is, in octaves of step scale against IJG quality 50
(:mod:`sandwich.codecs.real.levels`). In training each image draws its level uniformly from
``level_range`` and the proxy codes it there, so one model learns the whole sweep evaluation runs. In
evaluation the real codec codes at a *knob* value (JPEG quality, HEVC/AV1 QP, ...) from ``knobs``,
and the processors are told that knob's level: exact for JPEG (the decoder reads the tables), measured
for the others (the level of JPEG with the same error; HEVC's follows its 6-QP-per-octave law).

**Training signal** (``codec.signal``, :class:`TrainingSignal`): the proxy alone, as published, or the
proxy with the real codec in the forward pass: its bits calibrate the proxy's rate image by image, its
decode replaces the proxy's with a straight-through gradient. The papers trained HEVC sandwiches through
the JPEG proxy; on x265 that prices 2-2.6x the bits x265 spends and trains the post-processor on 8x8
JPEG errors x265 does not make.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.proxies import PROXIES, Proxy
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


def start_coding(
    images: Tensor, real: RealCodec, encode: Callable[[np.ndarray, int], Encoded], workers: int = 1
) -> Callable[[], tuple[Tensor, Tensor]]:
    """Start coding each ``(C, H, W)`` image of ``images`` ``(N, C, H, W)`` on [0, 1] as ``real``'s samples
    (rounded to its bit depth) with ``encode(samples, index)``, and decoding it with ``real``.

    With ``workers > 1`` the images are coded in a shared thread pool (the codecs' C code runs without
    Python's lock) while the caller goes on; the returned function waits for them and gives (decoded
    ``(N, C, H, W)`` on [0, 1] on ``images``' device, payload bits ``(N,)`` float). Threads do not change
    what a codec writes: the streams are those of coding one image after another.
    """
    arrays = [to_array(planes, real.bit_depth) for planes in images.detach()]

    def one(index: int) -> tuple[np.ndarray, float]:
        encoded = encode(arrays[index], index)
        return real.decode(encoded.data), float(encoded.payload_bits)

    if workers > 1:
        futures = [coding_pool(workers).submit(one, i) for i in range(len(arrays))]
        collect = lambda: [f.result() for f in futures]  # noqa: E731
    else:
        done = [one(i) for i in range(len(arrays))]
        collect = lambda: done  # noqa: E731

    def finish() -> tuple[Tensor, Tensor]:
        results = collect()
        decoded = torch.stack([to_tensor(d, real.bit_depth) for d, _ in results]).to(images.device)
        return decoded, torch.tensor([b for _, b in results], device=images.device)

    return finish


@torch.no_grad()
def code_images(images: Tensor, real: RealCodec, encode: Callable[[np.ndarray, int], Encoded], workers: int = 1) -> tuple[Tensor, Tensor]:
    """:func:`start_coding` and wait: (decoded ``(N, C, H, W)`` on [0, 1], payload bits ``(N,)``)."""
    return start_coding(images, real, encode, workers)()


@cache
def coding_pool(workers: int) -> ThreadPoolExecutor:
    """One process-wide pool of ``workers`` threads for real coding (a module holds none: modules are copied)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="real-codec")


@dataclass(frozen=True)
class TrainingSignal:
    """What training optimises in place of the real codec it cannot differentiate (``codec.signal``).

    Attributes:
        rate: ``"proxy"``: the proxy's bit estimate; ``"calibrated"``: the proxy's bits scaled, image by
            image, to the real codec's payload bits for the same bottleneck at the same knob value,
            ``bits = proxy_bits · stopgrad(real_bits / proxy_bits)``: the loss's value is the real bit count
            (so λ prices what the codec spends), its gradient the proxy's, scaled by the same factor.
        decode: ``"proxy"``: the proxy's decode; ``"real"``: the real codec's decode in the forward pass,
            ``decoded = proxy + stopgrad(real - proxy)``: the post-processor trains on the codec's own
            artifacts (x265's, AV1's), the pre-processor gets the proxy's gradient.

    Either real option codes every training image with the real codec at the knob value whose level is
    drawn (:meth:`CodecStage.sample_levels` draws knob values' levels then).
    """

    rate: str = "proxy"
    decode: str = "proxy"

    def __post_init__(self) -> None:
        if self.rate not in ("proxy", "calibrated"):
            raise InputError(f"codec.signal.rate {self.rate!r} not one of proxy, calibrated")
        if self.decode not in ("proxy", "real"):
            raise InputError(f"codec.signal.decode {self.decode!r} not one of proxy, real")

    @property
    def uses_real(self) -> bool:
        """Whether training calls the real codec."""
        return self.rate == "calibrated" or self.decode == "real"


class CodecStage(nn.Module):
    """A proxy for training and a real codec for evaluation, with the knob sweep they share.

    Args:
        proxy: ``{"name": ..., **options}`` of a proxy (e.g. ``{"name": "jpeg", "subsampling": "420"}``).
        real: ``{"name": ..., **options}`` of a real codec (e.g. ``{"name": "hevc", "subsampling": "420"}``).
        knobs: the real codec's knob values (qualities or QPs) swept by ``sandwich eval``.
        val_knobs: the knob values of each validation in training.
        level_range: ``(low, high)`` octaves that training levels are drawn from (module doc).
        signal: the training signal, ``{"rate": ..., "decode": ...}`` (:class:`TrainingSignal`; default: the proxy's).
        workers: threads coding a batch's images with the real codec (training with a real signal, evaluation).

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
        knobs: Sequence[int],
        val_knobs: Sequence[int] = (),
        level_range: Sequence[float] = (-3.5, 2.0),
        signal: Mapping[str, str] | None = None,
        workers: int = 2,
    ) -> None:
        super().__init__()
        low, high = (float(v) for v in level_range)
        if not low <= high:
            raise InputError(f"codec: level_range={list(level_range)} needs low <= high")
        self.level_range = (low, high)
        self.proxy: Proxy = PROXIES.from_config(proxy)
        self.real = CODECS.from_config(real)
        if self.proxy.channels != self.real.channels:
            raise InputError(f"codec: the {proxy['name']} proxy codes {self.proxy.channels} channels, the real {real['name']} {self.real.channels}")
        self.knob_levels = KnobLevels(self.real)
        self.knobs = [int(k) for k in knobs]
        self.val_knobs = [int(k) for k in val_knobs]
        for knob in (*self.knobs, *self.val_knobs):
            self.real.check_knob(knob)
        self.channels = self.real.channels
        unknown = set(signal or {}) - {"rate", "decode"}
        if unknown:
            raise InputError(f"codec.signal: unknown key(s) {', '.join(sorted(unknown))}; it takes rate, decode")
        self.signal = TrainingSignal(**(signal or {}))
        if int(workers) < 1:
            raise InputError(f"codec.workers={workers} must be >= 1")
        self.workers = int(workers)
        self.last_rate_ratio: Tensor | None = None  # mean real / proxy bits of the last calibrated batch

    @property
    def knob(self) -> str:
        """What the knob values are: ``"quality"`` or ``"qp"``."""
        return self.real.knob

    def describe(self) -> str:
        """The real codec in words, for reports (:func:`describe_codec`)."""
        return describe_codec(self.real)

    def sample_levels(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """Levels ``(n,)`` for a batch: uniform over ``level_range`` in training (snapped to the nearest knob
        value's level when the training signal calls the real codec), the proxy's base level otherwise."""
        if not self.training:
            return torch.full((n,), self.proxy.base_level(), device=device)
        low, high = self.level_range
        levels = low + (high - low) * torch.rand(n, device=device)
        if self.signal.uses_real:
            levels = torch.tensor([self.knob_levels.level(self.knob_levels.knob(v)) for v in levels.tolist()], device=device)
        return levels

    def level_of(self, knob: int | None) -> float:
        """The level of knob value ``knob`` (None: of the proxy's learned steps)."""
        return self.proxy.base_level() if knob is None else self.knob_levels.level(knob)

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Training coding: ``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the proxy's base steps)
        -> (decoded ``(N, C, H, W)`` on [0, 1], bits ``(N,)``): the proxy's, or in training mode with
        a level, the training signal's (:meth:`with_signal`)."""
        self.check(bottleneck)
        if self.training and self.signal.uses_real and level is not None:
            return self.with_signal(bottleneck, level)
        return self.proxy(bottleneck, level)

    def with_signal(self, bottleneck: Tensor, level: Tensor) -> tuple[Tensor, Tensor]:
        """The training signal (:class:`TrainingSignal`) at levels ``(N,)`` of knob values: the real codec
        codes each image in the thread pool while the proxy runs, then the two are combined. When the
        signal takes both values from the real codec and ``bottleneck`` needs no gradient (a post-only
        sandwich, or a pre-processor not trained yet: ``optim.pre_frozen_steps``), the proxy is not run."""
        knobs = [self.knob_levels.knob(v) for v in level.tolist()]
        finish = start_coding(bottleneck, self.real, lambda image, i: self.real.encode(image, knobs[i]), self.workers)
        if not bottleneck.requires_grad and self.signal == TrainingSignal("calibrated", "real"):
            return finish()  # both values are the real codec's and no gradient reaches a pre-processor: the proxy would change nothing
        decoded, bits = self.proxy(bottleneck, level)
        real_decoded, real_bits = finish()
        if self.signal.rate == "calibrated":
            ratio = real_bits / bits.detach().clamp_min(1.0)
            bits = bits * ratio
            self.last_rate_ratio = ratio.mean()
        if self.signal.decode == "real":
            decoded = decoded + (real_decoded - decoded).detach()
        return decoded, bits

    @torch.no_grad()
    def code_real(self, bottleneck: Tensor, knob: int | None = None) -> tuple[Tensor, Tensor]:
        """Real coding of each image: ``(N, C, H, W)`` on [0, 1] -> (decoded, payload bits ``(N,)`` float).

        ``knob`` is the real codec's quality or QP; None codes at the proxy's learned steps: a codec
        that takes tables (JPEG) is handed them, any other codes at the knob of the nearest level.
        """
        self.check(bottleneck)
        tables = self.proxy.learned_tables() if knob is None and self.real.takes_tables else None
        if tables is not None:
            return code_images(bottleneck, self.real, lambda image, _: self.real.encode_with_tables(image, *tables), self.workers)
        if knob is None:
            knob = self.knob_levels.knob(self.proxy.base_level())
        return code_images(bottleneck, self.real, lambda image, _: self.real.encode(image, knob), self.workers)

    def summary(self) -> dict[str, Tensor]:
        """The scalars worth logging in training: the proxy's (e.g. its mean steps) and, with a calibrated
        rate, ``rate_calibration`` (mean real / proxy bits of the last batch: below 1, the proxy over-charges)."""
        extra = {} if self.last_rate_ratio is None else {"rate_calibration": self.last_rate_ratio}
        return self.proxy.summary() | extra

    def check(self, bottleneck: Tensor) -> None:
        """Raise InputError unless ``bottleneck`` is ``(N, channels, H, W)``."""
        if bottleneck.dim() != 4 or bottleneck.shape[1] != self.channels:
            raise InputError(f"codec stage: bottleneck must be (N, {self.channels}, H, W), got {tuple(bottleneck.shape)}")

"""The sandwich as a LightningModule: the whole flow every configuration shares.

``source -> pre-processor -> adapter -> codec stage -> adapter back -> post-processor``, trained on a
rate-distortion loss (:mod:`sandwich.losses`). A configuration is this module plus its config
(``conf/scenario/``: the processors' bypasses, the baselines) and, where the bottleneck does not go to
the codec as it is, a subclass that overrides :meth:`SandwichModule.make_adapter`
(:mod:`sandwich.scenarios.adapters`).

Units:

* images are ``(N, C, H, W)`` float32 on the [0, 1] scale at every boundary, with ``scenario.bit_depth``
  bits per source sample;
* ``bpp`` is coded bits per *source* pixel (``H × W`` of the source, whatever the bottleneck's size);
* ``level`` is the codec's step scale in octaves (:mod:`sandwich.codecs.stage`), which the processors
  are told (:mod:`sandwich.nets.processor`) and which scales λ (``lmbda_level_exponent``).

Training codes with the differentiable proxy at levels drawn over the codec's ``level_range``;
validation codes with the real codec at each of ``codec.val_knobs`` and logs the loss with real bits
(``val/loss``, the checkpoint selection metric) and the PSNR per knob value.

Training and evaluation run the combined pass (:meth:`SandwichModule.code_real`); ``sandwich encode`` and
``decode`` run its two halves, :meth:`SandwichModule.encode` (source -> the codec's streams, a
:class:`CodedImage`) and :meth:`SandwichModule.decode` (the streams, the knob and the source's size -> the
output), which together give exactly the combined pass's output and bits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.registry import CODECS
from sandwich.codecs.stage import CodecStage, code_images
from sandwich.errors import InputError
from sandwich.losses import RateDistortionLoss
from sandwich.metrics.psnr import mse, psnr
from sandwich.nets.processor import Processor
from sandwich.scenarios.adapters import Adapter
from sandwich.sample_format import to_array, to_tensor

STAGE_KEYS = ("proxy", "real", "knobs", "val_knobs", "level_range", "signal", "workers")  # the codec config's CodecStage arguments

class Baseline(NamedTuple):
    """A baseline variant: its pre-processor, post-processor (None: the decoded bottleneck is the output),
    the adapter between them and the codec (the scenario's, or the identity for one that skips it, e.g. the
    codec at the source's full resolution around a super-resolution sandwich), and optionally a real codec
    of its own with its knob values (e.g. the codec's high-bit-depth mode; None: the module's codec)."""

    pre: Processor
    post: Processor | None
    adapter: Adapter
    codec: RealCodec | None = None
    knobs: tuple[int, ...] = ()


@dataclass
class SandwichOutput:
    """One pass through a sandwich, all ``(N, C, H, W)`` on [0, 1] except ``bits`` (``(N,)``, bits per image).

    ``bottleneck`` is what the pre-processor hands the adapter (unclipped), ``decoded`` the codec's
    reconstruction of it (back through the adapter), ``recon`` the post-processor's output (unclipped;
    ``decoded`` itself without a post-processor); ``level`` ``(N,)`` the codec's level of each image;
    ``picture_bits`` ``(N, k)`` the bits of each of an image's k codec pictures (k = 1 but for channel groups).
    """

    bottleneck: Tensor
    decoded: Tensor
    recon: Tensor
    bits: Tensor
    level: Tensor
    picture_bits: Tensor

    def bpp(self, source: Tensor) -> Tensor:
        """Bits per source pixel, ``(N,)``."""
        return self.bits / (source.shape[-2] * source.shape[-1])

    def picture_bpp(self, source: Tensor) -> Tensor:
        """Bits of each codec picture per source pixel, ``(N, k)``."""
        return self.picture_bits / (source.shape[-2] * source.shape[-1])


@dataclass(frozen=True)
class ModelSpec:
    """What the layers above ask of a sandwich's configuration, read and typed once (:attr:`SandwichModule.spec`).

    Attributes:
        name: the experiment's name; scenario: the scenario's name; lmbda: the rate's weight.
        parts: the source's named channel ranges (``scenario.parts``; none for a plain source).
        perceptual_metrics: the perceptual distances evaluation measures too (``perceptual_metrics``).
        samples: the embedded sample set it trained on (``data.samples``).
        real_codec: the real codec's configuration, as sorted ``(key, value)`` pairs (two models code alike
            when theirs are equal).
        project, entity: its W&B project and entity (None: the defaults).
    """

    name: str
    scenario: str
    lmbda: float
    parts: dict[str, slice]
    perceptual_metrics: tuple[str, ...]
    samples: str
    real_codec: tuple[tuple[str, Any], ...]
    project: str | None = None
    entity: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ModelSpec:
        """The spec of a resolved run configuration (keys absent from older checkpoints take their defaults)."""
        scenario, logger = config["scenario"], config.get("logger") or {}
        return cls(
            name=str(config["name"]), scenario=str(scenario["name"]), lmbda=float(config["lmbda"]),
            parts={name: slice(int(start), int(stop)) for name, (start, stop) in (scenario.get("parts") or {}).items()},
            perceptual_metrics=tuple(config.get("perceptual_metrics") or ()), samples=str(config["data"].get("samples", "color")),
            real_codec=tuple(sorted(config["codec"]["real"].items())), project=logger.get("project"), entity=logger.get("entity"),
        )


@dataclass(frozen=True)
class CodedImage:
    """One source image as the encoder half writes it (:meth:`SandwichModule.encode`): what a decoder needs
    besides the model.

    Attributes:
        pictures: the real codec's streams, one per codec picture (k per image: 1, or the groups of a
            channel-groups sandwich), in order.
        knob: the real codec's knob value (quality or QP) they were coded at; the processors' level follows from it.
        size: ``(H, W)`` of the source image (a super-resolution decode returns to it).
    """

    pictures: tuple[Encoded, ...]
    knob: int
    size: tuple[int, int]

    @property
    def payload_bits(self) -> int:
        """The bits of all pictures that a decoder needs (what evaluation counts)."""
        return sum(p.payload_bits for p in self.pictures)


def picture_levels(level: Tensor, pictures: Tensor) -> Tensor:
    """The level ``(N,)`` of each source image repeated for its pictures: ``(M,)`` for ``M = k·N`` codec
    pictures ``pictures`` (``(M, C, h, w)``, each image's k pictures in a row)."""
    return level.repeat_interleave(pictures.shape[0] // level.shape[0])


class SandwichModule(L.LightningModule):
    """Pre-processor, adapter, codec stage and post-processor, trained jointly.

    Args:
        config: the run's resolved configuration (``conf/``); stored in checkpoints so that
            ``sandwich eval`` rebuilds the same module. Keys used here: ``codec`` (the
            :class:`~sandwich.codecs.stage.CodecStage`: ``proxy``, ``real``, ``knobs``, ``val_knobs``,
            ``level_range``, ``signal``, ``workers``), ``net`` (the learned branches of both processors), ``scenario``
            (``channels``, ``bit_depth``, ``pre`` and ``post`` bypasses, ``pre_learned``, ``tie_alpha``,
            ``baselines``),
            ``loss`` (``distortion``, ``form``), ``lmbda``, ``lmbda_level_exponent``, ``optim``
            (``lr``, ``warmup_steps``, ``pre_frozen_steps``), ``log_images``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.spec = ModelSpec.from_config(config)
        scenario = config["scenario"]
        self.channels, self.bit_depth = int(scenario["channels"]), int(scenario["bit_depth"])
        self.codec = CodecStage(**{key: config["codec"][key] for key in STAGE_KEYS if key in config["codec"]})  # absent (older checkpoints): CodecStage's defaults
        self.adapter = self.make_adapter()
        width = self.adapter.bottleneck_channels(self.codec.channels)
        learned = self.learned_options()
        pre_learned = scenario.get("pre_learned", True)  # absent from checkpoints written before post-only sandwiches
        self.pre = Processor(self.channels, width, scenario["pre"], **(learned if pre_learned else {}))
        self.post = None if scenario["post"] is None else Processor(width, self.channels, scenario["post"], **learned)
        if self.post is None and width != self.channels:
            raise InputError(f"scenario: without a post-processor the bottleneck ({width} channels) must be the output ({self.channels})")
        pre_gain, post_gain = self.pre.gain(), self.post.gain() if self.post is not None else None
        if scenario["tie_alpha"] and pre_gain is not None and post_gain is not None:
            post_gain.tie_to(pre_gain)  # one set of parameters: the decoder inverts the encoder's gain and headroom
        loss = config["loss"]
        self.loss = RateDistortionLoss(loss["distortion"], loss["form"], config["lmbda"], config["lmbda_level_exponent"], self.bit_depth)
        self.baseline_variants = self._build_baselines(scenario["baselines"])

    def make_adapter(self) -> Adapter:
        """The bottleneck adapter of this configuration (:mod:`sandwich.scenarios.adapters`); identity here."""
        return Adapter()

    def learned_options(self) -> dict[str, Any]:
        """Options of the processors' learned branches (:class:`~sandwich.nets.processor.Processor`): the ``net`` config's."""
        return {key: self.config["net"][key] for key in ("mlp", "unet", "unet_sees_bypass", "conditioned", "step_scaled")}

    def _build_baselines(self, baselines: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Baseline]]:
        """Each variant ``{pre, post, adapter, codec, knobs}``: bypass specs, ``adapter: false`` to skip the
        scenario's adapter, and a real codec of its own (``{name, **options}``, with at least 4 knob values in
        ``knobs``), which takes the source's channels as they are (the adapter skipped). A baseline set to
        null (an experiment dropping one it inherits) is left out."""
        width = self.adapter.bottleneck_channels(self.codec.channels)
        built = {}
        for name, variants in baselines.items():
            if variants is None:
                continue
            built[name] = {}
            for label, v in variants.items():
                codec, knobs = (None, ()) if v.get("codec") is None else (CODECS.from_config(v["codec"]), tuple(int(k) for k in v.get("knobs", ())))
                if codec is not None and len(knobs) < 4:
                    raise InputError(f"scenario.baselines.{name}.{label}: a baseline codec needs at least 4 knob values in knobs, got {list(knobs)}")
                for knob in knobs:
                    codec.check_knob(knob)
                skip = codec is not None or not v.get("adapter", True)
                inner = (codec or self.codec).channels if skip else width
                post = None if v.get("post") is None else Processor(inner, self.channels, v["post"])
                built[name][label] = Baseline(Processor(self.channels, inner, v["pre"]), post, Adapter() if skip else self.adapter, codec, knobs)
        return built

    def own(self) -> Baseline:
        """The module's own pre-processor, post-processor and adapter, with its codec."""
        return Baseline(self.pre, self.post, self.adapter)

    def _pass(self, source: Tensor, level: Tensor, knob: int | None, real: bool, chain: Baseline) -> SandwichOutput:
        """``chain``'s pre-processor, adapter, codec and post-processor over ``source``: the module's proxy, or its
        real codec when ``real``; a baseline's own codec, always real."""
        bottleneck = chain.pre(source, level)
        coded = chain.adapter.to_codec(bottleneck)
        codec = chain.codec
        if codec is not None:
            decoded, picture_bits = code_images(coded, codec, lambda image, _: codec.encode(image, knob), self.codec.workers)
        else:
            decoded, picture_bits = self.codec.code_real(coded, knob) if real else self.codec(coded, picture_levels(level, coded))
        decoded, bits = chain.adapter.from_codec(decoded, picture_bits, tuple(bottleneck.shape[-2:]))
        recon = decoded if chain.post is None else chain.post(decoded, level)
        return SandwichOutput(bottleneck, decoded, recon, bits, level, picture_bits.reshape(source.shape[0], -1))

    def forward(self, source: Tensor, level: Tensor | None = None) -> SandwichOutput:
        """Proxy pass (differentiable): ``(N, channels, H, W)`` on [0, 1] at codec levels ``(N,)`` (None:
        drawn by the codec stage, see :meth:`~sandwich.codecs.stage.CodecStage.sample_levels`)."""
        if level is None:
            level = self.codec.sample_levels(source.shape[0], source.device)
        return self._pass(source, level, None, False, self.own())

    @torch.no_grad()
    def code_real(self, source: Tensor, knob: int | None = None, baseline: Baseline | None = None) -> SandwichOutput:
        """Real-codec pass at knob value ``knob`` (quality or QP; None: the proxy's learned steps).

        The processors are told that knob's level; ``baseline`` swaps in a baseline variant's (pre, post,
        adapter) and, when it has one, its codec (``knob`` being that codec's; its bypass-only processors are
        told level 0, which they ignore).
        """
        chain = baseline or self.own()
        level = torch.full((source.shape[0],), 0.0 if chain.codec is not None else self.codec.level_of(knob), device=source.device)
        return self._pass(source, level, knob, True, chain)

    @torch.no_grad()
    def encode(self, source: Tensor, knob: int) -> CodedImage:
        """The encoder half of :meth:`code_real`: one source image ``(1, channels, H, W)`` on [0, 1] through the
        pre-processor (told knob value ``knob``'s level) and the adapter, each codec picture coded by the real
        codec at ``knob``. :meth:`decode` of the result gives exactly ``code_real(source, knob)``'s output."""
        if source.dim() != 4 or source.shape[0] != 1 or source.shape[1] != self.channels:
            raise InputError(f"encode: expected one (1, {self.channels}, H, W) image, got {tuple(source.shape)}")
        real = self.codec.real
        real.check_knob(knob)
        self.adapter.check(*source.shape[-2:])
        pictures = self.adapter.to_codec(self.pre(source, torch.full((1,), self.codec.level_of(knob), device=source.device)))
        self.codec.check(pictures)
        coded = tuple(real.encode(to_array(picture, real.bit_depth), knob) for picture in pictures)
        return CodedImage(coded, int(knob), (int(source.shape[-2]), int(source.shape[-1])))

    @torch.no_grad()
    def decode(self, coded: CodedImage, post: Callable[[Tensor, Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """The decoder half: the real codec's decode of each picture, the adapter's way back and the
        post-processor (or ``post``, run in its place: e.g. its ONNX graph) -> (the decoded bottleneck, the
        output), each ``(1, channels, H, W)`` on [0, 1] (the output unclipped, as :meth:`code_real`'s ``recon``)."""
        real = self.codec.real
        decoded = torch.stack([to_tensor(real.decode(p.data), real.bit_depth) for p in coded.pictures]).to(self.device)
        bits = torch.tensor([float(p.payload_bits) for p in coded.pictures], device=self.device)
        decoded, _ = self.adapter.from_codec(decoded, bits, coded.size)
        level = torch.full((1,), self.codec.level_of(coded.knob), device=self.device)
        post = post or self.post
        return decoded, decoded if post is None else post(decoded, level)

    def baselines(self) -> dict[str, dict[str, Baseline]]:
        """The configured non-learned alternatives: ``{name: {variant label: Baseline}}``.

        Every variant is swept over the codec's knob values (or its own codec's) at evaluation; the variants of one baseline are
        merged into one RD curve by their Pareto front.
        """
        return self.baseline_variants

    def _losses(self, source: Tensor, out: SandwichOutput) -> dict[str, Tensor]:
        distortions = self.loss.distortions(source, out.recon)
        error = distortions["mse"] if "mse" in distortions else mse(source, out.recon, self.bit_depth)
        bpp = out.bpp(source)
        metrics = {"loss": self.loss(distortions, bpp, out.level).mean(), "bpp": bpp.mean(), "psnr": psnr(error, self.bit_depth).mean()}
        return metrics | {name: value.mean() for name, value in distortions.items()}

    def step_seed(self) -> int:
        """Seed of this training step's random draws (codec levels, the proxy's quantisation noise): a function
        of the run's ``seed``, the rank and the step only, so that a resumed run draws what the unbroken run
        drew (the global generator also feeds, e.g., every new dataloader iterator's seed) and ranks differ."""
        return int(np.random.SeedSequence([int(self.config["seed"]), self.global_rank, self.global_step]).generate_state(1)[0])

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """The proxy pass and its rate-distortion loss, with random draws seeded by :meth:`step_seed`. For the
        first ``optim.pre_frozen_steps`` steps the pre-processor is not trained (no gradient reaches it)."""
        self.pre.requires_grad_(self.global_step >= int(self.config["optim"].get("pre_frozen_steps", 0)))
        with torch.random.fork_rng(devices=[self.device] if self.device.type != "cpu" else [], device_type=self.device.type):
            torch.manual_seed(self.step_seed())
            losses = self._losses(batch, self(batch))
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch.shape[0])
        extra = {f"train/{k}": v for k, v in self.codec.summary().items()}
        gain = self.pre.gain()
        if gain is not None:
            extra |= {"train/alpha": gain.alpha(), "train/alpha_slope": gain.alpha_slope, "train/headroom": gain.headroom()}
        self.log_dict(extra, batch_size=batch.shape[0])
        return losses["loss"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Real codec at each of ``codec.val_knobs``: ``val/loss`` (their mean, the selection metric),
        ``val/psnr_q<Q>`` and ``val/bpp_q<Q>`` (or ``..._qp<QP>``) per knob value."""
        knobs = self.codec.val_knobs
        prefix = "q" if self.codec.knob == "quality" else self.codec.knob
        totals: dict[str, Tensor] = {}
        for knob in knobs:
            out = self.code_real(batch, knob)
            losses = self._losses(batch, out)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0) + value / len(knobs)
            self.log_dict({f"val/psnr_{prefix}{knob}": losses["psnr"], f"val/bpp_{prefix}{knob}": losses["bpp"]}, batch_size=batch.shape[0])
            self.log_dict({f"val/proxy_{k}_{prefix}{knob}": v for k, v in self._proxy_fidelity(out).items()}, batch_size=batch.shape[0])
            if self.trainer.is_global_zero and batch_idx < self.config.get("log_images", 1) and knob == knobs[len(knobs) // 2]:
                self._save_images(batch, out, batch_idx)
        self.log_dict({f"val/{k}": v for k, v in totals.items()}, batch_size=batch.shape[0])

    @torch.no_grad()
    def _proxy_fidelity(self, real: SandwichOutput) -> dict[str, Tensor]:
        """How far the proxy is from the real codec on the bottlenecks the real codec just coded.

        ``bits_bias``: mean of ``proxy bits / real bits - 1`` (positive: the proxy over-charges);
        ``bits_spread``: mean of its absolute value; ``decode_psnr``: PSNR (dB, 8-bit) of the proxy's
        decode against the real decode. A training run optimises the proxy's numbers: when these drift,
        it optimises an estimate the codec does not share. With a training signal that calls the real
        codec (``codec.signal``), ``signal_bits_bias`` and ``signal_decode_psnr`` are the same figures for
        what the loss is given (:meth:`~sandwich.codecs.stage.CodecStage.with_signal`): the real codec's
        bits or decode where the signal takes them, which ``real`` already holds (nothing is coded twice).
        """
        coded = self.adapter.to_codec(real.bottleneck)
        decoded, bits = self.adapter.from_codec(*self.codec.proxy(coded, picture_levels(real.level, coded)), tuple(real.bottleneck.shape[-2:]))
        signals = {"": (decoded, bits)}
        signal = self.codec.signal
        if signal.uses_real:
            signals["signal_"] = (real.decoded if signal.decode == "real" else decoded, real.bits if signal.rate == "calibrated" else bits)
        figures = {}
        for prefix, (decoded, bits) in signals.items():
            ratio = bits / real.bits.clamp_min(1) - 1
            figures |= {f"{prefix}bits_bias": ratio.mean(), f"{prefix}bits_spread": ratio.abs().mean(), f"{prefix}decode_psnr": psnr(mse(real.decoded, decoded)).mean()}
        return figures

    def _save_images(self, source: Tensor, out: SandwichOutput, index: int) -> None:
        """Source | bottleneck ("neural code") | decoded bottleneck | reconstruction, as a PNG and to TensorBoard or W&B."""
        panels = [source[0], out.bottleneck[0].clamp(0, 1), out.decoded[0], out.recon[0].clamp(0, 1)]
        row = torch.cat([p[:3].expand(3, -1, -1) for p in panels], dim=-1)
        folder = Path(self.trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        image = to_array(row)
        Image.fromarray(image).save(folder / f"val{index}_step{self.global_step:06d}.png")
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):  # TensorBoard
            experiment.add_image(f"val/{index}", row, self.global_step)
        if hasattr(self.logger, "log_image"):  # W&B
            self.logger.log_image(key=f"val/{index}", images=[image], step=self.global_step)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam at ``optim.lr`` after a linear warm-up over ``optim.warmup_steps``.

        The warm-up is not optional decoration: the U-Net heads start at zero, so the first gradients
        reaching the hidden layers are tiny and noisy, and Adam's first steps (normalised by a second
        moment estimated from a handful of them) move every weight by the full learning rate. Without
        it, with plain ReLUs, the last decoder layer's units died within 50 steps (measured: 73% active
        at start, 1.5% after 50 steps, on JPEG q20 with step-scaled corrections) and the sandwich stayed
        its codec; the U-Nets' leaky activations (:mod:`sandwich.nets.unet`) are the second guard.
        The same holds for a pre-processor that starts after ``optim.pre_frozen_steps`` (Adam's first steps
        of its weights would move each by the full rate): its warm-up starts then.
        """
        optim = self.config["optim"]
        warmup = max(int(optim["warmup_steps"]), 1)
        frozen = int(optim.get("pre_frozen_steps", 0))
        pre = list(self.pre.parameters())

        def ramp(start: int) -> Callable[[int], float]:
            return lambda step: min(1.0, max(0, step - start + 1) / warmup)

        if frozen and pre:  # the pre-processor in a group of its own, its warm-up from the step it starts
            held = {id(p) for p in pre}
            groups = [{"params": [p for p in self.parameters() if id(p) not in held]}, {"params": pre}]
            ramps = [ramp(0), ramp(frozen)]
        else:
            groups, ramps = [{"params": list(self.parameters())}], [ramp(0)]
        adam = torch.optim.Adam(groups, lr=float(optim["lr"]))
        schedule = torch.optim.lr_scheduler.LambdaLR(adam, ramps)
        return {"optimizer": adam, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        checkpoint["sandwich_config"] = self.config

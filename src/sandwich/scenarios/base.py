"""The sandwich as a LightningModule: pre-processor -> codec -> post-processor, trained on ``D + λ·bpp``.

Units:

* images are ``(N, C, H, W)`` float32 on the [0, 1] scale at every boundary;
* ``MSE`` is the mean squared error on the 8-bit scale (0..255), averaged over pixels and channels;
* ``bpp`` is coded bits per *source* pixel (``H × W`` of the source, whatever the bottleneck's size).

The loss (``loss`` in the config, :data:`LOSSES`), averaged over the images of a batch:

* ``mse_rate``, the papers' ``MSE + λ·bpp``: ``λ`` is in squared 8-bit levels per bit-per-pixel (raising
  the rate by 0.1 bpp must buy at least ``0.1 λ`` of MSE; larger λ, smaller files). One λ fits one
  operating point: at a coarse quantiser the MSE is a hundred times that at a fine one;
* ``psnr_rate``, ``-PSNR + λ·bpp``: ``λ`` is in dB per bit-per-pixel, the slope of an RD curve in the
  PSNR-bpp plane, which (unlike the MSE slope) is about the same at every quality. It is the loss of a
  level-conditioned model trained over the whole quality sweep: every image counts by its dB, not by
  its squared error, so the fine qualities are not drowned by the coarse ones. But it also weighs each
  *crop* by ``1 / MSE``: a batch's smooth crops, which no filter can improve, then own its gradient,
  and a U-Net started at zero hardly learns (``rgb_jpeg420``: +0.01 dB at q20 after 400 steps, where
  ``mse_rate`` gave +0.15 dB; ``MSE · 4**-level``, the error in units of the step squared, gave
  +0.00: it weighs the fine qualities even more).

``lmbda_level_exponent`` γ makes λ follow the codec's level ``ℓ`` (octaves, :mod:`sandwich.codecs.stage`):
the loss uses ``λ · 2**(γ·ℓ)``, so λ is the value at IJG quality 50. A codec's own RD slope
``-dMSE/dbpp`` grows with its step: JPEG 4:2:0 on SPORCO's photos goes from 4.7 (q90-95) to 350
(q10-20) squared levels per bpp, ``≈ 59 · 2**(1.37·ℓ)``. With one λ for the whole sweep (γ = 0) the
pre-processor buys bits at the coarse qualities and sells them at the fine ones far below the codec's
own price (measured: -0.8 dB at q90, -1.0 dB at q95 for 8% fewer bits); with γ ≈ 1.4 the trade has
the codec's price at every level.

Training codes with the differentiable proxy (bits from the calibration-free rate model) at levels drawn
over the codec stage's ``level_range`` (:mod:`sandwich.codecs.stage`); validation codes with the real
codec at each of ``val_qualities`` and logs the loss with real bits (``val/loss``, the checkpoint
selection metric) and the PSNR per quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from PIL import Image
from torch import Tensor

from sandwich.codecs.stage import JpegStage
from sandwich.errors import InputError
from sandwich.metrics.psnr import mse, psnr
from sandwich.nets.processor import Processor
from sandwich.sample_format import to_array

SOURCE_CHANNELS = 3


@dataclass
class SandwichOutput:
    """One pass through a sandwich, all ``(N, C, H, W)`` on [0, 1] except ``bits`` (``(N,)``, bits per image).

    ``bottleneck`` is what the pre-processor hands the codec (unclipped), ``decoded`` the codec's
    reconstruction of it, ``recon`` the post-processor's output (unclipped); ``level`` ``(N,)`` the
    codec's level of each image (octaves).
    """

    bottleneck: Tensor
    decoded: Tensor
    recon: Tensor
    bits: Tensor
    level: Tensor

    def bpp(self, source: Tensor) -> Tensor:
        """Bits per source pixel, ``(N,)``."""
        return self.bits / (source.shape[-2] * source.shape[-1])


def mse_rate(error: Tensor, bpp: Tensor, lmbda: float | Tensor) -> Tensor:
    """``MSE + λ·bpp`` per image from the MSE in squared 8-bit levels (λ in those per bpp), ``(N,)``."""
    return error + lmbda * bpp


def psnr_rate(error: Tensor, bpp: Tensor, lmbda: float | Tensor) -> Tensor:
    """``-PSNR + λ·bpp`` per image from the MSE in squared 8-bit levels (λ in dB per bpp), ``(N,)``."""
    return -psnr(error) + lmbda * bpp


# loss name (config ``loss``) -> per-image loss from (MSE on the 8-bit scale, bpp, λ per image or one); see the module doc.
LOSSES = {"mse_rate": mse_rate, "psnr_rate": psnr_rate}


class SandwichModule(L.LightningModule):
    """Pre-processor, codec stage and post-processor, trained jointly.

    Args:
        config: the run's resolved configuration (``conf/``); stored in checkpoints so that
            ``sandwich eval`` rebuilds the same module. The keys used here: ``codec.stage`` (kwargs
            of :class:`~sandwich.codecs.stage.JpegStage`), ``net`` (``mlp``, ``unet``, ``unet_sees_bypass``,
            ``conditioned``, ``step_scaled``), ``scenario`` (``pre_bypass``, ``post_bypass``, ``alpha``, ``alpha_trainable``,
            ``tie_alpha``), ``loss``, ``lmbda``, ``optim`` (``lr``), ``val_qualities``, ``log_images`` (how
            many validation images to save as PNG per validation).

    Subclasses (one per scenario) describe their baselines in :meth:`baselines`.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.codec = JpegStage(**config["codec"]["stage"])
        net, scenario = config["net"], config["scenario"]
        common = dict(
            mlp=net["mlp"],
            unet=net["unet"],
            unet_sees_bypass=net["unet_sees_bypass"],
            conditioned=net["conditioned"],
            step_scaled=net["step_scaled"],
            alpha=scenario["alpha"],
            alpha_trainable=scenario["alpha_trainable"],
        )
        self.pre = Processor(SOURCE_CHANNELS, self.codec.channels, scenario["pre_bypass"], **common)
        self.post = Processor(self.codec.channels, SOURCE_CHANNELS, scenario["post_bypass"], **common)
        pre_gain, post_gain = self.pre.gain(), self.post.gain()
        if scenario["tie_alpha"] and pre_gain is not None and post_gain is not None:
            post_gain.tie_to(pre_gain)  # one set of parameters: the decoder inverts the encoder's gain and headroom
        self.lmbda = float(config["lmbda"])
        self.lmbda_level_exponent = float(config["lmbda_level_exponent"])
        if config["loss"] not in LOSSES:
            raise InputError(f"config: loss={config['loss']!r} not one of {', '.join(LOSSES)}")
        self.loss = LOSSES[config["loss"]]

    def forward(self, source: Tensor, level: Tensor | None = None) -> SandwichOutput:
        """Proxy pass (differentiable): ``(N, 3, H, W)`` on [0, 1] at codec levels ``(N,)`` (None: drawn
        by the codec stage, see :meth:`~sandwich.codecs.stage.JpegStage.sample_levels`) -> :class:`SandwichOutput`."""
        if level is None:
            level = self.codec.sample_levels(source.shape[0], source.device)
        bottleneck = self.pre(source, level)
        decoded, bits = self.codec(bottleneck, level)
        return SandwichOutput(bottleneck, decoded, self.post(decoded, level), bits, level)

    @torch.no_grad()
    def code_real(self, source: Tensor, quality: int | None = None) -> SandwichOutput:
        """Real-codec pass at IJG ``quality`` (None: the learned step tables); the processors get that level."""
        level = torch.full((source.shape[0],), self.codec.real_level(quality), device=source.device)
        bottleneck = self.pre(source, level)
        decoded, bits = self.codec.code_real(bottleneck, quality)
        return SandwichOutput(bottleneck, decoded, self.post(decoded, level), bits, level)

    def baselines(self) -> dict[str, list[tuple[str, Processor, Processor]]]:
        """Non-learned alternatives for the same codec: ``{name: [(variant label, pre, post), ...]}``.

        Every variant is swept over the codec's quality at evaluation; the variants of one baseline
        are merged into one RD curve by their Pareto front.
        """
        raise NotImplementedError

    def _losses(self, source: Tensor, out: SandwichOutput) -> dict[str, Tensor]:
        error = mse(source, out.recon)
        bpp = out.bpp(source)
        lmbda = self.lmbda * torch.exp2(self.lmbda_level_exponent * out.level.to(bpp))
        return {"loss": self.loss(error, bpp, lmbda).mean(), "mse": error.mean(), "bpp": bpp.mean(), "psnr": psnr(error).mean()}

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:  # noqa: D102
        losses = self._losses(batch, self(batch))
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True, batch_size=batch.shape[0])
        luma_step, _ = self.codec.proxy.steps()
        extra = {"train/luma_step_mean": luma_step.mean()}
        gain = self.pre.gain()
        if gain is not None:
            extra |= {"train/alpha": gain.alpha(), "train/alpha_slope": gain.alpha_slope, "train/headroom": gain.headroom()}
        self.log_dict(extra, batch_size=batch.shape[0])
        return losses["loss"]

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Real codec at each of ``val_qualities``: ``val/loss`` (their mean, the selection metric), ``val/psnr_qQ``."""
        qualities = self.config["val_qualities"]
        totals: dict[str, Tensor] = {}
        for quality in qualities:
            out = self.code_real(batch, quality)
            losses = self._losses(batch, out)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0) + value / len(qualities)
            self.log(f"val/psnr_q{quality}", losses["psnr"], batch_size=batch.shape[0])
            if self.trainer.is_global_zero and batch_idx < self.config.get("log_images", 1) and quality == qualities[len(qualities) // 2]:
                self._save_images(batch, out, batch_idx)
        self.log_dict({f"val/{k}": v for k, v in totals.items()}, batch_size=batch.shape[0])

    def _save_images(self, source: Tensor, out: SandwichOutput, index: int) -> None:
        """Source | bottleneck ("neural code") | decoded bottleneck | reconstruction, as a PNG and to TensorBoard."""
        panels = [source[0], out.bottleneck[0].clamp(0, 1), out.decoded[0], out.recon[0].clamp(0, 1)]
        row = torch.cat([p.expand(SOURCE_CHANNELS, -1, -1) for p in panels], dim=-1)
        folder = Path(self.trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_array(row)).save(folder / f"val{index}_step{self.global_step:06d}.png")
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(f"val/{index}", row, self.global_step)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam at ``optim.lr`` after a linear warm-up over ``optim.warmup_steps``.

        The warm-up is not optional decoration: the U-Net heads start at zero, so the first gradients
        reaching the hidden layers are tiny and noisy, and Adam's first steps (normalised by a second
        moment estimated from a handful of them) move every weight by the full learning rate. Without
        it, with plain ReLUs, the last decoder layer's units died within 50 steps (measured: 73% active
        at start, 1.5% after 50 steps, on JPEG q20 with step-scaled corrections) and the sandwich stayed
        its codec; the U-Nets' leaky activations (:mod:`sandwich.nets.unet`) are the second guard.
        """
        optim = self.config["optim"]
        adam = torch.optim.Adam(self.parameters(), lr=float(optim["lr"]))
        warmup = max(int(optim["warmup_steps"]), 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(adam, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": adam, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        checkpoint["sandwich_config"] = self.config

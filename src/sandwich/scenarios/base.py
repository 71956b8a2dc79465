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
  its squared error, so the fine qualities are not drowned by the coarse ones.

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
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from sandwich.codecs.stage import JpegStage, to_uint8
from sandwich.errors import InputError
from sandwich.nets.processor import Processor

SOURCE_CHANNELS = 3


@dataclass
class SandwichOutput:
    """One pass through a sandwich, all ``(N, C, H, W)`` on [0, 1] except ``bits`` (``(N,)``, bits per image).

    ``bottleneck`` is what the pre-processor hands the codec (unclipped), ``decoded`` the codec's
    reconstruction of it, ``recon`` the post-processor's output (unclipped).
    """

    bottleneck: Tensor
    decoded: Tensor
    recon: Tensor
    bits: Tensor

    def bpp(self, source: Tensor) -> Tensor:
        """Bits per source pixel, ``(N,)``."""
        return self.bits / (source.shape[-2] * source.shape[-1])


def mse_255(source: Tensor, recon: Tensor) -> Tensor:
    """Mean squared error on the 8-bit scale, ``(N,)``: both images on [0, 1], the reconstruction clipped."""
    return ((source - recon.clamp(0, 1)) * 255).square().flatten(1).mean(1)


def psnr_255(mse: Tensor) -> Tensor:
    """PSNR in dB for a peak of 255 from an MSE on the 8-bit scale."""
    return 10 * torch.log10(255**2 / mse.clamp_min(1e-10))


def mse_rate(mse: Tensor, bpp: Tensor, lmbda: float) -> Tensor:
    """``MSE + λ·bpp`` per image (λ in squared 8-bit levels per bpp), ``(N,)``."""
    return mse + lmbda * bpp


def psnr_rate(mse: Tensor, bpp: Tensor, lmbda: float) -> Tensor:
    """``-PSNR + λ·bpp`` per image (λ in dB per bpp), ``(N,)``."""
    return -psnr_255(mse) + lmbda * bpp


# loss name (config ``loss``) -> per-image loss from (MSE on the 8-bit scale, bpp, λ); see the module doc.
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
        return SandwichOutput(bottleneck, decoded, self.post(decoded, level), bits)

    @torch.no_grad()
    def code_real(self, source: Tensor, quality: int | None = None) -> SandwichOutput:
        """Real-codec pass at IJG ``quality`` (None: the learned step tables); the processors get that level."""
        level = torch.full((source.shape[0],), self.codec.real_level(quality), device=source.device)
        bottleneck = self.pre(source, level)
        decoded, bits = self.codec.code_real(bottleneck, quality)
        return SandwichOutput(bottleneck, decoded, self.post(decoded, level), bits)

    def baselines(self) -> dict[str, list[tuple[str, Processor, Processor]]]:
        """Non-learned alternatives for the same codec: ``{name: [(variant label, pre, post), ...]}``.

        Every variant is swept over the codec's quality at evaluation; the variants of one baseline
        are merged into one RD curve by their Pareto front.
        """
        raise NotImplementedError

    def _losses(self, source: Tensor, out: SandwichOutput) -> dict[str, Tensor]:
        mse = mse_255(source, out.recon)
        bpp = out.bpp(source)
        return {"loss": self.loss(mse, bpp, self.lmbda).mean(), "mse": mse.mean(), "bpp": bpp.mean(), "psnr": psnr_255(mse).mean()}

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
            if batch_idx < self.config.get("log_images", 1) and quality == qualities[len(qualities) // 2]:
                self._save_images(batch, out, batch_idx)
        self.log_dict({f"val/{k}": v for k, v in totals.items()}, batch_size=batch.shape[0])

    def _save_images(self, source: Tensor, out: SandwichOutput, index: int) -> None:
        """Source | bottleneck ("neural code") | decoded bottleneck | reconstruction, as a PNG and to TensorBoard."""
        panels = [source[0], out.bottleneck[0].clamp(0, 1), out.decoded[0], out.recon[0].clamp(0, 1)]
        row = torch.cat([p.expand(SOURCE_CHANNELS, -1, -1) for p in panels], dim=-1)
        folder = Path(self.trainer.default_root_dir) / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(row)).save(folder / f"val{index}_step{self.global_step:06d}.png")
        experiment = getattr(self.logger, "experiment", None)
        if hasattr(experiment, "add_image"):
            experiment.add_image(f"val/{index}", row, self.global_step)

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        return torch.optim.Adam(self.parameters(), lr=float(self.config["optim"]["lr"]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        checkpoint["sandwich_config"] = self.config


def as_numpy_rgb(image: Tensor) -> np.ndarray:
    """``(C, H, W)`` on [0, 1] -> uint8 ``(H, W, 3)`` (gray replicated)."""
    return to_uint8(image.expand(SOURCE_CHANNELS, -1, -1))

"""Training one sandwich from a resolved configuration: the module, data, Lightning trainer, loggers and
callbacks it needs (:func:`build`), and the run itself, resumable (:func:`train`). ``sandwich train``
(:mod:`sandwich.train`), ``sandwich sweep``, ``sandwich demo`` and the SLURM jobs (:mod:`sandwich.launch`)
call it; it imports none of them."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only
from torch.optim.swa_utils import get_ema_avg_fn

from sandwich import pretrained
from sandwich.codecs.kernels.ops import default_impl
from sandwich.data.datamodule import ShardDataModule
from sandwich.errors import InputError
from sandwich.evaluate.checkpoint import model_file, read_checkpoint
from sandwich.files import write_text
from sandwich.registry import Registry
from sandwich.scenarios.base import SandwichModule
from sandwich.scenarios.registry import create_module
from sandwich.tracking import WandbRun, finish_run, wandb_logger, write_provenance

# Loggers by name (``logger.name`` in the config; its other keys are the factory's options), each built for the run folder.
LOGGERS: Registry[Logger] = Registry(
    "logger",
    {
        "csv": lambda out_dir: CSVLogger(out_dir, name="csv"),
        "tensorboard": lambda out_dir: TensorBoardLogger(out_dir, name="tensorboard"),
        "wandb": wandb_logger,
    },
)


class CheckpointOnInterrupt(Callback):
    """Write ``last.ckpt`` when training stops on an exception or Ctrl-C, so a rerun resumes from there.

    (Lightning's ``OnExceptionCheckpoint`` deletes its file again at teardown and turns every later
    ``fit`` into a resume; this one does neither.) Single-process runs only: saving is a collective
    (a barrier across ranks), and after an exception on one rank the others may be gone, so a
    multi-rank run resumes from its last periodic ``last.ckpt`` instead of hanging here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:  # noqa: D102
        if trainer.global_step > 0 and trainer.world_size == 1:
            trainer.save_checkpoint(self.path)
            print(f"\nsandwich: training stopped at step {trainer.global_step}; saved {self.path} (rerun to resume)")


class SkippedSamples(Callback):
    """Log ``train/skipped_samples``: this rank's count of corrupt train samples skipped so far."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if isinstance(trainer.datamodule, ShardDataModule):
            pl_module.log("train/skipped_samples", float(trainer.datamodule.skipped_samples))


def _check(config: dict[str, Any]) -> None:
    """Values the config files cannot type-check: ranges and relations."""
    if config["optim"]["lr"] <= 0:
        raise InputError(f"config: optim.lr={config['optim']['lr']} must be > 0")
    if config["optim"]["warmup_steps"] < 0:
        raise InputError(f"config: optim.warmup_steps={config['optim']['warmup_steps']} must be >= 0")
    if config["optim"]["pre_frozen_steps"] < 0:
        raise InputError(f"config: optim.pre_frozen_steps={config['optim']['pre_frozen_steps']} must be >= 0")
    if config["optim"]["pre_frozen_steps"] and config["trainer"].get("strategy") == "ddp":
        raise InputError("config: optim.pre_frozen_steps needs one process (DDP expects every parameter to get a gradient at every step)")
    data = config["data"]
    for key in ("crop", "batch_size", "batches_per_epoch", "val_crop"):
        if data[key] < 1:
            raise InputError(f"config: data.{key}={data[key]} must be >= 1")
    if not config["codec"]["val_knobs"]:
        raise InputError("config: codec.val_knobs is empty; validation needs at least one knob value of the real codec")
    if config["ema_decay"] is not None and not 0 < config["ema_decay"] < 1:
        raise InputError(f"config: ema_decay={config['ema_decay']} must be in (0, 1) or null")
    if config["checkpoint_every"] < 1:
        raise InputError(f"config: checkpoint_every={config['checkpoint_every']} must be >= 1")
    default_impl()  # a wrong SANDWICH_KERNELS is refused here, not at the first proxy call after the run folder is written


def build(config: dict[str, Any], extra_callbacks: Sequence[Callback] = ()) -> tuple[SandwichModule, ShardDataModule, L.Trainer]:
    """Module, data and trainer for a resolved configuration (nothing is written yet); ``extra_callbacks``
    join the run's own (checkpoints, W&B, weight averaging)."""
    _check(config)
    L.seed_everything(config["seed"], workers=True, verbose=False)
    module = create_module(config)
    if not any(p.requires_grad for p in module.parameters()):
        raise InputError("config: nothing to train (no network, fixed bypasses and codec steps); pick a net preset, e.g. net=u8_16")
    data = ShardDataModule.from_config(config)
    out_dir = Path(config["out_dir"])
    checkpoints = out_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=checkpoints, save_last=True, save_top_k=0, every_n_train_steps=config["checkpoint_every"]),
        ModelCheckpoint(dirpath=checkpoints, filename="best", monitor="val/loss", mode="min", save_top_k=1, enable_version_counter=False),
        CheckpointOnInterrupt(checkpoints / "last.ckpt"),
        WandbRun(config),
        SkippedSamples(),
        *extra_callbacks,
    ]
    if config["ema_decay"] is not None:
        # Validation, best.ckpt and the checkpoints' state_dict hold the weights' moving average; the raw
        # weights travel in the checkpoint too, so a resumed run continues both.
        callbacks.append(WeightAveraging(avg_fn=get_ema_avg_fn(config["ema_decay"])))
    logger = LOGGERS.from_config(config["logger"], out_dir)
    # Under SLURM, submitit owns the requeue signal (sandwich.launch); Lightning's auto-requeue would be a second owner.
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
    try:
        trainer = L.Trainer(default_root_dir=out_dir, logger=logger, callbacks=callbacks, plugins=plugins, **config["trainer"])
    except (MisconfigurationException, TypeError, ValueError) as exc:
        raise InputError(f"trainer: {exc}") from None
    return module, data, trainer


def start_from(module: SandwichModule, source: str) -> None:
    """Set ``module``'s pre- and post-processors to another trained sandwich's (``init_from``): a pretrained
    model's name (``sandwich models``), a checkpoint file or a W&B model artifact. The codec stage keeps its
    own state (its proxy's rate model, from this run's config), so a sandwich trained over one codec can
    start a run over another (e.g. ``rgb_hevc``'s processors over AV1); the processors are the checkpoint's
    ``state_dict`` (its weights' moving average, where the run kept one).

    Raises:
        InputError: the source is missing or not a sandwich checkpoint, names both a pretrained model and a
            file here, or its processors were built for another scenario or net (their names, channels or
            shapes differ from this run's).
    """
    named = source in pretrained.names()
    if named and Path(source).exists():
        raise InputError(f"init_from={source}: both a pretrained model and a file here have that name; give the file as ./{source}")
    try:
        path, _ = model_file(model=source) if named else model_file(ckpt=source)
        checkpoint = read_checkpoint(path)
    except InputError as exc:
        raise InputError(f"init_from: {exc}") from None
    processors = {key: value for key, value in checkpoint["state_dict"].items() if key.split(".", 1)[0] in ("pre", "post")}
    own = {key for key in module.state_dict() if key.split(".", 1)[0] in ("pre", "post")}
    if set(processors) != own:
        differ = sorted(set(processors) ^ own)
        raise InputError(f"init_from={source}: its processors do not fit this run's scenario and net ({len(differ)} weights differ, e.g. {differ[0]})")
    try:
        module.load_state_dict(processors, strict=False)
    except RuntimeError as exc:
        raise InputError(f"init_from={source}: its processors do not fit this run's scenario and net ({str(exc).splitlines()[-1].strip()})") from None


@rank_zero_only
def _write_config(out_dir: Path, config: dict[str, Any], resume: bool, last: Path) -> None:
    """The run folder's ``config.yaml``, ``git.txt``, ``git.diff`` and ``packages.txt`` (and a note when
    resuming), from rank 0 only."""
    write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    write_provenance(out_dir)
    if resume:
        print(f"sandwich: resuming from {last}")


def best_checkpoint(last: Path) -> Path:
    """``best.ckpt`` beside ``last`` when a validation wrote one, else ``last``."""
    best = last.with_name("best.ckpt")
    return best if best.is_file() else last


def train(config: dict[str, Any], extra_callbacks: Sequence[Callback] = ()) -> Path:
    """Train (or resume) the run described by ``config``; returns the path of ``last.ckpt``."""
    module, data, trainer = build(config, extra_callbacks)
    out_dir = Path(config["out_dir"])
    last = out_dir / "checkpoints" / "last.ckpt"
    resume = config["resume"] and last.is_file()
    if config["init_from"] is not None and not resume:
        start_from(module, str(config["init_from"]))
    _write_config(out_dir, config, resume, last)
    trainer.fit(module, datamodule=data, ckpt_path=last if resume else None)
    trainer.save_checkpoint(last)  # a collective: every rank calls it, rank 0 writes
    finish_run(trainer.logger, config, last, best_checkpoint(last))  # rank 0 only
    return last


def quiet_lightning() -> None:
    """Keep Lightning's console to the progress bar and real warnings."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    resumable = ".*your dataloader is not resumable.*"  # it is: the train loader skips the batches a resumed epoch already trained
    for message in (".*does not have many workers.*", ".*TensorBoardX.*", ".*is not writable.*", ".*LeafSpec.*", resumable):
        warnings.filterwarnings("ignore", message=message)

"""Training and validation batches streamed from WebDataset shards.

Values: every tensor is float32 in [0, 1] (the ``bit_depth``-bit value d divided by ``2**d - 1``), with
the ``channels`` C of the shards (3: RGB; 4: RGBA; 6: a stereo pair, ...; checked against the index).
Shards hold samples of their own bit depth (the index's ``bit_depth``: 8, or 9..16 for a high-bit-depth
source); a module of fewer bits rounds them down to its own (:func:`sandwich.sample_format.requantize`),
one of more bits is refused (more bits cannot be made up).

* train: ``(batch_size, C, crop, crop)`` random crops with random flips and transposes, drawn from an
  endless stream that resamples train shards with replacement and mixes samples in a shuffle buffer.
  With ``colour_augment`` each crop also gets a random order of its RGB channels and a random
  saturation gain (8-bit only; chroma scaled by ``2**U(-1, 1)`` about the luma, clipped; the same for every RGB
  triple of an N-channel crop, e.g. both views of a stereo pair, other channels untouched): a handful of training
  photos then spans hues and saturations that users' photos have and the training photos lack.
  With ``defocus_augment = p`` (8-bit only) a crop is, with probability ``p``, blurred by a Gaussian of ``sigma``
  drawn log-uniformly from [1, 4] pixels (:func:`sandwich.data.images.defocus`): the smooth gradients
  and defocused backgrounds of shallow-depth-of-field photos, which sharp training photos lack (a
  post-filter trained on sharp photos only lost 0.25 dB on SPORCO's kodim23 at JPEG q20; with blurred
  copies it gained 0.15 dB).
  An image smaller than ``crop`` on a side is first extended by mirror reflection (``numpy.pad``
  ``"reflect"``) to ``crop`` on that side; reflection keeps the image's own pixels and sharpness,
  where upscaling would show the codec softer, interpolated content.
* val: ``(1, C, h, w)``, each val image exactly once, in shard order, centre crop of
  ``h = min(val_crop, H)``, ``w = min(val_crop, W)`` (sizes vary, hence batches of one).

DDP. With several ranks, shards split across ranks give each rank a different number of batches, and
the rank that runs out first desynchronises the gradient all-reduce (a crash on gloo, a hang on NCCL);
WebDataset >= 1.0 also refuses world_size > 1 without an explicit node splitter. Here the train
stream does not split shards at all: every rank and dataloader worker resamples shards with replacement
from its own seeded generator (seed, rank, worker), so no rank can run dry and no worker can be left
without shards, and ``WebLoader(...).with_epoch(batches_per_epoch)`` cuts every rank's endless stream
at the same number of batches. Validation is not split either: every rank sees every val image once
(duplicated work on small val sets, metrics identical on all ranks, no uneven last batch). A corrupt
train sample is skipped (and counted, ``train/skipped_samples``) by whichever rank draws it; the
batch is filled from the next samples, so no rank falls behind.

Reproducibility. Shard choice, shuffle buffer, crops and flips draw only from generators seeded by
``(seed, rank, worker, epoch)``, never global random state, the epoch being the trainer's (shared with
the dataloader workers): the same seed gives the same batches, and each epoch continues with new draws.
Resumed mid-epoch (from a periodic ``last.ckpt``), the train loader replays that epoch's stream and skips
the batches already trained, so a resumed run sees exactly the batches of the unbroken run.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning
import numpy as np
import torch
import webdataset as wds

from sandwich.data.images import centre_crop, defocus
from sandwich.data.shards import decode_sample, ensure_sample_shards, index_bit_depth, index_channels, read_index
from sandwich.errors import InputError
from sandwich.jfif import BT601_LUMA
from sandwich.sample_format import peak, requantize, to_tensor


class ShardDataModule(lightning.LightningDataModule):
    """Train/val dataloaders over a shard folder written by ``sandwich shards`` (or the embedded samples).

    Args:
        shards: folder written by :func:`sandwich.data.shards.write_shards`; None uses the embedded
            sample set ``samples`` (:func:`sandwich.data.shards.ensure_sample_shards`).
        samples: the embedded sample set when ``shards`` is None (:data:`sandwich.data.samples.SAMPLE_SETS`).
        channels: channels per sample the model takes; the shards must hold as many.
        bit_depth: bits per sample the model takes, 8..16 (``scenario.bit_depth``); the shards must hold
            at least as many (more are rounded down to ``bit_depth``).
        crop: side of the square train crops, pixels.
        batch_size: train crops per batch.
        num_workers: dataloader worker processes (0: load in the training process).
        batches_per_epoch: train batches per epoch on every rank.
        val_crop: largest side of the val centre crops, pixels.
        seed: seed of shard sampling, shuffling, crops and flips.
        shuffle_buffer: samples mixed in the train shuffle buffer.
        crops_per_image: random crops cut from each decoded image.
        colour_augment: random channel order and saturation per train crop (module doc; 8-bit only).
        defocus_augment: probability that a train crop is blurred (module doc), 0..1 (8-bit only).

    Example:
        >>> data = ShardDataModule(crop=64, batch_size=4, batches_per_epoch=2)
        >>> data.setup("fit")
        >>> next(iter(data.train_dataloader())).shape
        torch.Size([4, 3, 64, 64])
    """

    def __init__(
        self,
        shards: str | None = None,
        crop: int = 128,
        batch_size: int = 8,
        num_workers: int = 0,
        batches_per_epoch: int = 100,
        val_crop: int = 256,
        seed: int = 0,
        shuffle_buffer: int = 64,
        crops_per_image: int = 1,
        colour_augment: bool = False,
        defocus_augment: float = 0.0,
        samples: str = "color",
        channels: int = 3,
        bit_depth: int = 8,
    ) -> None:
        super().__init__()
        if not 0 <= defocus_augment <= 1:
            raise InputError(f"defocus_augment must be a probability 0..1, got {defocus_augment}")
        if peak(bit_depth) > 255 and (colour_augment or defocus_augment):
            raise InputError(f"colour_augment and defocus_augment work on 8-bit samples; turn them off for bit depth {bit_depth}")
        for name, value, low in (
            ("crop", crop, 1),
            ("batch_size", batch_size, 1),
            ("num_workers", num_workers, 0),
            ("batches_per_epoch", batches_per_epoch, 1),
            ("val_crop", val_crop, 1),
            ("shuffle_buffer", shuffle_buffer, 1),
            ("crops_per_image", crops_per_image, 1),
        ):
            if value < low:
                raise InputError(f"{name} must be >= {low}, got {value}")
        self.shards = shards
        self.samples, self.channels, self.bit_depth = samples, channels, bit_depth
        self.shard_bit_depth = bit_depth  # the shards' bit depth, read from their index in setup()
        self.crop = crop
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.batches_per_epoch = batches_per_epoch
        self.val_crop = val_crop
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.crops_per_image = crops_per_image
        self.colour_augment = colour_augment
        self.defocus_augment = defocus_augment
        self.shard_dir: Path | None = None
        self.index: dict | None = None
        self.skipped = multiprocessing.Value("q", 0)  # corrupt train samples skipped by this process and its workers

    @classmethod
    def from_config(cls, config: dict, **overrides: object) -> "ShardDataModule":
        """The data of a resolved run configuration: ``config["data"]`` (with ``overrides``), the run's
        ``seed`` and the scenario's ``channels`` and ``bit_depth``."""
        scenario = config["scenario"]
        return cls(**config["data"] | overrides, seed=config["seed"], channels=scenario["channels"], bit_depth=scenario["bit_depth"])

    @property
    def skipped_samples(self) -> int:
        """Train samples skipped so far because their image could not be decoded (each draw counts)."""
        return int(self.skipped.value)

    def setup(self, stage: str | None = None) -> None:
        """Locate the shards (packing the embedded samples on first use) and read their index.

        Only the presence of the shard files is checked here, not their checksums (that would read
        the whole dataset on every rank at every start); ``read_index(dir)`` verifies them.

        Raises:
            InputError: the shards hold another number of channels than ``channels``, or fewer bits than ``bit_depth``.
        """
        self.shard_dir = Path(self.shards) if self.shards is not None else ensure_sample_shards(samples=self.samples)
        self.index = read_index(self.shard_dir, verify=False)
        if (found := index_channels(self.index)) != self.channels:
            raise InputError(f"{self.shard_dir}: samples have {found} channels, the model takes {self.channels} (scenario.channels)")
        self.shard_bit_depth = index_bit_depth(self.index)
        if self.shard_bit_depth < self.bit_depth:
            raise InputError(
                f"{self.shard_dir}: samples have {self.shard_bit_depth} bits, fewer than the model's {self.bit_depth} (scenario.bit_depth); "
                f"pack {self.bit_depth}-bit sources with `sandwich shards --bit-depth {self.bit_depth}`"
            )

    def decode(self, sample: dict) -> np.ndarray:
        """A sample of the shards -> its image ``(H, W, C)`` at the module's ``bit_depth`` (after :meth:`setup`).

        Raises:
            KeyError, ValueError: a corrupt sample (:func:`sandwich.data.shards.decode_sample`).
        """
        return _decode(sample, (self.shard_bit_depth, self.bit_depth))

    def train_dataloader(self) -> wds.WebLoader:
        """Endless seeded random crops, cut to ``batches_per_epoch`` batches of ``(batch_size, C, crop, crop)``."""
        epoch = multiprocessing.Value("q", 0)  # the trainer's epoch, shared with the dataloader workers
        dataset = wds.DataPipeline(
            _EpochShards(self._urls("train"), self.seed, epoch),
            wds.tarfile_to_samples(),
            _RandomCrops(
                self.crop, self.shuffle_buffer, self.seed, epoch, self.skipped, self.crops_per_image, self.colour_augment, self.defocus_augment,
                (self.shard_bit_depth, self.bit_depth),
            ),
            wds.batched(self.batch_size, collation_fn=torch.stack, partial=False),
        )
        loader = _PositionedLoader(self._position, epoch, dataset, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0)
        return loader.with_epoch(self.batches_per_epoch).with_length(self.batches_per_epoch, silent=True)

    def _position(self) -> tuple[int, int] | None:
        """(epoch, batches of it already trained) of the trainer about to iterate the train loader (after a
        resume from a checkpoint written mid-epoch: that epoch and its trained batches); None without a trainer."""
        trainer = self.trainer
        if trainer is None:
            return None
        epoch_loop = trainer.fit_loop.epoch_loop
        return trainer.current_epoch, epoch_loop.batch_progress.current.ready if epoch_loop.restarting else 0

    def val_dataloader(self) -> wds.WebLoader:
        """Every val image once, in shard order, as a ``(1, C, h, w)`` centre crop."""
        urls = self._urls("val")
        if not urls:
            raise InputError(f"{self.shard_dir}: has no val images (written with val fraction 0)")
        dataset = wds.DataPipeline(
            wds.SimpleShardList(urls),
            wds.split_by_worker,
            wds.tarfile_to_samples(),
            wds.map(functools.partial(_val_sample, size=self.val_crop, bit_depths=(self.shard_bit_depth, self.bit_depth))),
        )
        return wds.WebLoader(dataset, batch_size=None, num_workers=self.num_workers)

    def _urls(self, split: str) -> list[str]:
        if self.index is None or self.shard_dir is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        return [str(self.shard_dir / name) for name in self.index[split]["shards"]]


class _EpochShards(wds.ResampledShards):
    """Shard URLs drawn with replacement, forever, from a generator seeded by (seed, rank, worker, epoch),
    the epoch being the trainer's (``epoch``, shared with the workers), not a count of this object's own
    iterations: a resumed run draws what the unbroken run drew."""

    def __init__(self, urls: list[str], seed: int, epoch: "multiprocessing.sharedctypes.Synchronized[int]") -> None:
        super().__init__(urls, seed=seed, deterministic=True)
        self.shared_epoch = epoch

    def __iter__(self) -> Iterator[dict]:
        self.epoch = self.shared_epoch.value - 1  # ResampledShards adds one as it starts
        return super().__iter__()


class _PositionedLoader(wds.WebLoader):
    """A WebLoader that, each time it is iterated, publishes the trainer's epoch to the pipeline (``epoch``,
    read by the workers as they restart) and skips the batches of that epoch already trained
    (``position()`` gives both), so that the batches after a resume are those of the unbroken run.
    Without a trainer (``position()`` is None) the epoch is the number of earlier passes."""

    def __init__(self, position: Callable[[], tuple[int, int] | None], epoch: "multiprocessing.sharedctypes.Synchronized[int]", *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.position, self.epoch, self.passes = position, epoch, 0

    def __iter__(self) -> Iterator[torch.Tensor]:
        epoch, done = self.position() or (self.passes, 0)
        self.epoch.value, self.passes = epoch, self.passes + 1
        return itertools.islice(super().__iter__(), done, None)


class _RandomCrops:
    """Pipeline stage: samples -> shuffle buffer -> ``(C, crop, crop)`` float32 [0, 1] random crops, random
    flips and transposes (and with ``colour_augment`` random channel order and saturation, with
    ``defocus_augment`` a random blur). ``bit_depths``: (the shards', the crops') bits per sample.

    Each decoded image gives ``crops_per_image`` crops (decoding a PNG costs more than a training step's
    share of it on small datasets); the crops pass through a second shuffle buffer so that a batch mixes
    images. Each call (one per epoch, per worker) draws from a new generator seeded by (seed, rank,
    worker, epoch). A sample whose image cannot be decoded is skipped with one line on stderr and counted
    in ``skipped`` (shared with the training process); training goes on.
    """

    def __init__(
        self,
        crop: int,
        buffer: int,
        seed: int,
        epoch: "multiprocessing.sharedctypes.Synchronized[int]",
        skipped: "multiprocessing.sharedctypes.Synchronized[int]",
        crops_per_image: int = 1,
        colour_augment: bool = False,
        defocus_augment: float = 0.0,
        bit_depths: tuple[int, int] = (8, 8),
    ) -> None:
        self.crop = crop
        self.bit_depths = bit_depths
        self.colour_augment = colour_augment
        self.defocus_augment = defocus_augment
        self.buffer = buffer
        self.seed = seed
        self.crops_per_image = crops_per_image
        self.epoch, self.skipped = epoch, skipped

    def __call__(self, samples: Iterator[dict]) -> Iterator[torch.Tensor]:
        rank, _, worker, _ = wds.utils.pytorch_worker_info()
        rng = random.Random(f"sandwich-crops:{self.seed}:{rank}:{worker}:{self.epoch.value}")
        crops = self._crops(wds.shuffle(self.buffer, self.buffer, rng=rng)(samples), rng)
        if self.crops_per_image > 1:
            crops = wds.shuffle(self.buffer, self.buffer, rng=rng)(crops)
        yield from crops

    def _crops(self, samples: Iterator[dict], rng: random.Random) -> Iterator[torch.Tensor]:
        for sample in samples:
            try:
                image = _pad_to(_decode(sample, self.bit_depths), self.crop)
            except (KeyError, OSError, SyntaxError, ValueError) as exc:  # a corrupt or missing image: skip, count, say so
                with self.skipped.get_lock():
                    self.skipped.value += 1
                print(f"sandwich: skipped train sample {sample.get('__key__')} of {sample.get('__url__')}: {exc}", file=sys.stderr)
                continue
            for _ in range(self.crops_per_image):
                top = rng.randrange(image.shape[0] - self.crop + 1)
                left = rng.randrange(image.shape[1] - self.crop + 1)
                patch = image[top : top + self.crop, left : left + self.crop]
                if rng.random() < 0.5:
                    patch = patch[:, ::-1]
                if rng.random() < 0.5:
                    patch = patch[::-1]
                if rng.random() < 0.5:
                    patch = patch.transpose(1, 0, 2)
                if self.colour_augment:
                    patch = recolour_triples(patch, rng.sample(range(3), 3), 2 ** rng.uniform(-1, 1))
                if self.defocus_augment and rng.random() < self.defocus_augment:
                    patch = defocus(patch, 2 ** rng.uniform(0, 2))
                yield to_tensor(patch, self.bit_depths[1])


def recolour(rgb: np.ndarray, order: list[int], saturation: float) -> np.ndarray:
    """``(H, W, 3)`` uint8 with its channels in ``order`` and its chroma scaled by ``saturation`` about the
    JFIF luma (rounded, clipped to 0..255)."""
    x = rgb[..., order].astype(np.float32)
    y = x @ np.array(BT601_LUMA, dtype=np.float32)
    return np.clip(np.floor(y[..., None] + saturation * (x - y[..., None]) + 0.5), 0, 255).astype(np.uint8)


def recolour_triples(image: np.ndarray, order: list[int], saturation: float) -> np.ndarray:
    """:func:`recolour` applied alike to every complete RGB triple of ``(H, W, C)`` uint8 (channels
    ``3k .. 3k+2``); channels past the last triple (e.g. alpha) stay as they are."""
    out = image.copy()
    for start in range(0, image.shape[2] - 2, 3):
        out[..., start : start + 3] = recolour(image[..., start : start + 3], order, saturation)
    return out


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Mirror-pad ``(H, W, C)`` so that both sides are at least ``size`` (centred; no-op if already large enough)."""
    pad_h, pad_w = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="reflect")


def _decode(sample: dict, bit_depths: tuple[int, int]) -> np.ndarray:
    """A sample of shards of ``bit_depths[0]`` bits -> ``(H, W, C)`` samples of ``bit_depths[1]`` bits (rounded down to them)."""
    return requantize(decode_sample(sample, bit_depths[0]), *bit_depths)


def _val_sample(sample: dict, size: int, bit_depths: tuple[int, int]) -> torch.Tensor:
    """A shard sample -> ``(1, C, min(size, H), min(size, W))`` float32 [0, 1] centre crop (``bit_depths``: :class:`_RandomCrops`)."""
    return to_tensor(centre_crop(_decode(sample, bit_depths), size), bit_depths[1])[None]

"""``sandwich shards``: pack a folder of images into WebDataset tar shards for training.

Every image file directly in SRC_DIR (PNG, JPEG, BMP, TIFF, WebP, PPM/PGM; 8 bits per sample) becomes one
sample of ``--channels`` C channels (:func:`~sandwich.data.images.read_image`): 3 (default: gray is
replicated to RGB, alpha dropped), 4 (RGBA: files with an alpha channel), or any C from ``.npy`` arrays
``(H, W, C)`` uint8. With ``--bit-depth`` D of 9..16 (a high-bit-depth source; RGB only) the files are
16-bit PNG or TIFF, their samples rounded to D bits, or OpenEXR, its linear light as D-bit PQ code values
(:mod:`sandwich.transfer`). A sample is a lossless PNG (RGB or RGBA; 8-bit, or for D > 8 16-bit
holding the D-bit values as they are, not rescaled) or, beyond 4 channels, the ``.npy`` array itself,
plus a small JSON record (``name``, ``height``, ``width``); the index records C and D (``channels``,
``bit_depth``). The files are split by a seeded shuffle into a train and a val set
(val gets round(F * n) of the n readable images for --val-fraction F, at least 1 when F > 0 and n >= 2;
train keeps at least 1) and written to OUT_DIR as

  train-000000.tar, train-000001.tar, ...   (--shard-size images each, the last one may be shorter)
  val-000000.tar, ...
  index.json                                (shard names, counts, sha256 checksums, skipped files)

Files that cannot be read (corrupt, truncated, another bit depth or channel count) are skipped with one line each on
stderr and listed under "skipped" in index.json. OUT_DIR must not exist or be empty; it is written
atomically (built next to it, then renamed), so a failure leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import errno
import functools
import io
import json
import os
import random
import re
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import webdataset as wds
import imagecodecs

from sandwich.data.images import list_images, lossless_bytes, output_suffix, read_image
from sandwich.data.samples import sample_set
from sandwich.errors import InputError
from sandwich.files import cache_root, sha256_file, write_json
from sandwich.sample_format import check_samples, dtype_for, peak

FORMAT = "sandwich-shards-v1"
INDEX_NAME = "index.json"
SPLITS = ("train", "val")
SAMPLE_SHARDS_NAMES = {"color": "samples-v3"}  # cache folder per sample set (default: "<set>-v1"); bump on a change of its samples or format

# (name, label, load): ``name`` goes into the index, ``label`` (a file's path) prefixes messages, and
# ``load()`` returns (H, W, C) samples of the bit depth being packed or raises InputError("{label}: reason") for an unreadable image.
ImageSource = tuple[str, str, Callable[[], np.ndarray]]


def write_shards(
    src_dir: str | Path, out_dir: str | Path, shard_size: int = 64, val_fraction: float = 0.1, seed: int = 0, channels: int = 3, bit_depth: int = 8
) -> dict:
    """Pack every image file in ``src_dir`` into train/val WebDataset shards in ``out_dir``.

    Args:
        src_dir: folder of image files (not searched recursively).
        out_dir: folder to create (it must not exist, or be empty).
        shard_size: images per tar shard, >= 1.
        val_fraction: share of the images held out for validation, in [0, 1).
        seed: seed of the train/val split (the split is a function of the readable file names and seed).
        channels: channels per sample (3: RGB, 4: RGBA, other: ``.npy`` files).
        bit_depth: bits per sample, 8 (uint8 samples) or 9..16 (uint16 samples, RGB only: 16-bit PNG or
            TIFF files rounded to ``bit_depth`` bits, or OpenEXR files as PQ code values).

    Returns:
        The index written to ``out_dir/index.json`` (see the module docstring).

    Raises:
        InputError: bad arguments, a missing or empty ``src_dir``, no readable image, or a non-empty
            ``out_dir``. Unreadable files alone are skipped and reported, not raised.
    """
    src_dir = Path(src_dir)
    _check_arguments(shard_size, val_fraction)
    _check_out_dir(Path(out_dir))
    if channels < 1:
        raise InputError(f"channels must be >= 1, got {channels}")
    if peak(bit_depth) > 255 and channels != 3:
        raise InputError(f"bit depth {bit_depth} packs RGB images (3 channels), not {channels}")
    sources = [(path.name, str(path), functools.partial(read_image, path, channels, bit_depth)) for path in list_images(src_dir)]
    return _write(sources, Path(out_dir), shard_size, val_fraction, seed, str(src_dir), channels, bit_depth)


def write_array_shards(
    images: dict[str, np.ndarray],
    out_dir: str | Path,
    shard_size: int = 64,
    val_fraction: float = 0.1,
    seed: int = 0,
    source: str = "arrays",
    validate_on_train: bool = False,
    val_names: frozenset[str] = frozenset(),
    channels: int = 3,
    bit_depth: int = 8,
) -> dict:
    """Like :func:`write_shards`, for images already in memory: ``{name: (H, W, channels)}`` samples of
    ``bit_depth`` bits (uint8 for 8, uint16 for 9..16; any channel count at any depth).

    ``source`` is recorded in the index. An array that is not ``(H, W, channels)`` ``bit_depth``-bit samples is skipped and
    reported like an unreadable file. ``validate_on_train``: every image goes to train *and* val
    (``val_fraction`` is ignored), for sets too small to hold images out. ``val_names``: exactly these
    images validate and the others train (``val_fraction`` is ignored), for a split by source.
    """
    _check_arguments(shard_size, val_fraction)
    _check_out_dir(Path(out_dir))
    if not images:
        raise InputError("no images to pack")
    peak(bit_depth)  # InputError for a depth outside 8..16
    sources = [(name, name, functools.partial(_checked_array, name, image, channels, bit_depth)) for name, image in images.items()]
    split: float | None | frozenset[str] = val_names or (None if validate_on_train else val_fraction)
    return _write(sources, Path(out_dir), shard_size, split, seed, source, channels, bit_depth)


def read_index(shard_dir: str | Path, verify: bool = True) -> dict:
    """The index of a shard folder written by :func:`write_shards`, after checking its shards.

    Args:
        shard_dir: the folder.
        verify: also compare every shard's sha256 with the index (reads every byte; without it only
            the presence of the shard files is checked).

    Raises:
        InputError: the folder or its index.json is missing or not a sandwich shard index, a shard file
            is missing, or (``verify``) a shard's checksum does not match.
    """
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise InputError(f"{shard_dir}: no such shard folder (write one with `sandwich shards SRC_DIR OUT_DIR`)")
    index_path = shard_dir / INDEX_NAME
    if not index_path.is_file():
        raise InputError(f"{shard_dir}: no {INDEX_NAME}; not a folder written by `sandwich shards`")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{index_path}: not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not all(k in index for k in (*SPLITS, "checksums")):
        raise InputError(f"{index_path}: not a {FORMAT} index")
    for split in SPLITS:
        for name in index[split]["shards"]:
            path = shard_dir / name
            if not path.is_file():
                raise InputError(f"{path}: shard listed in {INDEX_NAME} is missing")
            if verify and sha256_file(path) != index["checksums"][name]:
                raise InputError(f"{path}: sha256 does not match {INDEX_NAME}; the shard is corrupt or was changed after writing")
    return index


def ensure_sample_shards(cache_dir: Path | None = None, samples: str = "color") -> Path:
    """An embedded sample set (:data:`sandwich.data.samples.SAMPLE_SETS`) as shards, split by source, packed on first use.

    ``color`` (the default dataset): scikit-image's colour photos (``sandwich.data.samples.COLOR_TRAIN_PHOTOS``)
    train; matplotlib's photo (``COLOR_VAL_PHOTOS``), of another source, validates (checkpoint selection);
    ``sandwich eval`` and ``sandwich demo`` measure on SPORCO's photos, a third source. Other sets name
    their own train and val photos and their held-out source, and their channels and bit depth (``hdr``:
    16-bit shards). A set is written once to
    ``cache_dir/shards/samples-v3`` (``color``; ``<set>-v1`` for the others; ``cache_dir`` defaults to
    ``$SANDWICH_CACHE``, else ``~/.cache/sandwich``) and reused while the index and checksums match; a
    missing or corrupt copy is rebuilt.

    Safe when several processes (e.g. DDP ranks) call it at once: each builds in its own temp folder
    and publishes by an atomic rename; a process that loses the race uses the winner's copy (the shards
    are byte-identical: fixed tar metadata, deterministic PNG encoding).

    Returns:
        The shard folder.
    """
    chosen = sample_set(samples)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / "shards" / SAMPLE_SHARDS_NAMES.get(chosen.name, f"{chosen.name}-v1")
    try:
        read_index(target)
        return target
    except InputError:
        pass
    if target.exists():
        _discard(target)
    try:
        train, val = chosen.photos(chosen.train), chosen.photos(chosen.val)
        write_array_shards(
            chosen.load(train + val),
            target,
            val_names=frozenset(val),
            source=f"sample set {chosen.name}: train " + ", ".join(chosen.train) + "; val " + ", ".join(chosen.val),
            channels=chosen.channels,
            bit_depth=chosen.bit_depth,
        )
    except InputError:
        if not (target / INDEX_NAME).exists():
            raise
        read_index(target)  # another process published first: use its copy
    return target


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``sandwich shards``."""
    parser.add_argument("src_dir", type=Path, metavar="SRC_DIR", help="folder of images (not searched recursively)")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="folder to create (must not exist, or be empty)")
    parser.add_argument("--shard-size", type=int, default=64, metavar="N", help="images per tar shard (default: 64)")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="share held out for validation, in [0, 1) (default: 0.1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the train/val split (default: 0)")
    parser.add_argument(
        "--channels", type=int, default=3, metavar="C",
        help="channels per sample: 3 (RGB, default), 4 (RGBA: files with alpha), or any count from .npy (H, W, C) uint8 files",
    )
    parser.add_argument(
        "--bit-depth", type=int, default=8, metavar="D",
        help="bits per sample: 8 (default), or 9..16 for a high-bit-depth RGB source from 16-bit PNG or TIFF files "
        "(rounded to D bits) or OpenEXR files (linear light as D-bit PQ code values); stored losslessly as 16-bit PNG",
    )


def run(args: argparse.Namespace) -> None:
    """Write the shards and print a short summary; raises InputError on bad input."""
    index = write_shards(args.src_dir, args.out_dir, shard_size=args.shard_size, val_fraction=args.val_fraction, seed=args.seed, channels=args.channels, bit_depth=args.bit_depth)
    for split in SPLITS:
        part = index[split]
        print(f"{split}: {part['count']} images in {len(part['shards'])} shards")
    if index["skipped"]:
        print(f"skipped: {len(index['skipped'])} unreadable files (listed in {INDEX_NAME})")
    print(f"wrote {Path(args.out_dir) / INDEX_NAME}")


def _check_arguments(shard_size: int, val_fraction: float) -> None:
    if shard_size < 1:
        raise InputError(f"shard size must be >= 1, got {shard_size}")
    if not 0 <= val_fraction < 1:
        raise InputError(f"val fraction must be in [0, 1), got {val_fraction}")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"{out_dir}: exists and is not an empty folder; choose a new output folder")


def _checked_array(name: str, image: np.ndarray, channels: int, bit_depth: int) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != channels:
        raise InputError(f"{name}: expected (H, W, {channels}) samples, got {image.shape}")
    try:
        check_samples(image, bit_depth)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    return image


def _val_count(n: int, val_fraction: float) -> int:
    """Images held out of ``n``: round(val_fraction * n), at least 1 if val_fraction > 0 and n >= 2, at most n - 1."""
    if val_fraction == 0 or n < 2:
        return 0
    return min(max(round(val_fraction * n), 1), n - 1)


def _write(
    sources: list[ImageSource],
    out_dir: Path,
    shard_size: int,
    val_fraction: float | None | frozenset[str],
    seed: int,
    source: str,
    channels: int,
    bit_depth: int,
) -> dict:
    """Read, split and pack ``sources`` in a temp folder next to ``out_dir``, then rename it into place.

    ``val_fraction``: a share of the images for val (seeded), None (every image in both splits), or the
    names of the val images.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        index = _pack(sources, tmp, shard_size, val_fraction, seed, source, channels, bit_depth)
        try:
            os.rename(tmp, out_dir)  # replaces an empty folder; fails on a non-empty one
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise InputError(f"{out_dir}: exists and is not an empty folder; choose a new output folder") from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


def _pack(
    sources: list[ImageSource],
    folder: Path,
    shard_size: int,
    val_fraction: float | None | frozenset[str],
    seed: int,
    source: str,
    channels: int,
    bit_depth: int,
) -> dict:
    """Write shards and index.json into ``folder``.

    Pass 1 decodes each image once and stages it as PNG (or ``.npy``) bytes on disk (memory stays one image, however
    large the dataset); pass 2 splits the readable images and streams the staged files into tars.
    """
    staging = folder / "staging"
    staging.mkdir()
    records: dict[str, dict] = {}  # key -> json record, readable images only
    skipped = []
    used_keys: set[str] = set()
    kind = output_suffix(channels).removeprefix(".")
    for name, label, load in sources:
        try:
            array = load()
        except InputError as exc:
            reason = str(exc).removeprefix(f"{label}: ")
            print(f"sandwich: skipped {label}: {reason}", file=sys.stderr)
            skipped.append({"file": name, "reason": reason})
            continue
        key = _unique_key(name, used_keys)
        (staging / f"{key}.{kind}").write_bytes(lossless_bytes(array))
        records[key] = {"name": name, "height": int(array.shape[0]), "width": int(array.shape[1])}
    if not records:
        raise InputError(f"{source}: none of the {len(sources)} images is readable (see the lines above)")

    keys = sorted(records)
    random.Random(seed).shuffle(keys)
    if val_fraction is None:
        splits = {"train": keys, "val": sorted(keys)}
    elif isinstance(val_fraction, frozenset):
        val = {key for key in keys if records[key]["name"] in val_fraction}
        splits = {"train": [key for key in keys if key not in val], "val": sorted(val)}
    else:
        n_val = _val_count(len(keys), val_fraction)
        splits = {"train": keys[n_val:], "val": sorted(keys[:n_val])}
    index: dict = {"format": FORMAT}
    checksums = {}
    for split in SPLITS:
        names = []
        for start in range(0, len(splits[split]), shard_size):
            shard = f"{split}-{start // shard_size:06d}.tar"
            with wds.TarWriter(str(folder / shard), encoder=False, mtime=0) as tar:
                for key in splits[split][start : start + shard_size]:
                    tar.write({"__key__": key, kind: (staging / f"{key}.{kind}").read_bytes(), "json": json.dumps(records[key]).encode()})
            names.append(shard)
            checksums[shard] = sha256_file(folder / shard)
        index[split] = {"shards": names, "count": len(splits[split])}
    index.update({"checksums": checksums, "skipped": skipped, "source": source, "channels": channels, "bit_depth": bit_depth})
    shutil.rmtree(staging)
    write_json(folder / INDEX_NAME, index)
    return index


def _unique_key(name: str, used: set[str]) -> str:
    """A WebDataset key from a file name's stem: only ``[A-Za-z0-9_-]`` (a dot would split the key), unique."""
    base = re.sub(r"[^A-Za-z0-9_-]", "_", Path(name).stem) or "image"
    key, n = base, 1
    while key in used:
        n += 1
        key = f"{base}-{n}"
    used.add(key)
    return key


def decode_sample(sample: dict, bit_depth: int = 8) -> np.ndarray:
    """A shard sample of shards written at ``bit_depth`` bits -> its image ``(H, W, C)`` (uint8 for 8, uint16
    for 9..16; from its ``png`` or ``npy`` entry).

    Raises:
        KeyError: neither entry; ValueError: corrupt bytes, or samples of another dtype than ``bit_depth``'s.
    """
    if "npy" in sample:
        array = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
    else:
        try:
            array = imagecodecs.png_decode(sample["png"])
        except imagecodecs.PngError as exc:  # a RuntimeError: the callers skip ValueErrors
            raise ValueError(f"corrupt PNG sample ({exc})") from None
    expected = np.dtype(dtype_for(bit_depth))
    if array.dtype != expected or array.ndim != 3:
        raise ValueError(f"{'npy' if 'npy' in sample else 'png'} sample of {array.shape} {array.dtype}, not (H, W, C) {expected.name} ({bit_depth}-bit shards)")
    return array


def index_channels(index: dict) -> int:
    """Channels per sample of a shard index (3 for indexes written before N-channel samples)."""
    return int(index.get("channels", 3))


def index_bit_depth(index: dict) -> int:
    """Bits per sample of a shard index (8 for indexes written before high-bit-depth samples)."""
    return int(index.get("bit_depth", 8))


def _discard(folder: Path) -> None:
    """Move a stale folder out of the way atomically, then delete it (another process may have moved it first)."""
    trash = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)

"""Shards and the DataModule on real photos: round trip, refusals, seeded batches, the embedded sample shards."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from sandwich.data import shards
from sandwich.data.datamodule import ShardDataModule, recolour
from sandwich.data.samples import load_photo
from sandwich.data.shards import ensure_sample_shards, read_index, write_shards
from sandwich.errors import InputError

BAD_FILES = ("broken.png", "deep.png")


def _photos() -> dict[str, np.ndarray]:
    """File name -> the uint8 RGB crop written under that name (odd sizes; one smaller than the crops below)."""
    return {
        "astronaut.png": load_photo("skimage/astronaut")[30:131, 170:293],
        "chelsea.png": load_photo("skimage/chelsea")[60:157, 120:251],
        "coffee.png": load_photo("skimage/coffee")[100:211, 200:317],
        "rocket.png": load_photo("skimage/rocket")[100:203, 200:321],
        "rocket.bmp": load_photo("skimage/rocket")[200:299, 300:411],  # same stem as rocket.png: the key must differ
        "motorcycle left.png": load_photo("skimage/motorcycle_left")[150:257, 300:409],
        "tiny.png": load_photo("skimage/immunohistochemistry")[10:30, 40:67],
    }


def _write_photo_folder(folder: Path) -> dict[str, np.ndarray]:
    """Write the photos losslessly plus two unreadable files (truncated PNG, 16-bit PNG); returns the photos."""
    folder.mkdir()
    photos = _photos()
    for name, rgb in photos.items():
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / name)
    png = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(photos["coffee.png"])).save(png, format="PNG")
    (folder / "broken.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    deep = (load_photo("skimage/camera")[:40, :50, 0].astype(np.uint16) * 257)
    Image.fromarray(deep).save(folder / "deep.png")
    return photos


def _read_samples(shard_dir: Path, names: list[str]) -> list[dict]:
    """The samples of the given tar shards, in order, with the PNG decoded and the JSON parsed."""
    dataset = wds.DataPipeline(wds.SimpleShardList([str(shard_dir / n) for n in names]), wds.tarfile_to_samples())
    samples = []
    for sample in dataset:
        image = Image.open(io.BytesIO(sample["png"]))
        samples.append({"key": sample["__key__"], "mode": image.mode, "rgb": np.asarray(image), "meta": json.loads(sample["json"])})
    return samples


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path_factory.mktemp("src") / "photos"
    return folder, _write_photo_folder(folder)


@pytest.fixture(scope="module")
def shard_dir(photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7 readable photos -> 5 train (3 shards of <= 2) and 2 val (1 shard)."""
    out = tmp_path_factory.mktemp("shards") / "out"
    write_shards(photo_folder[0], out, shard_size=2, val_fraction=0.3, seed=0)
    return out


@pytest.fixture(scope="module")
def one_shard_dir(photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same photos with all 5 train images in one shard: shard resampling alone cannot vary the batches."""
    out = tmp_path_factory.mktemp("shards") / "one"
    write_shards(photo_folder[0], out, shard_size=64, val_fraction=0.3, seed=0)
    return out


def test_write_shards_round_trip(photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder, photos = photo_folder
    out = tmp_path / "out"
    index = write_shards(folder, out, shard_size=2, val_fraction=0.3, seed=0)

    assert json.loads((out / "index.json").read_text()) == index
    assert index["format"] == "sandwich-shards-v1" and index["source"] == str(folder)
    assert index["train"] == {"shards": ["train-000000.tar", "train-000001.tar", "train-000002.tar"], "count": 5}
    assert index["val"] == {"shards": ["val-000000.tar"], "count": 2}
    assert sorted(p.name for p in out.iterdir()) == sorted(["index.json", *index["checksums"]])
    for name, digest in index["checksums"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest

    assert [s["file"] for s in index["skipped"]] == list(BAD_FILES)
    assert "not a readable image" in index["skipped"][0]["reason"]
    assert "more than 8 bits" in index["skipped"][1]["reason"]
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 2
    for line, bad in zip(err_lines, BAD_FILES):
        assert line.startswith(f"sandwich: skipped {folder / bad}: ")

    samples = _read_samples(out, index["train"]["shards"] + index["val"]["shards"])
    assert sorted(s["meta"]["name"] for s in samples) == sorted(photos)
    keys = [s["key"] for s in samples]
    assert len(set(keys)) == len(keys) and all("." not in key for key in keys)
    for sample in samples:
        source = photos[sample["meta"]["name"]]
        assert sample["mode"] == "RGB"
        assert sample["meta"]["height"] == source.shape[0] and sample["meta"]["width"] == source.shape[1]
        np.testing.assert_array_equal(sample["rgb"], source)


def test_split_is_a_function_of_the_seed(photo_folder: tuple[Path, dict[str, np.ndarray]], shard_dir: Path, tmp_path: Path) -> None:
    again = write_shards(photo_folder[0], tmp_path / "again", shard_size=2, val_fraction=0.3, seed=0)
    other = write_shards(photo_folder[0], tmp_path / "other", shard_size=2, val_fraction=0.3, seed=1)
    assert again["checksums"] == read_index(shard_dir)["checksums"]  # byte-identical shards
    val_names = {s["meta"]["name"] for s in _read_samples(shard_dir, ["val-000000.tar"])}
    other_val_names = {s["meta"]["name"] for s in _read_samples(tmp_path / "other", other["val"]["shards"])}
    assert len(other_val_names) == 2 and other_val_names != val_names


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("empty folder", "no images"),
        ("missing folder", "not a folder"),
        ("only unreadable files", "none of the 2 images is readable"),
        ("non-empty out_dir", "not an empty folder"),
        ("val_fraction 1", "val fraction"),
        ("val_fraction -0.1", "val fraction"),
        ("shard_size 0", "shard size"),
    ],
)
def test_refusals_leave_nothing_behind(case: str, needle: str, photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    kwargs: dict = {}
    if case == "missing folder":
        src = tmp_path / "nowhere"
    elif case == "only unreadable files":
        src.mkdir()
        for name in BAD_FILES:
            shutil.copy(photo_folder[0] / name, src / name)
    else:
        shutil.copytree(photo_folder[0], src) if case != "empty folder" else src.mkdir()
    if case == "non-empty out_dir":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    if case.startswith("val_fraction"):
        kwargs["val_fraction"] = float(case.split()[1])
    if case == "shard_size 0":
        kwargs["shard_size"] = 0
    before = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(InputError, match=needle) as raised:
        write_shards(src, out, **kwargs)

    assert "\n" not in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out_dir, no temp folder
    if case == "non-empty out_dir":
        assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_cli_run(photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(description=shards.__doc__)
    shards.add_arguments(parser)
    out = tmp_path / "out"
    shards.run(parser.parse_args([str(photo_folder[0]), str(out), "--shard-size", "3", "--val-fraction", "0.2", "--seed", "5"]))
    printed = capsys.readouterr().out
    assert "train: 6 images in 2 shards" in printed
    assert "val: 1 images in 1 shards" in printed
    assert "skipped: 2" in printed
    index = read_index(out)
    assert (index["train"]["count"], index["val"]["count"]) == (6, 1)

    with pytest.raises(InputError, match="shard size"):
        shards.run(parser.parse_args([str(photo_folder[0]), str(tmp_path / "bad"), "--shard-size", "0"]))
    assert not (tmp_path / "bad").exists()


def test_read_index_refusals(shard_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such shard folder"):
        read_index(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no index.json"):
        read_index(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(shard_dir, copy)
    shard = copy / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 1  # one bit inside the first member's PNG bytes
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="train-000001.tar: sha256 does not match"):
        read_index(copy)


def _first_batches(shards_path: Path, seed: int, crop: int = 48) -> list[torch.Tensor]:
    data = ShardDataModule(str(shards_path), crop=crop, batch_size=4, batches_per_epoch=3, seed=seed, shuffle_buffer=8)
    data.setup("fit")
    return list(data.train_dataloader())


def test_train_batches_are_seeded_crops_in_range(shard_dir: Path) -> None:
    batches = _first_batches(shard_dir, seed=0)
    assert len(batches) == 3
    for batch in batches:
        assert batch.shape == (4, 3, 48, 48) and batch.dtype == torch.float32
        assert batch.min() >= 0 and batch.max() <= 1 and batch.std() > 0.01
    same = _first_batches(shard_dir, seed=0)
    other = _first_batches(shard_dir, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(batches, same))
    assert not torch.equal(batches[0], other[0])


def test_epochs_and_ranks_draw_different_crops(one_shard_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = ShardDataModule(str(one_shard_dir), crop=48, batch_size=4, batches_per_epoch=2, seed=0)
    data.setup("fit")
    loader = data.train_dataloader()
    assert len(loader) == 2
    first, second = list(loader), list(loader)
    assert len(second) == 2 and not torch.equal(first[0], second[0])
    rank0 = _first_batches(one_shard_dir, seed=0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # what webdataset reads to find the DDP rank
    rank1 = _first_batches(one_shard_dir, seed=0)
    assert len(rank1) == 3  # every rank gets batches_per_epoch batches, however few the shards
    assert not torch.equal(rank1[0], rank0[0])


def test_small_images_are_mirror_padded_flipped_and_transposed(photo_folder: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    tiny = photo_folder[1]["tiny.png"]  # 20 x 27, below the 32 x 32 crop on both sides
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.ascontiguousarray(tiny)).save(src / "tiny.png")
    write_shards(src, tmp_path / "out", val_fraction=0)
    padded = np.pad(tiny, ((6, 6), (2, 3), (0, 0)), mode="reflect")  # centred up to 32 x 32: the whole crop
    expected = torch.from_numpy(padded).permute(2, 0, 1).float() / 255
    variants = [v for f in (expected, expected.flip(-1)) for g in (f, f.flip(-2)) for v in (g, g.transpose(-1, -2))]  # the 8 symmetries
    samples = torch.cat(_first_batches(tmp_path / "out", seed=0, crop=32))
    seen = [next(i for i, v in enumerate(variants) if torch.equal(s, v)) for s in samples]  # StopIteration: not a symmetry
    assert len(set(seen)) >= 3


def test_recolour_permutes_channels_and_scales_chroma_about_the_luma() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert np.array_equal(recolour(rgb, [2, 0, 1], 1.0), rgb[..., [2, 0, 1]])
    luma = np.floor(rgb.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5)
    assert np.abs(recolour(rgb, [0, 1, 2], 0.0).astype(np.float64) - luma[..., None]).max() <= 1  # no chroma left
    vivid = recolour(rgb, [0, 1, 2], 2.0).astype(np.float64)
    unclipped = (vivid > 0) & (vivid < 255)
    expected = luma[..., None] + 2 * (rgb - luma[..., None])
    assert np.abs(vivid - expected)[unclipped].max() <= 1.5


def test_defocus_augment_blurs_the_crops_it_draws(shard_dir: Path) -> None:
    def roughness(defocus: float) -> float:
        data = ShardDataModule(str(shard_dir), crop=48, batch_size=4, batches_per_epoch=6, seed=0, defocus_augment=defocus)
        data.setup("fit")
        batches = torch.cat(list(data.train_dataloader()))
        return float((batches[..., 1:] - batches[..., :-1]).abs().mean())

    sharp, half, blurred = roughness(0.0), roughness(0.5), roughness(1.0)
    assert blurred < 0.6 * sharp and blurred < half < sharp  # a Gaussian of sigma >= 1 px removes most pixel-to-pixel detail
    with pytest.raises(InputError, match="defocus_augment"):
        ShardDataModule(str(shard_dir), defocus_augment=1.5)


def test_val_yields_each_val_image_once_as_centre_crops(shard_dir: Path, photo_folder: tuple[Path, dict[str, np.ndarray]]) -> None:
    photos = photo_folder[1]
    data = ShardDataModule(str(shard_dir), val_crop=64)
    data.setup("validate")
    batches = list(data.val_dataloader())
    names = [s["meta"]["name"] for s in _read_samples(shard_dir, read_index(shard_dir)["val"]["shards"])]
    assert len(batches) == len(names) == 2 and len(set(names)) == 2
    for batch, name in zip(batches, names):
        rgb = photos[name]
        h, w = min(64, rgb.shape[0]), min(64, rgb.shape[1])
        top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        expected = torch.from_numpy(np.ascontiguousarray(rgb[top : top + h, left : left + w])).permute(2, 0, 1)[None].float() / 255
        assert batch.dtype == torch.float32
        torch.testing.assert_close(batch, expected, rtol=0, atol=0)


class _Identity(lightning.LightningModule):
    """A 1x1 conv fitted to the identity; records the shapes of the batches it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.val_shapes: list[tuple[int, ...]] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return torch.mean((self.conv(batch) - batch) ** 2)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.val_shapes.append(tuple(batch.shape))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trainer_runs_the_epochs(shard_dir: Path) -> None:
    model = _Identity()
    trainer = lightning.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0
    )
    trainer.fit(model, datamodule=ShardDataModule(str(shard_dir), crop=32, batch_size=2, batches_per_epoch=3, val_crop=64))
    assert trainer.global_step == 6
    assert len(model.val_shapes) == 4  # 2 val images, once per epoch


def test_sample_shards_are_built_once_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    path = ensure_sample_shards(cache)
    assert path == cache / "shards" / "samples-v3"
    index = read_index(path)
    assert (index["train"]["count"], index["val"]["count"], index["skipped"]) == (9, 1, [])  # split by source
    assert [s["meta"]["name"] for s in _read_samples(path, index["val"]["shards"])] == ["matplotlib/grace_hopper"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}

    monkeypatch.setenv("SANDWICH_CACHE", str(cache))
    data = ShardDataModule()  # shards=None: the embedded samples, found through $SANDWICH_CACHE
    data.setup("fit")
    assert data.shard_dir == path and ensure_sample_shards() == path
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == mtimes  # reused, not rewritten

    with (path / "train-000000.tar").open("ab") as shard:
        shard.write(b"\0" * 512)  # a changed shard: its checksum no longer matches
    assert ensure_sample_shards(cache) == path
    assert read_index(path)["checksums"] == index["checksums"]  # rebuilt byte-identical
    assert [p.name for p in path.parent.iterdir()] == ["samples-v3"]  # no stale or temp folders left


def test_worker_processes_are_seeded_too(one_shard_dir: Path) -> None:
    def epochs(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
        data = ShardDataModule(str(one_shard_dir), crop=48, batch_size=4, num_workers=2, batches_per_epoch=2, seed=seed)
        data.setup("fit")
        loader = data.train_dataloader()
        return list(loader), list(loader), len(list(data.val_dataloader()))

    first, second, n_val = epochs(seed=0)
    again, _, _ = epochs(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(first) == len(second) == 2
    assert not torch.equal(first[0], second[0])  # persistent workers move on to new draws
    assert n_val == 2  # one val shard, two workers: each image still once


def test_several_crops_per_decoded_image_are_distinct_and_seeded(one_shard_dir: Path) -> None:
    """crops_per_image=4 from a one-image set: every crop is a different window of that image; reproducible."""

    def batches(seed: int) -> list[torch.Tensor]:
        data = ShardDataModule(str(one_shard_dir), crop=48, batch_size=4, batches_per_epoch=2, seed=seed, crops_per_image=4)
        data.setup("fit")
        return list(data.train_dataloader())

    first = batches(0)
    crops = torch.cat(first)
    assert crops.shape == (8, 3, 48, 48)
    assert len({c.numpy().tobytes() for c in crops}) == 8
    assert all(torch.equal(a, b) for a, b in zip(first, batches(0)))

"""Real Lightning DDP on two CPU processes (gloo, ``trainer=ddp_cpu``) over uneven, partly corrupt shards.

The shard stream's promise (every rank resamples shards; ``with_epoch`` cuts every rank's stream at the
same length) checked in practice: three train shards of 10, 10 and 7 samples, a third of them with a
corrupt PNG. Both ranks must finish with the same step count and bit-identical weights (the gradient
all-reduce), equal validation metrics, and each must have skipped and counted corrupt samples without a
hang; only rank 0 writes the run folder.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sandwich.data.samples import load_photo
from sandwich.data.shards import write_array_shards

PROBE = Path(__file__).with_name("ddp_probe.py")


def uneven_shards(out: Path) -> Path:
    """29 tiles of scikit-image photos: 2 validate, 27 train in shards of 10, 10 and 7; every third train PNG truncated
    (so that each rank, drawing 12 samples, meets some)."""
    photos = [load_photo(f"skimage/{name}") for name in ("astronaut", "chelsea", "coffee", "rocket")]
    tiles = {f"tile{i:02d}": np.ascontiguousarray(photos[i % 4][40 * (i // 4) : 40 * (i // 4) + 48, 64 : 64 + 48]) for i in range(29)}
    index = write_array_shards(tiles, out, shard_size=10, val_fraction=2 / 29)
    sizes = []
    for name in index["train"]["shards"]:
        path = out / name
        with tarfile.open(path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
        sizes.append(sum(m.name.endswith(".png") for m, _ in members))
        pngs = [i for i, (m, _) in enumerate(members) if m.name.endswith(".png")]
        with tarfile.open(path, "w") as tar:
            for i, (member, data) in enumerate(members):
                data = data[: len(data) // 3] if i in pngs[::3] else data  # every third PNG truncated
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    assert sizes == [10, 10, 7]
    return out


@pytest.mark.slow
def test_two_cpu_ranks_train_in_step_on_uneven_corrupt_shards(tmp_path: Path) -> None:
    shards, run, reports = uneven_shards(tmp_path / "shards"), tmp_path / "run", tmp_path / "reports"
    overrides = ["experiment=gray_jpeg", "trainer=ddp_cpu", f"data.shards={shards}", "data.crop=32", "data.batch_size=2",
                 "data.val_crop=48", "data.batches_per_epoch=3", "data.crops_per_image=1", "trainer.max_steps=6",
                 "logger=csv", "trainer.enable_progress_bar=false", f"out_dir={run}"]
    done = subprocess.run([sys.executable, str(PROBE), str(reports), *overrides], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["global_step"] == rank1["global_step"] == 6
    assert rank0["weights"] == rank1["weights"]
    assert rank0["metrics"] and rank0["metrics"] == rank1["metrics"]
    assert rank0["skipped"] >= 1 and rank1["skipped"] >= 1
    assert done.stderr.count("sandwich: skipped train sample") == rank0["skipped"] + rank1["skipped"]
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["version_0"]  # one logger folder: rank 0's
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()

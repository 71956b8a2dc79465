"""Shared fixtures: real photos from the embedded sample set, cropped to odd sizes."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
import torch

from sandwich.data.samples import load_photo

# `make test` runs two pytest workers on two cores: one torch thread each. Two OpenMP teams spinning
# on the same cores slow every step several-fold. The environment variable does the same for the
# processes tests start (the CLI, DDP ranks, submitit jobs): a training subprocess with two spinning
# threads beside the other worker once took over 600 s for 12 tiny steps.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

# W&B is the default logger: tests never create online runs, never print its banners, and keep its
# caches and staged artifact copies out of the user's home (set at import, so subprocesses inherit it).
# Each pytest process removes its own folder when it exits (about 50 MB a run would otherwise stay in /tmp).
_WANDB_HOME = tempfile.mkdtemp(prefix="sandwich-tests-wandb-")
atexit.register(shutil.rmtree, _WANDB_HOME, ignore_errors=True)
os.environ.update(
    WANDB_MODE="offline",
    WANDB_SILENT="true",
    **{key: os.path.join(_WANDB_HOME, key.lower()) for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR")},
)


@pytest.fixture(scope="session")
def photo_crop() -> np.ndarray:
    """A ``(77, 101, 3)`` uint8 crop of a held-out sample photo (odd sides on purpose)."""
    return load_photo("skimage/coffee")[100:177, 200:301].copy()


@pytest.fixture(scope="session")
def photo_crops() -> list[np.ndarray]:
    """Odd-sized uint8 RGB crops of three held-out sample photos."""
    return [
        load_photo("skimage/coffee")[50:211, 120:323].copy(),
        load_photo("skimage/rocket")[100:233, 200:405].copy(),
        load_photo("skimage/hubble_deep_field")[300:445, 300:503].copy(),
    ]

"""A run killed with SIGKILL resumes exactly: same final step and the same weights as an unbroken run.

The killed run dies without any chance to save (SIGKILL cannot be caught) at step 7 of 12, between two
periodic checkpoints (every 2 steps, 4 batches per epoch): the rerun (the user's same command) resumes from
step 6, mid-epoch, so it must skip the epoch's two trained batches and draw the same codec levels and
quantisation noise as the unbroken run. The unbroken run is the independent reference.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

OVERRIDES = ["experiment=gray_jpeg", "data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=4",
             "trainer.max_steps=12", "checkpoint_every=2", "logger=csv", "trainer.enable_progress_bar=false"]

SIGNAL_AT_STEP = """
import os, signal, sys
import lightning as L
from sandwich.config import compose
from sandwich.training import train

class SignalAt(L.Callback):
    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == 7:
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))

train(compose(sys.argv[2:]), [SignalAt()])
"""


def signalled_at_step_7(name: str, out: Path, overrides: list[str] = OVERRIDES) -> subprocess.CompletedProcess:
    """A training run that sends itself signal ``name`` as step 7 begins."""
    return subprocess.run([sys.executable, "-c", SIGNAL_AT_STEP, name, *overrides, f"out_dir={out}"], capture_output=True, text=True, timeout=600)


def sandwich_train(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandwich.cli", "train", *OVERRIDES, f"out_dir={out}"], capture_output=True, text=True, timeout=600)


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=False, map_location="cpu")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_unbroken_runs_weights(tmp_path: Path) -> None:
    unbroken, killed = tmp_path / "unbroken", tmp_path / "killed"
    assert sandwich_train(unbroken).returncode == 0
    died = signalled_at_step_7("SIGKILL", killed)
    assert died.returncode == -signal.SIGKILL
    assert checkpoint(killed)["global_step"] == 6  # the last periodic checkpoint before the kill
    rerun = sandwich_train(killed)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stdout
    reference, resumed = checkpoint(unbroken), checkpoint(killed)
    assert resumed["global_step"] == reference["global_step"] == 12
    assert reference["state_dict"].keys() == resumed["state_dict"].keys()
    for name, weights in reference["state_dict"].items():
        assert torch.equal(weights, resumed["state_dict"][name]), name


@pytest.mark.slow
def test_sigterm_writes_the_current_step_before_exiting(tmp_path: Path) -> None:
    """SIGTERM (scancel, preemption) as step 7 begins: Lightning finishes that step and stops, CheckpointOnInterrupt
    writes last.ckpt at step 8 (no periodic checkpoint would: every 100 steps) and the process exits."""
    overrides = [o for o in OVERRIDES if not o.startswith("checkpoint_every=")] + ["checkpoint_every=100"]
    stopped = signalled_at_step_7("SIGTERM", tmp_path / "run", overrides)
    assert "training stopped at step 8" in stopped.stdout, stopped.stderr[-2000:]
    assert checkpoint(tmp_path / "run")["global_step"] == 8

"""Launchers (``conf/launcher/``): SLURM submission through submitit, and submitit's local executor end to end.

No SLURM controller runs here, so ``sbatch`` and ``srun`` are fakes on PATH: ``sbatch`` keeps the script
it was given and answers with a job id, as the real one does; everything on our side of it (submitit's
script, the pickled job) is real. The local executor is real: a subprocess with submitit's signal handling.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import time
from pathlib import Path

import pytest
import torch
import yaml

from sandwich.cli import main
from sandwich.config import compose
from sandwich.launch import FINISHED, submit

TINY = ["experiment=gray_jpeg", "data.crop=32", "data.batch_size=2", "data.val_crop=48", "logger=csv", "trainer.enable_progress_bar=false"]


@pytest.fixture()
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with fake ``sbatch`` (copies each script it gets to ``submitted/``, prints a job id) and ``srun``."""
    bin_dir, submitted = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    submitted.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nn=$(ls {submitted} | wc -l)\ncp "$1" {submitted}/$n.sh\necho "Submitted batch job 4242$n"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return submitted


def test_slurm_job_script_asks_for_every_resource(fake_slurm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    resources = ["launcher=slurm", "trainer=ddp", "launcher.partition=gpu", "launcher.nodes=2", "launcher.gpus_per_node=4", "launcher.cpus_per_gpu=6",
                 "launcher.time_min=90", "launcher.mem_gb=200", "launcher.account=proj", "launcher.qos=high", "launcher.signal_delay_s=300",
                 "launcher.additional={constraint: a100}"]
    assert main(["train", *TINY, *resources, f"out_dir={out}"]) == 0
    (script,) = fake_slurm.iterdir()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=(.*)$", script.read_text(), flags=re.M))
    assert {k: options[k] for k in ("partition", "nodes", "ntasks-per-node", "gpus-per-node", "cpus-per-task", "time", "mem", "account", "qos", "signal", "constraint")} == {
        "partition": "gpu", "nodes": "2", "ntasks-per-node": "4", "gpus-per-node": "4", "cpus-per-task": "6", "time": "90", "mem": "200GB",
        "account": "proj", "qos": "high", "signal": "USR2@300", "constraint": "a100"}
    assert re.search(r"^srun .* -m submitit\.core\._submit ", script.read_text(), flags=re.M)  # one task per GPU, started by srun
    assert "submitted slurm job 42420" in capsys.readouterr().out
    with open(out / "submitit" / "42420_submitted.pkl", "rb") as f:
        job = pickle.load(f).function
    assert job.config["trainer"]["num_nodes"] == 2 and job.config["trainer"]["devices"] == 4  # Lightning's ranks = SLURM's tasks
    assert job.config["out_dir"] == str(out) and not (out / "checkpoints").exists()  # nothing trained here


def test_a_slurm_sweep_is_one_job_array_of_its_unfinished_points(fake_slurm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(yaml.safe_dump({"method": "grid", "parameters": {"lmbda": {"values": [5, 10, 20]}},
                                     "command": ["${env}", "sandwich", "train", "experiment=gray_jpeg", "${args_no_hyphens}"]}))
    runs = tmp_path / "runs"
    (runs / "lmbda=10").mkdir(parents=True)
    (runs / "lmbda=10" / FINISHED).write_text("{}")
    assert main(["sweep", str(sweep), "launcher=slurm", "--out", str(runs)]) == 0
    (script,) = fake_slurm.iterdir()
    assert "#SBATCH --array=0-1" in script.read_text()
    out = capsys.readouterr().out
    assert "lmbda=10: finished before, skipped" in out and out.count("submitted slurm job") == 2


def test_slurm_without_sbatch_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["train", *TINY, "launcher=slurm", f"out_dir={tmp_path / 'run'}"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert not (tmp_path / "run").exists()


def _task_pid(folder: Path) -> int | None:
    """The pid of the process running the submitit job whose files are in ``folder`` (its command line names it)."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"submitit.core._submit" in command and str(folder).encode() in command:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_submitit_local_job_checkpoints_on_usr2_requeues_and_finishes(tmp_path: Path) -> None:
    """USR2 (SLURM's warning before the time limit) mid-training: last.ckpt at the current step, submitit
    requeues, the requeued job resumes from it and ends at max_steps."""
    out, folder = tmp_path / "run", tmp_path / "submitit"
    config = compose([*TINY, "launcher=submitit_local", "trainer.max_steps=60", "data.batches_per_epoch=20", "checkpoint_every=4", f"out_dir={out}"])
    (job,) = submit([config], [None], folder, wait=False)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "last.ckpt").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    pid = _task_pid(folder)
    assert pid is not None
    os.kill(pid, signal.SIGUSR2)
    assert Path(job.result()) == out / "checkpoints" / "last.ckpt"
    log = "".join(p.read_text() for p in folder.glob("*_log.*"))
    stopped = re.search(r"training stopped at step (\d+); saved", log)
    assert stopped and 4 <= int(stopped.group(1)) < 60
    assert "resuming from" in log and "Requeued job" in log
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 60

"""W&B tracking (offline: no server, no network), checkpoint artifacts, and every run folder's provenance files."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
import wandb

from sandwich.cli import main
from sandwich.config import compose
from sandwich.data.shards import ensure_sample_shards
from sandwich.tracking import NOT_A_CHECKOUT, PROVENANCE, git_commit, git_diff, run_id, wandb_mode, write_provenance
from sandwich.training import train
from wandb_log import history, md5_b64, of_type, offline_runs, records

TINY = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "trainer.log_every_n_steps=1"]


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """W&B offline and quiet, its folders under ``tmp_path``, nobody logged in; W&B's service stopped after
    the test (W&B reads these variables when its service starts: the next test's are read afresh)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home" / name.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))
    yield
    wandb.teardown()


def tiny(out_dir: Path, *extra: str) -> dict:
    return compose([*TINY, "trainer.max_steps=2", "logger=wandb", f"out_dir={out_dir}", *extra])


def test_a_wandb_run_holds_the_config_metrics_images_and_checkpoints(tmp_path: Path) -> None:
    """One offline run: its files under out_dir/wandb, its id the folder's; the transaction log holds the
    resolved config, the training and validation metrics, the validation image row and RD table, the model
    artifact (last.ckpt and best.ckpt as they are on disk, aliased last and best, with the run's metadata)
    and the dataset artifact (the shard index by content and its sha256, the shards by reference)."""
    out = tmp_path / "run"
    config = tiny(out)
    train(config)
    (run,) = offline_runs(out)
    found = records(run)
    assert run.name.endswith(run_id(out)) and of_type(found, "run")[0].run_id == run_id(out)
    logged = {u.key: json.loads(u.value_json) for c in of_type(found, "config") for u in c.update}
    assert {key: logged[key] for key in config} == config
    metrics = history(found)
    for key in ("train/loss", "train/bpp", "train/psnr", "train/luma_step_mean", "val/loss", "val/bpp", "val/psnr_q50", "val/bpp_q50"):
        assert key in metrics, key
    assert metrics["val/rd_table/_type"][0] == "table-file" and metrics["val/rd_table/nrows"][0] == len(config["codec"]["val_knobs"])
    assert metrics["trainer/global_step"][-1] >= 1
    assert "images" in metrics["val/0/_type"][0]
    assert list((run / "files" / "media" / "images" / "val").glob("0_*.png"))
    (dataset,) = [a for a in of_type(found, "artifact") if a.type == "dataset"]
    shard_dir = ensure_sample_shards()
    entries = {c.path: c for c in dataset.manifest.contents}
    assert entries["index.json"].digest == md5_b64(shard_dir / "index.json") and not entries["index.json"].ref
    assert {p for p in entries if p != "index.json"} == {f"shards/{f.name}" for f in shard_dir.iterdir()}
    assert entries["shards/index.json"].ref == (shard_dir / "index.json").as_uri()
    assert json.loads(dataset.metadata)["index_sha256"] == hashlib.sha256((shard_dir / "index.json").read_bytes()).hexdigest()
    artifacts = {c.path: a for a in of_type(found, "artifact") if a.type == "model" for c in a.manifest.contents if c.path.endswith(".ckpt")}
    assert set(artifacts) == {"last.ckpt", "best.ckpt"}
    commit = (out / "git.txt").read_text().strip()
    for name, alias in (("last.ckpt", "last"), ("best.ckpt", "best")):
        artifact = artifacts[name]
        assert artifact.type == "model" and artifact.name == f"model-{run_id(out)}" and alias in artifact.aliases
        digests = {c.path: c.digest for c in artifact.manifest.contents}
        assert digests[name] == md5_b64(out / "checkpoints" / name)
        assert {p: digests[p] for p in PROVENANCE} == {p: md5_b64(out / p) for p in PROVENANCE}
        meta = {"experiment": config["name"], "lmbda": config["lmbda"], "codec": config["codec"]["name"], "git_commit": commit}
        assert json.loads(artifact.metadata) == meta
    assert of_type(found, "exit")[0].exit_code == 0 and wandb.run is None


def test_a_rerun_continues_the_same_wandb_run(tmp_path: Path) -> None:
    """The same command run again to more steps (a resume, a requeue) writes a second local run with the
    same id, which W&B merges into one run; it logs steps after the first run's. Another folder, another id."""
    out = tmp_path / "run"
    config = tiny(out)
    train(config)
    config["trainer"]["max_steps"] = 4
    train(config)
    first, second = offline_runs(out)
    assert {of_type(records(r), "run")[0].run_id for r in (first, second)} == {run_id(out)}
    assert max(history(records(first))["trainer/global_step"]) <= 2 < max(history(records(second))["trainer/global_step"])
    assert run_id(tmp_path / "other") != run_id(out) and run_id(out) == run_id(tmp_path / "." / "run")


def test_an_interrupted_run_closes_its_wandb_run(tmp_path: Path) -> None:
    """Ctrl-C: the W&B run is closed as failed (exit code 1), so the next run in this process gets its own
    W&B run (Lightning would reuse an open one) and finishes with exit code 0."""

    class Interrupt(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
            if trainer.global_step == 1:
                raise KeyboardInterrupt

    with pytest.raises(SystemExit):  # Lightning runs the on_exception hooks, then exits
        train(tiny(tmp_path / "stopped"), [Interrupt()])
    assert wandb.run is None
    (stopped,) = offline_runs(tmp_path / "stopped")
    assert of_type(records(stopped), "exit")[0].exit_code == 1
    train(tiny(tmp_path / "next"))
    (run,) = offline_runs(tmp_path / "next")
    assert of_type(records(run), "run")[0].run_id == run_id(tmp_path / "next")
    assert of_type(records(run), "exit")[0].exit_code == 0


@pytest.mark.parametrize("logger", ["csv", "tensorboard"])
def test_every_run_folder_records_its_code_and_packages(tmp_path: Path, logger: str) -> None:
    """Whatever the logger: config.yaml, git.txt (this checkout's commit), git.diff and packages.txt (torch
    at its version) beside the logger's own files; no W&B files."""
    out = tmp_path / "run"
    train(tiny(out, f"logger={logger}"))
    assert (out / "config.yaml").is_file() and (out / "git.diff").is_file()
    assert (out / "git.txt").read_text() == git_commit() + "\n"
    if shutil.which("git") and (Path(__file__).parents[1] / ".git").exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True)
        assert git_commit() == head.stdout.strip()
    assert f"torch=={importlib.metadata.version('torch')}" in (out / "packages.txt").read_text().splitlines()
    assert torch.__version__.split("+")[0] == importlib.metadata.version("torch")  # (a wheel's +cu130 is not in its metadata)
    assert list((out / logger).rglob("metrics.csv" if logger == "csv" else "events.out.tfevents.*"))
    assert not (out / "wandb").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_diff_rebuilds_the_working_tree(tmp_path: Path) -> None:
    """git.diff's patch applied to the commit in git.txt gives back the working tree: changed and deleted
    tracked files, and new files under src/ (other untracked files and ignored ones are left out)."""
    repo, clone = tmp_path / "repo", tmp_path / "clone"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C"]
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "a.py").write_text("a = 1\n")
    (repo / "gone.txt").write_text("bye\n")
    (repo / ".gitignore").write_text("src/ignored.py\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, str(repo), "add", "."], check=True)
    subprocess.run([*git, str(repo), "commit", "-qm", "start"], check=True)
    (repo / "src" / "a.py").write_text("a = 2\n")
    (repo / "gone.txt").unlink()
    (repo / "src" / "new.py").write_text("b = 3\n")
    (repo / "src" / "ignored.py").write_text("c = 4\n")
    (repo / "notes.txt").write_text("not code\n")
    patch = git_diff(repo / "src")
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", git_commit(repo)], check=True)
    subprocess.run(["git", "-C", str(clone), "apply"], input=patch, text=True, check=True)
    assert (clone / "src" / "a.py").read_text() == "a = 2\n" and (clone / "src" / "new.py").read_text() == "b = 3\n"
    assert not (clone / "gone.txt").exists() and not (clone / "src" / "ignored.py").exists() and not (clone / "notes.txt").exists()


def test_provenance_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No git on PATH, or a folder outside any checkout: the files say so and nothing fails."""
    assert git_commit(tmp_path) == NOT_A_CHECKOUT and git_diff(tmp_path) == ""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    write_provenance(tmp_path / "run")
    assert (tmp_path / "run" / "git.txt").read_text() == NOT_A_CHECKOUT + "\n"
    assert (tmp_path / "run" / "git.diff").read_text() == ""
    assert "torch==" in (tmp_path / "run" / "packages.txt").read_text()


def test_wandb_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WANDB_MODE wins; then logger.mode; then online when an API key is at hand (WANDB_API_KEY, or the
    server's entry in the netrc file), else offline."""
    assert wandb_mode("online") == "offline"  # WANDB_MODE=offline (the fixture)
    monkeypatch.delenv("WANDB_MODE")
    assert wandb_mode("disabled") == "disabled"
    assert wandb_mode(None) == "offline"
    netrc = tmp_path / "no.netrc"
    netrc.write_text("machine example.com login me password secret\n")
    assert wandb_mode(None) == "offline"
    netrc.write_text("machine api.wandb.ai login user password " + "0" * 40 + "\n")
    assert wandb_mode(None) == "online"
    netrc.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert wandb_mode(None) == "online"


def test_disabled_wandb_trains_and_writes_no_wandb_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """logger.mode=disabled (or WANDB_MODE=disabled): training, checkpoints and provenance as usual."""
    monkeypatch.delenv("WANDB_MODE")
    out = tmp_path / "run"
    last = train(tiny(out, "logger.mode=disabled"))
    assert last.is_file() and (out / "git.txt").is_file() and not offline_runs(out)


@pytest.mark.parametrize(
    ("overrides", "env", "needle"),
    [
        (["+logger.colour=red"], None, "colour"),
        (["logger.mode=sometimes"], None, "logger.mode='sometimes'"),
        ([], "sometimes", "WANDB_MODE='sometimes'"),
        (["logger=mlflow"], None, "mlflow"),
    ],
)
def test_bad_logger_options_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], overrides: list[str], env: str | None, needle: str
) -> None:
    """An unknown option, an unknown mode (config or WANDB_MODE), an unknown logger: one line, exit 2, before training."""
    if env is None:
        monkeypatch.delenv("WANDB_MODE")
    else:
        monkeypatch.setenv("WANDB_MODE", env)
    out = tmp_path / "run"
    assert main(["train", *TINY, "logger=wandb", f"out_dir={out}", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (out / "checkpoints").exists()

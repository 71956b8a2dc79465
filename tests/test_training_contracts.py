"""What the README relies on in training and reporting, checked against references that are not the code's:
the EMA weights are what validation sees and what checkpoints hold (an EMA computed here from the raw
weights of every step), the learning rate follows the warm-up formula, Lightning's SLURM auto-requeue is
off under SLURM, a report re-evaluates a model whose checkpoint changed, and a run started from another
sandwich (init_from) starts from the weights in its file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.environments import SLURMEnvironment
from PIL import Image

from sandwich import pretrained
from sandwich.config import compose
from sandwich.data.samples import load_photo
from sandwich.errors import InputError
from sandwich.evaluate.family import run_report
from sandwich.scenarios.registry import create_module
from sandwich.training import build, quiet_lightning, train

TINY = ["net=u8_16", "data.crop=32", "data.batch_size=2", "data.val_crop=48", "log_images=0", "logger=csv", "trainer.enable_progress_bar=false"]


class Recorder(Callback):
    """The parameters training starts from, the learning rate before every training step, the raw parameters
    after it, and the parameters the module holds during validation."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.group_lrs: list[list[float]] = []
        self.raw: list[dict[str, torch.Tensor]] = []
        self.validated: dict[str, torch.Tensor] = {}
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: D102
        self.initial = {k: p.detach().clone() for k, p in pl_module.named_parameters()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: D102
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.group_lrs.append([group["lr"] for group in trainer.optimizers[0].param_groups])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: D102
        self.raw.append({k: p.detach().clone() for k, p in pl_module.named_parameters()})

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:  # noqa: D102
        self.validated = {k: p.detach().clone() for k, p in pl_module.named_parameters()}


@pytest.mark.parametrize("decay", [0.8, None])
def test_validation_and_checkpoints_hold_the_ema_and_the_warm_up_is_linear(tmp_path: Path, decay: float | None) -> None:
    """12 steps, validation after the last: the learning rate is lr·min(1, (k+1)/warm-up) at step k; with
    ema_decay the weights validated and stored in best.ckpt are the EMA of the raw weights after each step
    (avg_1 = w_1, avg_k = d·avg_(k-1) + (1-d)·w_k), and differ from the raw weights the checkpoint carries;
    without, they are the raw weights."""
    quiet_lightning()
    steps, warmup, lr = 12, 10, 2e-3
    config = compose([
        "experiment=rgb_jpeg420", *TINY, f"out_dir={tmp_path}", f"trainer.max_steps={steps}", f"data.batches_per_epoch={steps}",
        f"optim.warmup_steps={warmup}", f"optim.lr={lr}", f"ema_decay={'null' if decay is None else decay}", "codec.val_knobs=[50]",
    ])
    recorder = Recorder()
    train(config, [recorder])
    assert recorder.lrs == pytest.approx([lr * min(1.0, (k + 1) / warmup) for k in range(steps)], rel=1e-6)
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    stored = best["state_dict"]
    names = list(recorder.raw[-1])
    if decay is None:
        expected = recorder.raw[-1]
    else:
        expected = dict(recorder.raw[0])
        for raw in recorder.raw[1:]:
            expected = {k: decay * expected[k] + (1 - decay) * raw[k] for k in names}
        raw_stored = best["current_model_state"]
        assert any(not torch.allclose(raw_stored[k], stored[k]) for k in names)
        assert all(torch.equal(raw_stored[k], recorder.raw[-1][k]) for k in names)
    for k in names:
        assert torch.allclose(stored[k], expected[k], atol=1e-6), k
        assert torch.equal(recorder.validated[k], stored[k]), k


def test_a_frozen_pre_processor_keeps_its_weights_while_the_post_processor_learns(tmp_path: Path) -> None:
    """optim.pre_frozen_steps=4 of 8: after each of the first 4 steps the pre-processor's weights are its initial
    ones and the post-processor's have moved; from step 5 on the pre-processor's move too, its learning rate
    warmed up from that step (lr·min(1, (k - 4 + 1)/2) at step k, the rest's lr·min(1, (k + 1)/2))."""
    quiet_lightning()
    config = compose([
        "experiment=rgb_jpeg420", *TINY, f"out_dir={tmp_path}", "trainer.max_steps=8", "data.batches_per_epoch=8",
        "optim.warmup_steps=2", "optim.pre_frozen_steps=4", "ema_decay=null", "codec.val_knobs=[50]",
    ])
    recorder = Recorder()
    train(config, [recorder])
    lr = float(config["optim"]["lr"])
    expected = [[lr * min(1, (k + 1) / 2), lr * min(1, max(0, k - 3) / 2)] for k in range(8)]
    assert np.allclose(recorder.group_lrs, expected, rtol=1e-9, atol=0)
    initial = recorder.initial
    pre = [k for k in initial if k.startswith("pre.")]
    post = [k for k in initial if k.startswith("post.")]
    assert pre and post
    for step, raw in enumerate(recorder.raw):
        pre_moved = any(not torch.equal(raw[k], initial[k]) for k in pre)
        assert pre_moved == (step >= 4), step
        assert any(not torch.equal(raw[k], initial[k]) for k in post), step


def test_lightnings_slurm_auto_requeue_is_off_under_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under SLURM (its environment variables set), the trainer's cluster environment is SLURM's with auto-requeue
    off: submitit owns the requeue signal (sandwich.launch)."""
    for key, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "sandwich", "SLURM_NODELIST": "node1", "SLURM_JOB_ID": "42", "SLURM_PROCID": "0",
                       "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
        monkeypatch.setenv(key, value)
    assert SLURMEnvironment.detect()
    _, _, trainer = build(compose(["experiment=rgb_jpeg420", *TINY, f"out_dir={tmp_path}"]))
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue is False


def test_a_report_re_evaluates_a_model_whose_checkpoint_changed(tmp_path: Path) -> None:
    """The report caches each model's curve in its run folder; a second report with the checkpoint unchanged
    reads it back, one with new weights in the same file evaluates afresh (and matches a report of a copy)."""
    run, photos = tmp_path / "run", tmp_path / "photos"
    (run / "checkpoints").mkdir(parents=True)
    photos.mkdir()
    Image.fromarray(load_photo("sporco/kodim23")[:64, :96].copy()).save(photos / "k.png")
    config = compose(["experiment=rgb_jpeg420", "net=u8_16", f"out_dir={run}"])

    def save(seed: int, path: Path) -> None:
        torch.manual_seed(seed)
        module = create_module(config)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.01 * torch.randn(p.shape))
        torch.save({"sandwich_config": config, "state_dict": module.state_dict()}, path)

    knobs = [20, 40, 60, 80]
    ckpt = run / "checkpoints" / "best.ckpt"
    save(0, ckpt)
    first = run_report([str(run)], tmp_path / "r1", str(photos), knobs=knobs)
    cache = sorted((run / "eval").glob("curve-*.json"))
    assert len(cache) == 1
    stamp = json.loads(cache[0].read_text())["stamp"]
    again = run_report([str(run)], tmp_path / "r2", str(photos), knobs=knobs)
    assert again["models"] == first["models"] and json.loads(cache[0].read_text())["stamp"] == stamp
    save(1, ckpt)
    changed = run_report([str(run)], tmp_path / "r3", str(photos), knobs=knobs)
    assert json.loads(cache[0].read_text())["stamp"] != stamp
    fresh_run = tmp_path / "fresh"
    (fresh_run / "checkpoints").mkdir(parents=True)
    save(1, fresh_run / "checkpoints" / "best.ckpt")
    fresh = run_report([str(fresh_run)], tmp_path / "r4", str(photos), knobs=knobs)
    assert np.allclose(_psnr(changed), _psnr(fresh)) and not np.allclose(_psnr(changed), _psnr(first))


def _psnr(result: dict) -> list[float]:
    """The PSNR curve of a one-model report's only model."""
    [model] = result["models"].values()
    return model["results"]["psnr-rgb"]


def test_a_run_started_from_another_codecs_sandwich_trains_from_its_processors(tmp_path: Path) -> None:
    """init_from=rgb_hevc (the pretrained x265 sandwich) on a JPEG run: training starts from the weights in the
    packaged file, read here with torch.load, for every pre-/post-processor parameter."""
    quiet_lightning()
    config = compose([
        "experiment=rgb_jpeg420", *TINY, f"out_dir={tmp_path}", "trainer.max_steps=1", "data.batches_per_epoch=1",
        "codec.val_knobs=[50]", "init_from=rgb_hevc",
    ])
    recorder = Recorder()
    train(config, [recorder])
    source = torch.load(Path(pretrained.__file__).parent / "rgb_hevc.pt", map_location="cpu", weights_only=True)["state_dict"]
    processors = [k for k in recorder.initial if k.split(".")[0] in ("pre", "post")]
    assert processors and all(torch.equal(recorder.initial[k], source[k]) for k in processors)


def test_a_sandwich_of_another_scenario_is_refused_as_a_start_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grayscale run from the RGB sandwich's processors (one input channel, not three), from a file that is
    not there, or from a name that is both a pretrained model and a file here: one line naming init_from, and
    no run folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rgb_jpeg420").write_bytes(b"")
    for source, needle in (
        ("rgb_hevc", "do not fit this run's scenario and net"),
        (str(tmp_path / "none.ckpt"), "no such checkpoint"),
        ("rgb_jpeg420", "both a pretrained model and a file here have that name; give the file as ./rgb_jpeg420"),
    ):
        out = tmp_path / "run"
        config = compose(["experiment=gray_jpeg", *TINY, f"out_dir={out}", f"init_from={source}"])
        with pytest.raises(InputError, match=needle):
            train(config)
        assert not (out / "config.yaml").exists()


def test_an_unknown_kernel_choice_is_refused_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDWICH_KERNELS=bogus, or a proxy's ``kernels`` key: one line naming it, and no run folder (the proxy
    reads the variable only later)."""
    monkeypatch.setenv("SANDWICH_KERNELS", "bogus")
    with pytest.raises(InputError, match="SANDWICH_KERNELS='bogus' not one of"):
        train(compose(["experiment=rgb_jpeg420", *TINY, f"out_dir={tmp_path / 'run'}"]))
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("SANDWICH_KERNELS")
    for experiment, proxy in (("rgb_jpeg420", "jpeg"), ("rgb_hevc", "hevc")):  # the codec.proxy.kernels key of each proxy
        with pytest.raises(InputError, match=f"{proxy} proxy: kernels 'bogus' not one of"):
            train(compose([f"experiment={experiment}", *TINY, "codec.proxy.kernels=bogus", f"out_dir={tmp_path / 'run'}"]))
        assert not (tmp_path / "run").exists()

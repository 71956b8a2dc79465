"""``sandwich report``: a family of models (a λ sweep) read as one Pareto front, and W&B model references."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import wandb
import yaml
from PIL import Image

import sandwich.evaluate.family as family
from sandwich.cli import main
from sandwich.evaluate.run import bd_report
from sandwich.evaluate.metric_names import REPORTED
from sandwich.evaluate.knob_sweep import RdPoint, front

METRICS = {key: name.name for key, name in REPORTED.items()}
from sandwich.tracking import run_id
from wandb_log import md5_b64, of_type, offline_runs, records

TINY = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "trainer.max_steps=2"]
LEVELS = ["--levels", "20", "40", "60", "80"]


def write_sweep(folder: Path, experiment: str, lmbdas: list[float]) -> Path:
    path = folder / f"{experiment}_tiny.yaml"
    command = ["${env}", "sandwich", "train", f"experiment={experiment}", "${args_no_hyphens}"]
    path.write_text(yaml.safe_dump({"method": "grid", "parameters": {"lmbda": {"values": lmbdas}}, "command": command}))
    return path


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-point λ sweep of gray_jpeg, two training steps per point (trained once per test worker)."""
    folder = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", str(write_sweep(folder, "gray_jpeg", [5, 40])), *TINY, "logger=csv", "--out", str(folder / "runs")]) == 0
    return folder / "runs"


@pytest.fixture
def image_dir(tmp_path: Path, photo_crops) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, crop in enumerate(photo_crops[:2]):
        Image.fromarray(crop).save(folder / f"photo{i}.png")
    return folder


def analytic(bpp: list[float], offset: float, variant: str) -> list[RdPoint]:
    """Points on PSNR = 30 + 6 log2(bpp) + offset (PSNR-Y the same, MS-SSIM on a matching curve)."""
    points = []
    for i, b in enumerate(bpp):
        psnr = 30 + 6 * math.log2(b) + offset
        points.append(RdPoint(variant, i, b, psnr, psnr, 1 - 10 ** (-psnr / 20), [b]))
    return points


def test_front_and_bd_of_a_family_against_analytic_curves() -> None:
    """Two models, each on the analytic curve over half the rates and 2 dB below it over the other half: the
    front of both is exactly the on-curve points, and it is 1 dB above a baseline 1 dB below the curve, at
    every rate (BD +1 dB), while each model alone is not."""
    low, high = [0.1, 0.15, 0.2, 0.3], [0.4, 0.6, 0.8, 1.2]
    model_a = analytic(low, 0, "a") + analytic(high, -2, "a")
    model_b = analytic(low, -2, "b") + analytic(high, 0, "b")
    every = model_a + model_b
    on_curve = front(every)
    assert [(p.variant, p.bpp) for p in on_curve] == [("a", b) for b in low] + [("b", b) for b in high]
    assert front(every, "ms-ssim-db") == on_curve
    baseline = {"codec": analytic(low + high, -1, "codec")}
    bd = bd_report(baseline, every, METRICS)
    for metric in ("psnr-rgb", "psnr-y"):
        assert bd[metric]["codec"]["bd_psnr_db"] == pytest.approx(1.0, abs=1e-9)
        assert bd[metric]["codec"]["gap"]["min_gain_db"] == pytest.approx(1.0, abs=1e-9)
    assert bd["psnr-rgb"]["codec"]["bd_rate_percent"] == pytest.approx((2 ** (-1 / 6) - 1) * 100, abs=1e-6)  # 1 dB = 1/6 octave of rate
    single = bd_report(baseline, model_a, METRICS)["psnr-rgb"]["codec"]
    assert single["gap"]["min_gain_db"] < 0 < single["gap"]["max_gain_db"]


def test_a_two_point_sweep_gives_one_report_and_reuses_its_evaluations(sweep_runs: Path, image_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "report"
    assert main(["report", str(sweep_runs), "--images", str(image_dir), *LEVELS, "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert set(result["models"]) == {"lmbda=5", "lmbda=40"} and result["knobs"] == [20, 40, 60, 80]
    points = [(b, p) for m in result["models"].values() for b, p in zip(m["results"]["bpp"], m["results"]["psnr-rgb"], strict=True)]
    on_front = list(zip(result["results"]["bpp"], result["results"]["psnr-rgb"], strict=True))
    assert set(on_front) <= set(points) and on_front == sorted(on_front)
    for b, p in points:  # every point is on the front or dominated by a front point
        assert (b, p) in on_front or any(fb <= b and fp >= p for fb, fp in on_front)
    assert result["fronts"]["psnr-rgb"]["model"] and set(result["fronts"]["psnr-rgb"]["model"]) <= set(result["models"])
    for metric in ("psnr-rgb", "psnr-y", "ms-ssim-db"):
        assert set(result["bd"][metric]) == {"codec", "texture_embedding"}
        assert set(result["bd_models"]["lmbda=5"][metric]) == {"codec", "texture_embedding"}
    assert {p.name for p in (out / "curves").iterdir()} == {"front-gray_jpeg.json", "lmbda=5.json", "lmbda=40.json", "codec.json", "texture_embedding.json"}
    assert json.loads((out / "curves" / "lmbda=5.json").read_text())["results"] == result["models"]["lmbda=5"]["results"]
    for name in ("rd.png", "rd_psnr-y.png", "rd_ms-ssim.png", "index.html"):
        assert (out / name).stat().st_size > 0
    (run,) = offline_runs(out)
    assert run.name.endswith(run_id(out)) and of_type(records(run), "artifact")[0].name == f"report-{run_id(out)}"

    def no_sweeps(*args, **kwargs):
        raise AssertionError("a finished evaluation was run again")

    monkeypatch.setattr(family, "sweep", no_sweeps)
    monkeypatch.setattr(family, "sweep_baselines", no_sweeps)
    again = tmp_path / "again"
    assert main(["report", str(sweep_runs / "lmbda=40"), str(sweep_runs / "lmbda=5"), "--images", str(image_dir), *LEVELS, "--out", str(again)]) == 0
    assert json.loads((again / "results.json").read_text())["bd"] == result["bd"]


def test_a_report_over_different_configurations_is_refused(sweep_runs: Path, image_dir: Path, tmp_path: Path, capsys) -> None:
    rgb = tmp_path / "rgb"
    assert main(["train", "experiment=rgb_jpeg420", *TINY, "trainer.max_steps=1", "logger=csv", f"out_dir={rgb}"]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", str(sweep_runs / "lmbda=5"), str(rgb), "--images", str(image_dir), *LEVELS, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ in codec." in err[0] and not out.exists()


def test_bad_report_inputs_are_one_line_and_exit_2(sweep_runs: Path, image_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    untrained = write_sweep(tmp_path, "gray_jpeg", [1, 2])
    bad_anchor = tmp_path / "anchor.json"
    bad_anchor.write_text('{"name": "x"}')
    cases = [
        ([str(tmp_path / "missing")], "not a run folder"),
        ([str(untrained)], "run `sandwich sweep"),
        ([str(sweep_runs), "--anchor", str(bad_anchor)], "not a CompressAI results file"),
        ([str(sweep_runs), "--levels", "20", "40"], "at least 4 knob values"),
    ]
    for args, message in cases:
        assert main(["report", *args, "--images", str(image_dir), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not out.exists()


class FakeArtifact:
    """What ``wandb.Api`` returns for a model artifact; its download copies a local checkpoint."""

    def __init__(self, name: str, version: str, checkpoint: Path) -> None:
        self.name, self.version, self.type, self.aliases = f"{name}:{version}", version, "model", ["best", "latest"]
        self.entity, self.project, self.checkpoint = "ent", "proj", checkpoint

    def download(self, root: str) -> str:
        Path(root).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.checkpoint, Path(root) / "best.ckpt")
        return root


class FakeRun:
    def __init__(self, run_id: str, artifact: FakeArtifact) -> None:
        self.id, self.artifact = run_id, artifact

    def logged_artifacts(self) -> list[FakeArtifact]:
        return [self.artifact]


def test_eval_and_report_take_wandb_references(sweep_runs: Path, image_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A W&B server cannot exist here: its API is faked (artifacts, runs, a sweep); the downloads, the
    evaluation and the report are real, and the evaluation's run records the artifact it used."""
    runs = {
        f"run{i}": FakeRun(f"run{i}", FakeArtifact(f"model-run{i}", "v3", sweep_runs / point / "checkpoints" / "last.ckpt"))
        for i, point in enumerate(("lmbda=5", "lmbda=40"))
    }

    class FakeApi:
        def artifact(self, ref: str, type: str) -> FakeArtifact:
            assert ref == "ent/proj/model-run0:best" and type == "model"
            return runs["run0"].artifact

        def run(self, path: str) -> FakeRun:
            return runs[path.split("/")[-1]]

        def sweep(self, path: str):
            return type("Sweep", (), {"runs": list(runs.values())})()

    monkeypatch.setattr(wandb, "Api", FakeApi)
    monkeypatch.setenv("SANDWICH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    assert main(["eval", "--ckpt", "wandb:ent/proj/model-run0:best", "--images", str(image_dir), *LEVELS, "--out", str(out)]) == 0
    assert (tmp_path / "cache" / "wandb" / "model-run0" / "v3" / "best.ckpt").is_file()
    (run,) = offline_runs(out)
    (artifact,) = of_type(records(run), "artifact")
    assert artifact.type == "evaluation" and json.loads(artifact.metadata)["inputs"] == ["ent/proj/model-run0:v3"]
    assert {c.path for c in artifact.manifest.contents} == {"results.json", "rd.png", "rd_psnr-y.png", "rd_ms-ssim.png", "examples.png", "index.html"}
    assert {c.path: c.digest for c in artifact.manifest.contents}["results.json"] == md5_b64(out / "results.json")
    report = tmp_path / "report"
    assert main(["report", "wandb:ent/proj/sweeps/s1", "wandb:ent/proj/run1", "--images", str(image_dir), *LEVELS, "--out", str(report)]) == 0
    models = json.loads((report / "results.json").read_text())["models"]
    assert {m["checkpoint"] for m in models.values()} == {"ent/proj/model-run0:v3", "ent/proj/model-run1:v3"}

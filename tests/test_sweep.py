"""``sandwich sweep``: the sweep files of sweeps/ and their grid, run here without a W&B server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from sandwich.cli import main
from sandwich.launch import FINISHED
from sandwich.sweep_files import grid, load_sweep, plan, render

SWEEPS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))
TINY = ["data.crop=32", "data.batch_size=2", "data.val_crop=48", "data.batches_per_epoch=2", "trainer.max_steps=2"]


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_sweep_file_renders_valid_train_commands(path, tmp_path):
    """wandb's renderer gives ``/usr/bin/env sandwich train experiment=... lmbda=V`` per point, at least four
    lambdas, and every point composes into a configuration with that lambda."""
    spec = load_sweep(path)
    points = grid(spec)
    assert len({p["lmbda"] for p in points}) >= 4
    command = render(spec, points[0])
    assert command[:3] == ["/usr/bin/env", "sandwich", "train"] and command[-1] == f"lmbda={points[0]['lmbda']}"
    for point, config in plan(path, tmp_path, []):
        assert config["lmbda"] == point["lmbda"] and Path(config["out_dir"]).parent == tmp_path


def write_sweep(folder: Path, parameters: dict) -> Path:
    path = folder / "tiny.yaml"
    spec = {"method": "grid", "parameters": parameters, "command": ["${env}", "sandwich", "train", "experiment=gray_jpeg", "${args_no_hyphens}"]}
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_two_point_sweep_trains_both_reports_them_then_skips_them(tmp_path, capsys, photo_crops):
    """One command trains every point and writes the sweep's report (its front: tests/test_report.py)."""
    path = write_sweep(tmp_path, {"lmbda": {"values": [5, 40]}})
    out, images = tmp_path / "runs", tmp_path / "images"
    images.mkdir()
    for i, crop in enumerate(photo_crops[:2]):
        Image.fromarray(crop).save(images / f"photo{i}.png")
    assert main(["sweep", str(path), *TINY, "--out", str(out), "--report-images", str(images)]) == 0
    for name, lmbda in (("lmbda=5", 5), ("lmbda=40", 40)):
        assert (out / name / FINISHED).is_file()
        checkpoint = torch.load(out / name / "checkpoints" / "last.ckpt", weights_only=True)
        assert checkpoint["global_step"] == 2 and checkpoint["sandwich_config"]["lmbda"] == lmbda
    report = json.loads((out / "report" / "results.json").read_text())
    assert set(report["models"]) == {"lmbda=5", "lmbda=40"} and report["images"] == ["photo0", "photo1"]
    capsys.readouterr()
    assert main(["sweep", str(path), *TINY, "--out", str(out), "--no-report"]) == 0
    assert capsys.readouterr().out.count("skipped") == 2


@pytest.mark.parametrize(
    ("parameters", "match"),
    [({"lmbdaa": {"values": [1, 2]}}, "lmbdaa"), ({"lmbda": {"min": 1, "max": 2}}, "only values")],
)
def test_bad_sweeps_are_refused_before_anything_runs(tmp_path, capsys, parameters, match):
    out = tmp_path / "runs"
    assert main(["sweep", str(write_sweep(tmp_path, parameters)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0] and not out.exists()
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "no such sweep file" in capsys.readouterr().err
    good = write_sweep(tmp_path, {"lmbda": {"values": [5]}})
    assert main(["sweep", str(good), "--out", str(out), "--report-images", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err and not out.exists()
    assert main(["sweep", str(good), "trainer=ddp_cpu", "--out", str(out)]) == 2
    assert "one grid point per job" in capsys.readouterr().err and not out.exists()

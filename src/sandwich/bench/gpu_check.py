"""``sandwich bench gpu`` (``make gpu-check``): everything a lent GPU should confirm, as one command.

Sized for a short loan (about 7 minutes on one GPU); on a machine without CUDA it runs what it can on the
CPU at a token size, in well under a minute, and lists each part it skipped and why (CI runs it so). Parts:

1. ``tests``: the CUDA tests (``pytest tests/test_kernels.py tests/test_hevc_proxy.py -k cuda``: the Triton
   kernels compiled for float32 and float64 against the torch reference, CUDA dispatch, the JPEG proxy and
   the HEVC-intra proxy on the GPU against the CPU, its Triton decisions against the torch wavefronts):
   passed, failed and skipped counts.
2. ``kernels``: ``sandwich bench kernels`` on the GPU: each Triton kernel's bandwidth as a fraction of a
   device copy, the speed-up over the eager composition, and the HEVC-intra proxy's step with its decisions
   by the torch wavefronts and by the Triton kernel (the CPU figures at a small shape beside them).
3. ``train``: ``sandwich bench train`` of ``rgb_jpeg420``, ``sr2_jpeg`` and ``lpips_jpeg`` (the last needs
   ``sandwich weights lpips``), each in float32 and under bfloat16 autocast: images/s, the step's split,
   the proxy's share, Lightning's overhead over a bare loop.
4. ``run``: ``rgb_jpeg420`` trained for ``--train-seconds`` (GPU default 180) and evaluated with real
   libjpeg-turbo on SPORCO's photos (never trained on): BD-rate and BD-PSNR against JPEG 4:2:0 alone.

Writes one JSON (``--json PATH``: ``{"device", "parts": {name: figures}, "skipped": {part: reason}}``) and
prints a table per part.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sandwich.bench import kernels as bench_kernels
from sandwich.bench import train as bench_train
from sandwich.bench.timing import print_table
from sandwich.config import compose
from sandwich.data.images import centre_crop
from sandwich.data.samples import COLOR_EVAL_PHOTOS, load_photos
from sandwich.errors import InputError
from sandwich.evaluate.checkpoint import load_module, read_checkpoint
from sandwich.evaluate.run import evaluate
from sandwich.files import write_json
from sandwich.metrics.backbones import BACKBONES
from sandwich.training import best_checkpoint, quiet_lightning, train

TESTS = Path(__file__).resolve().parents[3] / "tests"
TRAIN_EXPERIMENTS = ("rgb_jpeg420", "sr2_jpeg", "lpips_jpeg")


def run_cuda_tests() -> dict:
    """The CUDA tests in a subprocess: counts of passed, failed, skipped, and pytest's last line."""
    if not (TESTS / "test_kernels.py").is_file():
        raise InputError(f"{TESTS}: no tests here (run from a checkout)")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", str(TESTS / "test_kernels.py"), str(TESTS / "test_hevc_proxy.py"), "-k", "cuda"],
        capture_output=True, text=True, cwd=TESTS.parent,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-300:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary)}
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
            "skipped": counts.get("skipped", 0), "summary": summary, "returncode": result.returncode}


def run_kernels(json_path: Path) -> dict:
    """``sandwich bench kernels`` in this process: the GPU part when there is one, the CPU part at a small shape."""
    parser = argparse.ArgumentParser()
    bench_kernels.add_arguments(parser)
    small_cpu = ["--cpu-shape", "2", "1", "256", "256", "--proxy-shape", "2", "64", "64"]
    return bench_kernels.run(parser.parse_args(["--json", str(json_path), "--no-compile", "--no-interpret", "--repeats", "3", *small_cpu]))


def run_train_benches(cuda: bool, repeats: int) -> tuple[list[dict], dict[str, str]]:
    """``sandwich bench train`` of each experiment of :data:`TRAIN_EXPERIMENTS`, float32 and bf16 autocast
    on the GPU (float32 only, ``rgb_jpeg420`` only, on the CPU); returns the reports and what was skipped."""
    reports, skipped = [], {}
    experiments = TRAIN_EXPERIMENTS if cuda else TRAIN_EXPERIMENTS[:1]
    if not cuda:
        skipped["train:" + ",".join(TRAIN_EXPERIMENTS[1:]) + ",bf16"] = "no CUDA: only rgb_jpeg420 in float32 on the CPU"
    alexnet = BACKBONES["alexnet"]
    for experiment in experiments:
        if experiment.startswith("lpips") and not (alexnet.official_path().is_file() or alexnet.converted_path().is_file()):
            skipped[f"train:{experiment}"] = "LPIPS's ImageNet backbone is not installed (sandwich weights lpips)"
            continue
        for autocast in ((None, "bf16") if cuda else (None,)):
            config = compose([f"experiment={experiment}"])
            reports.append(bench_train.measure(config, repeats, "cuda" if cuda else "cpu", autocast))
    return reports, skipped


def run_training(cuda: bool, seconds: int, eval_side: int, folder: Path) -> dict:
    """``rgb_jpeg420`` trained ``seconds`` here (GPU or CPU) and evaluated on SPORCO's photos: BD figures vs JPEG alone."""
    overrides = [
        "experiment=rgb_jpeg420", f"out_dir={folder / 'train'}", "trainer.max_steps=-1", f"trainer.max_time={{seconds: {seconds}}}",
        "logger=csv", "trainer.enable_progress_bar=false", *(["trainer.accelerator=gpu", "trainer.deterministic=false"] if cuda else []),
    ]
    start = time.perf_counter()
    last = train(compose(overrides))
    trained = time.perf_counter() - start
    steps = int(read_checkpoint(last)["global_step"])
    module = load_module(best_checkpoint(last))
    images = {name: centre_crop(image, eval_side) for name, image in load_photos(COLOR_EVAL_PHOTOS).items()}
    report = evaluate(module, images, folder / "eval")
    bd = report["bd"]["psnr-rgb"]["codec"]
    return {"train_s": trained, "steps": steps, "steps_per_s": steps / trained, "eval_side": eval_side,
            "bd_rate_percent": bd["bd_rate_percent"], "bd_psnr_db": bd["bd_psnr_db"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this check's options."""
    parser.add_argument("--json", type=Path, default=Path("gpu-check.json"), help="write every figure here (default: gpu-check.json)")
    parser.add_argument("--train-seconds", type=int, default=None, help="training budget of part 4 (default: 180 on a GPU, 15 on the CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per train benchmark (default: 10 on a GPU, 2 on the CPU)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the training run and its evaluation (default: a temporary folder)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("tests", "kernels", "train", "run"), help="parts to leave out")


def run(args: argparse.Namespace) -> None:
    """``sandwich bench gpu`` entry point."""
    quiet_lightning()
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "cpu (no CUDA)"
    seconds = args.train_seconds or (180 if cuda else 15)
    repeats = args.repeats or (10 if cuda else 2)
    os.environ.setdefault("WANDB_MODE", "disabled")
    result: dict = {"device": device, "torch": torch.__version__, "parts": {}, "skipped": {p: "--skip" for p in args.skip}}
    with tempfile.TemporaryDirectory(prefix="sandwich-gpu-check-") as scratch:
        folder = args.out or Path(scratch)
        started = time.perf_counter()
        if "tests" not in args.skip:
            if cuda:
                result["parts"]["tests"] = run_cuda_tests()
            else:
                result["skipped"]["tests"] = "no CUDA: the CUDA tests would all skip (CI runs them in the suite, where they skip)"
            write_json(args.json, result)  # after each part: a check cut short keeps what it measured
        if "kernels" not in args.skip:
            result["parts"]["kernels"] = run_kernels(folder / "kernels.json")
            if not cuda:
                result["skipped"]["kernels:gpu"] = "no CUDA: CPU figures of a small shape only"
            write_json(args.json, result)
        if "train" not in args.skip:
            result["parts"]["train"], skipped = run_train_benches(cuda, repeats)
            result["skipped"] |= skipped
            write_json(args.json, result)
        if "run" not in args.skip:
            result["parts"]["run"] = run_training(cuda, seconds, 512 if cuda else 64, folder / "run")
        result["wall_s"] = time.perf_counter() - started
    print_summary(result)
    write_json(args.json, result)


def print_summary(result: dict) -> None:
    """A table per part and the skipped parts."""
    parts = result["parts"]
    print(f"\nsandwich bench gpu on {result['device']} (torch {result['torch']}), {result['wall_s']:.0f} s")
    if "tests" in parts:
        print(f"CUDA tests: {parts['tests']['summary']}")
    if "kernels" in parts:
        k = parts["kernels"]
        figures = {key: value for key, value in k.items() if key.startswith("gpu_") and isinstance(value, (int, float))}
        print("kernels: " + (", ".join(f"{key} {value:.3g}" for key, value in sorted(figures.items())) or k.get("gpu_note", "CPU only")))
    if "train" in parts:
        bench_train.print_report(parts["train"])
    if "run" in parts:
        r = parts["run"]
        print_table([r], [("train_s", "train s", ".0f"), ("steps", "steps", "d"), ("steps_per_s", "steps/s", ".1f"),
                          ("bd_rate_percent", "BD-rate % vs JPEG", "+.1f"), ("bd_psnr_db", "BD-PSNR dB", "+.2f")])
    for part, reason in result["skipped"].items():
        print(f"skipped {part}: {reason}")

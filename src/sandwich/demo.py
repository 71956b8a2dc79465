"""``sandwich demo``: the project's main job, on CPU, in about ten minutes.

Trains the grayscale-codec sandwich (``experiment=gray_jpeg``: RGB carried by a one-channel JPEG 4:0:0)
on the embedded colour sample photos for a fixed time, then evaluates it with real libjpeg-turbo on the
colour sample photos it never saw (centre crops of at most 512x512), against the luma-only codec and
the classic colour-as-texture embedding. Writes to OUT: ``model.ckpt``, ``results.json``, ``rd.png``, ``examples.png``, ``index.html``
and the training run (``train/``: logs, checkpoints, validation images). Interrupted? Run it again: it
resumes from ``train/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from sandwich.config import compose
from sandwich.data.images import centre_crop
from sandwich.data.samples import COLOR_FIT_PHOTOS, COLOR_HELD_OUT_PHOTOS, load_photos
from sandwich.evaluate.checkpoint import load_module
from sandwich.evaluate.run import evaluate, print_bd
from sandwich.errors import InputError
from sandwich.train import quiet_lightning, train

EXPERIMENT = "gray_jpeg"
EVAL_SIDE = 512  # evaluation on centre crops of at most this side, to fit the 10-minute budget on 2 cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich demo``."""
    parser.add_argument("--out", default="demo-report", help="report folder (default: demo-report/)")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget in minutes (default: 8)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra config overrides for the training run")


def run(args: argparse.Namespace) -> None:
    """``sandwich demo`` entry point."""
    if args.minutes <= 0:
        raise InputError(f"--minutes {args.minutes} must be > 0")
    out = Path(args.out)
    seconds = int(args.minutes * 60)
    config = compose(
        [f"experiment={EXPERIMENT}", f"out_dir={out / 'train'}", "trainer.max_steps=-1",
         f"trainer.max_time={{seconds: {seconds}}}", *args.overrides]
    )
    quiet_lightning()
    start = time.perf_counter()
    print(f"sandwich demo: training {EXPERIMENT} for {args.minutes:g} min on {', '.join(COLOR_FIT_PHOTOS)}")
    last = train(config)
    trained = time.perf_counter() - start
    print(f"sandwich demo: evaluating with real JPEG on {', '.join(COLOR_HELD_OUT_PHOTOS)} (not trained on)")
    module = load_module(last)
    intro = [
        "RGB photos carried by a grayscale (4:0:0) JPEG: the pre-processor turns each colour photo into one gray image "
        "that an unmodified libjpeg-turbo encodes; the post-processor turns the decoded gray image back into colour.",
        f"Trained for {trained / 60:.1f} minutes on CPU on {', '.join(COLOR_FIT_PHOTOS)}; evaluated on centre crops "
        f"(at most {EVAL_SIDE}x{EVAL_SIDE}) of photos it did not see. "
        "Baselines: 'codec' is the same JPEG carrying the luma, shown as gray; 'texture_embedding' is the classic "
        "non-learned method (de Queiroz & Braun 2006), colour hidden as texture in the luma's Haar subbands, swept over "
        "its embedding gain (its curve is the Pareto front). Positive BD-PSNR means the sandwich is better at equal rate.",
    ]
    images = {name: centre_crop(image, EVAL_SIDE) for name, image in load_photos(COLOR_HELD_OUT_PHOTOS).items()}
    report = evaluate(module, images, out, intro=intro)
    shutil.copyfile(last, out / "model.ckpt")
    total = time.perf_counter() - start
    print(f"sandwich demo: done in {total / 60:.1f} min; report {out / 'index.html'}")
    print_bd(report)

"""``sandwich demo``: the project's main job, on CPU, in about ten minutes.

Trains the grayscale-codec sandwich (``experiment=gray_jpeg``: RGB carried by a one-channel JPEG 4:0:0)
on scikit-image's colour photos for a fixed time, selecting the checkpoint on matplotlib's photo, then
evaluates the selected model with real libjpeg-turbo on photos of a source it never saw, SPORCO's
Kodak and Waterloo photos (centre crops of at most 512x512, ``--eval-side``), against the luma-only codec and the
classic colour-as-texture embedding; and again on the validation source. Writes to OUT:
``model.ckpt``, ``results.json``, ``rd.png``, ``examples.png``, ``index.html`` (SPORCO), ``matplotlib/``
(the same for the validation source) and the training run (``train/``: logs, checkpoints, validation
images). Interrupted? Run it again: it resumes from ``train/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from sandwich.config import compose
from sandwich.data.images import centre_crop
from sandwich.data.samples import COLOR_EVAL_PHOTOS, COLOR_TRAIN_PHOTOS, COLOR_VAL_PHOTOS, load_photos
from sandwich.evaluate.checkpoint import load_module
from sandwich.evaluate.run import evaluate, print_bd
from sandwich.evaluate.knob_sweep import quality_metrics
from sandwich.errors import InputError
from sandwich.training import best_checkpoint, quiet_lightning, train

EXPERIMENT = "gray_jpeg"
VERDICT_METRICS = ("psnr-rgb", "ms-ssim-db")  # what the demo prints: RGB figures (PSNR-Y vs a luma-only codec misleads)
EVAL_SIDE = 512  # default side of the evaluation's centre crops, to fit the 10-minute budget on 2 cores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich demo``."""
    parser.add_argument("--out", default="demo-report", help="report folder (default: demo-report/)")
    parser.add_argument("--minutes", type=float, default=7.5, help="training time budget in minutes (default: 7.5)")
    parser.add_argument("--eval-side", type=int, default=EVAL_SIDE,
                        help=f"evaluate on centre crops of at most this many pixels per side (default: {EVAL_SIDE}; smaller is faster)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra config overrides for the training run")


def run(args: argparse.Namespace) -> None:
    """``sandwich demo`` entry point."""
    if args.minutes <= 0:
        raise InputError(f"--minutes {args.minutes} must be > 0")
    if args.eval_side < 16:
        raise InputError(f"--eval-side {args.eval_side} must be at least 16 pixels")
    out = Path(args.out)
    seconds = int(args.minutes * 60)
    config = compose(
        [f"experiment={EXPERIMENT}", f"out_dir={out / 'train'}", "trainer.max_steps=-1",
         f"trainer.max_time={{seconds: {seconds}}}", *args.overrides]
    )
    quiet_lightning()
    start = time.perf_counter()
    print(f"sandwich demo: training {EXPERIMENT} for {args.minutes:g} min on {', '.join(COLOR_TRAIN_PHOTOS)}")
    chosen = best_checkpoint(train(config))
    trained = time.perf_counter() - start
    module = load_module(chosen)
    intro = [
        "RGB photos carried by a grayscale (4:0:0) JPEG: the pre-processor turns each colour photo into one gray image "
        "that an unmodified libjpeg-turbo encodes; the post-processor turns the decoded gray image back into colour. "
        "Both know the JPEG quality (the decoder reads it off the quantisation tables), so one model serves every quality.",
        f"Trained for {trained / 60:.1f} minutes on CPU on {', '.join(COLOR_TRAIN_PHOTOS)} (scikit-image); checkpoint "
        f"{chosen.name} selected on {', '.join(COLOR_VAL_PHOTOS)}; evaluated on centre crops (at most {args.eval_side}x{args.eval_side}) "
        "of photos of a source it never saw. "
        "Baselines: 'codec' is the same JPEG carrying the luma, shown as gray; 'texture_embedding' is the classic "
        "non-learned method (de Queiroz & Braun 2006), colour hidden as texture in the luma's Haar subbands, swept over "
        "its embedding gain (its curve is the Pareto front). Positive BD-PSNR means the sandwich is better at equal rate.",
        "The verdict rests on RGB PSNR (and MS-SSIM). PSNR-Y against 'codec' is no figure of merit: that baseline spends "
        "every bit on the luma and shows no colour, while the sandwich carries colour in the same bits, so its luma is "
        "worse by design; its PSNR-Y against the texture embedding compares two ways of carrying colour.",
    ]
    for photos, folder in ((COLOR_EVAL_PHOTOS, out), (COLOR_VAL_PHOTOS, out / "matplotlib")):
        print(f"sandwich demo: evaluating with real JPEG on {', '.join(photos)} (not trained on)")
        images = {name: centre_crop(image, args.eval_side) for name, image in load_photos(photos).items()}
        report = evaluate(module, images, folder, intro=intro)
        print_bd({key: report["bd"][key] for key in VERDICT_METRICS}, quality_metrics(module))  # PSNR-Y and the rest: in the report
    shutil.copyfile(chosen, out / "model.ckpt")
    total = time.perf_counter() - start
    print(f"sandwich demo: done in {total / 60:.1f} min; report {out / 'index.html'} (every metric, and what each means)")

"""``sandwich export``: a trained sandwich's pre- and post-processors as ONNX graphs.

Writes ``DIR/pre.onnx``, ``DIR/post.onnx`` (for a model with a post-processor) and ``DIR/model.json`` (the
model's hash, its codec, and the level of every knob value: the graphs' ``level`` input). Each graph takes
``image`` ``(N, C, H, W)`` float32 on [0, 1], any H and W, and ``level`` ``(N,)``
(:mod:`sandwich.deploy.onnx_export`). The export is then checked: onnxruntime and torch run each graph on
a sample photo the model never trained on (the pre-processor on the photo, the post-processor on its real
decode), and a maximum absolute difference above 1e-4 on the [0, 1] scale is an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sandwich.data.images import centre_crop
from sandwich.deploy.common import check_free, load_model
from sandwich.deploy.onnx_export import PARITY, export, parity, processors
from sandwich.errors import InputError
from sandwich.evaluate.checkpoint import add_model_arguments
from sandwich.evaluate.run import evaluation_images
from sandwich.sample_format import to_tensor

CHECK_SIDE = 160  # the parity check's photo: a centre crop of at most this side


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich export``."""
    add_model_arguments(parser)
    parser.add_argument("--onnx", required=True, metavar="DIR", help="folder for pre.onnx, post.onnx and model.json")
    parser.add_argument("--force", action="store_true", help="overwrite graphs that exist (default: refuse)")


def run(args: argparse.Namespace) -> None:
    """``sandwich export`` entry point."""
    module, digest = load_model(args)
    folder = Path(args.onnx)
    check_free([folder / f"{name}.onnx" for name in processors(module)] + [folder / "model.json"], args.force)
    name, photo = next(iter(evaluation_images(module, None).items()))
    source = to_tensor(centre_crop(photo, CHECK_SIDE), module.bit_depth)[None]
    knob = module.codec.knobs[len(module.codec.knobs) // 2]
    written = export(module, folder, digest)
    errors = parity(module, folder, source, knob)
    for path in written:
        print(f"sandwich: wrote {path}")
    for graph, error in errors.items():
        print(f"  {graph}: onnxruntime vs torch on {name} ({source.shape[-1]}x{source.shape[-2]}, {module.codec.knob} {knob}): max |difference| {error:.2e}")
    worst = max(errors, key=errors.get)
    if errors[worst] > PARITY:
        raise InputError(f"{folder / worst}.onnx: onnxruntime differs from torch by {errors[worst]:.2e} > {PARITY:g}; do not use this export")

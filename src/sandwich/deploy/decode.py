"""``sandwich decode``: files written by ``sandwich encode`` -> images, through the real codec's standard
decoder and the sandwich's post-processor.

``IN`` is a file ``sandwich encode`` wrote (for an image of several pictures, any one of them, e.g.
``photo.0.jpg``), or a folder of them. The output is the image ``sandwich eval`` reconstructs at that knob,
bit for bit: a PNG (RGB, or RGBA for a 4-channel model; 16-bit for an HDR model, its samples scaled to the
16-bit range), or ``.npy`` ``(H, W, C)`` uint8 for other channel counts; at the source's size for a
super-resolution model. A file coded by another model (its header names the weights' hash) is refused.

``--runtime onnx`` runs the post-processor through onnxruntime instead of torch: the graph of ``--onnx DIR``
(written by ``sandwich export``), else one exported for this run. Its output differs from torch's by at
most 1e-4 on the [0, 1] scale (checked by ``sandwich export``), so a sample may round to its neighbour.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sandwich.data.images import image_bytes, output_suffix
from sandwich.deploy.common import add_io_arguments, check_free, load_model
from sandwich.deploy.container import CODEC_OF_SUFFIX, Header, read_header, read_pictures
from sandwich.deploy.onnx_export import OnnxProcessor, export
from sandwich.errors import InputError
from sandwich.files import write_files
from sandwich.sample_format import to_array
from sandwich.scenarios.base import SandwichModule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich decode``."""
    add_io_arguments(parser, "a file written by `sandwich encode` (.jpg, .hevc, .avif, .obu, .webp, .jxl)", "the image to write (.png, or .npy for N-channel models)")
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch", help="what runs the post-processor (default: torch)")
    parser.add_argument("--onnx", metavar="DIR", help="with --runtime onnx: the graphs of `sandwich export --onnx DIR` (default: export them for this run)")


def coded_images(source: Path, codec: str) -> list[tuple[Path, Header, Path]]:
    """``(the file named, its header, the path the image was written to)`` of each image ``sandwich encode`` wrote
    with ``codec`` at ``source``: that file, or under a folder every image once (by its first picture).

    Raises:
        InputError: ``source`` does not exist, a file of the codec's suffix has no header, a folder holds no image.
    """
    if not source.is_dir():
        if not source.exists():
            raise InputError(f"{source}: no such file or folder")
        return [(source, *read_header(source)[:2])]
    suffixes = {suffix for suffix, name in CODEC_OF_SUFFIX.items() if name == codec}
    found = [(path, *read_header(path)) for path in sorted(source.rglob("*")) if path.is_file() and path.suffix.lower() in suffixes]
    images = [(path, header, base) for path, header, base, index in found if index == 0]
    if not images:
        raise InputError(f"{source}: nothing to do in this folder")
    return images


def check_header(module: SandwichModule, digest: str, header: Header, path: Path) -> None:
    """InputError unless ``path`` (with ``header``) was coded by ``module`` (whose weights' digest is ``digest``)."""
    if header.codec != module.codec.real.name:
        raise InputError(f"{path}: coded with {header.codec}, this model codes with {module.codec.real.name} ({module.spec.name})")
    if header.model != digest:
        raise InputError(f"{path}: coded by model {header.model} ({header.experiment}), not by this one ({digest}, {module.spec.name})")


def run(args: argparse.Namespace) -> None:
    """``sandwich decode`` entry point."""
    module, digest = load_model(args)
    codec = module.codec.real.name
    suffix = output_suffix(module.channels)
    source, target = Path(args.input), Path(args.output)
    if not source.is_dir() and target.suffix != suffix:
        raise InputError(f"{target}: a {module.channels}-channel {module.bit_depth}-bit image is written as {suffix}")
    images = coded_images(source, codec)
    for path, header, _ in images:  # every file's model and codec, before anything is written
        check_header(module, digest, header, path)
    todo = [(header, base, target / base.relative_to(source).with_suffix(suffix) if source.is_dir() else target) for _, header, base in images]
    check_free([out for _, _, out in todo], args.force)
    with tempfile.TemporaryDirectory(prefix="sandwich-onnx-") as scratch:
        post = module.post
        if args.runtime == "onnx" and post is not None:
            graphs = Path(args.onnx) if args.onnx else Path(scratch)
            if not args.onnx:
                export(module, graphs, digest)
            post = OnnxProcessor(graphs / "post.onnx")
        lines = []
        for header, base, out in tqdm(todo, desc=f"decode ({codec})", unit="image", disable=len(todo) == 1):
            coded = read_pictures(header, base, module.codec.real)
            _, recon = module.decode(coded, post)
            write_files({out: image_bytes(np.atleast_3d(to_array(recon[0], module.bit_depth)), module.bit_depth)})
            lines.append(f"{out}: {header.width}x{header.height}, {module.channels} channels, {module.bit_depth}-bit, from {coded.payload_bits:,} payload bits at {header.codec} {module.codec.knob} {header.knob}")
    print(*lines, sep="\n")

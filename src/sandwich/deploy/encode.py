"""``sandwich encode``: photos -> standard files, through a trained sandwich's pre-processor and its real codec.

Each image (PNG, JPEG, ...; RGBA or ``.npy`` for a 4- or N-channel model; 16-bit PNG/TIFF or EXR for an
HDR model) goes through the pre-processor, told the level of the knob value, and the real codec at that
knob. The pictures are written as the codec's standard files (:mod:`sandwich.deploy.container`: ``.jpg``,
``.hevc``, ``.avif`` (or ``.obu``), ``.webp``, ``.jxl``), which any decoder opens; the model's identity (a hash of its
weights), the knob and the side information go into a JPEG comment or a ``.json`` sidecar. Several pictures
per image (a stereo pair, RGBA) go into numbered files. ``sandwich decode`` with the same model restores
the image; its output equals ``sandwich eval``'s at that knob, bit for bit.

The knob is ``--knob`` (alias ``--quality``, ``--qp``; default: the middle of the model's ``codec.knobs``)
or found for each image by ``--bpp``: the highest-quality knob value whose payload is at most that many
bits per source pixel. Printed per image: the files' size in bytes and the payload bits that evaluation
counts (what a decoder needs: not the header comment, not container boxes), as bits per source pixel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import Tensor
from tqdm import tqdm

from sandwich.data.images import IMAGE_SUFFIXES, read_image
from sandwich.deploy.common import add_io_arguments, check_free, load_model, pairs
from sandwich.deploy.container import SUFFIXES, Header, check_suffix, coded_files, picture_paths, sidecar
from sandwich.errors import InputError
from sandwich.files import write_files
from sandwich.sample_format import to_tensor
from sandwich.scenarios.base import CodedImage, SandwichModule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sandwich encode``."""
    add_io_arguments(parser, "an image", "the file to write (its suffix the codec's: .jpg, .hevc, .avif or .obu, .webp, .jxl)")
    knob = parser.add_mutually_exclusive_group()
    knob.add_argument("--knob", "--quality", "--qp", dest="knob", type=int, help="the real codec's knob value: JPEG/WebP/JPEG XL quality, HEVC/AV1 QP (default: the middle of the model's codec.knobs)")
    knob.add_argument("--bpp", type=float, metavar="TARGET", help="per image, the highest-quality knob value whose payload is at most TARGET bits per source pixel")


def find_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` (any depth), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def knob_for_bpp(module: SandwichModule, source: Tensor, target: float) -> tuple[CodedImage, bool]:
    """The coding of ``source`` ``(1, C, H, W)`` at the highest-quality knob value whose payload is at most
    ``target`` bits per source pixel (a bisection over the codec's knob range: its rate falls monotonically
    with quality), and whether the target was met (if not, the coding at the cheapest knob value)."""
    real = module.codec.real
    low, high = real.knob_range
    by_rate = list(range(low, high + 1)) if real.higher_is_better else list(range(high, low - 1, -1))  # cheapest first
    pixels = source.shape[-2] * source.shape[-1]
    cheapest = module.encode(source, by_rate[0])
    if cheapest.payload_bits / pixels > target:
        return cheapest, False
    best, lo, hi = cheapest, 1, len(by_rate) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        coded = module.encode(source, by_rate[mid])
        if coded.payload_bits / pixels <= target:
            best, lo = coded, mid + 1
        else:
            hi = mid - 1
    return best, True


def header_of(module: SandwichModule, digest: str, coded: CodedImage) -> Header:
    """The header of ``coded``, written by ``module`` (whose weights' digest is ``digest``)."""
    return Header(
        model=digest, experiment=module.spec.name, codec=module.codec.real.name, knob=coded.knob,
        height=coded.size[0], width=coded.size[1], pictures=len(coded.pictures), bit_depth=module.bit_depth, scale=module.adapter.scale,
    )


def run(args: argparse.Namespace) -> None:
    """``sandwich encode`` entry point."""
    module, digest = load_model(args)
    codec = module.codec.real
    suffix = SUFFIXES[codec.name][0]
    knob = args.knob if args.knob is not None else module.codec.knobs[len(module.codec.knobs) // 2]
    if args.bpp is None:
        codec.check_knob(knob)
    elif args.bpp <= 0:
        raise InputError(f"--bpp {args.bpp}: the target must be positive")
    todo = pairs(Path(args.input), Path(args.output), find_images, lambda rel: rel.with_suffix(suffix))
    for _, out in todo:
        check_suffix(out, codec.name)
    outputs = [p for _, out in todo for p in picture_paths(out, module.adapter.pictures) + ([] if codec.name == "jpeg" else [sidecar(out)])]
    check_free(outputs, args.force)
    lines = []
    for source, out in tqdm(todo, desc=f"encode ({codec.name})", unit="image", disable=len(todo) == 1):
        image = to_tensor(read_image(source, module.channels, module.bit_depth), module.bit_depth)[None]
        if args.bpp is None:
            coded, met = module.encode(image, knob), True
        else:
            coded, met = knob_for_bpp(module, image, args.bpp)
        files = coded_files(out, coded, header_of(module, digest, coded))
        write_files(files)
        bpp = coded.payload_bits / (coded.size[0] * coded.size[1])
        note = "" if met else f" (the cheapest {codec.knob}; the target {args.bpp} bpp is out of reach)"
        lines.append(f"{out}: {sum(len(d) for d in files.values()):,} bytes in {len(files)} file(s), payload {coded.payload_bits:,} bits = {bpp:.3f} bpp at {codec.knob} {coded.knob}{note}")
    print(*lines, sep="\n")

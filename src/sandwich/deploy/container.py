"""Coded images as standard files that any viewer or decoder opens, with what a sandwich decoder needs.

One source image is ``k`` codec pictures (k > 1 for channel groups: a stereo pair's views, RGBA's colour
and alpha). Each picture is the real codec's stream exactly as evaluation coded it, in its standard form:

* ``jpeg``: ``.jpg`` (JFIF), the header in a COM segment of every picture (``sandwich {json}``);
* ``hevc``: ``.hevc``, the raw Annex-B elementary stream (ffmpeg, and any HEVC decoder, reads it);
* ``av1``: ``.avif`` (the stream in an AVIF still-image file, muxed by FFmpeg; browsers, libheif and
  ffmpeg read it) or, given an ``.obu`` name, the low-overhead OBU stream itself ("Section 5"; dav1d reads it);
* ``webp``: ``.webp`` (RIFF); ``jxl``: ``.jxl`` (the bare codestream, which djxl reads).

Every format but JPEG carries the header in a sidecar, ``OUT.json`` beside ``OUT``. One picture is written
to ``OUT`` itself, k pictures to ``OUT``'s stem with ``.0`` .. ``.k-1`` before the suffix
(``photo.0.jpg``, ``photo.1.jpg``; the sidecar stays ``photo.hevc.json``).

The header (:class:`Header`) names the model (a content hash of its weights,
:func:`~sandwich.evaluate.checkpoint.weights_digest`), the codec and knob value, and the side
information: the source's size, the number of pictures, its bit depth and the super-resolution scale.
Payload bits are counted from the files as evaluation counts them (:meth:`RealCodec.payload_bits`: the
JPEG comment is not counted).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sandwich.codecs.real.av1 import avif_file, avif_stream
from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.codecs.real.jpeg import comments, with_comment
from sandwich.errors import InputError
from sandwich.scenarios.base import CodedImage

SUFFIXES = {"jpeg": (".jpg", ".jpeg"), "hevc": (".hevc",), "av1": (".avif", ".obu"), "webp": (".webp",), "jxl": (".jxl",)}
"""The file suffixes of each real codec's pictures, the default first."""
CODEC_OF_SUFFIX = {suffix: name for name, suffixes in SUFFIXES.items() for suffix in suffixes}
MAGIC = b"sandwich "  # a JPEG comment holding a header starts with it
FORMAT = 1  # the header's version


@dataclass(frozen=True)
class Header:
    """What a decoder needs besides the streams and the model, and what identifies the model.

    Attributes:
        model: the weights' content hash (16 hex digits); experiment: the model's experiment name.
        codec: the real codec's name (``jpeg``, ``hevc``, ...); knob: its knob value (quality or QP).
        height, width: the source image's size (a super-resolution decode returns to it).
        pictures: codec pictures per image; bit_depth: bits per source sample; scale: the
            super-resolution factor (1 for none).
    """

    model: str
    experiment: str
    codec: str
    knob: int
    height: int
    width: int
    pictures: int
    bit_depth: int
    scale: int
    format: int = FORMAT

    def to_json(self, picture: int | None = None) -> bytes:
        """The header as compact JSON bytes, with the index of the file's ``picture`` where each picture carries it."""
        return json.dumps(asdict(self) | ({} if picture is None else {"picture": picture}), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> tuple[Header, int]:
        """Parse a header written by :meth:`to_json`: (the header, its picture index, 0 where none is given);
        InputError naming ``where`` if it is not one."""
        try:
            fields = json.loads(data)
            picture = int(fields.pop("picture", 0))
            header = cls(**fields)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: unreadable sandwich header ({exc})") from None
        if header.format != FORMAT:
            raise InputError(f"{where}: header format {header.format}, this sandwich reads {FORMAT}")
        return header, picture


def picture_paths(out: Path, pictures: int) -> list[Path]:
    """The files of an image's ``pictures`` codec pictures written to ``out`` (module docstring)."""
    return [out] if pictures == 1 else [out.with_name(f"{out.stem}.{i}{out.suffix}") for i in range(pictures)]


def sidecar(out: Path) -> Path:
    """The header file of a non-JPEG image written to ``out``."""
    return out.with_name(out.name + ".json")


def check_suffix(out: Path, codec: str) -> None:
    """InputError unless ``out`` has a suffix of ``codec``'s files."""
    if CODEC_OF_SUFFIX.get(out.suffix.lower()) != codec:
        raise InputError(f"{out}: a {codec} sandwich writes {' or '.join(SUFFIXES[codec])} files, not {out.suffix or 'no suffix'}")


def file_bytes(stream: bytes, suffix: str) -> bytes:
    """A codec's stream as the file of ``suffix`` (wrapped in AVIF for ``.avif``, else as it is)."""
    return avif_file(stream) if suffix.lower() == ".avif" else stream


def stream_bytes(data: bytes, suffix: str) -> bytes:
    """The codec's stream in a file of ``suffix`` (:func:`file_bytes` undone)."""
    return avif_stream(data) if suffix.lower() == ".avif" else data


def coded_files(out: Path, coded: CodedImage, header: Header) -> dict[Path, bytes]:
    """``{path: bytes}`` of every file that stores ``coded`` at ``out``: the pictures and, but for JPEG, the sidecar."""
    check_suffix(out, header.codec)
    paths = picture_paths(out, len(coded.pictures))
    if header.codec == "jpeg":
        return {
            path: with_comment(p.data, MAGIC + header.to_json(picture=i))
            for i, (path, p) in enumerate(zip(paths, coded.pictures, strict=True))
        }
    return {path: file_bytes(p.data, path.suffix) for path, p in zip(paths, coded.pictures, strict=True)} | {sidecar(out): header.to_json()}


def read_header(path: Path) -> tuple[Header, Path, int]:
    """(header, the path the image was written to, this file's picture index) of a picture file ``path``.

    Raises:
        InputError: an unknown suffix, a file that is not a picture of a ``sandwich encode`` output
            (no header: a JPEG without the comment, a stream without its sidecar).
    """
    codec = CODEC_OF_SUFFIX.get(path.suffix.lower())
    if codec is None:
        raise InputError(f"{path}: not a sandwich file ({', '.join(sorted(CODEC_OF_SUFFIX))})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    indexed = re.fullmatch(r"(.*)\.(\d+)", path.stem)
    if codec == "jpeg":
        found = [c for c in comments(path.read_bytes()) if c.startswith(MAGIC)]
        if not found:
            raise InputError(f"{path}: a JPEG without a sandwich header (not written by `sandwich encode`)")
        header, index = Header.from_json(found[0][len(MAGIC) :], path)
        base = path if header.pictures == 1 else path.with_name(f"{indexed.group(1) if indexed else path.stem}{path.suffix}")
        return header, base, index
    if sidecar(path).is_file():
        return Header.from_json(sidecar(path).read_bytes(), sidecar(path))[0], path, 0
    base = path.with_name(f"{indexed.group(1)}{path.suffix}") if indexed else None
    if base is None or not sidecar(base).is_file():
        raise InputError(f"{path}: no sandwich header beside it ({sidecar(path).name}; not written by `sandwich encode`)")
    header = Header.from_json(sidecar(base).read_bytes(), sidecar(base))[0]
    if int(indexed.group(2)) >= header.pictures:
        raise InputError(f"{path}: picture {indexed.group(2)} of an image of {header.pictures}")
    return header, base, int(indexed.group(2))


def read_pictures(header: Header, base: Path, real: RealCodec) -> CodedImage:
    """The coded image written to ``base`` with ``header`` (:func:`read_header`): its streams read from every
    picture file and their payload bits counted by ``real``.

    Raises:
        InputError: a picture file missing, or not a file of its codec.
    """
    pictures = []
    for file in picture_paths(base, header.pictures):
        if not file.is_file():
            raise InputError(f"{file}: missing (picture of {base}, which has {header.pictures})")
        data = stream_bytes(file.read_bytes(), file.suffix)
        pictures.append(Encoded(data, real.payload_bits(data)))
    return CodedImage(tuple(pictures), header.knob, (header.height, header.width))

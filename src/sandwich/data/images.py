"""Reading user images into arrays, with clear errors for files that are not images.

8-bit images (:func:`read_image` with ``bit_depth`` 8) come from any format Pillow reads. High-bit-depth
sources (``bit_depth`` 9..16) come from 16-bit PNG and TIFF files, whose full-range 16-bit samples are
rounded to ``bit_depth`` bits (:func:`sandwich.sample_format.requantize`), and from OpenEXR files, whose
scene-linear light becomes PQ code values (:func:`sandwich.transfer.exr_to_codes`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import OpenEXR
import tifffile
from PIL import Image, UnidentifiedImageError

from sandwich.errors import InputError
from sandwich.sample_format import peak, requantize
from sandwich.transfer import exr_to_codes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy", ".exr")
_DEEP_SUFFIXES = (".png", ".tif", ".tiff", ".exr")  # the files a bit depth above 8 reads: 16-bit PNG and TIFF, OpenEXR
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | Path, channels: int = 3, bit_depth: int = 8) -> np.ndarray:
    """Read an image file as ``(H, W, channels)`` samples of ``bit_depth`` bits (uint8 for 8, uint16 for 9..16).

    ``bit_depth`` 8, from an 8-bit file: ``channels`` 3: RGB (gray is replicated, alpha dropped); 4: RGBA,
    from a file that has an alpha channel (a palette with transparency counts; gray + alpha is replicated
    to RGB + alpha); any count: a ``.npy`` array of ``(H, W, channels)`` uint8 (image formats hold at most
    4 channels; ``.npy`` holds any number, e.g. a stereo pair as 6).

    ``bit_depth`` 9..16, ``channels`` 3 only (gray is replicated, alpha dropped), values ``0 .. 2**bit_depth - 1``:
    a 16-bit PNG or TIFF (its samples rounded to ``bit_depth`` bits), or an OpenEXR image (scene-linear
    light as PQ code values, :func:`sandwich.transfer.exr_to_codes`).

    Raises:
        InputError: the file is missing, not an image, corrupt or truncated, has more than 8 bits (for
            ``bit_depth`` 8) or not 16 bits (PNG, TIFF for ``bit_depth`` 9..16), or does not have
            ``channels`` channels.
    """
    path = Path(path)
    if bit_depth != 8:
        return _read_deep(path, channels, bit_depth)
    if path.suffix.lower() == ".npy":
        return _read_npy(path, channels)
    if channels not in (3, 4):
        raise InputError(f"{path}: image files hold 3 (RGB) or 4 (RGBA) channels, not {channels}; store {channels}-channel samples as .npy (H, W, {channels}) uint8")
    if path.suffix.lower() == ".exr" and path.is_file():
        raise InputError(f"{path}: OpenEXR image has more than 8 bits per sample; expected 8-bit")
    try:
        with Image.open(path) as pil:
            wide = next((raw for raw in map(_rawmode, pil.tile) if re.search(r";16[BLN]", raw)), None)  # Pillow reads 16-bit RGB as 8-bit
            if pil.mode in ("I;16", "I;16B", "I", "F") or pil.mode.startswith("I;16") or wide:
                raise InputError(f"{path}: {wide or pil.mode} image has more than 8 bits per sample; expected 8-bit")
            pil.load()
            if channels == 4 and not (pil.mode in _ALPHA_MODES or "transparency" in pil.info):
                raise InputError(f"{path}: {pil.mode} image has no alpha channel; expected 4 channels (RGBA)")
            return np.asarray(pil.convert("RGB" if channels == 3 else "RGBA"))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def _rawmode(tile: tuple) -> str:
    """The raw mode of one of Pillow's decoder tiles (``(codec, extents, offset, args)``; e.g. ``"RGB;16B"`` for
    big-endian 16-bit RGB), or ``""``."""
    args = tile[3]
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _read_deep(path: Path, channels: int, bit_depth: int) -> np.ndarray:
    """A 16-bit PNG or TIFF, or an OpenEXR image, as ``(H, W, 3)`` ``bit_depth``-bit uint16 (:func:`read_image`)."""
    peak(bit_depth)  # InputError for a depth outside 8..16
    if channels != 3:
        raise InputError(f"{path}: bit depth {bit_depth} reads RGB images (3 channels), not {channels}")
    suffix = path.suffix.lower()
    if suffix not in _DEEP_SUFFIXES:
        raise InputError(f"{path}: not a 16-bit PNG, 16-bit TIFF or OpenEXR file, which bit depth {bit_depth} reads")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if suffix == ".exr":
        return exr_to_codes(_read_exr(path), bit_depth)
    samples, bits = _read_png(path) if suffix == ".png" else _read_tiff(path)
    if samples.dtype.kind != "u":
        raise InputError(f"{path}: {samples.dtype} samples; expected 16-bit integers for bit depth {bit_depth}")
    if bits != 16:
        raise InputError(f"{path}: {bits}-bit image; expected 16-bit samples for bit depth {bit_depth}")
    if samples.ndim == 3 and samples.shape[2] in (3, 4):
        rgb = samples[..., :3]
    elif samples.ndim == 2 or (samples.ndim == 3 and samples.shape[2] in (1, 2)):
        rgb = np.repeat(samples.reshape(*samples.shape[:2], -1)[..., :1], 3, axis=2)
    else:
        raise InputError(f"{path}: samples of shape {samples.shape}; expected gray or RGB, with or without alpha")
    return requantize(np.ascontiguousarray(rgb), 16, bit_depth)


def _read_png(path: Path) -> tuple[np.ndarray, int]:
    """A PNG's samples ``(H, W[, C])`` (uint8 or uint16, libpng's decoding; Pillow reduces 16-bit RGB to 8 bits) and bits per sample."""
    try:
        samples = imagecodecs.png_decode(path.read_bytes())
    except (imagecodecs.PngError, ValueError) as exc:
        raise InputError(f"{path}: not a readable PNG image ({exc})") from None
    return samples, samples.itemsize * 8


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    """The first image of a gray or RGB TIFF as ``(H, W[, C])`` and its bits per sample (a 12-bit TIFF reads as uint16 too)."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
                raise InputError(f"{path}: {page.photometric.name} TIFF; expected gray or RGB samples")
            samples = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples.ndim == 3:
                samples = np.moveaxis(samples, 0, -1)
            return samples, int(page.bitspersample)
    except InputError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable TIFF image ({exc})") from None


@contextlib.contextmanager
def _quiet_openexr() -> Iterator[None]:
    """Silence OpenEXR's own messages about a corrupt file (its C library's lines on file descriptor 2, its
    Python binding's on ``sys.stdout``), which the one-line InputError already reports."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_exr(path: Path) -> np.ndarray:
    """An OpenEXR image's linear light as ``(H, W, 3)`` float (RGB; alpha dropped; a luminance-only ``Y`` image replicated)."""
    try:
        with _quiet_openexr(), OpenEXR.File(str(path)) as exr:
            planes = {name: channel.pixels for name, channel in exr.channels().items()}
    except (RuntimeError, ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable OpenEXR image ({exc})") from None
    if (rgb := next((planes[name] for name in ("RGB", "RGBA") if name in planes), None)) is not None:
        return rgb[..., :3]
    if "Y" in planes:
        return np.repeat(planes["Y"][..., None], 3, axis=2)
    raise InputError(f"{path}: OpenEXR image has no RGB or Y channels (it has {', '.join(planes) or 'none'})")


def _read_npy(path: Path, channels: int) -> np.ndarray:
    """A ``.npy`` file of ``(H, W, channels)`` uint8 (no pickled objects are loaded)."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from None
    if array.dtype != np.uint8:
        raise InputError(f"{path}: {array.dtype} samples; expected 8-bit (uint8)")
    if array.ndim != 3 or array.shape[2] != channels:
        raise InputError(f"{path}: array of shape {array.shape}; expected (H, W, {channels})")
    return array


PNG_CHANNELS = (3, 4)  # channel counts a PNG holds (RGB, RGBA); other counts go to .npy


def output_suffix(channels: int) -> str:
    """The lossless file type that holds images of ``channels`` channels: ``.png`` (RGB, RGBA), else ``.npy``."""
    return ".png" if channels in PNG_CHANNELS else ".npy"


def lossless_bytes(array: np.ndarray) -> bytes:
    """``(H, W, C)`` uint8 or uint16 -> the bytes of a lossless file of :func:`output_suffix` type: an RGB or
    RGBA PNG (8- or 16-bit, as the dtype; the values stored as they are), else ``.npy``."""
    if array.shape[2] in PNG_CHANNELS:
        return imagecodecs.png_encode(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def image_bytes(array: np.ndarray, bit_depth: int) -> bytes:
    """``(H, W, C)`` samples of ``bit_depth`` bits as the bytes of a lossless file of :func:`output_suffix` type
    that :func:`read_image` reads back to the same samples: for ``bit_depth`` > 8 a 16-bit PNG, the samples
    scaled to the full 16-bit range (as cameras and ffmpeg write them).

    Raises:
        InputError: more than 8 bits of a channel count a PNG cannot hold (``.npy`` holds 8-bit samples).
    """
    if bit_depth == 8:
        return lossless_bytes(array)
    if array.shape[2] not in PNG_CHANNELS:
        raise InputError(f"a {array.shape[2]}-channel {bit_depth}-bit image cannot be written: 16-bit PNG holds 3 or 4 channels")
    return lossless_bytes(((array.astype(np.uint64) * 65535 + peak(bit_depth) // 2) // peak(bit_depth)).astype(np.uint16))


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix) directly in ``folder``, sorted; raises InputError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def centre_crop(image: np.ndarray, side: int, multiple: int = 1) -> np.ndarray:
    """The central ``min(side, H) x min(side, W)`` of an ``(H, W, ...)`` array (a view), each side rounded
    down to a multiple of ``multiple`` (e.g. 2: whole 4:2:0 chroma samples)."""
    h, w = (min(side, d) // multiple * multiple for d in image.shape[:2])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top : top + h, left : left + w]


def defocus(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """``(H, W, 3)`` uint8 blurred by a Gaussian of ``sigma`` pixels per side (rounded, uint8): a stand-in for
    the defocused backgrounds and smooth gradients of shallow-depth-of-field photos."""
    from scipy.ndimage import gaussian_filter

    return np.clip(np.floor(gaussian_filter(rgb.astype(np.float64), (sigma, sigma, 0)) + 0.5), 0, 255).astype(np.uint8)

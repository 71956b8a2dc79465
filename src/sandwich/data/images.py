"""Reading user images into arrays, with clear errors for files that are not images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sandwich.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read an 8-bit image file as ``(H, W, channels)`` uint8.

    ``channels`` 3: RGB (gray is replicated, alpha dropped); 4: RGBA, from a file that has an alpha
    channel (a palette with transparency counts; gray + alpha is replicated to RGB + alpha); any count:
    a ``.npy`` array of ``(H, W, channels)`` uint8 (image formats hold at most 4 channels; ``.npy``
    holds any number, e.g. a stereo pair as 6).

    Raises:
        InputError: the file is missing, not an image, corrupt or truncated, has more than 8 bits, or
            does not have ``channels`` channels.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _read_npy(path, channels)
    if channels not in (3, 4):
        raise InputError(f"{path}: image files hold 3 (RGB) or 4 (RGBA) channels, not {channels}; store {channels}-channel samples as .npy (H, W, {channels}) uint8")
    try:
        with Image.open(path) as pil:
            pil.load()
            if pil.mode in ("I;16", "I;16B", "I", "F") or pil.mode.startswith("I;16"):
                raise InputError(f"{path}: {pil.mode} image has more than 8 bits per sample; expected 8-bit")
            if channels == 4 and not (pil.mode in _ALPHA_MODES or "transparency" in pil.info):
                raise InputError(f"{path}: {pil.mode} image has no alpha channel; expected 4 channels (RGBA)")
            return np.asarray(pil.convert("RGB" if channels == 3 else "RGBA"))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


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


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix) directly in ``folder``, sorted; raises InputError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``min(side, H) x min(side, W)`` of an ``(H, W, ...)`` array (a view)."""
    h, w = min(side, image.shape[0]), min(side, image.shape[1])
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[top : top + h, left : left + w]


def defocus(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """``(H, W, 3)`` uint8 blurred by a Gaussian of ``sigma`` pixels per side (rounded, uint8): a stand-in for
    the defocused backgrounds and smooth gradients of shallow-depth-of-field photos."""
    from scipy.ndimage import gaussian_filter

    return np.clip(np.floor(gaussian_filter(rgb.astype(np.float64), (sigma, sigma, 0)) + 0.5), 0, 255).astype(np.uint8)

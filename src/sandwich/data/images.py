"""Reading user images into arrays, with clear errors for files that are not images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sandwich.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_rgb8(path: str | Path) -> np.ndarray:
    """Read an 8-bit image file as ``(H, W, 3)`` uint8 RGB (gray is replicated, alpha dropped).

    Raises:
        InputError: the file is missing, not an image, corrupt or truncated, or has more than 8 bits.
    """
    path = Path(path)
    try:
        with Image.open(path) as pil:
            pil.load()
            if pil.mode in ("I;16", "I;16B", "I", "F") or pil.mode.startswith("I;16"):
                raise InputError(f"{path}: {pil.mode} image has more than 8 bits per sample; expected 8-bit")
            return np.asarray(pil.convert("RGB"))
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


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

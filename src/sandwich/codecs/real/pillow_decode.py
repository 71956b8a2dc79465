"""Decoding a still-image stream with Pillow, with corrupt input turned into one clear error."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sandwich.errors import InputError


def pillow_decode(data: bytes, codec: str, image_format: str, mode: str) -> np.ndarray:
    """Decode ``data`` that must be a Pillow ``image_format`` image of ``mode`` ("L" or "RGB").

    Returns ``(H, W)`` for "L" or ``(H, W, 3)`` for "RGB", uint8. Raises :class:`InputError` naming
    ``codec`` for corrupt, truncated or mismatched streams.
    """
    try:
        with Image.open(io.BytesIO(data)) as pil:
            if pil.format != image_format:
                raise InputError(f"{codec}: stream is {pil.format}, not {image_format}")
            pil.load()
            if pil.mode != mode:
                raise InputError(f"{codec}: stream has mode {pil.mode}, this codec decodes {mode}")
            return np.asarray(pil)
    except InputError:
        raise
    except Exception as exc:  # Pillow raises several types for corrupt or truncated streams
        raise InputError(f"{codec}: cannot decode stream ({exc})") from None

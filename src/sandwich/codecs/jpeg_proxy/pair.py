"""Code one image with real libjpeg-turbo and with the JPEG proxy, using the same tables.

Shared by the rate-model fit and ``sandwich bench proxy``: both compare the two side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sandwich.codecs.color import luma8
from sandwich.codecs.jpeg_proxy.proxy import ProxyOutput, jpeg_proxy
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.sample_format import to_array, to_tensor


@dataclass
class JpegPair:
    """Real and proxy results for one image and one pair of tables.

    Attributes:
        source: ``(H, W)`` or ``(H, W, 3)`` uint8 image that was coded.
        real_bits: libjpeg-turbo payload bits (see :mod:`sandwich.codecs.real.jpeg`).
        real_decoded: libjpeg-turbo's decode, same shape as ``source``.
        proxy: the proxy's output for the same image and tables.
    """

    source: np.ndarray
    real_bits: int
    real_decoded: np.ndarray
    proxy: ProxyOutput

    def proxy_decoded(self) -> np.ndarray:
        """The proxy's reconstruction as a uint8 array shaped like ``source``."""
        return to_array(self.proxy.recon[0] / 255)


def tables_for(quality: int | None = None, flat_step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) ``(8, 8)`` int tables: IJG at ``quality``, or every entry ``flat_step``."""
    if quality is not None:
        return ijg_tables(quality)
    flat = np.full((8, 8), int(flat_step), dtype=np.int64)
    return flat, flat


def code_pair(rgb: np.ndarray, subsampling: str, luma: np.ndarray, chroma: np.ndarray) -> JpegPair:
    """Code ``rgb`` ``(H, W, 3)`` uint8 (its JFIF luma for ``"400"``) both ways with these tables."""
    source = luma8(rgb) if subsampling == "400" else rgb
    codec = JpegCodec(subsampling)
    encoded = codec.encode_with_tables(source, luma, chroma)
    with torch.no_grad():
        proxy = jpeg_proxy(
            to_tensor(source, normalise=False)[None], torch.tensor(luma, dtype=torch.float32), torch.tensor(chroma, dtype=torch.float32), subsampling
        )
    return JpegPair(source=source, real_bits=encoded.payload_bits, real_decoded=codec.decode(encoded.data), proxy=proxy)

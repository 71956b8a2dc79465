"""Ultra HDR (JPEG + gain map, ISO 21496-1) through libultrahdr (imagecodecs' wheel); HDR RGB.

The images are PQ code values (SMPTE ST 2084, ``bit_depth`` bits, :mod:`sandwich.transfer`), the signal
the HDR configuration's sources carry. Encoding turns them into linear light with 1.0 at 203 cd/m2
(BT.2408's HDR reference white, libultrahdr's scale for linear half-float input; its range ends at
10000 cd/m2, PQ's peak), as RGBA half floats, and lets libultrahdr tone-map the SDR base JPEG at
``quality`` and derive the gain map; decoding asks libultrahdr for linear half floats at full boost and
turns them back into PQ code values (rounded, clipped).

``payload_bits`` counts the whole file: the base JPEG, the gain-map JPEG and the metadata that ties them
(an HDR decoder needs all three; libultrahdr writes no comments to strip).
"""

from __future__ import annotations

import imagecodecs
import numpy as np

from sandwich.codecs.real.base import Encoded, RealCodec
from sandwich.errors import InputError
from sandwich.sample_format import peak
from sandwich.transfer import pq_codes, pq_decode

REFERENCE_WHITE_NITS = 203.0  # linear 1.0 for libultrahdr's half-float input (BT.2408 HDR reference white)


class UltraHdrCodec(RealCodec):
    """Ultra HDR of ``(H, W, 3)`` uint16 PQ code values of ``bit_depth`` bits (10..16); knob: the base JPEG's quality."""

    name = "ultrahdr"
    knob = "quality"
    higher_is_better = True
    knob_range = (1, 100)
    channels = 3

    def __init__(self, bit_depth: int = 16) -> None:
        if isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or not 10 <= bit_depth <= 16:
            raise InputError(f"ultrahdr: bit_depth {bit_depth!r} must be 10..16 (PQ code values)")
        self.bit_depth = bit_depth

    def encode(self, image: np.ndarray, knob: int) -> Encoded:  # noqa: D102
        self.check_image(image)
        self.check_knob(knob)
        linear = pq_decode(image / peak(self.bit_depth)) / REFERENCE_WHITE_NITS
        rgba = np.concatenate([linear, np.ones_like(linear[..., :1])], axis=2).astype(np.float16)
        data = bytes(imagecodecs.ultrahdr_encode(rgba, level=int(knob)))
        return Encoded(data, self.payload_bits(data))

    def decode(self, data: bytes) -> np.ndarray:  # noqa: D102
        try:
            linear = imagecodecs.ultrahdr_decode(data).astype(np.float64)[..., :3]
        except imagecodecs.UltrahdrError as exc:
            raise InputError(f"ultrahdr: not a decodable Ultra HDR stream ({exc})") from None
        return pq_codes(linear * REFERENCE_WHITE_NITS, self.bit_depth)

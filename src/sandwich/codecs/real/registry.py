"""Real codecs by name: ``CODECS.create("hevc", subsampling="444", bit_depth=10)`` (unknown names, options or
values raise :class:`~sandwich.errors.InputError`)."""

from __future__ import annotations

from sandwich.codecs.real.av1 import Av1Codec
from sandwich.codecs.real.base import RealCodec
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.jpeg import JpegCodec
from sandwich.codecs.real.jxl import JxlCodec
from sandwich.codecs.real.ultrahdr import UltraHdrCodec
from sandwich.codecs.real.webp import WebpCodec
from sandwich.registry import Registry

CODECS: Registry[RealCodec] = Registry(
    "codec", {"jpeg": JpegCodec, "hevc": HevcCodec, "av1": Av1Codec, "webp": WebpCodec, "jxl": JxlCodec, "ultrahdr": UltraHdrCodec}
)


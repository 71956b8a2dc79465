"""Real codecs by name: ``create_codec("hevc", subsampling="444", bit_depth=10)``."""

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


def codec_names() -> list[str]:
    """Names :func:`create_codec` accepts, in registry order."""
    return CODECS.names()


def create_codec(name: str, **kwargs) -> RealCodec:
    """A new codec instance by registry name, constructed with ``kwargs``.

    Raises:
        InputError: an unknown name, a keyword the codec does not take, or a value it rejects
            (e.g. ``subsampling="422"``, an unsupported ``bit_depth``).
    """
    return CODECS.create(name, **kwargs)

"""Sandwiched image compression: neural pre/post-processors wrapped around a standard codec."""

__version__ = "0.1.0"

"""Real codecs behind the :class:`~sandwich.codecs.real.base.RealCodec` interface."""

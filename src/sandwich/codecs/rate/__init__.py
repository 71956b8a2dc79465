"""Rate models: bits per image as differentiable tensors, from a proxy's coded planes.

* :class:`~sandwich.codecs.rate.linear.LinearJpegRate` - calibration-free: a linear model of JPEG
  symbol statistics whose weights were fitted once on sample photos (``jpeg_linear.json``, refit with
  ``python -m sandwich.codecs.rate.fit``). The one training uses.
* :class:`~sandwich.codecs.rate.he_mitra.HeMitraRate` - the published model, ``a * Σ ln(1 + |level|)``
  with ``a`` calibrated per image against real libjpeg-turbo bytes at every call.
"""

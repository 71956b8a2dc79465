"""The JPEG proxy: a differentiable model of libjpeg-turbo coding one picture with given step tables.

Modules: :mod:`.proxy` (the pipeline, and the proxy the codec stage builds by name), :mod:`.rate` (the
calibration-free rate model, weights in ``jpeg_linear.json``, fitted by :mod:`sandwich.fitting.jpeg_rate`), :mod:`.pair` (one image
coded by both, what the fit and ``sandwich bench proxy`` compare). The block codec it runs on is shared:
:mod:`sandwich.codecs.blockcodec` and its fused kernels (:mod:`sandwich.codecs.kernels`).
"""

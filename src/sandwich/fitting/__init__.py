"""Fitting the codecs' measured parameters on the embedded photos: the knob <-> level maps
(:mod:`.levels`), the JPEG and HEVC-intra proxies' rate models (:mod:`.jpeg_rate`, :mod:`.hevc_rate`, sharing
:mod:`.rate`). They sit above both the codecs and the data: ``sandwich.codecs`` keeps only the fitted
parameters (``real/levels.json``, ``jpeg_proxy/jpeg_linear.json``, ``hevc_proxy/hevc_linear.json``) and the
code that reads them, and never reads a data file."""

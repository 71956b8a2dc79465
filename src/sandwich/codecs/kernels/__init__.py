"""Kernels of the transform-quantize op (block DCT -> quantise -> rate statistics -> dequantise -> IDCT).

* :mod:`~sandwich.codecs.kernels.ops` - the ``torch.library`` ops, their fake kernels, autograd rule and
  the kernel switch (``SANDWICH_KERNELS``);
* :mod:`~sandwich.codecs.kernels.reference` - the torch implementation (reference, fallback) and the
  plain-autograd composition;
* :mod:`~sandwich.codecs.kernels.numba_blockcodec` - the fused CPU kernels (numba); imported on first
  use (a few seconds of JIT compile the first time, then numba's on-disk cache);
* :mod:`~sandwich.codecs.kernels.numba_jpeg_color` - fused CPU kernels (numba) of the JPEG proxy's
  colour stages around the op (RGB -> centred planes, reconstructions -> RGB);
* :mod:`~sandwich.codecs.kernels.numba_hevc_intra` - the fused CPU kernel (numba) of the HEVC-intra proxy's
  closed-loop decisions (:mod:`sandwich.codecs.hevc_proxy.intra`; elsewhere its torch reference runs);
* :mod:`~sandwich.codecs.kernels.triton_hevc_intra` - the fused Triton kernel of the same decisions (CUDA, on
  request: ``SANDWICH_KERNELS=triton``; CPU only under ``TRITON_INTERPRET=1``);
* :mod:`~sandwich.codecs.kernels.numba_runtime` - the numba kernels' shared compile options and threads;
* :mod:`~sandwich.codecs.kernels.triton_blockcodec` - the fused Triton kernels (CUDA; CPU only under
  ``TRITON_INTERPRET=1``); imported on first use, so importing sandwich does not import Triton;
* :mod:`~sandwich.codecs.kernels.interpret_check` - every Triton kernel against the reference in
  Triton's interpreter, in a subprocess (tests and ``sandwich bench kernels``).
"""

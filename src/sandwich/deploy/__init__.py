"""Using a trained sandwich: ``sandwich encode`` and ``decode`` (standard files and back), ``sandwich export``
(ONNX graphs) and ``sandwich models`` (the pretrained models that ship with the package)."""

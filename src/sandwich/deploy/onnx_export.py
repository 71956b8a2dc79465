"""A sandwich's pre- and post-processors as ONNX graphs, and the post-processor run through onnxruntime.

Each graph takes ``image`` ``(N, C, H, W)`` float32 on the [0, 1] scale (H and W dynamic: any size) and
``level`` ``(N,)`` float32, the codec's level in octaves (the level of a knob value is in ``model.json``),
and returns ``output`` ``(N, C', H, W)`` on the [0, 1] scale, unclipped: what the torch processor returns.
Exported with ``torch.onnx.export(dynamo=True)`` (opset 18 or later).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sandwich.codecs.stage import describe_codec
from sandwich.errors import InputError
from sandwich.files import write_files
from sandwich.nets.processor import Processor
from sandwich.scenarios.base import SandwichModule

PARITY = 1e-4
"""The largest absolute difference (on the [0, 1] scale) between onnxruntime's and torch's output that an export may have."""


class _WithLevel(nn.Module):
    """A processor as a module of two tensor inputs (ONNX graphs take no optional arguments)."""

    def __init__(self, processor: Processor) -> None:
        super().__init__()
        self.processor = processor

    def forward(self, image: Tensor, level: Tensor) -> Tensor:  # noqa: D102
        return self.processor(image, level)


def processors(module: SandwichModule) -> dict[str, tuple[Processor, int]]:
    """``{"pre" | "post": (processor, its input channels)}`` of ``module`` (no ``post`` without a post-processor)."""
    width = module.adapter.bottleneck_channels(module.codec.channels)
    found = {"pre": (module.pre, module.channels)}
    return found | ({} if module.post is None else {"post": (module.post, width)})


def export_graph(processor: Processor, channels: int) -> bytes:
    """``processor`` as the bytes of an ONNX model (module docstring), traced on a ``(1, channels, 40, 56)`` input."""
    from torch.export import Dim

    example = (torch.rand(1, channels, 40, 56), torch.zeros(1))
    shapes = {"image": {0: Dim("N", min=1, max=1024), 2: Dim("H", min=2, max=16384), 3: Dim("W", min=2, max=16384)}, "level": {0: Dim("N", min=1, max=1024)}}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.onnx"
        torch.onnx.export(
            _WithLevel(processor).eval(), example, str(path), dynamo=True, dynamic_shapes=shapes,
            input_names=["image", "level"], output_names=["output"], external_data=False, verbose=False,
        )
        return path.read_bytes()


class OnnxProcessor:
    """An exported processor run by onnxruntime on CPU: ``(image (N, C, H, W), level (N,)) -> output``, as torch tensors."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        if not path.is_file():
            raise InputError(f"{path}: no such ONNX graph (write it with `sandwich export --onnx`)")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, image: Tensor, level: Tensor) -> Tensor:  # noqa: D102
        feeds = {"image": image.detach().cpu().numpy().astype(np.float32), "level": level.detach().cpu().numpy().astype(np.float32)}
        return torch.from_numpy(self.session.run(["output"], feeds)[0])


def model_description(module: SandwichModule, digest: str) -> dict:
    """What an ONNX user needs beside the graphs: the model, the codec, and the level of every knob value."""
    real = module.codec.real
    low, high = real.knob_range
    return {
        "model": digest, "experiment": module.spec.name, "codec": describe_codec(real),
        "knob": real.knob, "levels": {str(k): module.codec.level_of(k) for k in range(low, high + 1)},
        "inputs": {"image": "(N, C, H, W) float32 on [0, 1]", "level": "(N,) float32, the knob's level (levels)"},
        "graphs": {name: {"in_channels": c} for name, (_, c) in processors(module).items()},
    }


def export(module: SandwichModule, folder: Path, digest: str) -> list[Path]:
    """Write ``pre.onnx``, ``post.onnx`` (with a post-processor) and ``model.json`` into ``folder`` (each whole or
    not at all); the paths written."""
    files = {folder / f"{name}.onnx": export_graph(processor, channels) for name, (processor, channels) in processors(module).items()}
    files[folder / "model.json"] = json.dumps(model_description(module, digest), indent=2).encode()
    write_files(files)
    return list(files)


@torch.no_grad()
def parity(module: SandwichModule, folder: Path, source: Tensor, knob: int) -> dict[str, float]:
    """The largest absolute difference between onnxruntime and torch for each graph in ``folder``: the
    pre-processor on ``source`` ``(1, channels, H, W)`` on [0, 1], the post-processor on its real-codec decode
    at ``knob`` (what it is given in use), both told ``knob``'s level."""
    level = torch.full((1,), module.codec.level_of(knob))
    out = module.code_real(source, knob)
    inputs = {"pre": source, "post": out.decoded}
    return {name: float((OnnxProcessor(folder / f"{name}.onnx")(inputs[name], level) - processor(inputs[name], level)).abs().max()) for name, (processor, _) in processors(module).items()}

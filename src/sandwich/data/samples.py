"""The embedded sample photos: natural photos that ship inside Python wheels (no download at run time).

Three *sources*, each a different collection (camera, content, processing), so that a model trained on
one is judged on photos of a kind it never saw:

* ``skimage``: scikit-image's sample photos (astronaut, a cat, coffee, a rocket, a motorcycle stereo
  pair, microscopy, astronomy, a retina; plus gray ones used only by the rate-model fit);
* ``matplotlib``: matplotlib's sample photo of Grace Hopper (a JPEG-compressed portrait);
* ``sporco``: the photos in SPORCO's wheel: Kodak ``kodim23`` (parrots), Waterloo ``monarch``, ``sail``,
  ``tulips`` and ``barbara``: saturated colour, smooth gradients, fine texture.

Roles (:data:`COLOR_TRAIN_PHOTOS`, :data:`COLOR_VAL_PHOTOS`, :data:`COLOR_EVAL_PHOTOS`): colour sandwiches
train on the scikit-image colour photos, select checkpoints on matplotlib's, and are evaluated on
SPORCO's (and on matplotlib's, also never trained on). The rate model is fitted on scikit-image and
matplotlib (:data:`RATE_FIT_PHOTOS`) and measured on SPORCO's.

Photo names are ``source/name`` (e.g. ``"sporco/monarch"``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from sandwich.errors import InputError


def _package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"sample photos: package {package!r} is not installed (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def _skimage(name: str) -> np.ndarray:
    if name.startswith("motorcycle_"):
        return skimage.data.stereo_motorcycle()[0 if name == "motorcycle_left" else 1]
    return getattr(skimage.data, name)()


def _file(package: str, relative: str) -> Callable[[str], np.ndarray]:
    """Loader of ``<package dir>/<relative % name>`` as an array."""

    def load(name: str) -> np.ndarray:
        with Image.open(_package_dir(package) / (relative % name)) as image:
            return np.asarray(image.convert("RGB"))

    return load


# source -> (loader of one photo by name, the source's photo names)
SOURCES: dict[str, tuple[Callable[[str], np.ndarray], tuple[str, ...]]] = {
    "skimage": (
        _skimage,
        ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "immunohistochemistry",
         "hubble_deep_field", "retina", "camera", "grass", "moon", "coins", "gravel", "brick", "page"),
    ),
    "matplotlib": (_file("matplotlib", "mpl-data/sample_data/%s.jpg"), ("grace_hopper",)),
    "sporco": (_file("sporco", "data/%s.png"), ("kodim23", "monarch", "sail", "tulips", "barbara")),
}

_SKIMAGE_COLOR = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "immunohistochemistry",
                  "hubble_deep_field", "retina")
COLOR_TRAIN_PHOTOS = tuple(f"skimage/{n}" for n in _SKIMAGE_COLOR)
COLOR_VAL_PHOTOS = ("matplotlib/grace_hopper",)
COLOR_EVAL_PHOTOS = tuple(f"sporco/{n}" for n in SOURCES["sporco"][1])
COLOR_PHOTOS_BY_SOURCE = {"skimage": COLOR_TRAIN_PHOTOS, "matplotlib": COLOR_VAL_PHOTOS, "sporco": COLOR_EVAL_PHOTOS}
RATE_FIT_PHOTOS = tuple(f"skimage/{n}" for n in SOURCES["skimage"][1]) + COLOR_VAL_PHOTOS
RATE_HELD_OUT_PHOTOS = COLOR_EVAL_PHOTOS


def source_of(photo: str) -> str:
    """``"sporco/monarch"`` -> ``"sporco"``; a name without a source is its own source."""
    return photo.split("/", 1)[0] if "/" in photo else photo


def load_photo(photo: str) -> np.ndarray:
    """One sample photo (``source/name``) as ``(H, W, 3)`` uint8 RGB (gray photos are replicated to three channels)."""
    source, _, name = photo.partition("/")
    if source not in SOURCES or name not in SOURCES[source][1]:
        raise InputError(f"sample photo {photo!r} unknown; sources: {', '.join(SOURCES)}")
    image = np.asarray(SOURCES[source][0](name), dtype=np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def load_photos(photos: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{photo: (H, W, 3) uint8}`` for the given ``source/name`` photos."""
    return {photo: load_photo(photo) for photo in photos}

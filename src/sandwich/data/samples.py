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

**Sample sets** (:data:`SAMPLE_SETS`, ``data.samples`` in the config) bundle photos of one kind with
their roles: ``color`` (the above, 3 channels), and two with more channels than a codec has:

* ``stereo`` (6 channels: left RGB then right RGB): view pairs from Debian's ``opencv-doc`` examples
  (``/usr/share/doc/opencv-doc/examples/data``: Middlebury's ``aloe`` stereo pair and the
  ``rubberwhale`` and ``basketball`` optical-flow frame pairs, and the ``books`` pair, ``left.jpg`` /
  ``right.jpg``) train and validate; scikit-image's Middlebury 2014 ``motorcycle`` stereo pair, another
  collection and camera, is the held-out evaluation source.
* ``rgba`` (4 channels, straight alpha): the 256x256 icons of Debian's ``oxygen-icon-theme`` (KDE's
  Oxygen, LGPL-3; every fifth ``places`` icon validates, the categories other than ``places`` train); the RGBA images inside the
  scikit-image and matplotlib wheels (``pypi``: the scikit-image logo, matplotlib's logo and a sprite),
  other designers and purposes, are the held-out evaluation source.

And one with more bits than a codec has:

* ``hdr`` (3 channels, 16 bits): the eight CC0 HDR panoramas (Greg Zaal, HDRI Haven; 1024x512, scene-linear
  float) that Debian's ``blender-data`` ships as Blender's studio lights, as 16-bit PQ code values
  (:func:`sandwich.transfer.exr_to_codes`: median luminance at 26 cd/m2). Split by panorama:
  ``blender`` (city, courtyard, forest, interior, studio) trains, ``blender/sunset`` validates, and
  ``blender_held_out`` (night, sunrise; never trained on) is the evaluation source.

The Debian data is installed by name (``apt-get install opencv-doc oxygen-icon-theme blender-data``;
``.ci/run`` does it); without it, asking for those sets says so in one line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from sandwich.data.images import read_image
from sandwich.errors import InputError
from sandwich.sample_format import dtype_for


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


def _read(path: Path, mode: str = "RGB") -> np.ndarray:
    """An image file converted to Pillow ``mode`` (``"RGB"``, ``"RGBA"``) as an array."""
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def _file(package: str, relative: str) -> Callable[[str], np.ndarray]:
    """Loader of ``<package dir>/<relative % name>`` as an array."""
    return lambda name: _read(_package_dir(package) / (relative % name))


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


OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
"""Where Debian's ``opencv-doc`` puts OpenCV's sample images."""
OXYGEN_ICONS = Path("/usr/share/icons/oxygen/base/256x256")
"""Where Debian's ``oxygen-icon-theme`` puts its 256x256 PNG icons (one folder per category)."""
_OPENCV_PAIRS = {"aloe": ("aloeL.jpg", "aloeR.jpg"), "books": ("left.jpg", "right.jpg"), "basketball": ("basketball1.png", "basketball2.png"),
                 "rubberwhale": ("rubberwhale1.png", "rubberwhale2.png")}


def _debian_file(path: Path, package: str) -> Path:
    if not path.exists():
        raise InputError(f"sample photos: {path} is missing; install the Debian package {package} (apt-get install {package})")
    return path


def _stereo(name: str) -> np.ndarray:
    """A view pair as ``(H, W, 6)`` uint8: left RGB, right RGB."""
    if name == "motorcycle":
        left, right, _ = skimage.data.stereo_motorcycle()
    else:
        left, right = (_read(_debian_file(OPENCV_DATA / file, "opencv-doc")) for file in _OPENCV_PAIRS[name])
    return np.concatenate([left, right], axis=2)


@cache
def oxygen_icons() -> dict[str, Path]:
    """``{category/name: file}`` of Oxygen's 256x256 icons; InputError naming the package when it is not installed."""
    return {f"{p.parent.name}/{p.stem}": p for p in sorted(_debian_file(OXYGEN_ICONS, "oxygen-icon-theme").glob("*/*.png"))}


def _oxygen(name: str) -> np.ndarray:
    return _read(_debian_file(OXYGEN_ICONS / f"{name}.png", "oxygen-icon-theme"), "RGBA")


def _wheel_rgba(name: str) -> np.ndarray:
    if name == "skimage_logo":
        return skimage.data.logo()
    file = {"matplotlib_logo": "logo2.png", "minduka_sprite": "Minduka_Present_Blue_Pack.png"}[name]
    return _read(_package_dir("matplotlib") / "mpl-data/sample_data" / file, "RGBA")


BLENDER_WORLDS = Path("/usr/share/blender/datafiles/studiolights/world")
"""Where Debian's ``blender-data`` puts Blender's HDR studio-light panoramas (OpenEXR)."""


@cache
def _blender_codes(name: str) -> np.ndarray:
    """One panorama as ``(512, 1024, 3)`` 16-bit PQ codes, decoded once per process (DWAB decoding and
    the PQ conversion take about 0.1 s a panorama)."""
    return read_image(_debian_file(BLENDER_WORLDS / f"{name}.exr", "blender-data"), 3, 16)


def _blender(name: str) -> np.ndarray:
    return _blender_codes(name).copy()


@dataclass(frozen=True)
class SampleSet:
    """Embedded photos of one kind, ``(H, W, channels)`` samples of ``bit_depth`` bits each (uint8 for 8,
    uint16 for 9..16), with their roles.

    ``sources``: source -> (loader of one photo by name, its photo names, or a function listing them);
    ``train`` / ``val``: sources (or ``source/name`` photos) training and checkpoint selection use;
    ``held_out``: the evaluation source none of them comes from.
    """

    name: str
    channels: int
    sources: dict[str, tuple[Callable[[str], np.ndarray], tuple[str, ...] | Callable[[], tuple[str, ...]]]]
    train: tuple[str, ...]
    val: tuple[str, ...]
    held_out: str
    bit_depth: int = 8

    def _source(self, source: str) -> tuple[Callable[[str], np.ndarray], tuple[str, ...] | Callable[[], tuple[str, ...]]]:
        if source not in self.sources:
            raise InputError(f"sample set {self.name!r} has no source {source!r}; its sources: {', '.join(self.sources)}")
        return self.sources[source]

    def names(self, source: str) -> tuple[str, ...]:
        """The ``source/name`` photos of one source."""
        names = self._source(source)[1]
        return tuple(f"{source}/{n}" for n in (names() if callable(names) else names))

    def photos(self, roles: tuple[str, ...]) -> tuple[str, ...]:
        """The photos of ``roles`` (whole sources, or ``source/name`` photos)."""
        return tuple(p for role in roles for p in (self.names(role) if "/" not in role else (role,)))

    def load(self, photos: tuple[str, ...]) -> dict[str, np.ndarray]:
        """``{photo: (H, W, channels)}`` samples of ``bit_depth`` bits."""
        loaded = {}
        for photo in photos:
            source, _, name = photo.partition("/")
            loaded[photo] = np.asarray(self._source(source)[0](name), dtype=dtype_for(self.bit_depth))
        return loaded


def _color(source: str) -> Callable[[str], np.ndarray]:
    return lambda name: load_photo(f"{source}/{name}")


SAMPLE_SETS: dict[str, SampleSet] = {
    s.name: s
    for s in (
        SampleSet(
            "color", 3, {source: (_color(source), tuple(p.split("/")[1] for p in photos)) for source, photos in COLOR_PHOTOS_BY_SOURCE.items()},
            train=COLOR_TRAIN_PHOTOS, val=COLOR_VAL_PHOTOS, held_out="sporco",
        ),
        SampleSet(
            "stereo", 6, {"opencv": (_stereo, tuple(_OPENCV_PAIRS)), "skimage": (_stereo, ("motorcycle",))},
            train=("opencv/aloe", "opencv/books", "opencv/basketball"), val=("opencv/rubberwhale",), held_out="skimage",
        ),
        SampleSet(
            "rgba", 4,
            {
                "oxygen": (_oxygen, lambda: tuple(n for n in oxygen_icons() if not n.startswith("places/"))),
                "oxygen_places": (_oxygen, lambda: tuple(n for n in oxygen_icons() if n.startswith("places/"))[::5]),
                "pypi": (_wheel_rgba, ("skimage_logo", "matplotlib_logo", "minduka_sprite")),
            },
            train=("oxygen",), val=("oxygen_places",), held_out="pypi",
        ),
        SampleSet(
            "hdr", 3,
            {"blender": (_blender, ("city", "courtyard", "forest", "interior", "studio", "sunset")), "blender_held_out": (_blender, ("night", "sunrise"))},
            train=("blender/city", "blender/courtyard", "blender/forest", "blender/interior", "blender/studio"), val=("blender/sunset",),
            held_out="blender_held_out", bit_depth=16,
        ),
    )
}
"""The embedded sample sets by name (``data.samples``; module doc)."""


def sample_set(name: str) -> SampleSet:
    """The sample set ``name`` (a key of :data:`SAMPLE_SETS`); InputError for another."""
    if name not in SAMPLE_SETS:
        raise InputError(f"data.samples={name!r} unknown; sample sets: {', '.join(SAMPLE_SETS)}")
    return SAMPLE_SETS[name]

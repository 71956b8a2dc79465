"""The embedded sample photos: natural photos that ship inside scikit-image's wheel (no download).

They are split once, by name, into a *fit* set (used to fit the calibration-free rate model and, later,
to train the demo) and a *held-out* set (used to measure on photos nothing was fitted on). The split
keeps the two views of the motorcycle stereo pair together.
"""

from __future__ import annotations

import numpy as np
import skimage.data

# name -> skimage.data loader; all are 8-bit, RGB or gray.
FIT_PHOTOS = ("astronaut", "chelsea", "motorcycle_left", "motorcycle_right", "immunohistochemistry", "camera", "grass", "moon")
HELD_OUT_PHOTOS = ("coffee", "rocket", "hubble_deep_field", "retina", "coins", "gravel", "brick", "page")
# The colour photos of each set: training and evaluating colour sandwiches on gray photos says nothing.
COLOR_FIT_PHOTOS = ("astronaut", "chelsea", "motorcycle_left", "motorcycle_right", "immunohistochemistry")
COLOR_HELD_OUT_PHOTOS = ("coffee", "rocket", "hubble_deep_field", "retina")


def load_photo(name: str) -> np.ndarray:
    """One sample photo as ``(H, W, 3)`` uint8 RGB (gray photos are replicated to three channels)."""
    if name == "motorcycle_left":
        image = skimage.data.stereo_motorcycle()[0]
    elif name == "motorcycle_right":
        image = skimage.data.stereo_motorcycle()[1]
    else:
        image = getattr(skimage.data, name)()
    image = np.asarray(image, dtype=np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]


def load_photos(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``{name: (H, W, 3) uint8}`` for the given sample photo names."""
    return {name: load_photo(name) for name in names}

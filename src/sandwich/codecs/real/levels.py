"""A real codec's rate knob as a *level*: the quantiser's coarseness in octaves, on JPEG's scale.

The sandwich's processors are told the codec's level (:mod:`sandwich.nets.processor`) and the proxy
codes at it in training (:mod:`sandwich.codecs.stage`). Level 0 is IJG quality 50; one octave up
doubles every quantiser step:

* **JPEG** (exact): ``level = log2(mean luma step / mean luma step of IJG q50)``, from the tables
  libjpeg's ``jpeg_set_quality`` writes (q10 +1.77, q30 +0.73, q70 -0.74, q90 -2.33, q95 -3.32).
* **Every other codec** (measured): the level of the JPEG quality whose error is that of the knob
  value. :mod:`sandwich.fitting.levels` codes the training photos with the codec over its knob range
  and with JPEG of the same layout over qualities 1..100, and records, per knob value, the JPEG level
  of equal mean ``log MSE`` (``levels.json`` beside this file). HEVC's step doubles every 6 QP
  (``Qstep = 2**((QP - 4) / 6)``), and the measured table roughly follows that law,
  ``level ≈ (QP - QP0) / s``: for x265 4:2:0, level 0 (JPEG q50's error) is QP 36.2 and a straight
  line through the whole table has s = 5.7 QP per octave (4.5 to 5 between JPEG q95 and q25, where
  the two codecs' errors do not scale alike: x265's rate-distortion-optimised quantisation and intra
  prediction). Beyond JPEG's own range (q1 to q100, levels about -5.8 to +2) the table saturates.

A learned proxy step maps back to a knob the same way: :meth:`KnobLevels.knob` returns the knob value
whose level is nearest (for JPEG the learned tables themselves are written instead; see
:meth:`sandwich.codecs.stage.CodecStage.code_real`).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.real.base import RealCodec
from sandwich.errors import InputError

LEVELS_PATH = Path(__file__).with_name("levels.json")
REFERENCE_LUMA_STEP = float(ijg_tables(50)[0].mean())  # mean luma step of IJG quality 50: level 0


def level_of_steps(luma_step: np.ndarray | float) -> float:
    """The level of a luma step table ``(8, 8)`` or flat step (JPEG's exact definition above)."""
    return float(np.log2(float(np.asarray(luma_step, dtype=np.float64).mean()) / REFERENCE_LUMA_STEP))


def layout(codec: RealCodec) -> str:
    """``"name/subsampling/bit_depth"`` of a codec instance: the key of its calibration."""
    subsampling = getattr(codec, "subsampling", "400" if codec.channels == 1 else "420")
    return f"{codec.name}/{subsampling}/{codec.bit_depth}"


@cache
def _calibrations() -> dict[str, dict]:
    return json.loads(LEVELS_PATH.read_text()) if LEVELS_PATH.is_file() else {}


class KnobLevels:
    """Knob value <-> level for one real codec (module doc)."""

    def __init__(self, codec: RealCodec) -> None:
        self.codec = codec
        low, high = codec.knob_range
        self.knobs = np.arange(low, high + 1)
        exact = [codec.exact_level(int(k)) for k in self.knobs]
        if all(level is not None for level in exact):
            levels = exact
        else:
            entry = _calibrations().get(layout(codec))
            if entry is None:
                raise InputError(
                    f"no level calibration for {layout(codec)}; run: python -m sandwich.fitting.levels --codec {layout(codec)}"
                )
            levels = np.interp(self.knobs, entry["knobs"], entry["levels"])
        self.levels = np.asarray(levels, dtype=np.float64)

    def level(self, knob: int) -> float:
        """The level (octaves) of knob value ``knob``."""
        self.codec.check_knob(int(knob))
        return float(self.levels[int(knob) - self.knobs[0]])

    def knob(self, level: float) -> int:
        """The knob value whose level is nearest ``level``."""
        return int(self.knobs[np.argmin(np.abs(self.levels - level))])

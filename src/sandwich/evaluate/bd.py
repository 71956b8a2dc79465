"""Pareto fronts and Bjøntegaard-delta (BD) figures between two rate-distortion curves.

Rates are in bpp (bits per source pixel, > 0), quality in dB (PSNR). The BD figures themselves come from
the maintained ``bjontegaard`` package (FAU-LMS); this module only prepares the curves and decides when
an overlap is too small for a figure to mean anything.

Overlap rule (:data:`MIN_OVERLAP`): a BD figure averages the gap between two curves over the interval
where both are defined — log10(bpp) for BD-PSNR, PSNR for BD-rate. It is reported only when that
interval is at least 20 % as long as the shorter of the two curves' intervals on the same axis;
otherwise the figure is ``None`` and ``note`` says why, with both ranges. Interpolation never
extrapolates: the interval lies inside both curves' sampled ranges.
"""

from __future__ import annotations

from typing import Sequence

import bjontegaard
import numpy as np

from sandwich.errors import InputError

MIN_POINTS = 4
"""Fewest RD points accepted per curve (before the Pareto front is taken)."""

MIN_OVERLAP = 0.2
"""Smallest overlap of the two curves, as a fraction of the shorter curve's range, that gives a BD figure."""

INTERPOLATIONS = {
    "pchip": "pchip (bjontegaard package, piecewise cubic Hermite, as in the JCT-VC/JVET CTC sheets)",
    "akima": "akima (bjontegaard package, Akima spline)",
    "cubic": "cubic (bjontegaard package, one cubic polynomial fit, as in VCEG-M33)",
}
"""Interpolation methods of the ``bjontegaard`` package and how reports name them."""

_MIN_FRONT_POINTS = {"pchip": 2, "akima": 2, "cubic": 4}
"""Fewest Pareto-front points each method interpolates (a cubic polynomial needs 4)."""


def pareto_front(bpp: Sequence[float], psnr: Sequence[float]) -> tuple[list[float], list[float]]:
    """The upper-left envelope of RD points: those no other point dominates, sorted by bpp.

    A point is dominated when another has lower-or-equal bpp and higher-or-equal PSNR, strictly better
    in one (exact duplicates are kept once). The front is strictly increasing in both bpp and PSNR.
    Used to merge a baseline swept over two knobs (e.g. quality × embedding strength) into one curve.

    Args:
        bpp: rates in bits per source pixel.
        psnr: qualities in dB (any "higher is better" metric works), same length as ``bpp``.

    Returns:
        ``(bpp, psnr)`` of the front, ascending.

    Example:
        >>> pareto_front([0.5, 0.3, 0.4, 0.6], [30.0, 28.0, 27.0, 29.0])
        ([0.3, 0.5], [28.0, 30.0])
    """
    rates = np.asarray(bpp, dtype=np.float64)
    quality = np.asarray(psnr, dtype=np.float64)
    if rates.ndim != 1 or rates.shape != quality.shape:
        raise InputError(f"pareto_front: bpp and psnr must be equal-length lists, got {rates.shape} and {quality.shape}")
    if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(quality))):
        raise InputError("pareto_front: bpp and psnr must be finite numbers")
    # By rate ascending, ties by quality descending: a point is on the front iff it beats every earlier one.
    order = np.lexsort((-quality, rates))
    front_bpp: list[float] = []
    front_psnr: list[float] = []
    for i in order:
        if not front_psnr or quality[i] > front_psnr[-1]:
            front_bpp.append(float(rates[i]))
            front_psnr.append(float(quality[i]))
    return front_bpp, front_psnr


def bd_metrics(
    anchor_bpp: Sequence[float],
    anchor_psnr: Sequence[float],
    test_bpp: Sequence[float],
    test_psnr: Sequence[float],
    interpolation: str = "pchip",
) -> dict:
    """BD-rate and BD-PSNR of a test curve against an anchor curve, on their Pareto fronts.

    Args:
        anchor_bpp, anchor_psnr: the anchor's (baseline's) RD points, bpp > 0 and dB; at least 4.
        test_bpp, test_psnr: the test curve's RD points, same units; at least 4.
        interpolation: ``"pchip"`` (default, the video-standards choice), ``"akima"`` or ``"cubic"``.

    Returns:
        ``{"bd_rate_percent": float | None, "bd_psnr_db": float | None, "interpolation": str,
        "note": str | None}``. ``bd_rate_percent`` is the average rate change at equal PSNR in percent
        (negative: the test saves rate); ``bd_psnr_db`` the average PSNR gain at equal rate in dB
        (positive: the test is better). A figure is ``None`` when the curves overlap too little on its
        axis (see the module docstring); ``note`` then says why, otherwise it is ``None``.

    Raises:
        InputError: fewer than 4 points, unequal lengths, non-finite values, bpp <= 0, or an unknown
            interpolation.

    Example:
        >>> r = bd_metrics([0.1, 0.2, 0.4, 0.8], [28, 31, 34, 37], [0.1, 0.2, 0.4, 0.8], [29, 32, 35, 38])
        >>> round(r["bd_psnr_db"], 6), r["bd_rate_percent"] < 0
        (1.0, True)
    """
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"bd_metrics: unknown interpolation {interpolation!r}, expected one of {sorted(INTERPOLATIONS)}")
    _check_curve("anchor", anchor_bpp, anchor_psnr)
    _check_curve("test", test_bpp, test_psnr)
    a_bpp, a_psnr = pareto_front(anchor_bpp, anchor_psnr)
    t_bpp, t_psnr = pareto_front(test_bpp, test_psnr)
    result: dict = {
        "bd_rate_percent": None,
        "bd_psnr_db": None,
        "interpolation": INTERPOLATIONS[interpolation],
        "note": None,
    }

    min_front = _MIN_FRONT_POINTS[interpolation]
    if len(a_bpp) < min_front or len(t_bpp) < min_front:
        result["note"] = (
            f"too few Pareto-front points for {interpolation} interpolation (need {min_front}): "
            f"anchor {len(a_bpp)}, test {len(t_bpp)}"
        )
        return result

    notes = []
    rate_note = _overlap_note("rate", np.log10(a_bpp), np.log10(t_bpp), a_bpp, t_bpp, "bpp", "{:.3g}")
    if rate_note is None:
        result["bd_psnr_db"] = float(
            bjontegaard.bd_psnr(a_bpp, a_psnr, t_bpp, t_psnr, method=interpolation,
                                require_matching_points=False, min_overlap=0)
        )
    else:
        notes.append(rate_note)
    psnr_note = _overlap_note("PSNR", np.asarray(a_psnr), np.asarray(t_psnr), a_psnr, t_psnr, "dB", "{:.1f}")
    if psnr_note is None:
        result["bd_rate_percent"] = float(
            bjontegaard.bd_rate(a_bpp, a_psnr, t_bpp, t_psnr, method=interpolation,
                                require_matching_points=False, min_overlap=0)
        )
    else:
        notes.append(psnr_note)
    if notes:
        result["note"] = "; ".join(notes)
    return result


def psnr_gap_range(
    anchor_bpp: Sequence[float], anchor_psnr: Sequence[float], test_bpp: Sequence[float], test_psnr: Sequence[float]
) -> dict:
    """The smallest and largest PSNR gain (dB) of the test's Pareto front over the anchor's, at equal rate.

    Both fronts are interpolated piecewise linearly in log10(bpp), and the gap ``test - anchor`` is taken
    at every front point of either curve inside the rate range both cover (no extrapolation). A BD figure
    is an average; this says whether the test is below the anchor *anywhere* (``min_gain_db < 0``).

    Returns:
        ``{"min_gain_db", "max_gain_db", "at_bpp_min", "at_bpp_max"}``, all None when the rate ranges do
        not overlap.

    Example:
        >>> r = psnr_gap_range([0.1, 0.2, 0.4], [28, 31, 34], [0.1, 0.2, 0.4], [28.5, 31, 35])
        >>> r["min_gain_db"], r["max_gain_db"], r["at_bpp_min"]
        (0.0, 1.0, 0.2)
    """
    a_bpp, a_psnr = pareto_front(anchor_bpp, anchor_psnr)
    t_bpp, t_psnr = pareto_front(test_bpp, test_psnr)
    low, high = max(a_bpp[0], t_bpp[0]), min(a_bpp[-1], t_bpp[-1])
    rates = np.array(sorted({r for r in [*a_bpp, *t_bpp] if low <= r <= high}))
    if len(rates) == 0:
        return {"min_gain_db": None, "max_gain_db": None, "at_bpp_min": None, "at_bpp_max": None}
    gaps = np.interp(np.log10(rates), np.log10(t_bpp), t_psnr) - np.interp(np.log10(rates), np.log10(a_bpp), a_psnr)
    lo, hi = int(np.argmin(gaps)), int(np.argmax(gaps))
    return {"min_gain_db": float(gaps[lo]), "max_gain_db": float(gaps[hi]), "at_bpp_min": float(rates[lo]), "at_bpp_max": float(rates[hi])}


def _check_curve(name: str, bpp: Sequence[float], psnr: Sequence[float]) -> None:
    """Raise :class:`InputError` unless ``bpp``/``psnr`` are equal-length, finite, >= 4 points, bpp > 0."""
    if len(bpp) != len(psnr):
        raise InputError(f"bd_metrics: {name} has {len(bpp)} bpp values but {len(psnr)} PSNR values")
    if len(bpp) < MIN_POINTS:
        raise InputError(f"bd_metrics: {name} has {len(bpp)} RD points, need at least {MIN_POINTS}")
    try:
        values = np.asarray([*bpp, *psnr], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"bd_metrics: {name} has a bpp or PSNR value that is not a number") from None
    if not np.all(np.isfinite(values)):
        raise InputError(f"bd_metrics: {name} has a non-finite bpp or PSNR value")
    if values[: len(bpp)].min() <= 0:
        raise InputError(f"bd_metrics: {name} has a bpp <= 0 ({values[: len(bpp)].min()}); rates must be positive")


def _overlap_note(
    axis: str,
    anchor_axis: np.ndarray,
    test_axis: np.ndarray,
    anchor_shown: Sequence[float],
    test_shown: Sequence[float],
    unit: str,
    fmt: str,
) -> str | None:
    """``None`` if the curves overlap enough on this axis (see :data:`MIN_OVERLAP`), else why not.

    ``anchor_axis``/``test_axis`` are the integration-axis values (log10 bpp or dB) the rule is applied
    to; ``anchor_shown``/``test_shown`` the same points in the units the note prints (bpp or dB).
    """
    overlap = min(anchor_axis.max(), test_axis.max()) - max(anchor_axis.min(), test_axis.min())
    shorter = min(np.ptp(anchor_axis), np.ptp(test_axis))
    ranges = (
        f"anchor {fmt.format(min(anchor_shown))}–{fmt.format(max(anchor_shown))} {unit}, "
        f"test {fmt.format(min(test_shown))}–{fmt.format(max(test_shown))} {unit}"
    )
    if overlap <= 0:
        return f"{axis} ranges do not overlap: {ranges}"
    if overlap < MIN_OVERLAP * shorter:
        return (
            f"{axis} ranges overlap by {overlap / shorter:.0%} of the shorter curve's range, "
            f"less than {MIN_OVERLAP:.0%}: {ranges}"
        )
    return None

"""BD figures against known values, Pareto fronts, and the report writers (PNG plots, HTML)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sandwich.errors import InputError
from sandwich.evaluate.bd import bd_metrics, pareto_front
from sandwich.evaluate.report import plot_rd, results_entry, save_examples, write_index_html

# A JPEG-like anchor: PSNR rises ~3 dB per doubling of rate, flattening at high rates.
BPP = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [26.0, 29.5, 32.6, 35.3, 37.5]

# README example of the bjontegaard package (FAU-LMS/bjontegaard README.md and example_usage.py, "Test 1":
# libx265 presets measured with ffmpeg; rates in kbit/s, PSNR in dB).
README_RATE_ANCHOR = [9487.76, 4593.60, 2486.44, 1358.24]
README_PSNR_ANCHOR = [40.037, 38.615, 36.845, 34.851]
README_RATE_TEST = [9787.80, 4469.00, 2451.52, 1356.24]
README_PSNR_TEST = [40.121, 38.651, 36.970, 34.987]


def _vceg_m33(anchor_rate, anchor_psnr, test_rate, test_psnr) -> tuple[float, float]:
    """Independent reference: Bjøntegaard's VCEG-M33 formulas (cubic fits in log rate), numpy only."""
    la, lt = np.log10(anchor_rate), np.log10(test_rate)
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    pa, pt = np.polyint(np.polyfit(la, anchor_psnr, 3)), np.polyint(np.polyfit(lt, test_psnr, 3))
    bd_psnr = ((np.polyval(pt, hi) - np.polyval(pt, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo)
    lo, hi = max(min(anchor_psnr), min(test_psnr)), min(max(anchor_psnr), max(test_psnr))
    ra, rt = np.polyint(np.polyfit(anchor_psnr, la, 3)), np.polyint(np.polyfit(test_psnr, lt, 3))
    mean_log_ratio = ((np.polyval(rt, hi) - np.polyval(rt, lo)) - (np.polyval(ra, hi) - np.polyval(ra, lo))) / (hi - lo)
    return float((10**mean_log_ratio - 1) * 100), float(bd_psnr)


@pytest.mark.parametrize("interpolation", ["pchip", "akima", "cubic"])
def test_bd_psnr_of_a_curve_shifted_up_by_one_db(interpolation: str) -> None:
    r = bd_metrics(BPP, PSNR, BPP, [p + 1.0 for p in PSNR], interpolation)
    assert r["bd_psnr_db"] == pytest.approx(1.0, abs=1e-9)
    assert r["bd_rate_percent"] < -5.0  # ~3 dB per doubling: +1 dB is worth roughly 20 % of rate
    assert r["interpolation"].startswith(interpolation)
    assert r["note"] is None


@pytest.mark.parametrize("interpolation", ["pchip", "akima", "cubic"])
def test_bd_rate_of_a_curve_at_nine_tenths_of_the_rate(interpolation: str) -> None:
    r = bd_metrics(BPP, PSNR, [b * 0.9 for b in BPP], PSNR, interpolation)
    assert r["bd_rate_percent"] == pytest.approx(-10.0, abs=1e-9)
    assert r["bd_psnr_db"] > 0.1
    assert r["note"] is None


def test_identical_curves_give_zero() -> None:
    r = bd_metrics(BPP, PSNR, BPP, PSNR)
    assert r["bd_rate_percent"] == pytest.approx(0.0, abs=1e-12)
    assert r["bd_psnr_db"] == pytest.approx(0.0, abs=1e-12)


def test_worse_test_curve_costs_rate() -> None:
    r = bd_metrics(BPP, PSNR, [b * 1.25 for b in BPP], [p - 0.2 for p in PSNR])
    assert r["bd_rate_percent"] > 25.0
    assert r["bd_psnr_db"] < -0.2


def test_bjontegaard_readme_example_matches_vceg_m33_and_pchip_value() -> None:
    # The bjontegaard package prints but does not publish its results for its README example, so:
    # (1) with "cubic" it must agree with an independent numpy implementation of VCEG-M33;
    # (2) "pchip" is pinned to the value bjontegaard 1.3.0 gives (-4.4175 %, +0.1197 dB): the test curve
    #     saves ~4.4 % rate, consistent with its slightly higher PSNR at about the same rates.
    cubic = bd_metrics(README_RATE_ANCHOR, README_PSNR_ANCHOR, README_RATE_TEST, README_PSNR_TEST, "cubic")
    ref_rate, ref_psnr = _vceg_m33(README_RATE_ANCHOR, README_PSNR_ANCHOR, README_RATE_TEST, README_PSNR_TEST)
    assert cubic["bd_rate_percent"] == pytest.approx(ref_rate, abs=1e-8)
    assert cubic["bd_psnr_db"] == pytest.approx(ref_psnr, abs=1e-8)
    assert ref_rate == pytest.approx(-4.4205, abs=1e-4)
    pchip = bd_metrics(README_RATE_ANCHOR, README_PSNR_ANCHOR, README_RATE_TEST, README_PSNR_TEST)
    assert pchip["bd_rate_percent"] == pytest.approx(-4.417485, abs=1e-5)
    assert pchip["bd_psnr_db"] == pytest.approx(0.119693, abs=1e-5)


def test_flat_gray_baseline_gets_bd_psnr_but_no_bd_rate() -> None:
    # The real case: a gray baseline stuck near 21 dB against a sandwich at 22-32 dB, same rates.
    gray = [20.1, 20.5, 20.8, 21.0, 21.3]
    sandwich = [22.0, 25.0, 27.8, 30.1, 32.0]
    r = bd_metrics(BPP, gray, BPP, sandwich)
    assert r["bd_rate_percent"] is None
    assert 22.0 - 20.1 < r["bd_psnr_db"] < 32.0 - 21.3  # between the smallest and largest gap
    assert r["note"] == "PSNR ranges do not overlap: anchor 20.1–21.3 dB, test 22.0–32.0 dB"


def test_small_overlap_is_refused_with_a_note() -> None:
    # PSNR overlap 35.5-37.5 dB is 2.0 dB: 19 % of the shorter range, the test's 35.5-46.0 dB (10.5 dB).
    test_psnr = [35.5, 38.0, 41.0, 44.0, 46.0]
    r = bd_metrics(BPP, PSNR, BPP, test_psnr)
    assert r["bd_rate_percent"] is None
    assert "PSNR ranges overlap by 19%" in r["note"]
    assert r["bd_psnr_db"] is not None


def test_no_rate_overlap_gives_no_bd_psnr() -> None:
    r = bd_metrics(BPP, PSNR, [b * 100 for b in BPP], PSNR)
    assert r["bd_psnr_db"] is None
    assert r["note"].startswith("rate ranges do not overlap: anchor 0.1–1.6 bpp, test 10–160 bpp")


def test_bd_metrics_uses_the_pareto_front_of_a_two_knob_sweep() -> None:
    # Dominated points (a bad embedding strength) must not drag the curve down.
    swept_bpp = BPP + [0.3, 0.7, 1.5]
    swept_psnr = PSNR + [27.0, 30.0, 33.0]
    r = bd_metrics(BPP, PSNR, swept_bpp, swept_psnr)
    assert r["bd_psnr_db"] == pytest.approx(0.0, abs=1e-12)
    assert r["bd_rate_percent"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((BPP[:3], PSNR[:3], BPP, PSNR), "anchor has 3 RD points, need at least 4"),
        ((BPP, PSNR, BPP, PSNR[:4]), "test has 5 bpp values but 4 PSNR values"),
        ((BPP, PSNR, [0.0, *BPP[1:]], PSNR), "test has a bpp <= 0"),
        ((BPP, [float("nan"), *PSNR[1:]], BPP, PSNR), "anchor has a non-finite"),
    ],
)
def test_bad_input_raises_one_line(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        bd_metrics(*args)
    assert "\n" not in str(info.value)


def test_unknown_interpolation_raises() -> None:
    with pytest.raises(InputError, match="unknown interpolation 'linear'"):
        bd_metrics(BPP, PSNR, BPP, PSNR, interpolation="linear")


def test_pareto_front_drops_dominated_points() -> None:
    bpp = [0.5, 0.3, 0.4, 0.6, 0.3, 0.5, 0.8]
    psnr = [30.0, 28.0, 27.0, 29.0, 26.0, 30.0, 31.0]
    # 0.4/27 (worse than 0.3/28), 0.6/29 (worse than 0.5/30), 0.3/26 (same rate, lower), duplicate 0.5/30.
    assert pareto_front(bpp, psnr) == ([0.3, 0.5, 0.8], [28.0, 30.0, 31.0])


def test_pareto_front_rejects_unequal_lengths() -> None:
    with pytest.raises(InputError, match="equal-length"):
        pareto_front([0.1, 0.2], [30.0])


def test_results_entry_is_compressai_format() -> None:
    entry = results_entry("sandwich-jpeg", "U-Net pre/post around JPEG", {"bpp": [0.5, 1], "psnr-rgb": [30, 33]})
    assert entry == {
        "name": "sandwich-jpeg",
        "description": "U-Net pre/post around JPEG",
        "results": {"bpp": [0.5, 1.0], "psnr-rgb": [30.0, 33.0]},
    }
    with pytest.raises(InputError, match="differ in length"):
        results_entry("x", "", {"bpp": [0.5, 1.0], "psnr-rgb": [30.0]})


def test_plot_rd_writes_a_png(tmp_path) -> None:
    path = tmp_path / "plots" / "rd.png"
    plot_rd({"jpeg": {"bpp": BPP, "psnr-rgb": PSNR}, "sandwich": {"bpp": BPP, "psnr-rgb": [p + 1 for p in PSNR]}},
            path, "RD on coffee")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (640, 480)
    with pytest.raises(InputError, match="lacks"):
        plot_rd({"jpeg": {"bpp": BPP}}, tmp_path / "bad.png", "bad")


def test_save_examples_grid_grows_with_rows_and_columns(tmp_path, photo_crop: np.ndarray) -> None:
    gray = photo_crop.mean(axis=2).astype(np.uint8)
    two = [("coffee", [("source", photo_crop), ("bottleneck", gray)])]
    four = [("coffee", [("source", photo_crop), ("bottleneck", gray),
                        ("sandwich 0.52 bpp 27.1 dB", photo_crop), ("gray 0.50 bpp 21.0 dB", gray)])]
    save_examples(two, tmp_path / "two.png")
    save_examples(four, tmp_path / "four.png")
    save_examples(two + two, tmp_path / "two_rows.png")
    with Image.open(tmp_path / "two.png") as a, Image.open(tmp_path / "four.png") as b, \
            Image.open(tmp_path / "two_rows.png") as c:
        assert b.width > a.width and b.height == a.height
        assert c.height > a.height and c.width == a.width
    with pytest.raises(InputError, match="must be uint8"):
        save_examples([("bad", [("float", photo_crop.astype(np.float32))])], tmp_path / "bad.png")


def test_index_html_escapes_text_and_links_images(tmp_path) -> None:
    path = tmp_path / "index.html"
    write_index_html(
        path,
        "Sandwich <JPEG> report",
        ["BD-rate < 0 means the sandwich saves rate & wins."],
        [{"baseline": "gray", "BD-rate (%)": "n/a", "BD-PSNR (dB)": "+6.12"}],
        [("RD curves", "rd.png"), ("Examples", "examples/grid.png")],
    )
    page = path.read_text(encoding="utf-8")
    assert "BD-rate &lt; 0 means the sandwich saves rate &amp; wins." in page
    assert "<JPEG>" not in page and "Sandwich &lt;JPEG&gt; report" in page
    assert '<img src="rd.png"' in page and '<img src="examples/grid.png"' in page
    assert "<th>BD-PSNR (dB)</th>" in page and "<td>+6.12</td>" in page


def test_psnr_gap_range_finds_the_worst_rate_between_front_points():
    """A test curve above the anchor on average but below it at one rate: the gap range shows the dip."""
    from sandwich.evaluate.bd import psnr_gap_range

    anchor_bpp, anchor_psnr = [0.1, 0.2, 0.4, 0.8], [28.0, 31.0, 34.0, 37.0]
    test_bpp, test_psnr = [0.1, 0.3, 0.4, 0.8], [29.0, 31.5, 35.0, 38.0]  # the anchor at 0.3 bpp: 31 + 3*log(1.5)/log(2)
    gap = psnr_gap_range(anchor_bpp, anchor_psnr, test_bpp, test_psnr)
    assert gap["at_bpp_min"] == 0.3 and gap["min_gain_db"] == pytest.approx(31.5 - (31 + 3 * np.log(1.5) / np.log(2)))
    assert gap["max_gain_db"] == pytest.approx(1.0)
    assert psnr_gap_range([1, 2], [30, 33], [3, 4], [35, 36])["min_gain_db"] is None  # no common rate

"""The quality metrics of reports by CompressAI results key: one table of how a report names each, the
label (with units) of its RD plot's axis, and that plot's file.

Every report has :data:`REPORTED`; a multi-part source adds ``psnr-part-<part>`` per channel part, and a
model with perceptual metrics adds ``<name>-db`` per distance (``-10 log10`` of it, so that every quality
key rises with quality and is in dB).
"""

from __future__ import annotations

from dataclasses import dataclass

PART_PREFIX = "psnr-part-"
DB_SUFFIX = "-db"


@dataclass(frozen=True)
class MetricName:
    """How one results key is shown: ``name`` in tables and printed lines, ``axis`` on an RD plot, ``figure`` the plot's file."""

    name: str
    axis: str
    figure: str


REPORTED = {
    "psnr-rgb": MetricName("PSNR", "PSNR, RGB (dB)", "rd.png"),
    "psnr-y": MetricName("PSNR-Y", "PSNR, luma (dB)", "rd_psnr-y.png"),
    "ms-ssim-db": MetricName("MS-SSIM (dB)", "MS-SSIM (dB, −10·log10(1 − MS-SSIM))", "rd_ms-ssim.png"),
}
"""The quality metrics every report has."""
OTHERS = {
    "ms-ssim-rgb": MetricName("MS-SSIM", "MS-SSIM, RGB (0–1, higher is better)", "rd_ms-ssim-rgb.png"),
    "lpips": MetricName("LPIPS", "LPIPS (lower is better)", "rd_lpips.png"),
}


def metric_name(key: str) -> MetricName:
    """How results key ``key`` is shown (module docstring); an unknown key as it is."""
    if key in REPORTED or key in OTHERS:
        return (REPORTED | OTHERS)[key]
    if key.startswith(PART_PREFIX):
        part = key.removeprefix(PART_PREFIX)
        return MetricName(f"PSNR {part}", f"PSNR, {part} (dB)", f"rd_{key}.png")
    if key.endswith(DB_SUFFIX):
        distance = key.removesuffix(DB_SUFFIX).upper()
        return MetricName(f"{distance} (dB)", f"{distance} (dB, −10·log10 {distance})", f"rd_{key}.png")
    return MetricName(key, key, f"rd_{key}.png")

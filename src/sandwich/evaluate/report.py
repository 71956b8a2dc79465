"""Evaluation reports: CompressAI-style results entries, RD plots, example grids and a static HTML page.

Rates are bpp (bits per source pixel); PSNR is in dB; images are uint8. Figures are drawn with
matplotlib's object-oriented API (``Figure`` renders PNG through the Agg canvas), so no global pyplot
state or interactive backend is touched.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from sandwich.errors import InputError
from sandwich.evaluate.metric_names import metric_name

_DPI = 100
"""Resolution of every saved PNG, in pixels per inch (figure sizes below are in inches)."""


def results_entry(name: str, description: str, results: dict[str, list[float]]) -> dict:
    """One curve in CompressAI's results-JSON format: ``{"name", "description", "results"}``.

    Args:
        name: curve name, e.g. ``"sandwich-jpeg"`` or ``"jpeg"``.
        description: one line on how the curve was made.
        results: equal-length lists per key, e.g. ``"quality"``, ``"bpp"`` (bits per source pixel),
            ``"psnr-rgb"`` (dB), ``"ms-ssim-rgb"``.

    Example:
        >>> results_entry("jpeg", "libjpeg-turbo 4:2:0", {"bpp": [0.5, 1.0], "psnr-rgb": [30.1, 33.4]})
        {'name': 'jpeg', 'description': 'libjpeg-turbo 4:2:0', 'results': {'bpp': [0.5, 1.0], 'psnr-rgb': [30.1, 33.4]}}
    """
    lengths = {key: len(values) for key, values in results.items()}
    if len(set(lengths.values())) > 1:
        raise InputError(f"results_entry {name!r}: result lists differ in length: {lengths}")
    return {
        "name": name,
        "description": description,
        "results": {key: [float(v) for v in values] for key, values in results.items()},
    }


def plot_rd(
    curves: dict[str, dict[str, list[float]]], path: Path, title: str, metric: str = "psnr-rgb", styles: dict[str, dict] | None = None,
    lines: dict[str, float] | None = None,
) -> None:
    """Save an RD plot (bpp on x, ``metric`` on y, one line with markers per curve) as a PNG.

    Args:
        curves: by legend name, a CompressAI ``results`` dict holding ``"bpp"`` and ``metric`` lists;
            points are drawn in order of bpp.
        path: the PNG to write (parent folders are created).
        title: the plot title.
        metric: the results key on the y axis, e.g. ``"psnr-rgb"`` (dB) or ``"ms-ssim-rgb"``.
        styles: matplotlib line options by curve name (e.g. ``{"front": {"color": "black", "linewidth": 2.5}}``);
            a curve without any gets markers and the colour cycle's next colour.
        lines: horizontal reference lines by legend name, at a ``metric`` value each (e.g. where plain 8-bit
            coding of a 12-bit source saturates), drawn dashed.
    """
    styles = styles or {}
    if not curves:
        raise InputError("plot_rd: no curves to plot")
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for name, results in curves.items():
        if "bpp" not in results or metric not in results:
            raise InputError(f"plot_rd: curve {name!r} lacks 'bpp' or {metric!r} (has {sorted(results)})")
        order = np.argsort(results["bpp"])
        ax.plot(np.asarray(results["bpp"])[order], np.asarray(results[metric])[order], label=name, **({"marker": "o"} | styles.get(name, {})))
    for name, value in (lines or {}).items():
        ax.axhline(value, linestyle="--", color="gray", linewidth=1, label=name)
    ax.set_xlabel("rate (bpp, bits per source pixel)")
    ax.set_ylabel(metric_name(metric).axis)
    ax.set_title(title)
    ax.grid(True, alpha=0.4)
    ax.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)


def save_examples(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> None:
    """Save a grid of labelled image panels as a PNG: one row per image, one column per panel.

    Args:
        rows: ``(row title, [(panel label, image), ...])``; images are uint8, ``(H, W, 3)`` RGB or
            ``(H, W)`` gray (shown on a 0–255 gray scale). Rows may have different panel counts; the
            grid is as wide as the longest row. Labels are e.g. ``"sandwich 0.52 bpp 27.1 dB"``.
        path: the PNG to write (parent folders are created); 3 inches per panel at 100 dpi.
    """
    if not rows or not any(panels for _, panels in rows):
        raise InputError("save_examples: no panels to draw")
    n_cols = max(len(panels) for _, panels in rows)
    panel_in = 3.0
    fig = Figure(figsize=(panel_in * n_cols, panel_in * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (row_title, panels) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.set_axis_off()
                continue
            label, image = panels[c]
            if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
                raise InputError(
                    f"save_examples: panel {label!r} of {row_title!r} must be uint8 (H,W,3) or (H,W), "
                    f"got {image.dtype} {image.shape}"
                )
            if image.ndim == 2:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(image)
            ax.set_title(label, fontsize=9)
        axes[r][0].set_ylabel(row_title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)


def write_index_html(
    path: Path,
    title: str,
    paragraphs: list[str],
    table: list[dict[str, str]],
    images: list[tuple[str, str]],
) -> None:
    """Write a small self-contained static HTML page: title, paragraphs, a table, then the images.

    All text is HTML-escaped, so it is shown literally.

    Args:
        path: the ``.html`` file to write (parent folders are created), UTF-8.
        title: page title and heading.
        paragraphs: plain-text paragraphs.
        table: rows of the table (e.g. BD figures per baseline); the columns are the keys in order of
            first appearance, a missing cell is left empty.
        images: ``(caption, src)`` pairs; ``src`` is a link relative to the page, e.g. ``"rd.png"``.
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}th,td{border:1px solid #999;padding:.3em .6em;text-align:right}"
        "th:first-child,td:first-child{text-align:left}figure{margin:1.5em 0}img{max-width:100%}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f"<p>{esc(p)}</p>" for p in paragraphs]
    if table:
        columns = list(dict.fromkeys(key for row in table for key in row))
        parts.append("<table>")
        parts.append("<tr>" + "".join(f"<th>{esc(col)}</th>" for col in columns) + "</tr>")
        for row in table:
            parts.append("<tr>" + "".join(f"<td>{esc(str(row.get(col, '')))}</td>" for col in columns) + "</tr>")
        parts.append("</table>")
    for caption, src in images:
        parts.append(
            f'<figure><img src="{esc(src)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
        )
    parts += ["</body>", "</html>"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")

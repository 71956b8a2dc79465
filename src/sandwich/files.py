"""Writing files so that a reader (or a rerun after a crash) never sees half of one."""

from __future__ import annotations

import json
from pathlib import Path


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temp file beside it, then rename), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path | str | None, report: dict) -> None:
    """Write ``report`` as indented JSON to ``path`` (atomically: a temp file, then rename); None writes nothing."""
    if path is None:
        return
    write_text(path, json.dumps(report, indent=2) + "\n")

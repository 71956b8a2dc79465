"""Writing files so that a reader (or a rerun after a crash) never sees half of one."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path | str | None, report: dict) -> None:
    """Write ``report`` as indented JSON to ``path`` (atomically: a temp file, then rename); None writes nothing."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)

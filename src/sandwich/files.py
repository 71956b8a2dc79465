"""Writing files so that a reader (or a rerun after a crash) never sees half of one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    """Where sandwich keeps what it builds or downloads once: ``$SANDWICH_CACHE``, else ``~/.cache/sandwich``."""
    return Path(os.environ.get("SANDWICH_CACHE", "~/.cache/sandwich")).expanduser()


def sha256_file(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits (read in chunks: checkpoints and shards can be large)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temp file beside it, then rename), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_files(files: dict[Path, bytes]) -> None:
    """Write each ``{path: bytes}`` (creating folders) so that none is seen half-written: all go to temporary
    files beside their targets first, then each is renamed into place; on a failure the temporary files
    are removed and no target is touched."""
    staged = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            staged[tmp] = path
            tmp.write_bytes(data)
    except BaseException:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged.items():
        tmp.replace(path)


def write_json(path: Path | str | None, report: dict) -> None:
    """Write ``report`` as indented JSON to ``path`` (atomically: a temp file, then rename); None writes nothing."""
    if path is None:
        return
    write_text(path, json.dumps(report, indent=2) + "\n")


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to write outputs into; when the block ends without an exception,
    its files replace the same-named files of ``out_dir`` (created if needed). On an exception ``out_dir``
    stays as it was. The temporary folder is removed either way."""
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        yield tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in tmp.iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

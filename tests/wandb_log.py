"""Reading an offline W&B run's local record in tests.

A W&B run's local record is its transaction log, ``out_dir/wandb/offline-run-*/run-<id>.wandb``: the
records ``wandb sync`` uploads (run, config, history, artifacts with their manifests, exit), read here
with W&B's own protobuf classes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import wandb
from wandb.proto import wandb_internal_pb2


def records(run: Path) -> list[wandb_internal_pb2.Record]:
    """The records of a W&B run folder's transaction log (LevelDB log format: 32 KiB blocks of chunks with a
    7-byte header: CRC, length, type; after the file's own 7-byte header ``:W&B``, magic, version)."""
    (log,) = run.glob("run-*.wandb")
    data, found, pending, pos = log.read_bytes(), [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
            pending = b""
    return found


def of_type(found: list[wandb_internal_pb2.Record], kind: str) -> list:
    return [getattr(r, kind) for r in found if r.WhichOneof("record_type") == kind]


def history(found: list[wandb_internal_pb2.Record]) -> dict[str, list]:
    """Every history key (``a/b`` for nested keys) with its values, in order."""
    values: dict[str, list] = {}
    for step in of_type(found, "history"):
        for item in step.item:
            values.setdefault("/".join(item.nested_key) or item.key, []).append(json.loads(item.value_json))
    return values


def offline_runs(out_dir: Path) -> list[Path]:
    """The W&B runs written in ``out_dir``, oldest first. W&B's service writes their logs after ``finish`` has
    returned: stopping the service waits for them."""
    wandb.teardown()
    return sorted((out_dir / "wandb").glob("offline-run-*"))


def md5_b64(path: Path) -> str:
    return base64.b64encode(hashlib.md5(path.read_bytes()).digest()).decode()

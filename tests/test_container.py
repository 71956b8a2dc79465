"""The GPU container (``Dockerfile``, ``.dockerignore``), checked without a Docker engine (none runs here).

What can be checked is: the base is a CUDA runtime image, the final user is not root, ``sandwich`` is the
entry point, every path the Dockerfile copies exists and survives ``.dockerignore``, ``SANDWICH_CONF``
points where ``conf/`` is copied, and the build's own Python step (warming numba's cache) runs.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def ignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) or path.startswith(p + "/") for p in patterns)


def test_the_image_is_a_cuda_runtime_with_a_non_root_user_and_sandwich_as_entry_point() -> None:
    steps = instructions()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("nvidia/cuda:") and "runtime" in steps[0][1]
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [json.loads(args) for op, args in steps if op == "ENTRYPOINT"] == [["sandwich"]]
    assert any(op == "RUN" and "useradd" in args and users[-1] in args for op, args in steps)


def test_every_copied_path_exists_and_is_not_ignored_and_conf_is_where_sandwich_looks() -> None:
    copies = [shlex.split(args) for op, args in instructions() if op == "COPY"]
    assert copies
    for *sources, _ in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), source
    destinations = {sources[0]: dest for *sources, dest in copies}
    workdir = next(args for op, args in instructions() if op == "WORKDIR")
    env = " ".join(args for op, args in instructions() if op == "ENV")
    assert f"SANDWICH_CONF={workdir}/{destinations['conf'].removeprefix('./')}" in env
    for local_state in (".venv", ".git", "runs", "demo-report"):
        assert ignored(local_state), local_state


def test_the_builds_python_step_runs() -> None:
    (step,) = [args for op, args in instructions() if op == "RUN" and args.startswith("python -c")]
    command = shlex.split(step)
    assert subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=600).returncode == 0

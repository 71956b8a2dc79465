"""Run tracking: the W&B logger, checkpoints as W&B artifacts, and what every run folder records.

- :func:`wandb_logger` (``logger=wandb``): Lightning's ``WandbLogger`` with its files in ``out_dir/wandb``
  and a run id derived from the run folder, so rerunning or requeueing a command continues its W&B run.
  Online when you are logged in to W&B, offline otherwise (``wandb sync out_dir/wandb/offline-run-*``
  uploads later); ``WANDB_MODE`` in the environment wins.
- :class:`WandbRun`: logs the resolved configuration as the W&B run's config, and closes the W&B run when
  training stops on an exception, so the next run in the same process starts its own.
- :func:`finish_run`: logs ``last.ckpt`` and ``best.ckpt`` as versions of the run's model artifact (aliases
  ``last`` and ``best``, with the experiment, λ, codec and git commit as metadata) and closes the W&B run.
- :func:`write_provenance`: ``git.txt`` (the code's commit), ``git.diff`` (its uncommitted changes) and
  ``packages.txt`` (installed distributions) in every run folder, whatever the logger.

Side effects happen on rank 0 only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import netrc
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from sandwich.errors import InputError
from sandwich.files import write_text

MODES = ("online", "offline", "disabled")
NOT_A_CHECKOUT = "not a git checkout"
CODE = Path(__file__).parent  # this package's folder: its git checkout is the code a run runs


def run_id(out_dir: Path) -> str:
    """The W&B run id of a run folder: 16 hex digits of the SHA-256 of its resolved absolute path."""
    return hashlib.sha256(str(Path(out_dir).resolve()).encode()).hexdigest()[:16]


def logged_in() -> bool:
    """Whether a W&B API key is at hand: ``WANDB_API_KEY``, or the server's entry in ``$NETRC`` or ``~/.netrc``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        return netrc.netrc(os.environ.get("NETRC") or Path.home() / ".netrc").authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(mode: str | None) -> str:
    """The W&B mode of a run: ``WANDB_MODE`` if set, else ``mode``, else online when :func:`logged_in`, else offline.

    Raises:
        InputError: a mode that is not one of :data:`MODES`.
    """
    chosen, source = (os.environ["WANDB_MODE"], "WANDB_MODE") if os.environ.get("WANDB_MODE") else (mode, "logger.mode")
    if chosen is None:
        return "online" if logged_in() else "offline"
    if chosen not in MODES:
        raise InputError(f"logger wandb: {source}={chosen!r}; valid modes: {', '.join(MODES)}")
    return chosen


def wandb_logger(out_dir: Path, project: str = "sandwich", entity: str | None = None, mode: str | None = None) -> WandbLogger:
    """Lightning's ``WandbLogger`` for the run folder ``out_dir`` (files in ``out_dir/wandb``).

    Args:
        out_dir: the run folder; its resolved path gives the run id (:func:`run_id`), and its last two
            parts the run's name (``gray_jpeg/lmbda10.0`` for the default folders).
        project: the W&B project.
        entity: the W&B user or team; None: your default entity.
        mode: ``online``, ``offline`` or ``disabled``; None: see :func:`wandb_mode`.
    """
    out_dir = Path(out_dir)
    return WandbLogger(
        name="/".join(out_dir.resolve().parts[-2:]),
        save_dir=out_dir,
        id=run_id(out_dir),
        project=project,
        entity=entity,
        mode=wandb_mode(mode),
        resume="allow",
    )


class WandbRun(Callback):
    """With a ``WandbLogger``: the resolved ``config`` as the run's config, and the run closed on an exception."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_hyperparams(self.config)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:  # noqa: D102
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.experiment.finish(exit_code=1)


@rank_zero_only
def finish_run(logger: Logger | None, config: dict[str, Any], last: Path, best: Path) -> None:
    """With a ``WandbLogger``: log the checkpoints as the model artifact ``model-<run id>``, then close the run.

    ``last`` gets the alias ``last`` (and ``latest``: it is logged second) and ``best`` the alias ``best``
    (the same file when no validation wrote a ``best.ckpt``). Offline, the manifests go to the run's local
    files and the checkpoints' copies to W&B's staging folder (``WANDB_DATA_DIR``), both for ``wandb sync``.
    Other loggers: nothing.
    """
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    run = logger.experiment
    try:
        aliases = {best: ["best"], last: ["last"]} if best != last else {last: ["last", "best"]}
        metadata = {"experiment": config["name"], "lmbda": config["lmbda"], "codec": config["codec"]["name"], "git_commit": git_commit()}
        for path, names in aliases.items():
            artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=metadata)
            artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact, aliases=names)
    finally:
        run.finish()


def _git(folder: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str | None:
    """``git args...`` run in ``folder``: its stdout, or None when git is missing or exits otherwise than ``ok``."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, encoding="utf-8", errors="replace", timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode in ok else None


def git_commit(folder: Path = CODE) -> str:
    """The commit checked out at ``folder`` (default: this code's), or ``"not a git checkout"``."""
    commit = _git(folder, "rev-parse", "HEAD")
    return commit.strip() if commit else NOT_A_CHECKOUT


def git_diff(folder: Path = CODE) -> str:
    """The uncommitted changes of the checkout at ``folder`` (default: this code's) as a patch ``git apply``
    takes: tracked files against ``HEAD``, then the untracked files under ``src/`` and ``conf/`` as new files.
    Empty when clean or not a checkout."""
    root = _git(folder, "rev-parse", "--show-toplevel")
    if root is None:
        return ""
    root = Path(root.strip())
    patch = [_git(root, "diff", "--binary", "HEAD") or ""]
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", "src", "conf") or ""
    for name in filter(None, untracked.split("\0")):  # `git diff --no-index` exits 1 when the files differ, as they do here
        patch.append(_git(root, "diff", "--binary", "--no-index", "--", "/dev/null", name, ok=(0, 1)) or "")
    return "".join(patch)


def packages() -> str:
    """The installed distributions as ``name==version`` lines, sorted by name."""
    names = {f"{d.metadata['Name']}=={d.version}\n" for d in importlib.metadata.distributions() if d.metadata["Name"]}
    return "".join(sorted(names, key=str.lower))


@rank_zero_only
def write_provenance(out_dir: Path) -> None:
    """``git.txt``, ``git.diff`` and ``packages.txt`` in ``out_dir`` (atomically); git missing is no error."""
    write_text(out_dir / "git.txt", git_commit() + "\n")
    write_text(out_dir / "git.diff", git_diff())
    write_text(out_dir / "packages.txt", packages())

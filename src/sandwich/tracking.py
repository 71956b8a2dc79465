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
- :func:`log_outputs`: an evaluation's or report's files as an artifact of its own W&B run (``job_type``
  ``eval`` or ``report``), with the model artifacts it used as inputs.
- :func:`wandb_checkpoints`: the checkpoints of a W&B model artifact, run or sweep (``wandb:`` references),
  downloaded once into ``$SANDWICH_CACHE/wandb``.

The shard dataset a run trains on is its input artifact (``dataset``, a reference to the shard folder with
the sha256 of its ``index.json``; offline, where W&B takes no inputs, the run logs it instead), and every
validation logs its real-codec RD points as a table and an RD plot (``val/rd``).

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

from sandwich.data.shards import INDEX_NAME
from sandwich.errors import InputError
from sandwich.files import cache_root, write_text

MODES = ("online", "offline", "disabled")
WANDB_PREFIX = "wandb:"  # a checkpoint reference on W&B: wandb:ENTITY/PROJECT/ARTIFACT:ALIAS, .../RUN_ID or .../sweeps/SWEEP_ID
NOT_A_CHECKOUT = "not a git checkout"
PROVENANCE = ("config.yaml", "git.txt", "git.diff", "packages.txt")  # what every run folder records about how it was made
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
    logger = WandbLogger(
        name="/".join(out_dir.resolve().parts[-2:]),
        save_dir=out_dir,
        id=run_id(out_dir),
        project=project,
        entity=entity,
        mode=wandb_mode(mode),
        resume="allow",
    )
    # Lightning always passes anonymous=None to wandb.init, which W&B >= 0.22 answers on every run with
    # "The anonymous setting has no effect and will be removed in a future version": leave it unset.
    logger._wandb_init.pop("anonymous", None)
    return logger


class WandbRun(Callback):
    """With a ``WandbLogger``: the resolved ``config`` as the run's config, and the run closed on an exception."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:  # noqa: D102
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.log_hyperparams(self.config)
            if trainer.is_global_zero and getattr(trainer.datamodule, "shard_dir", None) is not None:
                use_or_log(trainer.logger.experiment, dataset_artifact(trainer.datamodule.shard_dir))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The validation's real-codec points (``val/bpp_<knob>``, ``val/psnr_<knob>``) as a table and an RD plot."""
        if not isinstance(trainer.logger, WandbLogger) or trainer.sanity_checking or not trainer.is_global_zero:
            return
        import wandb

        metrics = trainer.callback_metrics
        knobs = [key.removeprefix("val/bpp_") for key in metrics if key.startswith("val/bpp_")]
        rows = [[knob, float(metrics[f"val/bpp_{knob}"]), float(metrics[f"val/psnr_{knob}"])] for knob in knobs if f"val/psnr_{knob}" in metrics]
        if rows:
            table = wandb.Table(columns=["knob", "bpp", "psnr"], data=sorted(rows, key=lambda row: row[1]))
            trainer.logger.experiment.log(
                {"val/rd": wandb.plot.line(table, "bpp", "psnr", title=f"validation RD, step {trainer.global_step}"), "trainer/global_step": trainer.global_step}
            )

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:  # noqa: D102
        if isinstance(trainer.logger, WandbLogger):
            trainer.logger.experiment.finish(exit_code=1)


@rank_zero_only
def finish_run(logger: Logger | None, config: dict[str, Any], last: Path, best: Path) -> None:
    """With a ``WandbLogger``: log the checkpoints as the model artifact ``model-<run id>``, then close the run.

    ``last`` gets the alias ``last`` (and ``latest``: it is logged second) and ``best`` the alias ``best``
    (the same file when no validation wrote a ``best.ckpt``). Each version also holds the run folder's
    provenance (:data:`PROVENANCE`: the resolved config, git commit and diff, package versions). Offline, the manifests go to the run's local
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
            for name in PROVENANCE:
                if (Path(config["out_dir"]) / name).is_file():
                    artifact.add_file(str(Path(config["out_dir"]) / name), name=name)
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


def dataset_artifact(shard_dir: Path) -> Any:
    """A W&B ``dataset`` artifact for a shard folder, named for it: its ``index.json`` (which lists every
    shard's sha256) by content, so a changed dataset is a new version, and the shards as references under
    ``shards/`` (by path: the shards stay where they are and are not read). The metadata holds the index's sha256."""
    import wandb

    shard_dir = Path(shard_dir).resolve()
    index = shard_dir / INDEX_NAME
    artifact = wandb.Artifact(f"shards-{shard_dir.name}", type="dataset", metadata={"index_sha256": hashlib.sha256(index.read_bytes()).hexdigest(), "path": str(shard_dir)})
    artifact.add_file(str(index), name=INDEX_NAME)
    artifact.add_reference(shard_dir.as_uri(), name="shards", checksum=False)
    return artifact


def use_or_log(run: Any, artifact: Any) -> None:
    """Declare ``artifact`` (a ``wandb.Artifact`` or a reference ``ENTITY/PROJECT/NAME:ALIAS``) an input of
    ``run``. W&B refuses inputs offline: there a new artifact is logged instead (uploaded by ``wandb sync``)
    and a reference is left to the caller's metadata."""
    if not run.offline:
        run.use_artifact(artifact)
    elif not isinstance(artifact, str):
        run.log_artifact(artifact)


def log_outputs(out_dir: Path, job_type: str, files: list[Path], metadata: dict[str, Any], summary: dict[str, Any], uses: list[str] = ()) -> None:
    """Log ``files`` as the artifact ``<job_type>-<run id>`` (type ``evaluation``) of a W&B run of their own.

    The run's id is derived from ``out_dir`` (a rerun continues it) and its files go to ``out_dir/wandb``;
    ``uses`` are W&B artifact references (``ENTITY/PROJECT/NAME:ALIAS``) it declares as inputs (online; they
    are in the metadata as ``inputs`` either way); ``summary`` goes to the run's summary. The mode is :func:`wandb_mode`'s (``WANDB_MODE=disabled``: nothing is logged).
    """
    mode = wandb_mode(None)
    if mode == "disabled":
        return
    import wandb

    out_dir = Path(out_dir)
    run = wandb.init(
        project=metadata.get("project") or "sandwich", entity=metadata.get("entity"), id=run_id(out_dir), name="/".join(out_dir.resolve().parts[-2:]),
        dir=out_dir, job_type=job_type, mode=mode, resume="allow", config=metadata | {"inputs": list(uses)},
    )
    try:
        for ref in uses:
            use_or_log(run, ref)
        artifact = wandb.Artifact(f"{job_type}-{run.id}", type="evaluation", metadata=metadata | {"inputs": list(uses)})
        for path in files:
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
        run.summary.update(summary)
    finally:
        run.finish()


def wandb_checkpoints(ref: str, alias: str = "best") -> list[tuple[Path, str]]:
    """``(checkpoint file, artifact reference)`` for a W&B reference (without the ``wandb:`` prefix).

    ``ENTITY/PROJECT/NAME:ALIAS``: that model artifact; ``ENTITY/PROJECT/RUN_ID``: the run's model artifact
    version with ``alias``; ``ENTITY/PROJECT/sweeps/SWEEP_ID``: that of every run of the sweep. Downloads go
    to ``$SANDWICH_CACHE/wandb/<artifact>/<version>`` and are reused.

    Raises:
        InputError: W&B cannot be reached, the reference does not exist, or it holds no checkpoint.
    """
    import wandb

    try:
        api = wandb.Api()
        if ":" in ref:
            artifacts = [api.artifact(ref, type="model")]
        else:
            runs = list(api.sweep(ref).runs) if "/sweeps/" in ref else [api.run(ref)]
            artifacts = []
            for run in runs:
                found = [a for a in run.logged_artifacts() if a.type == "model" and alias in a.aliases]
                if not found:
                    raise InputError(f"{WANDB_PREFIX}{ref}: run {run.id} has no model artifact aliased {alias!r}")
                artifacts.append(found[0])
        downloads = []
        for artifact in artifacts:
            name, version = artifact.name.split(":")[0], artifact.version
            folder = Path(artifact.download(root=str(cache_root() / "wandb" / name / version)))
            files = sorted(folder.glob("*.ckpt"))
            if len(files) != 1:
                raise InputError(f"{WANDB_PREFIX}{ref}: artifact {artifact.name} holds {len(files)} checkpoint files, expected 1")
            downloads.append((files[0], f"{artifact.entity}/{artifact.project}/{name}:{version}"))
    except InputError:
        raise
    except Exception as exc:  # W&B raises its own error types for auth, network and missing objects
        raise InputError(f"{WANDB_PREFIX}{ref}: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    return downloads

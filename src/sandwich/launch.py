"""Where a training run executes: here (``launcher=local``), or as a job through submitit (``launcher=slurm``,
``launcher=submitit_local``).

``sandwich train ... launcher=slurm`` composes the run's configuration here, then submits one SLURM job
that runs it (:class:`TrainJob`); ``sandwich sweep FILE launcher=slurm`` submits one job per unfinished
grid point, as one job array. Resources come from ``conf/launcher/slurm.yaml``: ``nodes`` and
``gpus_per_node`` (one task per GPU, started by ``srun``; they also set ``trainer.num_nodes`` and
``trainer.devices``, so Lightning's DDP finds its ranks in SLURM's variables and starts no process of its own),
``cpus_per_gpu``, ``time_min``, ``mem_gb``, ``partition``, ``account``, ``qos``.

Time limits and preemption. **submitit owns the requeue signal**: sbatch sends ``USR2`` ``signal_delay_s``
seconds before the time limit; submitit's handler (on rank 0) calls :meth:`TrainJob.checkpoint`, requeues
the job (``scontrol requeue``, at most ``max_requeues`` times after time-outs) and exits with
``SystemExit``, on which Lightning runs the callbacks' exception hooks: a single-process run writes
``last.ckpt`` at its current step (``CheckpointOnInterrupt``), a multi-rank run keeps its last periodic one
(``checkpoint_every``). Lightning's own SLURM auto-requeue (``SIGUSR1``) is switched off
(:func:`sandwich.training.build`), so that one signal has one owner. ``SIGTERM`` (a plain ``scancel``, or
preemption on a partition that requeues by itself) makes Lightning stop every rank at the same step, and
a single-process run writes ``last.ckpt`` before exiting. The requeued job runs the same configuration:
it resumes from ``last.ckpt`` and continues the same W&B run (its id derives from the run folder).

``submitit_local`` runs the job through submitit's local executor (a subprocess with the same signal and
requeue handling, no cluster): for tests and for checking a job before sending it to a cluster.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from lightning.pytorch.utilities import rank_zero_only

from sandwich.errors import InputError
from sandwich.files import write_json
from sandwich.registry import Registry
from sandwich.training import quiet_lightning, train

FINISHED = "finished.json"  # written into a run folder when its training returned (sweeps skip such points)


class TrainJob(submitit.helpers.Checkpointable):
    """One training run as a submitit job: ``train(config)``; requeued as is (it resumes from ``last.ckpt``).

    Args:
        config: the run's resolved configuration (composed before submission).
        point: for a sweep's grid point, its parameters: written with the checkpoint's path to
            ``<out_dir>/finished.json`` when training returns.
    """

    def __init__(self, config: dict[str, Any], point: dict[str, Any] | None = None) -> None:
        self.config, self.point = config, point

    def __call__(self) -> str:
        quiet_lightning()
        last = train(self.config)
        if self.point is not None:
            rank_zero_only(write_json)(Path(self.config["out_dir"]) / FINISHED, {"point": self.point, "checkpoint": str(last)})
        return str(last)


def slurm_executor(
    folder: str,
    partition: str | None = None,
    nodes: int = 1,
    gpus_per_node: int = 1,
    cpus_per_gpu: int = 8,
    time_min: int = 240,
    mem_gb: int | None = None,
    account: str | None = None,
    qos: str | None = None,
    signal_delay_s: int = 120,
    max_requeues: int = 3,
    job_name: str = "sandwich",
    additional: dict[str, Any] | None = None,
) -> submitit.SlurmExecutor:
    """A submitit SLURM executor: one task per GPU (``srun``), ``cpus_per_gpu`` CPUs per task, ``USR2``
    ``signal_delay_s`` before ``time_min`` (minutes), ``mem_gb`` per node (None: the partition's default),
    ``additional``: any other ``#SBATCH`` option (e.g. ``{constraint: a100}``)."""
    for name, value, low in (("nodes", nodes, 1), ("gpus_per_node", gpus_per_node, 0), ("cpus_per_gpu", cpus_per_gpu, 1),
                             ("time_min", time_min, 1), ("signal_delay_s", signal_delay_s, 0), ("max_requeues", max_requeues, 0)):
        if value < low:
            raise InputError(f"launcher.{name}={value} must be >= {low}")
    if signal_delay_s >= time_min * 60:
        raise InputError(f"launcher.signal_delay_s={signal_delay_s} must be shorter than launcher.time_min={time_min} minutes")
    if shutil.which("srun") is None or shutil.which("sbatch") is None:
        raise InputError("launcher=slurm: no sbatch/srun on this machine's PATH; submit from a SLURM login node")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_requeues)
    options: dict[str, Any] = {"job_name": job_name, "nodes": nodes, "ntasks_per_node": max(gpus_per_node, 1), "cpus_per_task": cpus_per_gpu,
                               "time": time_min, "signal_delay_s": signal_delay_s, "additional_parameters": dict(additional or {})}
    optional = {"partition": partition, "gpus_per_node": gpus_per_node or None, "mem": None if mem_gb is None else f"{mem_gb}GB", "account": account, "qos": qos}
    executor.update_parameters(**options, **{k: v for k, v in optional.items() if v is not None})
    return executor


def local_executor(folder: str, time_min: int = 60, signal_delay_s: int = 30, max_requeues: int = 3) -> submitit.LocalExecutor:
    """submitit's local executor: the job runs in a subprocess here, with SLURM's signal and requeue handling."""
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=max_requeues)
    executor.update_parameters(timeout_min=time_min, signal_delay_s=signal_delay_s)
    return executor


# Executors by ``launcher.name`` (``local``, the default, runs in this process and has no executor).
EXECUTORS: Registry[submitit.Executor] = Registry("launcher", {"slurm": slurm_executor, "submitit_local": local_executor})
LAUNCHERS = ("local", *EXECUTORS)


def is_local(config: dict[str, Any]) -> bool:
    """True when ``config`` runs in this process (``launcher=local``)."""
    name = config["launcher"]["name"]
    if name not in LAUNCHERS:
        raise InputError(f"unknown launcher {name!r}; valid names: {', '.join(LAUNCHERS)}")
    return name == "local"


def job_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as its job runs it: under SLURM, Lightning's ``trainer.num_nodes`` and ``trainer.devices``
    are the launcher's ``nodes`` and ``gpus_per_node`` (one rank per task)."""
    launcher = config["launcher"]
    if launcher["name"] != "slurm" or launcher.get("gpus_per_node", 1) < 1:
        return config
    trainer = config["trainer"] | {"num_nodes": launcher.get("nodes", 1), "devices": launcher.get("gpus_per_node", 1)}
    return config | {"trainer": trainer}


def submit(configs: Sequence[dict[str, Any]], points: Sequence[dict[str, Any] | None], folder: Path, wait: bool | None = None) -> list[submitit.Job]:
    """Submit one :class:`TrainJob` per configuration (several: one job array) through the first
    configuration's launcher, with submitit's files in ``folder``; print each job's id and run folder.

    ``wait``: block until the jobs end and raise their errors (default: the launcher's ``wait``).
    """
    launcher = dict(configs[0]["launcher"])
    name, configured_wait = launcher.pop("name"), launcher.pop("wait", False)
    launcher.pop("folder", None)
    wait = configured_wait if wait is None else wait
    executor = EXECUTORS.create(name, str(folder), **launcher)
    jobs_to_run = [TrainJob(job_config(config), point) for config, point in zip(configs, points, strict=True)]
    if len(jobs_to_run) == 1:
        jobs = [executor.submit(jobs_to_run[0])]
    else:
        with executor.batch():
            jobs = [executor.submit(job) for job in jobs_to_run]
    for job, config in zip(jobs, configs, strict=True):
        print(f"sandwich: submitted {name} job {job.job_id}: {config['out_dir']} (submitit files in {folder})")
    if wait:
        for job, config in zip(jobs, configs, strict=True):
            print(f"sandwich: job {job.job_id} done: checkpoint {job.result()}")
    return jobs


def submit_folder(config: dict[str, Any], default: Path) -> Path:
    """Where submitit keeps a launch's scripts, pickles and logs: ``launcher.folder``, else ``default``."""
    folder = config["launcher"].get("folder")
    return Path(folder) if folder else default

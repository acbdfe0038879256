"""Where sweep trials and seed runs execute: this process, a local process pool, or Ray.

Each backend only executes: it calls one module-level function on each job and yields the results as
they finish. What runs next is decided elsewhere (by Optuna's sampler through the study's storage, or
by the list of seeds), so no scheduling logic lives here.

- ``local`` (the default; no extra packages): with one worker, in this process; with more, a pool of
  spawned processes (nothing is shared with the parent, every process runs torch with
  ``threads_per_job`` threads). A worker whose parent dies (the sweep was killed) exits at once, so a
  killed sweep leaves no trials running.
- ``ray``: every job is a Ray task that requests ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs, on a
  local Ray instance (``address=None``) or on a running cluster (``address="auto"`` or
  ``"ray://host:10001"``). Outputs are written where the job's paths point, so on a cluster they must
  name a file system that every node shares.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from amorctl.run.errors import AmorctlError

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Backend:
    """How to execute jobs: ``kind`` (a name of :data:`BACKENDS`), parallel ``workers`` (local), Ray's
    ``address`` and the resources each job requests (Ray) or the torch threads it uses (local)."""

    kind: str = "local"
    workers: int = 1
    address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise AmorctlError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.kind!r}")
        if self.workers < 1:
            raise AmorctlError(f"--workers must be at least 1, got {self.workers}")
        if self.cpus_per_job <= 0 or self.gpus_per_job < 0:
            raise AmorctlError("--cpus-per-trial must be positive and --gpus-per-trial not negative")


def execute(function: Callable[[Any], Any], jobs: list[Any], backend: Backend) -> Iterator[Any]:
    """``function(job)`` for every job, yielded in the order they finish; an interrupt stops all of them."""
    if not jobs:
        return
    if backend.kind == "ray":
        yield from _ray(function, jobs, backend)
    elif backend.workers == 1:
        for job in jobs:
            yield function(job)
    else:
        threads = max(1, int(backend.cpus_per_job))
        context = get_context("spawn")
        with context.Pool(
            min(backend.workers, len(jobs)), initializer=_worker_init, initargs=(os.getpid(), threads)
        ) as pool:  # leaving the block terminates the workers, also on an interrupt
            yield from pool.imap_unordered(function, jobs)


def _worker_init(parent: int, threads: int) -> None:
    """Set up a pool worker: ``threads`` torch threads, and exit as soon as the parent process is gone."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _ray(function: Callable[[Any], Any], jobs: list[Any], backend: Backend) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise AmorctlError("--backend ray needs Ray: pip install -e '.[sweep]'") from None
    started = not ray.is_initialized()
    if started:
        terminate = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=backend.address, include_dashboard=False, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = backend.address or "a local instance"
            raise AmorctlError(f"Ray cannot start on {where}: {str(error).splitlines()[0]}") from None
        if callable(terminate):  # Ray's core replaces a SIGTERM handler with an abort: keep the caller's
            signal.signal(signal.SIGTERM, terminate)
    remote = ray.remote(num_cpus=backend.cpus_per_job, num_gpus=backend.gpus_per_job)(_in_ray_task)
    pending = [remote.remote(function, job, max(1, int(backend.cpus_per_job))) for job in jobs]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _in_ray_task(function: Callable[[Any], Any], job: Any, threads: int) -> Any:
    """A job inside a Ray worker: torch with the task's CPU share as its threads."""
    import torch

    torch.set_num_threads(threads)
    return function(job)

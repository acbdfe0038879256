"""Seconds per call that a shared machine does not distort: the one timing rule of model and solver.

A model's forward pass (~1 ms) and a solver's run (~1 s) are timed alike (:func:`seconds_per_call`):

- ``torch.utils.benchmark.Timer`` with ``blocked_autorange`` (a warm-up that also sizes the blocks),
  run long enough for ``repeats`` blocks (one for a call of :data:`LONG_CALL` seconds or more); the
  figure is the median over blocks;
- one intra-op thread for both (the Timer sets ``torch.set_num_threads(1)`` around the measurement and
  restores the caller's setting afterwards), so neither gets the other's cores;
- on a CPU device the clock is the calling thread's CPU time (:data:`CLOCKS` ``"auto"``). On a loaded
  machine the wall-clock of a long call absorbs every time slice handed to other processes while a short
  one often slips between them, so wall-clock ratios of a 1 s solve to a 1 ms forward pass swing by
  orders of magnitude with the load (benchmarks/RESULTS.md, "The amortization report"). With one
  thread the CPU time is what the wall-clock is on a quiet machine. On CUDA the clock is the wall-clock
  with the device synchronised (the work is not on the calling thread).

``clock="wall"`` times the wall-clock on any device, for comparison.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch.utils.benchmark import Timer

Clock = Literal["auto", "wall"]
CLOCKS: tuple[str, ...] = ("auto", "wall")
"""``auto``: the thread's CPU time on a CPU device, synchronised wall-clock on CUDA; ``wall``: wall-clock."""

THREADS = 1
"""Intra-op threads of every timed call (model and solver alike)."""

MIN_RUN_TIME = 0.05
"""Seconds of the first ``blocked_autorange`` (after its warm-up)."""

LONG_CALL = 0.5
"""A call of at least this many seconds is measured once after its warm-up, not ``repeats`` times: a block
that long averages the machine's noise over its own length (a reference solve of the default run's 256
contexts takes seconds, and the report times several)."""


def clock_of(device: torch.device, clock: Clock = "auto") -> Callable[[], float]:
    """The timer function ``clock`` means on ``device`` (see :data:`CLOCKS`)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if device.type == "cuda":
        def synchronised() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return synchronised
    return time.thread_time if clock == "auto" else time.perf_counter


def seconds_per_call(fn: Callable[[], Any], device: torch.device, repeats: int, clock: Clock = "auto") -> float:
    """The median seconds of one ``fn()`` over at least ``repeats`` timed blocks (one for a call of
    :data:`LONG_CALL` seconds or more), under :data:`THREADS` threads.

    ``fn`` runs under ``torch.no_grad`` (it may still take gradients with ``torch.func``). Its first
    calls are a warm-up and are not counted.
    """
    timer = Timer("fn()", globals={"fn": torch.no_grad()(fn)}, timer=clock_of(device, clock), num_threads=THREADS)
    measurement = timer.blocked_autorange(min_run_time=MIN_RUN_TIME)
    per_call = list(measurement.times)
    block_seconds = measurement.median * measurement.number_per_run
    if len(per_call) < repeats and block_seconds < LONG_CALL:  # one more autorange for the missing blocks
        more = timer.blocked_autorange(min_run_time=block_seconds * (repeats - len(per_call)) * 0.99)
        per_call.extend(more.times)
    return statistics.median(per_call)

"""Small helpers shared by the benchmarks: medians over repeats, Markdown tables, the machine's description."""

from __future__ import annotations

import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any


def one_thread() -> None:
    """Run torch (and OpenMP in processes started from here) with one thread, as every measured process does."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def log(message: str) -> None:
    """A time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN for none); infinities count, so a failed run can be the median."""
    values = list(values)
    return statistics.median(values) if values else math.nan


def timed_repeats(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn``."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats with ``digits`` significant digits (at least the integer part), others as str."""
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "not reached" if value > 0 else "-inf"
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats formatted with :func:`fmt`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that started this process, as one could paste it into a shell."""
    return " ".join(shlex.quote(arg) for arg in [sys.executable.rsplit("/", 1)[-1], *sys.argv])


def cpu_name() -> str:
    """The CPU's model name (``lscpu``), or what ``platform`` knows."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_info() -> str:
    """CPU model and cores, library versions and the UTC date, one line."""
    import gymnasium
    import torch

    cpu = cpu_name()
    try:
        import stable_baselines3

        sb3 = stable_baselines3.__version__
    except ImportError:
        sb3 = "not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{cpu}, {cores} cores; torch {torch.__version__} ({torch.get_num_threads()} thread), "
        f"stable-baselines3 {sb3}, gymnasium {gymnasium.__version__}; python {platform.python_version()}; {date}"
    )

"""Is the amortization report's speed-up a figure a user can trust on a shared machine?

``python scripts/benchmark.py report-timing RUN_DIR [RUN_DIR ...]`` writes the amortization report
(:func:`amorctl.eval.amortization_report.report_on_run`) of each trained direct run twice per clock:
under the machine's current load, and with ``--busy`` extra busy-loop processes (``while True: pass``,
started here and ended by their process ids). It prints the speed-ups (``speedup``: the solver from
scratch at the model's gap; ``reference_speedup``: the reference solve, the final metrics' ``speedup``)
and the ratio between the two loads; the issue's bar is a ratio under 2.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, one_thread


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` Python processes spinning on a core each for the duration of the block."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    time.sleep(1.0 if spinners else 0.0)  # let them start spinning
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def report_timing(runs: Sequence[str], clocks: Sequence[str], busy: int, solver_steps: int) -> str:
    """The Markdown table: per run, clock and load, the report's speed-ups, and their ratio between the loads."""
    from amorctl.eval.amortization_report import report_on_run
    from amorctl.eval.load import load_run

    one_thread()
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for run in runs:
            loaded = load_run(run)
            config, learner, name = loaded.config, loaded.learner, Path(run).parent.name
            for clock in clocks:
                found = {}
                for extra in (0, busy):
                    with busy_loops(extra):
                        before = os.getloadavg()[0]
                        log(f"{run}: clock {clock}, current load + {extra} busy loops (load average {before:.1f})")
                        started = time.perf_counter()
                        report = report_on_run(config, learner.problem, learner.model, loaded.device,
                                               Path(scratch) / str(len(rows)), None, max_steps=solver_steps,
                                               clock=clock)
                        found[extra] = report
                        rows.append([name, clock, f"+{extra}", f"{before:.1f} → {os.getloadavg()[0]:.1f}",
                                     report["model_seconds_per_solution"], report["solver_steps_to_model_gap"],
                                     report["solver_seconds_to_model_gap"], report["speedup"],
                                     report["reference_speedup"], time.perf_counter() - started])
                ratios.append([name, clock, *(_ratio(found[0][key], found[busy][key])
                                              for key in ("speedup", "reference_speedup"))])
    header = ["run", "clock", "busy loops", "load average (1 min, before → after)", "model s/solution",
              "solver steps to the model's gap", "solver s/solution there", "speedup", "reference_speedup",
              "report wall seconds"]
    ratio_header = ["run", "clock", f"speedup: larger / smaller (+0 vs +{busy})", "reference_speedup: the same"]
    return "\n".join([f"`{command_line()}`", "", machine_info(), "", markdown_table(header, rows), "",
                      markdown_table(ratio_header, ratios)])


def _ratio(a: float, b: float) -> float:
    return max(a, b) / min(a, b)

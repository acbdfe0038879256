"""TD3 of amorctl against stable-baselines3's TD3: HalfCheetah-v5 with a wall-clock budget (section 3).

The learning runs, shared with the time-to-solve section of every algorithm, are
:mod:`amorctl.benchmarking.time_to_solve`; :func:`td3_time_to_solve` is that section for TD3 (the
``td3-time-to-solve`` command).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from amorctl.benchmarking.common import command_line, machine_info, markdown_table, median, one_thread
from amorctl.benchmarking.throughput import ENV_ID
from amorctl.benchmarking.time_to_solve import (
    RunResult,
    read_curves,
    run_jobs,
    time_to_solve,
    write_curves,
    zoo_description,
)


def td3_time_to_solve(task: str = "pendulum", seeds: int = 3, workers: int = 2, out: str = "benchmarks",
                      overrides: tuple[str, ...] = (), max_seconds: float | None = None) -> str:
    """Section 2 for TD3: :func:`~amorctl.benchmarking.time_to_solve.time_to_solve` with ``algorithm="td3"``."""
    return time_to_solve("td3", task, seeds, workers, out, overrides, max_seconds)


# ================================================================================== budget
def td3_budget(minutes: float = 20.0, seeds: int = 2, first_seed: int = 0, out: str = "benchmarks",
               overrides: tuple[str, ...] = ()) -> str:
    """Section 3: HalfCheetah-v5 with a wall-clock training budget, amorctl and SB3 of a seed concurrently.

    Each seed's curves go to ``<out>/td3_budget_halfcheetah_seed<seed>.csv``; the table and the plot
    cover every seed file present, so seeds can be run in separate invocations.
    """
    budget = 60.0 * minutes
    for seed in range(first_seed, first_seed + seeds):
        jobs = [
            (name, "td3", "halfcheetah", seed, None, budget, 10_000_000, overrides)
            for name in ("amorctl", "stable-baselines3")
        ]
        results = run_jobs(jobs, workers=2)
        write_curves(Path(out) / f"td3_budget_halfcheetah_seed{seed}.csv", results)
    return budget_report(minutes, out)


def budget_report(minutes: float, out: str = "benchmarks") -> str:
    """Table and plot of every ``td3_budget_halfcheetah_seed*.csv`` in ``out``."""
    one_thread()
    paths = sorted(Path(out).glob("td3_budget_halfcheetah_seed*.csv"))
    results = read_curves(paths)
    rows = [[r.implementation, r.seed, r.final_return, r.final_step, r.final_seconds] for r in results]
    medians = {name: median([r.final_return for r in results if r.implementation == name])
               for name in ("amorctl", "stable-baselines3")}
    plot = Path(out) / "td3_budget_halfcheetah.png"
    _plot(results, plot, minutes)
    lines = [
        f"### TD3 on {ENV_ID} with a {minutes:g}-minute training budget",
        "",
        markdown_table(["implementation", "seed", "final eval return", "env steps", "train seconds"], rows),
        "",
        "Median final return: " + ", ".join(f"{k} {v:,.0f}" for k, v in medians.items()) + ".  ",
        f"Curves: {', '.join(f'`{p}`' for p in paths)}; plot `{plot}`.  ",
        "amorctl: `configs/td3_halfcheetah.yaml` as shipped; stable-baselines3: "
        f"{zoo_description('td3', 'halfcheetah')}.  ",
        "The two implementations of a seed trained concurrently, one one-thread process each; the clock counts "
        "training only (evaluation excluded); final eval at the end of the budget.  ",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)


def _plot(results: list[RunResult], path: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"amorctl": "tab:blue", "stable-baselines3": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    for r in results:
        steps, seconds, returns = zip(*r.curve)
        label = f"{r.implementation} seed {r.seed}"
        style = styles[r.seed % len(styles)]
        axes[0].plot(np.array(seconds) / 60, returns, style, color=colors[r.implementation], label=label)
        axes[1].plot(steps, returns, style, color=colors[r.implementation], label=label)
    axes[0].set_xlabel("training wall-clock (minutes, evaluation excluded)")
    axes[1].set_xlabel("environment steps")
    for ax in axes:
        ax.set_ylabel("mean deterministic eval return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"TD3 on {ENV_ID}, {minutes:g}-minute budget")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

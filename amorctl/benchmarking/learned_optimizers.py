"""Learned optimizers against the classical ones, Barzilai–Borwein and L-BFGS included, on held-out problems.

``python scripts/benchmark.py learned-optimizers --config CONFIG [--runs RUN ...]`` prints two tables:

- every classical optimizer of the config's family (gradient descent, momentum, Adam, BB1, BB2, L-BFGS;
  ISTA and FISTA for composite families), each tuned on the tuning problems and run on the held-out
  problems that :func:`~amorctl.eval.optimizer_comparison.compare_with_baselines` uses for a run of that
  config (:func:`~amorctl.eval.optimizer_comparison.classical_comparison`): the reference figures;
- for each trained run given, the policy's mean final gap on its own held-out problems beside the best
  tuned GD / momentum / Adam (``ratio``; the learned-optimizer bar is ≤ 0.5), the better Barzilai–Borwein
  rule (``× BB``) and L-BFGS, from :func:`~amorctl.eval.optimizer_comparison.compare_with_baselines` (which
  also writes each run's ``eval/optimizer_comparison.json`` and ``.png``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from amorctl.benchmarking.common import log, markdown_table, one_thread
from amorctl.eval.optimizer_comparison import POLICY, classical_comparison, compare_with_baselines
from amorctl.run.config import load_config


def learned_optimizers(
    config_path: str | Path,
    overrides: Sequence[str] = (),
    runs: Sequence[str | Path] = (),
    num_heldout: int = 512,
    num_tuning: int = 512,
) -> str:
    """The Markdown tables described in the module docstring."""
    one_thread()
    config = load_config(Path(config_path), ["device=cpu", *overrides])
    log(f"tuning the classical optimizers on {num_tuning} problems of {config_path}")
    results = classical_comparison(config, num_heldout, num_tuning)
    header = ["optimizer", "hyper-parameters (tuned)", "mean final gap", "median final gap", "diverged"]
    rows = [
        [
            name,
            ", ".join(f"{k}={v:.3g}" for k, v in r["hyperparameters"].items()),
            r["final_mean_gap"],
            r["final_median_gap"],
            r["diverged"],
        ]
        for name, r in results.items()
    ]
    T = config.env.iterate["max_iterations"]
    lines = [
        f"Classical optimizers on {num_heldout} held-out problems of `{Path(config_path).name}` "
        f"(seed {config.seed}, T = {T}, tuned on {num_tuning} other problems)",
        "",
        markdown_table(header, rows),
    ]
    if runs:
        from amorctl.eval.load import load_run

        header = [
            "run",
            "policy mean final gap",
            "best of GD / momentum / Adam",
            "ratio",
            "better BB",
            "× BB",
            "L-BFGS",
        ]
        rows = []
        for path in runs:
            log(f"comparing {path}")
            loaded = load_run(path, overrides=["device=cpu"])
            try:
                with tempfile.TemporaryDirectory() as events:
                    summary = compare_with_baselines(
                        Path(events),
                        loaded.config,
                        loaded.policy,
                        loaded.run.root / "eval",
                        num_heldout=num_heldout,
                        num_tuning=num_tuning,
                    )
            finally:
                loaded.learner.close()
            gaps, best, bb = summary["final_mean_gap"], summary["best_baseline"], summary["best_barzilai_borwein"]
            rows.append(
                [
                    f"{path} (seed {loaded.config.seed})",
                    gaps[POLICY],
                    f"{best} {gaps[best]:.3g}",
                    summary["ratio"],
                    f"{bb} {gaps[bb]:.3g}",
                    summary["barzilai_borwein_ratio"],
                    gaps["lbfgs"],
                ]
            )
        lines += ["", "Trained runs (each on its own seed's held-out problems)", "", markdown_table(header, rows)]
    return "\n".join(lines)

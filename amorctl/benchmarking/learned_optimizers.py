"""Learned optimizers against the classical ones, Barzilai–Borwein, LMSD and L-BFGS included, on held-out problems.

``python scripts/benchmark.py learned-optimizers --config CONFIG [--runs RUN ...]`` prints two tables:

- every classical optimizer of the config's family (gradient descent, momentum, Adam, BB1, BB2, limited-memory
  steepest descent (LMSD), L-BFGS;
  ISTA and FISTA for composite families), each tuned on the tuning problems and run on the held-out
  problems that :func:`~amorctl.eval.optimizer_comparison.compare_with_baselines` uses for a run of that
  config (:func:`~amorctl.eval.optimizer_comparison.classical_comparison`): the reference figures;
- for each trained run given, the policy's mean final gap on its own held-out problems beside the best
  tuned GD / momentum / Adam (``ratio``; the learned-optimizer bar is ≤ 0.5), the better Barzilai–Borwein
  rule (``× BB``), LMSD and L-BFGS, from :func:`~amorctl.eval.optimizer_comparison.compare_with_baselines` (which
  also writes each run's ``eval/optimizer_comparison.json`` and ``.png``);
- with ``--blocks K``, for each run a third table: the policy and that better BB (its tuned hyper-parameters)
  on K further blocks of held-out problems of the same size (:data:`~amorctl.eval.seeds.BLOCKS_SEED_OFFSET`):
  the pooled mean final gaps and their ratio, in how many blocks the policy's mean is at most BB's, and the
  range of BB's own block means. At T = 30 a mean final gap is set by a handful of problems (a chaotic
  function of small step changes, ``benchmark.py expert-sensitivity``), so one block's ratio says little.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from amorctl.benchmarking.common import log, markdown_table, one_thread
from amorctl.envs import IterateEnv
from amorctl.eval.optimizer_comparison import POLICY, classical_comparison, compare_with_baselines, policy_gaps
from amorctl.eval.seeds import BLOCKS_SEED_OFFSET, BLOCKS_SEED_STRIDE
from amorctl.optimizers import run_optimizer
from amorctl.problems import make_problem
from amorctl.run.config import load_config


def learned_optimizers(
    config_path: str | Path,
    overrides: Sequence[str] = (),
    runs: Sequence[str | Path] = (),
    num_heldout: int = 512,
    num_tuning: int = 512,
    blocks: int = 0,
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
            "LMSD",
            "L-BFGS",
        ]
        rows, block_rows = [], []
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
                if blocks > 0:
                    bb = summary["best_barzilai_borwein"]
                    hyper = json.loads(Path(summary["json"]).read_text())["optimizers"][bb]["hyperparameters"]
                    block_rows.append([f"{path} (seed {loaded.config.seed})", bb,
                                       *block_comparison(loaded.config, loaded.policy, bb, hyper, blocks, num_heldout)])
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
                    gaps["lmsd"],
                    gaps["lbfgs"],
                ]
            )
        lines += ["", "Trained runs (each on its own seed's held-out problems)", "", markdown_table(header, rows)]
        if blocks > 0:
            header = ["run", "BB", "policy pooled mean", "BB pooled mean", "pooled ratio", "blocks policy ≤ BB",
                      "median block ratio", "BB block means (min–max)"]
            lines += ["", f"The same runs on {blocks} further blocks of {num_heldout} held-out problems", "",
                      markdown_table(header, block_rows)]
    return "\n".join(lines)


def block_comparison(config, policy, bb: str, hyperparameters: dict, blocks: int, size: int) -> list:
    """Policy against ``bb`` (with its tuned ``hyperparameters``) on ``blocks`` blocks of ``size`` problems: pooled
    means, their ratio, the count of blocks where the policy's mean is at most BB's, the median block ratio and
    the range of BB's block means (a row of the ``--blocks`` table)."""
    problem = make_problem(**config.env.problem)
    env = IterateEnv(problem, size, device="cpu", **dict(config.env.iterate))
    ours, theirs = [], []
    for k in range(blocks):
        seed = int(config.seed) + BLOCKS_SEED_OFFSET + BLOCKS_SEED_STRIDE * k
        gaps, _, x, y0, f_star = policy_gaps(env, policy, seed)
        run = run_optimizer(bb, problem, x, y0, env.max_iterations, **hyperparameters)
        ours.append(float(gaps[-1].mean()))
        theirs.append(float((run.objective_values[-1] - f_star).clamp_min(0.0).mean()))
    ours_t, theirs_t = torch.tensor(ours), torch.tensor(theirs)
    ratios = ours_t / theirs_t
    return [ours_t.mean().item(), theirs_t.mean().item(), (ours_t.mean() / theirs_t.mean()).item(),
            f"{int((ratios <= 1).sum())}/{blocks}", ratios.median().item(),
            f"{theirs_t.min().item():.2g}–{theirs_t.max().item():.2g}"]

"""A learned optimizer against tuned classical optimizers on the same held-out problems.

A TD3 policy trained on :class:`~amorctl.envs.IterateEnv` is a learned update rule (seed section
2.2.3). :func:`compare_with_baselines` runs it for the environment's T iterations on held-out
contexts and runs gradient descent, heavy-ball momentum and Adam (the baselines the learned
optimizer has to beat) plus the Barzilai–Borwein steps BB1 and BB2, limited-memory steepest descent (LMSD) and
L-BFGS (reported alongside;
ISTA and FISTA too for composite families)
from the very same initial iterates, each with hyper-parameters tuned on *training* contexts only:

- held-out contexts and initial iterates are those an ``IterateEnv`` built from the run's config
  draws after ``reset(seed=config.seed + HELDOUT_SEED_OFFSET)``;
- tuning contexts and initial iterates come from the same construction with
  ``reset(seed=config.seed + TUNING_SEED_OFFSET)``, a different seed (the streams of every evaluation
  are in :mod:`amorctl.eval.seeds`);
- a baseline's step size (and, for momentum, its momentum; for LMSD, its memory) is the grid point with the lowest mean
  objective after T iterations on the tuning contexts, never diverging there
  (:func:`amorctl.optimizers.step_size_scores`).

The objective gap f(y_t) − f* (f* from the family's reference solver, computed as the environment
does) is recorded at every iteration t = 0..T; a baseline that diverges on a held-out problem has
gap +inf there from then on. A policy row whose episode ends early (converged, or a rejected
diverging update) keeps the gap of the state it reached.

A run that imitated an expert (behavioural cloning / DAgger: the config has an ``expert`` section,
e.g. the Barzilai–Borwein step size; or a ``warm_start`` of an off-policy agent) gets the
expert's row too, acting in the same held-out episodes, and an imitation summary on
:data:`IMITATION_PROBLEMS` held-out problems: the mean over problems of the last iterate's gap and
of the best iterate's gap (min over t ≤ T), for the policy and the expert, and their ratios. Both
are reported because a non-monotone rule's last iterate is chaotic: perturbing the
Barzilai–Borwein steps by 1e-4 (in [-1, 1] action units) moves the mean last-iterate gap of
16,384 quadratics by up to 3×, and its best-iterate gap by under 5 %
(``benchmarks/RESULTS.md``, section 4).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amorctl.envs import IterateEnv
from amorctl.eval.seeds import HELDOUT_SEED_OFFSET, TUNING_SEED_OFFSET
from amorctl.optimizers import OPTIMIZERS, run_optimizer, step_size_scores
from amorctl.problems import Problem, make_problem
from amorctl.run.config import resolve_device

REQUIRED_BASELINES = ("gd", "momentum", "adam")
"""The baselines the learned optimizer is compared with in ``ratio`` (the best of them)."""

REFERENCE_BASELINES = ("bb1", "bb2", "lmsd", "lbfgs")
"""Reported alongside, not part of ``ratio``; ISTA and FISTA are added for composite families."""

BARZILAI_BORWEIN = ("bb1", "bb2")
"""The classical step-size rules a learned step-size policy is compared with in ``barzilai_borwein_ratio``."""

MOMENTUM_GRID = (0.5, 0.8, 0.9, 0.95)
"""Heavy-ball momenta tried (each with the whole step-size grid) when tuning ``momentum``."""

LMSD_MEMORY_GRID = (3, 5, 10)
"""Memories (sweep lengths) tried, each with the whole first-step grid, when tuning ``lmsd`` (Fletcher 2012
suggests a few; 10 is the quadratic family's dimension, where a sweep can end in the exact solution)."""

POLICY = "policy"
"""The learned optimizer's name in the JSON, the plot and TensorBoard."""

EXPERT = "expert"
"""The imitated expert's name (runs with an ``expert`` section) in the JSON, the plot and TensorBoard."""

IMITATION_PROBLEMS = 16_384
"""Held-out problems of the policy-versus-expert summary (two batched rollouts: cheap, and the mean of a
heavy-tailed gap needs them)."""


def compare_with_baselines(
    run_dir: Path,
    config: Any,
    policy: Callable[[torch.Tensor], torch.Tensor],
    output_dir: Path,
    *,
    num_heldout: int = 512,
    num_tuning: int = 512,
    writer: Any | None = None,
) -> dict[str, Any]:
    """Compare the run's learned optimizer with tuned baselines on held-out contexts.

    Args:
        run_dir: the run folder; TensorBoard scalars go to ``run_dir/events`` (unless ``writer``).
        config: the run's config (an off-policy agent's, with ``env.kind == "iterate"``); its ``device``
            is where the comparison runs.
        policy: the trained policy: deterministic actions in [-1, 1] for a batch of observations.
        output_dir: where ``optimizer_comparison.json`` and ``optimizer_comparison.png`` are written
            (created if missing).
        num_heldout: held-out problems; num_tuning: problems the baselines are tuned on.
        writer: an open ``SummaryWriter`` to log to instead of a new one on ``run_dir/events``.

    Writes:
        ``optimizer_comparison.json``: ``family``, ``problem`` (the family's arguments), ``iterate``
        (the environment's options), ``iterations`` (T), ``num_heldout``, ``num_tuning``,
        ``heldout_seed``, ``tuning_seed``, ``initial_mean_gap`` and ``optimizers``: for ``policy``
        and every baseline, ``hyperparameters`` (null for the policy), ``mean_gap`` and
        ``median_gap`` (lists of T + 1 values, iteration 0..T; ``Infinity`` where some problem
        diverged), ``final_mean_gap``, ``final_median_gap`` and ``diverged`` (held-out problems
        that diverged); plus the summary below.
        ``optimizer_comparison.png``: mean and median gap versus iteration, log scale (a gap of
        exactly 0, f at f* within float rounding, is drawn at 1e-14).
        TensorBoard: ``compare/<optimizer>/mean_gap`` and ``compare/<optimizer>/median_gap`` with
        the iteration as the step.

    Returns:
        The summary: ``final_mean_gap`` and ``final_median_gap`` (optimizer → value at T),
        ``best_baseline`` (the one of gd / momentum / adam with the lowest final mean gap),
        ``ratio`` (policy final mean gap / the best baseline's; < 0.5 is the issue's bar),
        ``median_ratio`` (the same for medians), ``best_barzilai_borwein`` (bb1 or bb2, the lower final
        mean gap) and ``barzilai_borwein_ratio`` (policy final mean gap / its), ``iterations``, ``num_heldout``,
        ``heldout_seed``, ``tuning_seed`` and the paths ``json`` and ``png``; for a run with an
        ``expert`` section also ``imitation_problems``, ``policy_last_mean_gap``, ``expert_last_mean_gap``,
        ``policy_best_mean_gap``, ``expert_best_mean_gap`` and the ratios (policy / expert)
        ``expert_last_ratio`` and ``expert_best_ratio``, on :data:`IMITATION_PROBLEMS` held-out problems.
    """
    if getattr(config.env, "kind", None) != "iterate":
        raise ValueError("compare_with_baselines needs a learned-optimizer run (config env.kind: iterate)")
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config)
    problem = make_problem(**config.env.problem)
    env_options = dict(config.env.iterate)
    heldout_seed = int(config.seed) + HELDOUT_SEED_OFFSET
    tuning_seed = int(config.seed) + TUNING_SEED_OFFSET

    env = IterateEnv(problem, num_heldout, device=device, **env_options)
    if not env.uses_solver:
        raise ValueError(f"compare_with_baselines needs f*: {type(problem).__name__} has no reference solver")
    horizon = env.max_iterations
    own_gaps, policy_diverged, x_test, y0_test, f_star = policy_gaps(env, policy, heldout_seed)
    x_train, y0_train = _draw(problem, num_tuning, device, env_options, tuning_seed)

    results: dict[str, dict[str, Any]] = {POLICY: _curves(own_gaps, policy_diverged, None)}
    expert = _expert_of(config, device)
    if expert is not None:
        expert_env = IterateEnv(problem, num_heldout, device=device, **env_options)
        expert_gaps, expert_diverged, *_ = policy_gaps(expert_env, lambda obs: expert(expert_env, obs), heldout_seed)
        results[EXPERT] = _curves(expert_gaps, expert_diverged, None)
    results |= tuned_baselines(problem, (x_train, y0_train), (x_test, y0_test, f_star), horizon)

    final_mean = {name: r["final_mean_gap"] for name, r in results.items()}
    final_median = {name: r["final_median_gap"] for name, r in results.items()}
    best = min(REQUIRED_BASELINES, key=lambda name: final_mean[name])
    summary: dict[str, Any] = {
        "family": config.env.problem["name"],
        "iterations": horizon,
        "num_heldout": num_heldout,
        "num_tuning": num_tuning,
        "heldout_seed": heldout_seed,
        "tuning_seed": tuning_seed,
        "final_mean_gap": final_mean,
        "final_median_gap": final_median,
        "best_baseline": best,
        "ratio": _ratio(final_mean[POLICY], final_mean[best]),
        "median_ratio": _ratio(final_median[POLICY], final_median[best]),
    }
    bb = min(BARZILAI_BORWEIN, key=lambda name: final_mean[name])
    summary |= {"best_barzilai_borwein": bb, "barzilai_borwein_ratio": _ratio(final_mean[POLICY], final_mean[bb])}
    if expert is not None:
        summary |= _imitation(problem, env_options, device, policy, expert, heldout_seed)
    report = {
        **summary,
        "problem": dict(config.env.problem),
        "iterate": env_options,
        "initial_mean_gap": float(own_gaps[0].mean()),
        "optimizers": results,
    }
    json_path, png_path = output_dir / "optimizer_comparison.json", output_dir / "optimizer_comparison.png"
    json_path.write_text(json.dumps(report, indent=2))
    _plot(results, png_path, f"{summary['family']}: {num_heldout} held-out problems, T = {horizon}")
    _log(results, run_dir / "events", writer)
    return {**summary, "json": str(json_path), "png": str(png_path)}


def tuned_baselines(
    problem: Problem,
    tuning: tuple[torch.Tensor, torch.Tensor],
    heldout: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    horizon: int,
) -> dict[str, dict[str, Any]]:
    """Every classical baseline of ``problem``, tuned on ``tuning = (contexts, initial iterates)`` and run for
    ``horizon`` iterations on ``heldout = (contexts, initial iterates, f*)``: name → its curves
    (``hyperparameters``, ``mean_gap``, ``median_gap``, ``final_mean_gap``, ``final_median_gap``, ``diverged``)."""
    (x_train, y0_train), (x_test, y0_test, f_star) = tuning, heldout
    results = {}
    for name in _baselines(problem):
        hyper = _tune(name, problem, x_train, y0_train, horizon)
        run = run_optimizer(name, problem, x_test, y0_test, horizon, **hyper)
        results[name] = _curves((run.objective_values - f_star).clamp_min(0.0), run.diverged, hyper)
    return results


def classical_comparison(config: Any, num_heldout: int = 512, num_tuning: int = 512) -> dict[str, dict[str, Any]]:
    """:func:`tuned_baselines` on the held-out and tuning problems :func:`compare_with_baselines` uses for a
    learned-optimizer run with ``config`` (no policy needed): the classical side of its comparison."""
    device = resolve_device(config)
    problem = make_problem(**config.env.problem)
    env_options = dict(config.env.iterate)
    x_test, y0_test = _draw(problem, num_heldout, device, env_options, int(config.seed) + HELDOUT_SEED_OFFSET)
    f_star = problem.objective(problem.solve(x_test).to(y0_test.dtype), x_test)
    tuning = _draw(problem, num_tuning, device, env_options, int(config.seed) + TUNING_SEED_OFFSET)
    horizon = int(config.env.iterate["max_iterations"])
    return tuned_baselines(problem, tuning, (x_test, y0_test, f_star), horizon)


# ---------------------------------------------------------------------------------- internals


def _draw(problem: Problem, count: int, device, env_options: dict[str, Any], seed: int):
    """Contexts and initial iterates exactly as an ``IterateEnv`` with these options draws them."""
    env = IterateEnv(problem, count, device=device, **env_options)
    env.reset(seed=seed)
    return env.contexts, env.iterates


@torch.no_grad()
def policy_gaps(env: IterateEnv, policy: Callable[[torch.Tensor], torch.Tensor], seed: int):
    """Gaps ``(T + 1, N)`` of a policy's iterates on ``env`` reset with ``seed`` (rows that end early keep the
    gap they reached), which held-out problems diverged, and the contexts, initial iterates and f*."""
    obs = env.reset(seed=seed)
    x, y0 = env.contexts, env.iterates
    f_star = env.problem.objective(env.problem.solve(x).to(env.dtype), x)
    gap = (env.problem.objective(y0, x) - f_star).clamp_min(0.0).to(torch.float32)
    gaps = [gap]
    active = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    diverged = torch.zeros_like(active)
    for _ in range(env.max_iterations):
        action = policy(obs).to(env.device)
        obs, _, terminated, truncated, info = env.step(action)
        gap = torch.where(active, info["final_gap"], gap)
        diverged = diverged | (active & info["diverged"])
        active = active & ~(terminated | truncated)
        gaps.append(gap)
    return torch.stack(gaps).double(), diverged, x, y0, f_star


def _imitation(problem: Problem, env_options: dict[str, Any], device: torch.device, policy, expert,
               seed: int) -> dict[str, Any]:
    """Mean last-iterate and best-iterate gaps of policy and expert on :data:`IMITATION_PROBLEMS` problems."""
    found: dict[str, Any] = {"imitation_problems": IMITATION_PROBLEMS}
    for name, act in ((POLICY, lambda env: policy), (EXPERT, lambda env: lambda obs: expert(env, obs))):
        env = IterateEnv(problem, IMITATION_PROBLEMS, device=device, **env_options)
        gaps = policy_gaps(env, act(env), seed)[0]
        found[f"{name}_last_mean_gap"] = float(gaps[-1].mean())
        found[f"{name}_best_mean_gap"] = float(gaps.min(dim=0).values.mean())
    for which in ("last", "best"):
        ratio = _ratio(found[f"{POLICY}_{which}_mean_gap"], found[f"{EXPERT}_{which}_mean_gap"])
        found[f"expert_{which}_ratio"] = ratio
    return found


def _expert_of(config: Any, device: torch.device) -> Callable[[IterateEnv, torch.Tensor], torch.Tensor] | None:
    """The expert a run imitated (the ``expert`` section of a BC run, a warm start's expert), or ``None``."""
    section = getattr(config, "expert", None) or getattr(getattr(config, "warm_start", None), "expert", None)
    if section is None:
        return None
    from amorctl.agents.experts import make_expert

    return make_expert(section, device)


def _baselines(problem: Problem) -> list[str]:
    names = [*REQUIRED_BASELINES, *REFERENCE_BASELINES]
    if callable(getattr(problem, "smooth_gradient", None)) and callable(getattr(problem, "prox", None)):
        names += ["ista", "fista"]
    return [name for name in names if name in OPTIMIZERS]


def _tune(name: str, problem: Problem, x_train: torch.Tensor, y0_train: torch.Tensor, horizon: int) -> dict[str, Any]:
    """The hyper-parameters with the lowest mean objective after T iterations on the tuning contexts."""
    variants = {"momentum": [{"momentum": beta} for beta in MOMENTUM_GRID],
                "lmsd": [{"memory": memory} for memory in LMSD_MEMORY_GRID]}.get(name, [{}])
    best: tuple[float, dict[str, Any]] | None = None
    for fixed in variants:
        grid, scores = step_size_scores(name, problem, x_train, lambda x: y0_train, horizon, **fixed)
        for step, score in zip(grid, scores):
            if math.isfinite(score) and (best is None or score < best[0]):
                best = (score, {**fixed, "step_size": step})
    if best is None:
        raise RuntimeError(f"tuning {name!r}: every step size diverged on the tuning contexts")
    return best[1]


def _curves(gaps: torch.Tensor, diverged: torch.Tensor, hyper: dict[str, Any] | None) -> dict[str, Any]:
    gaps = gaps.double()
    mean = gaps.mean(-1)
    median = gaps.median(-1).values
    return {
        "hyperparameters": hyper,
        "mean_gap": mean.tolist(),
        "median_gap": median.tolist(),
        "final_mean_gap": float(mean[-1]),
        "final_median_gap": float(median[-1]),
        "diverged": int(diverged.sum()),
    }


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0.0:
        return 0.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def _plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for name, result in results.items():
        style = {POLICY: {"color": "black", "linewidth": 2.5}, EXPERT: {"color": "black", "linestyle": "--"}}
        style = style.get(name, {"linewidth": 1.2})
        label = name if result["hyperparameters"] is None else f"{name} ({_describe(result['hyperparameters'])})"
        for ax, key in zip(axes, ("mean_gap", "median_gap")):
            values = [min(max(v, 1e-14), 1e30) for v in result[key]]  # log scale: floor zeros, cap inf
            ax.plot(range(len(values)), values, label=label, **style)
    for ax, key in zip(axes, ("mean", "median")):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{key} objective gap f(y_t) − f*")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _describe(hyper: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value:.3g}" for key, value in hyper.items())


def _log(results: dict[str, dict[str, Any]], events: Path, writer: Any | None) -> None:
    own = writer is None
    if own:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(events))
    for name, result in results.items():
        for key in ("mean_gap", "median_gap"):
            for iteration, value in enumerate(result[key]):
                writer.add_scalar(f"compare/{name}/{key}", value, iteration)
    if own:
        writer.close()
    else:
        writer.flush()

"""A learned ρ policy (RLQP) against OSQP's ρ rules on held-out QPs of every class.

RLQP (Ichnowski et al. 2021) measures a learned per-constraint ρ policy by the ADMM iterations it needs to
reach OSQP's tolerance, against OSQP's adaptive rule. :func:`compare_rho_policies` does that for a run of
``env.kind: admm`` on held-out problems of the class it trained on and of every other QP class (the
generalisation test: the per-row policy runs on any number of constraints), each solved to
eps_abs = eps_rel = :data:`TOLERANCE` by

- ``policy``: the batched ADMM with the trained policy setting ρ every ``iterations_per_step`` iterations (its
  first action at iteration 0, from the cold start's observation, as in the environment);
- ``adaptive``: the batched ADMM with OSQP's adaptive rule (:class:`~amorctl.solvers.OSQPAdaptiveRho`);
- ``osqp``: the ``osqp`` package itself, adaptive ρ, with scaling and polishing off (the iteration the
  batched solver implements), one problem at a time;
- ``osqp_default``: the ``osqp`` package with its default settings (Ruiz scaling on);
- ``fixed``: the batched ADMM with the best fixed ρ of :data:`FIXED_RHO_GRID`, the one with the lowest
  median iterations on *tuning* problems (another seed) of the same class;
- ``active_set``: the batched ADMM with the hand-written two-level rule of
  :class:`~amorctl.solvers.ActiveSetRho` (ρ = 10 on constraints at a bound, 0.1 elsewhere, reset at the policy's
  decision interval) — not a baseline of the bar, the reference that tells what a learned per-row policy adds to
  the plain active-set idea.

Termination is checked every ``check_every`` iterations (default :data:`CHECK_EVERY`; the gcd with the policy's
decision interval) by the batched solvers and by ``osqp`` (with its adaptive interval held at OSQP's 50, which
osqp would otherwise derive from the check interval), so their iteration counts are multiples of it;
``osqp_default`` checks every 25 (its default). A problem not solved
within ``max_iterations`` counts as ``max_iterations`` in the medians (its share is in ``solved``). Time is
seconds per problem: for the batched solvers the batch's solve time over N (the policy's forward passes
included) on the repository's timing clock (:func:`~amorctl.eval.timing.clock_of`: the thread's CPU time on a
CPU, one intra-op thread, which a loaded machine does not inflate; synchronised wall-clock on CUDA), for osqp
its own ``solve_time`` (wall-clock of each solve, set-up excluded).

Held-out problems are drawn from ``config.seed +`` :data:`~amorctl.eval.seeds.HELDOUT_SEED_OFFSET`, tuning
problems from ``config.seed +`` :data:`~amorctl.eval.seeds.TUNING_SEED_OFFSET`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from amorctl.envs.admm import FEATURES, log_residual_ratios, observe, rho_from_action, start_residuals
from amorctl.eval.seeds import HELDOUT_SEED_OFFSET, TUNING_SEED_OFFSET
from amorctl.eval.timing import clock_of
from amorctl.problems.qp import QPBatch, make_qp_family, osqp_solve
from amorctl.run.atomic import atomic_write_text
from amorctl.run.config import resolve_device
from amorctl.solvers import ActiveSetRho, ADMMSettings, BatchedADMM, OSQPAdaptiveRho
from amorctl.solvers.admm import Residuals, Status
from amorctl.solvers.rho import RhoRule

TOLERANCE = 1e-6
"""eps_abs = eps_rel of every solve (the issue's bar)."""

FIXED_RHO_GRID = tuple(10.0 ** (k / 2) for k in range(-6, 7))
"""The fixed ρ values tried (half decades, 10⁻³ … 10³); the best on the tuning problems is reported."""

EVALUATION_CLASSES: dict[str, dict[str, Any]] = {
    "random_qp": {"n": 10},
    "eq_qp": {"n": 10},
    "portfolio": {"assets": 20},
    "lasso": {"features": 5, "data": 50},
    "huber": {"features": 5, "data": 20},
    "svm": {"features": 5, "data": 40},
    "control": {"states": 4, "horizon": 10},
}
"""The classes (and sizes) evaluated besides the training family, which is evaluated at its trained sizes."""

CHECK_EVERY = 5
"""Iterations between termination checks: the resolution of every count but ``osqp_default``'s (OSQP's own
default, 25, would round every count up to a multiple of 25, too coarse to tell 50 from 70 iterations)."""

ADAPTIVE_INTERVAL = 50
"""OSQP's adaptive-ρ interval with its default check interval (and :class:`~amorctl.solvers.OSQPAdaptiveRho`'s)."""

METHODS = ("policy", "adaptive", "osqp", "osqp_default", "fixed", "active_set")
"""The rows of the table, in order."""

Policy = Callable[[torch.Tensor], torch.Tensor]


class PolicyRho(RhoRule):
    """A trained policy as a ρ rule: every ``interval`` iterations it reads :func:`~amorctl.envs.admm.observe` and
    sets ρ from its action (:func:`~amorctl.envs.admm.rho_from_action`), exactly as :class:`~amorctl.envs.ADMMEnv`
    steps. :meth:`start` takes the first action, from the cold start, before any iteration."""

    def __init__(self, policy: Policy, env_options: dict[str, Any]):
        self.policy = policy
        self.interval = int(env_options["iterations_per_step"])
        self.mode, self.rho_log_range = env_options["action"], float(env_options["rho_log_range"])
        self.observation_clip = float(env_options["observation_clip"])
        self.features = tuple(env_options.get("features", FEATURES))

    def start(self, solver: BatchedADMM) -> None:
        """The policy's action at iteration 0."""
        self.update(solver, start_residuals(solver))

    @torch.no_grad()
    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        action = self.policy(observe(solver, residuals, self.observation_clip, self.features))
        rho, scalar = rho_from_action(action, solver.types, self.mode, self.rho_log_range)
        solver.set_rho(rho, scalar=scalar)


class RecordedRule(RhoRule):
    """Wraps a rule (or none: fixed ρ) to record log₁₀ max(‖r_prim‖/ε_prim, ‖r_dual‖/ε_dual) of every problem at
    every termination check; the wrapped rule still acts only every ``rule.interval`` iterations.

    The solver measures only the problems still running (a frozen one reads 0), so a problem that stopped keeps
    the last value measured while it ran.
    """

    def __init__(self, rule: RhoRule | None, every: int):
        self.rule, self.interval = rule, every
        self.iterations: list[int] = []
        self.log_ratios: list[torch.Tensor] = []
        self._measured: torch.Tensor | None = None  # the problems the coming check measures

    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        done = int(solver.iterations[solver.running].max())
        ratios = log_residual_ratios(residuals, solver.settings).amax(-1).cpu()
        if self._measured is not None:
            ratios = torch.where(self._measured, ratios, self.log_ratios[-1])
        self.iterations.append(done)
        self.log_ratios.append(ratios)
        self._measured = solver.running.cpu().clone()
        if self.rule is not None and self.rule.interval and done % self.rule.interval == 0:
            self.rule.update(solver, residuals)


def _settings(every: int, max_iterations: int, rho: float = 0.1) -> ADMMSettings:
    return ADMMSettings(rho=rho, eps_abs=TOLERANCE, eps_rel=TOLERANCE, max_iter=max_iterations, check_termination=every)


def _batched(qp: QPBatch, settings: ADMMSettings, rule: RhoRule | None) -> dict[str, Any]:
    """Solve with the batched ADMM; iterations, solved flags, seconds per problem and the residual curve."""
    recorder = RecordedRule(rule, settings.check_termination)
    clock = clock_of(qp.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = clock()
    solver = BatchedADMM(qp, settings)
    if rule is not None:
        rule.start(solver)
    solver.solve(recorder)
    seconds = clock() - start
    torch.set_num_threads(threads)
    solved = solver.status == Status.SOLVED
    iterations = torch.where(solved, solver.iterations, torch.full_like(solver.iterations, settings.max_iter))
    curve = _median_curve(recorder, solver)
    return {
        "iterations": iterations.cpu(),
        "solved": solved.cpu(),
        "seconds": seconds / qp.num_problems,
        "curve": curve,
    }


def _median_curve(recorder: RecordedRule, solver: BatchedADMM) -> dict[str, list[float]]:
    """Median over problems of the log residual ratio at each recorded check, and at the end, where a problem
    solved at the last check (which no rule sees: nothing runs after it) is drawn at the tolerance (ratio 1, an
    upper bound) and one that ran out of iterations keeps its last recorded value."""
    if not recorder.log_ratios:  # every problem stopped at the first check
        return {"iteration": [int(solver.iterations.max())], "median_log_ratio": [0.0]}
    last = recorder.log_ratios[-1]
    solved = (solver.status == Status.SOLVED).cpu()
    final = torch.where(solved, last.clamp(max=0.0), last)
    ratios = [*recorder.log_ratios, final]
    iterations = [*recorder.iterations, int(solver.iterations.max())]
    return {"iteration": iterations, "median_log_ratio": [float(r.median()) for r in ratios]}


def _osqp(qp: QPBatch, max_iterations: int, every: int | None) -> dict[str, Any]:
    """The osqp package: with its defaults (``every`` None), or unscaled, unpolished, checking every ``every``."""
    settings = {"eps_abs": TOLERANCE, "eps_rel": TOLERANCE, "max_iter": max_iterations}
    if every is not None:
        settings |= {
            "scaling": 0,
            "polishing": False,
            "check_termination": every,
            "adaptive_rho_interval": ADAPTIVE_INTERVAL,
        }
    result = osqp_solve(qp, **settings)
    solved = torch.tensor([status == "solved" for status in result.status])
    iterations = torch.where(solved, result.iterations.cpu(), torch.full_like(result.iterations.cpu(), max_iterations))
    return {"iterations": iterations, "solved": solved, "seconds": float(result.solve_seconds.mean())}


def _best_fixed_rho(qp: QPBatch, every: int, max_iterations: int) -> float:
    """The ρ of :data:`FIXED_RHO_GRID` with the lowest median iterations on ``qp`` (ties: fewer unsolved)."""
    scores = []
    for rho in FIXED_RHO_GRID:
        solved = _batched(qp, _settings(every, max_iterations, rho), None)
        scores.append((float(solved["iterations"].double().median()), -float(solved["solved"].double().mean()), rho))
    return min(scores)[2]


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    iterations = result["iterations"].double()
    return {
        "median_iterations": float(iterations.median()),
        "mean_iterations": float(iterations.mean()),
        "solved": float(result["solved"].double().mean()),
        "seconds_per_problem": float(result["seconds"]),
    }


def compare_class(
    name: str,
    sizes: dict[str, Any],
    policy: Policy,
    env_options: dict[str, Any],
    *,
    num_heldout: int,
    num_tuning: int,
    max_iterations: int,
    seed: int,
    device: torch.device,
    check_every: int = CHECK_EVERY,
) -> dict[str, Any]:
    """Every method of :data:`METHODS` on ``num_heldout`` held-out problems of one class: a row per method
    (``median_iterations``, ``mean_iterations``, ``solved``, ``seconds_per_problem``; ``fixed`` also ``rho``;
    the batched ones a ``curve``), plus ``ratio``: the policy's median iterations over the adaptive rule's."""
    family = make_qp_family(name, **sizes)
    every = math.gcd(check_every, int(env_options["iterations_per_step"]))

    def draw(count: int, offset: int) -> QPBatch:
        return family.sample(count, torch.Generator(device=device).manual_seed(seed + offset), device, torch.float64)

    heldout, tuning = draw(num_heldout, HELDOUT_SEED_OFFSET), draw(num_tuning, TUNING_SEED_OFFSET)
    rho = _best_fixed_rho(tuning, every, max_iterations)
    raw = {
        "policy": _batched(heldout, _settings(every, max_iterations), PolicyRho(policy, env_options)),
        "adaptive": _batched(heldout, _settings(every, max_iterations), OSQPAdaptiveRho()),
        "osqp": _osqp(heldout, max_iterations, every),
        "osqp_default": _osqp(heldout, max_iterations, None),
        "fixed": _batched(heldout, _settings(every, max_iterations, rho), None),
        "active_set": _batched(
            heldout, _settings(every, max_iterations), ActiveSetRho(interval=int(env_options["iterations_per_step"]))
        ),
    }
    rows = {
        method: _summary(result) | ({"curve": result["curve"]} if "curve" in result else {})
        for method, result in raw.items()
    }
    rows["fixed"]["rho"] = rho
    ratio = rows["policy"]["median_iterations"] / rows["adaptive"]["median_iterations"]
    return {
        "class": name,
        "sizes": dict(sizes),
        "num_variables": family.num_variables,
        "num_constraints": family.num_constraints,
        "ratio": ratio,
        "methods": rows,
    }


def compare_rho_policies(
    run_dir: Path,
    config: Any,
    policy: Policy,
    output_dir: Path,
    *,
    num_heldout: int = 64,
    num_tuning: int = 32,
    max_iterations: int = 4000,
    check_every: int = CHECK_EVERY,
    classes: dict[str, dict[str, Any]] | None = None,
    writer: Any | None = None,
) -> dict[str, Any]:
    """The learned ρ policy of an ``env.kind: admm`` run against OSQP's rules, per QP class (see the module).

    Args:
        run_dir: the run folder; TensorBoard scalars go to ``run_dir/events`` (unless ``writer``).
        config: the run's config; its ``env.family`` is the training class (evaluated at its trained sizes) and
            ``env.admm`` the policy's decision interval, action mode and ρ scale.
        policy: deterministic actions in [-1, 1] for a batch of observations.
        output_dir: where ``rho_comparison.json`` and ``rho_comparison.png`` are written.
        num_heldout, num_tuning: held-out problems per class; problems the fixed ρ is tuned on.
        max_iterations: the iteration limit of every solve.
        check_every: iterations between termination checks (the resolution of the counts).
        classes: class name → sizes to evaluate (default :data:`EVALUATION_CLASSES`); the training class is
            always evaluated, at the run's sizes.

    Writes ``rho_comparison.json`` (the summary, and per class every method's row with the batched solvers'
    median residual curves), ``rho_comparison.png`` (median log residual ratio against iteration, one panel
    per class) and TensorBoard scalars ``rlqp/<class>/<method>/median_iterations`` and
    ``rlqp/<class>/<method>/seconds_per_problem``, and ``rlqp/<class>/<method>/median_log_ratio`` against the
    iteration.

    Returns the summary: ``trained_class``, ``ratio`` (training class: the policy's median iterations over
    the adaptive rule's; ≤ 0.5 is the issue's bar), ``classes_beating_adaptive`` (other classes where the
    policy needs fewer median iterations than the rule; ≥ 3 is the bar), per class ``<class>/ratio``, a
    printable ``table`` and the paths ``json`` and ``png``.
    """
    if getattr(config.env, "kind", None) != "admm":
        raise ValueError("compare_rho_policies needs a learned ρ run (config env.kind: admm)")
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config)
    env_options = dict(config.env.admm)
    trained = dict(config.env.family)
    trained_name = trained.pop("name")
    if env_options["action"] != "per_constraint" and classes is None:
        classes = {}  # a scalar policy still runs on any class, but its observation width is fixed to m
    wanted = {
        trained_name: trained,
        **{k: v for k, v in (classes if classes is not None else EVALUATION_CLASSES).items() if k != trained_name},
    }
    seed = int(config.seed)
    results = {
        name: compare_class(
            name,
            sizes,
            policy,
            env_options,
            num_heldout=num_heldout,
            num_tuning=num_tuning,
            max_iterations=max_iterations,
            check_every=check_every,
            seed=seed,
            device=device,
        )
        for name, sizes in wanted.items()
    }
    others = [name for name in results if name != trained_name]
    beating = [name for name in others if results[name]["ratio"] < 1]
    summary: dict[str, Any] = {
        "trained_class": trained_name,
        "ratio": results[trained_name]["ratio"],
        "classes_beating_adaptive": len(beating),
        "classes_evaluated": len(others),
        **{f"{name}/ratio": results[name]["ratio"] for name in results},
        "tolerance": TOLERANCE,
        "num_heldout": num_heldout,
        "max_iterations": max_iterations,
        "check_every": check_every,
    }
    table = format_rho_table(results)
    report = {
        **summary,
        "beating": beating,
        "heldout_seed": seed + HELDOUT_SEED_OFFSET,
        "tuning_seed": seed + TUNING_SEED_OFFSET,
        "env": env_options,
        "classes": results,
        "table": table,
    }
    json_path, png_path = output_dir / "rho_comparison.json", output_dir / "rho_comparison.png"
    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    _plot(results, png_path)
    _log(results, run_dir / "events", writer)
    print(table)
    return {**summary, "json": str(json_path), "png": str(png_path)}


def format_rho_table(results: dict[str, dict[str, Any]]) -> str:
    """One line per class and method: median and mean iterations, share solved, milliseconds per problem."""
    lines = [f"{'class':<10} {'method':<13} {'median it':>9} {'mean it':>9} {'solved':>7} {'ms/QP':>8}  note"]
    for name, result in results.items():
        for method in METHODS:
            row = result["methods"][method]
            note = (
                f"rho={row['rho']:.3g}"
                if method == "fixed"
                else (f"ratio to adaptive {result['ratio']:.2f}" if method == "policy" else "")
            )
            lines.append(
                f"{name:<10} {method:<13} {row['median_iterations']:>9.0f} {row['mean_iterations']:>9.1f} "
                f"{row['solved']:>7.2f} {1e3 * row['seconds_per_problem']:>8.3f}  {note}"
            )
    return "\n".join(lines)


def _plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, len(results))
    rows = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, (name, result) in zip(axes.flat, results.items()):
        for method, row in result["methods"].items():
            if "curve" not in row:
                continue
            style = {"color": "black", "linewidth": 2.2} if method == "policy" else {"linewidth": 1.2}
            label = f"{method} (ρ={row['rho']:.3g})" if method == "fixed" else method
            values = [10.0**v for v in row["curve"]["median_log_ratio"]]
            ax.plot(row["curve"]["iteration"], values, label=label, **style)
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_title(f"{name} (n={result['num_variables']}, m={result['num_constraints']})", fontsize=9)
        ax.set_xlabel("ADMM iteration")
        ax.set_ylabel("median residual / tolerance")
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(results) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"ADMM residual to eps = {TOLERANCE:g}: learned ρ vs OSQP's rules (1 = solved)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log(results: dict[str, dict[str, Any]], events: Path, writer: Any | None) -> None:
    own = writer is None
    if own:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(events))
    for name, result in results.items():
        for method, row in result["methods"].items():
            for key in ("median_iterations", "seconds_per_problem"):
                writer.add_scalar(f"rlqp/{name}/{method}/{key}", row[key], 0)
            for iteration, value in zip(
                row.get("curve", {}).get("iteration", []), row.get("curve", {}).get("median_log_ratio", [])
            ):
                writer.add_scalar(f"rlqp/{name}/{method}/median_log_ratio", value, iteration)
        writer.add_scalar(f"rlqp/{name}/ratio", result["ratio"], 0)
    if own:
        writer.close()
    else:
        writer.flush()

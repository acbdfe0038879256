"""The amortization report: did amortizing pay off? Held-out objective gap against compute.

Amortization (seed, Definition 1) trades a solver run per problem for a model trained once; whether
the trade paid off is a question of gap *and* compute. :func:`amortization_report` answers it on the
run's held-out contexts (``eval.num_contexts`` from ``eval.seed``, the set of the final metrics) with
three curves of the mean objective gap f(ŷ) − f* (f* from the family's reference solver) against
seconds per solution and against objective + gradient evaluations per solution:

- ``model``: the trained model. A semi-amortized model (Definition 3, eq. 2.1; anything with
  ``iterates`` and an ``inference_steps`` count) gives one point per K = 0..``inference_steps``
  (``eval.steps``): its iterate ŷᴷ, with K forward steps' cost; a fully-amortized model is one point,
  one forward pass and 0 evaluations.
- ``warm_start``: the model's prediction followed by k steps of the family's classical solver
  (:func:`classical_solver`; the steps are :mod:`amorctl.optimizers`' own ``step``), the warm start
  the tutorial contrasts semi-amortization with (§2.1.2). Its cost includes the model's.
- ``solver``: the same classical solver from scratch (y = 0, clipped into a box domain) for k steps,
  and ``reference``: the family's reference solve (:meth:`~amorctl.problems.Problem.solve`), the end
  point (gap 0 by definition; its evaluations are the solver's own business and are not counted).

Each solver's step size is tuned (:func:`amorctl.optimizers.tune_step_size`) on contexts drawn from
``eval.seed`` + :data:`~amorctl.eval.seeds.TUNING_SEED_OFFSET`, never on the held-out ones: from
scratch for the ``solver`` curve, from the model's predictions for ``warm_start``.

Evaluations are counted, not assumed: ``objective``, ``gradient`` and ``smooth_gradient`` of the
problem are counted per call (one call evaluates every problem of the batch once) while a point runs;
calls made inside a counted call (``gradient`` evaluating ``objective`` through ``torch.func``) are not
counted again. Seconds are :func:`~amorctl.eval.timing.seconds_per_call` over the whole held-out batch
(batched model against batched solver, one thread each, median of repeated blocks), divided by the
batch size.

The summary reads: the model's gap (at its last K) is reached by the solver from scratch after N
steps, T seconds per solution; speed-up S = T / the model's seconds. When the solver does not reach it
within ``max_steps``, S is a lower bound (``speedup_is_lower_bound``). ``reference_speedup`` is the
reference solve's seconds over the model's, measured as the final metrics' ``speedup`` is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from amorctl.eval.direct import ReferenceSet, gap_metrics
from amorctl.eval.seeds import TUNING_SEED_OFFSET
from amorctl.eval.timing import Clock, seconds_per_call
from amorctl.models import is_semi_amortized, model_iterates
from amorctl.optimizers import is_composite, make_optimizer, tune_step_size
from amorctl.problems import Problem

STEP_GRID = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""The solver step counts k that are timed (those up to ``max_steps``, and ``max_steps`` itself)."""

GAP_FLOOR = 1e-14
"""Gaps at or below this (f at f* within rounding, the reference solve) are drawn at this height."""

COUNTED = {"objective": "objective_evaluations", "gradient": "gradient_evaluations",
           "smooth_gradient": "gradient_evaluations"}
"""Problem methods counted while a point runs, and the count each adds to."""


def classical_solver(problem: Problem) -> str:
    """The classical optimizer the report runs for ``problem`` (a name in :data:`amorctl.optimizers.OPTIMIZERS`).

    FISTA for composite families (the lasso), projected gradient descent for box domains
    (pendulum_mpc), L-BFGS with its Armijo line search otherwise (logistic_regression, quadratic,
    Rosenbrock).
    """
    if is_composite(problem):
        return "fista"
    if problem.bounds is not None:
        return "projected_gd"
    return "lbfgs"


@contextlib.contextmanager
def counting(problem: Problem) -> Iterator[dict[str, int]]:
    """Count the calls of the problem's objective and gradients (see :data:`COUNTED`) inside the block."""
    counts = dict.fromkeys(COUNTED.values(), 0)
    depth = [0]
    patched = [name for name in COUNTED if callable(getattr(problem, name, None))]

    def wrap(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[COUNTED[name]] += depth[0] == 0
            depth[0] += 1
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1

        return counted

    for name in patched:
        setattr(problem, name, wrap(name, getattr(problem, name)))
    try:
        yield counts
    finally:
        for name in patched:
            delattr(problem, name)


@contextlib.contextmanager
def inference_steps(model: nn.Module, steps: int | None) -> Iterator[nn.Module]:
    """``model`` in evaluation mode running ``steps`` iterations (``None``: as it is); restored afterwards."""
    training, before = model.training, getattr(model, "inference_steps", None)
    model.eval()
    if steps is not None:
        model.inference_steps = steps
    try:
        yield model
    finally:
        if steps is not None:
            model.inference_steps = before
        model.train(training)


def amortization_report(
    problem: Problem,
    model: nn.Module,
    reference: ReferenceSet,
    output_dir: Path,
    *,
    tuning_contexts: torch.Tensor,
    max_steps: int = 100,
    timing_repeats: int = 3,
    clock: Clock = "auto",
    writer: Any | None = None,
    events: Path | None = None,
) -> dict[str, Any]:
    """Write ``amortization_report.json`` and ``.png`` to ``output_dir`` and log the curves to TensorBoard.

    Args:
        problem: the run's family (the instance the model was built with: its evaluations are counted).
        model: the trained model ŷθ.
        reference: the held-out contexts with f* (:class:`~amorctl.eval.direct.ReferenceSet`).
        output_dir: where the JSON and PNG go (created if missing).
        tuning_contexts: contexts the solvers' step sizes are tuned on (not the held-out ones).
        max_steps: the largest k of the ``warm_start`` and ``solver`` curves.
        timing_repeats: timed blocks per point (at least).
        clock: ``auto`` or ``wall`` (:mod:`amorctl.eval.timing`).
        writer: an open ``SummaryWriter``, or ``events``: a folder for a new one (neither: no TensorBoard).

    Returns:
        The summary (also the JSON's ``summary``): ``solver``, ``model_steps``, ``model_gap``,
        ``model_seconds_per_solution``, ``model_evaluations``, ``solver_steps_to_model_gap`` (``None``
        when not reached), ``solver_seconds_to_model_gap``, ``solver_evaluations_to_model_gap``,
        ``speedup``, ``speedup_is_lower_bound``, ``reference_seconds_per_solution``,
        ``reference_speedup``, ``paid_off`` (speed-up above 1), ``sentence``, and the paths ``json``
        and ``png``.

    The JSON holds ``family``, ``num_contexts``, ``solver`` (name and tuned hyper-parameters of both
    starts), ``timing`` and ``curves``: for ``model``, ``warm_start``, ``solver`` and ``reference`` a
    list of points with ``steps``, ``forward_passes``, ``objective_evaluations``,
    ``gradient_evaluations``, ``evaluations`` (their sum; ``None`` for the reference),
    ``seconds_per_solution``, ``objective_gap_mean``, ``objective_gap_p95`` and, where f* is away
    from 0, ``relative_gap_mean``.
    """
    if not reference.solved:
        raise ValueError(f"the amortization report needs f*: {type(problem).__name__} has no reference solver")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    x, device = reference.contexts, reference.contexts.device
    batch = x.shape[0]
    solver = classical_solver(problem)

    def seconds(fn: Callable[[], Any]) -> float:
        return seconds_per_call(fn, device, timing_repeats, clock) / batch

    def predict(contexts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(contexts)

    scratch = _start_from_zero(problem)
    with inference_steps(model, None):  # evaluation mode throughout
        model_curve = _model_curve(problem, model, reference, seconds)
        hyper_scratch = tune_step_size(solver, problem, tuning_contexts, scratch, max_steps)
        hyper_warm = tune_step_size(solver, problem, tuning_contexts, predict, max_steps)
        model_counts = {key: model_curve[-1][key] for key in COUNTED.values()}
        solver_curve, solver_points = _solver_curve(problem, reference, solver, hyper_scratch, scratch, max_steps,
                                                    seconds)
        warm_curve, _ = _solver_curve(problem, reference, solver, hyper_warm, predict, max_steps, seconds,
                                      model_counts)
    reference_point = {
        "steps": None, "forward_passes": 0, "objective_evaluations": None, "gradient_evaluations": None,
        "evaluations": None, "seconds_per_solution": seconds(lambda: problem.solve(x)),
        **_gaps(problem, reference.solutions, reference),
    }
    summary = _summary(solver, model_curve[-1], solver_points, reference_point, hyper_scratch, scratch, reference,
                       problem, seconds)
    curves = {"model": model_curve, "warm_start": warm_curve, "solver": solver_curve, "reference": [reference_point]}
    json_path, png_path = output_dir / "amortization_report.json", output_dir / "amortization_report.png"
    from amorctl.eval.reports import write_json

    write_json(json_path, {
        "family": type(problem).__name__,
        "num_contexts": batch,
        "solver": {"name": solver, "from_scratch": hyper_scratch, "warm_start": hyper_warm},
        "timing": {"clock": clock, "device": str(device), "threads": 1, "repeats": timing_repeats,
                   "method": "torch.utils.benchmark.Timer.blocked_autorange, median over blocks, whole batch"},
        "summary": summary,
        "curves": curves,
    })
    _plot(curves, solver, summary, png_path)
    _log(curves, summary, writer, events)
    return {**summary, "json": str(json_path), "png": str(png_path)}


TUNING_CONTEXTS = 128
"""Contexts the solvers' step sizes are tuned on (the whole step-size grid runs on them in one batch)."""


def report_on_run(config: Any, problem: Problem, model: nn.Module, device: torch.device, output_dir: Path,
                  events: Path | None, *, max_steps: int = 100, clock: Clock = "auto") -> dict[str, Any]:
    """:func:`amortization_report` of a direct run: its held-out set (``eval.num_contexts`` from ``eval.seed``),
    tuning contexts from ``eval.seed`` + :data:`~amorctl.eval.seeds.TUNING_SEED_OFFSET`, ``eval.timing_repeats``.

    Raises ``ValueError`` for a run trained toward planted solutions (``loss.target: planted``, e.g. LISTA):
    its model does not minimise the family's objective, so an objective-gap race would mislead.
    """
    if getattr(config.loss, "target", "solver") == "planted":
        raise ValueError("the run was trained toward planted solutions (loss.target: planted), not toward the "
                         "objective's minimiser, so its objective gap is no measure of it; see its nmse_db above "
                         "(and scripts/benchmark.py lista for the sparse-coding comparison)")
    reference = ReferenceSet.build(problem, config.eval.num_contexts, config.eval.seed, device)
    generator = torch.Generator(device=device).manual_seed(config.eval.seed + TUNING_SEED_OFFSET)
    tuning = problem.sample_contexts(TUNING_CONTEXTS, generator, device)
    return amortization_report(problem, model, reference, output_dir, tuning_contexts=tuning, max_steps=max_steps,
                               timing_repeats=config.eval.timing_repeats, clock=clock, events=events)


# ---------------------------------------------------------------------------------- internals


def _start_from_zero(problem: Problem) -> Callable[[torch.Tensor], torch.Tensor]:
    """y = 0 for every context (clipped into a box domain): where the reference solvers start."""
    def start(x: torch.Tensor) -> torch.Tensor:
        y = x.new_zeros(x.shape[0], problem.solution_dim)
        return y.clamp(*problem.bounds) if problem.bounds is not None else y

    return start


def _gaps(problem: Problem, y: torch.Tensor, reference: ReferenceSet) -> dict[str, float]:
    found = gap_metrics(problem, y, reference)
    keys = ("objective_gap_mean", "objective_gap_p95", "relative_gap_mean")
    return {key: found[key] for key in keys if key in found}


def _point(steps: int | None, forward_passes: int, counts: dict[str, int], seconds: float,
           gaps: dict[str, float]) -> dict[str, Any]:
    return {"steps": steps, "forward_passes": forward_passes, **counts, "evaluations": sum(counts.values()),
            "seconds_per_solution": seconds, **gaps}


def _model_curve(problem: Problem, model: nn.Module, reference: ReferenceSet, seconds) -> list[dict[str, Any]]:
    """One point per K = 0..inference_steps for a semi-amortized model, one point otherwise."""
    x = reference.contexts
    stepped = is_semi_amortized(model) and isinstance(getattr(model, "inference_steps", None), int)
    steps: list[int | None] = list(range(model.inference_steps + 1)) if stepped else [None]
    curve = []
    for k in steps:
        with inference_steps(model, k), torch.no_grad():
            with counting(problem) as counts:
                y = model(x)
            elapsed = seconds(lambda: model(x))
            curve.append(_point(k if stepped else 0, 1, counts, elapsed, _gaps(problem, y, reference)))
    if not stepped and is_semi_amortized(model):  # iterates without a settable count: their gaps, for information
        with inference_steps(model, None), torch.no_grad():
            curve[-1]["iterate_gap_means"] = [_gaps(problem, y, reference)["objective_gap_mean"]
                                              for y in model_iterates(model, x)]
    return curve


def _run_counted(problem: Problem, name: str, hyper: dict[str, Any], x: torch.Tensor, y: torch.Tensor, steps: int,
                 reference: ReferenceSet) -> tuple[list[dict[str, int]], list[dict[str, float]]]:
    """The solver's cumulative evaluation counts and gaps after k = 0..steps steps from ``y`` (k = 0: no solver
    call at all; the first step's counts include the optimizer's ``init``, e.g. L-BFGS's f and ∇f at ``y``)."""
    optimizer = make_optimizer(name, problem, **hyper)
    counts_by_step, gaps_by_step = [dict.fromkeys(COUNTED.values(), 0)], [_gaps(problem, y, reference)]
    with torch.no_grad(), counting(problem) as counts:
        state = optimizer.init(y, x)
        for _ in range(steps):
            y, state = optimizer.step(y, x, state)
            counts_by_step.append(dict(counts))
            with _paused(counts):
                gaps_by_step.append(_gaps(problem, y, reference))
    return counts_by_step, gaps_by_step


@contextlib.contextmanager
def _paused(counts: dict[str, int]) -> Iterator[None]:
    saved = dict(counts)
    yield
    counts.update(saved)


def _solve(problem: Problem, name: str, hyper: dict[str, Any], start: Callable, x: torch.Tensor, steps: int):
    """k steps of the solver from ``start(x)``: what is timed."""
    y = start(x)
    if steps == 0:
        return y
    optimizer = make_optimizer(name, problem, **hyper)
    state = optimizer.init(y, x)
    for _ in range(steps):
        y, state = optimizer.step(y, x, state)
    return y


def _solver_curve(problem, reference, name, hyper, start, max_steps, seconds, model_counts=None):
    """Points at the timed k of :data:`STEP_GRID`, and every k's counts and gaps.

    ``model_counts``: the evaluations of the model that ``start`` runs (a warm start, which also gets its
    k = 0 point, the model's prediction); ``None`` for a start from scratch.
    """
    x = reference.contexts
    with torch.no_grad():
        y0 = start(x)
    counts_by_step, gaps_by_step = _run_counted(problem, name, hyper, x, y0, max_steps, reference)
    warm = model_counts is not None
    start_counts = model_counts if warm else dict.fromkeys(COUNTED.values(), 0)
    timed = sorted({k for k in STEP_GRID if k < max_steps} | {max_steps} | ({0} if warm else set()))
    curve = []
    for k in timed:
        counts = {key: counts_by_step[k][key] + start_counts[key] for key in start_counts}
        elapsed = seconds(lambda k=k: _solve(problem, name, hyper, start, x, k))
        curve.append(_point(k, int(warm), counts, elapsed, gaps_by_step[k]))
    every = [{"steps": k, **counts_by_step[k], **gaps_by_step[k]} for k in range(max_steps + 1)]
    return curve, every


def _summary(solver, model_point, solver_points, reference_point, hyper, scratch, reference, problem,
             seconds) -> dict[str, Any]:
    """Where the solver from scratch first reaches the model's gap, and the speed-ups."""
    target = model_point["objective_gap_mean"]
    reached = next((p for p in solver_points if p["objective_gap_mean"] <= target), None)
    steps = reached["steps"] if reached is not None else solver_points[-1]["steps"]
    x = reference.contexts
    solver_seconds = seconds(lambda: _solve(problem, solver, hyper, scratch, x, steps))
    model_seconds = model_point["seconds_per_solution"]
    evaluations = sum(solver_points[steps][key] for key in ("objective_evaluations", "gradient_evaluations"))
    speedup = solver_seconds / model_seconds
    reference_speedup = reference_point["seconds_per_solution"] / model_seconds
    cost = f"{model_point['steps']} steps" if model_point["steps"] else "one forward pass"
    head = (f"the model's mean gap {target:.3g} ({cost}, {model_point['evaluations']} evaluations, "
            f"{model_seconds:.3g} s/solution)")
    if reached is not None:
        sentence = (f"{head} is reached by {solver} from scratch after {steps} steps ({evaluations} evaluations, "
                    f"{solver_seconds:.3g} s/solution): speed-up {_times(speedup)}")
    else:
        sentence = (f"{head} is not reached by {solver} from scratch in {steps} steps (gap "
                    f"{solver_points[-1]['objective_gap_mean']:.3g}, {solver_seconds:.3g} s/solution): "
                    f"speed-up over {_times(speedup)}")
    sentence += (f"; the reference solve takes {reference_point['seconds_per_solution']:.3g} s/solution "
                 f"({_times(reference_speedup)} the model's)")
    return {
        "solver": solver,
        "model_steps": model_point["steps"],
        "model_gap": target,
        "model_seconds_per_solution": model_seconds,
        "model_evaluations": model_point["evaluations"],
        "solver_steps_to_model_gap": steps if reached is not None else None,
        "solver_seconds_to_model_gap": solver_seconds,
        "solver_evaluations_to_model_gap": evaluations,
        "speedup": speedup,
        "speedup_is_lower_bound": reached is None,
        "reference_seconds_per_solution": reference_point["seconds_per_solution"],
        "reference_speedup": reference_speedup,
        "paid_off": speedup > 1.0,
        "sentence": sentence,
    }


def _times(ratio: float) -> str:
    """A speed-up for people: ``1,840×``, ``4.59×``."""
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.3g}×"


STYLES = {"model": {"color": "black", "marker": "o", "linewidth": 2.5, "zorder": 3},
          "warm_start": {"color": "tab:blue", "marker": "s"},
          "solver": {"color": "tab:orange", "marker": "^"},
          "reference": {"color": "tab:red", "marker": "*", "markersize": 14, "linestyle": "none"}}


def _label(name: str, solver: str) -> str:
    return {"model": "model (each K)", "warm_start": f"model + k {solver} steps", "solver": f"{solver} from scratch",
            "reference": "reference solve (gap 0)"}[name]


def _plot(curves: dict[str, list[dict[str, Any]]], solver: str, summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for name, points in curves.items():
        gaps = [min(max(p["objective_gap_mean"], GAP_FLOOR), 1e30) for p in points]
        axes[0].plot([p["seconds_per_solution"] for p in points], gaps, label=_label(name, solver), **STYLES[name])
        if name != "reference":
            axes[1].plot([p["evaluations"] for p in points], gaps, label=_label(name, solver), **STYLES[name])
    axes[0].set_xscale("log")
    axes[0].set_xlabel("seconds per solution (batched, 1 thread)")
    axes[1].set_xscale("symlog", linthresh=1.0)
    axes[1].set_xlim(left=-0.3)  # room for a fully-amortized model's 0 evaluations
    axes[1].set_xlabel("objective + gradient evaluations per solution")
    axes[0].set_ylabel("mean objective gap f(ŷ) − f* (held out)")
    for ax in axes:
        ax.axhline(max(summary["model_gap"], GAP_FLOOR), color="gray", linestyle=":", linewidth=1)  # the gap to reach
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    verdict = "amortizing paid off" if summary["paid_off"] else "amortizing did not pay off"
    bound = "≥ " if summary["speedup_is_lower_bound"] else ""
    fig.suptitle(f"{verdict}: speed-up {bound}{_times(summary['speedup'])} at the model's gap "
                 f"{summary['model_gap']:.3g} (reference solve: {_times(summary['reference_speedup'])})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _log(curves: dict[str, list[dict[str, Any]]], summary: dict[str, Any], writer: Any | None,
         events: Path | None) -> None:
    """``amortization/<curve>/{objective_gap,seconds_per_solution,evaluations}`` with k (or K) as the step."""
    own = writer is None
    if own:
        if events is None:
            return
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(events))
    for name, points in curves.items():
        for p in points:
            step = p["steps"] or 0
            writer.add_scalar(f"amortization/{name}/objective_gap", p["objective_gap_mean"], step)
            writer.add_scalar(f"amortization/{name}/seconds_per_solution", p["seconds_per_solution"], step)
            if p["evaluations"] is not None:
                writer.add_scalar(f"amortization/{name}/evaluations", p["evaluations"], step)
    for key in ("speedup", "reference_speedup"):
        writer.add_scalar(f"amortization/{key}", summary[key], 0)
    if own:
        writer.close()
    else:
        writer.flush()

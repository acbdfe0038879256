"""Held-out evaluation of an amortization model against the reference solver.

A family without a reference solver (its :meth:`~amorctl.problems.Problem.solve` raises
``NotImplementedError``) is still evaluated: on the objective alone, without gaps, distances or
speedup. The gap against compute in full (model, warm start, solver from scratch) is the
amortization report, :mod:`amorctl.eval.amortization_report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from amorctl.eval.timing import seconds_per_call
from amorctl.problems import Problem

RELATIVE_GAP_FLOOR = 1e-8
"""Relative gaps are reported only when every held-out |f*| exceeds this (not for f* = 0 families)."""


@dataclass
class ReferenceSet:
    """Held-out contexts with their reference solutions.

    ``solutions`` and ``optimal_values`` are ``None`` when the family has no reference solver; planted
    references (``solutions`` planted by the sampler) have no optimal values, and no solver runs for them.
    """

    contexts: torch.Tensor
    solutions: torch.Tensor | None
    optimal_values: torch.Tensor | None

    @classmethod
    def build(
        cls, problem: Problem, num_contexts: int, seed: int, device: torch.device, target: str = "solver"
    ) -> ReferenceSet:
        """Draw ``num_contexts`` contexts from their own seeded generator and solve them once.

        With ``target="planted"`` the references are the solutions the family's sampler planted in the
        contexts (:meth:`~amorctl.problems.Problem.sample_planted`); no solver runs, so there are no
        optimal values (and no solver timing).
        """
        generator = torch.Generator(device=device).manual_seed(seed)
        if target == "planted":
            contexts, planted = problem.sample_planted(num_contexts, generator, device)
            return cls(contexts, planted, None)
        contexts = problem.sample_contexts(num_contexts, generator, device)
        try:
            solutions = problem.solve(contexts)
        except NotImplementedError:
            return cls(contexts, None, None)
        return cls(contexts, solutions, problem.objective(solutions, contexts))

    @property
    def solved(self) -> bool:
        """Whether reference solutions are known (the family has a solver)."""
        return self.solutions is not None


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """``fn()`` and its wall-clock seconds, synchronising the device around it (one call, no repeats)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


@torch.no_grad()
def gap_metrics(problem: Problem, predictions: torch.Tensor, reference: ReferenceSet) -> dict[str, float]:
    """Objective gap f(ŷ) − f*, relative gap (f(ŷ) − f*)/|f*| and distance ‖ŷ − y*‖ on the held-out set.

    Without reference solutions only the mean objective f(ŷ) is returned (``objective_mean``); the
    relative gap is left out when some |f*| is (near) zero, where it means nothing (e.g. Rosenbrock).
    Against planted solutions y₀ (no f*): f(ŷ), ‖ŷ − y₀‖ and ``nmse_db`` = 10 log₁₀(Σ‖ŷ − y₀‖² / Σ‖y₀‖²),
    the normalised mean squared error of sparse coding, summed over the held-out set.
    """
    values = problem.objective(predictions, reference.contexts).double()
    if not reference.solved:
        return {"objective_mean": values.mean().item()}
    error = (predictions - reference.solutions).double()
    distance = error.norm(dim=-1)
    if reference.optimal_values is None:
        nmse = error.square().sum() / reference.solutions.double().square().sum()
        return {"objective_mean": values.mean().item(), "solution_distance_mean": distance.mean().item(),
                "nmse_db": 10.0 * torch.log10(nmse).item()}
    optimal = reference.optimal_values.double()
    gap = values - optimal
    metrics = {
        "objective_mean": values.mean().item(),
        "optimal_objective_mean": optimal.mean().item(),
        "objective_gap_mean": gap.mean().item(),
        "objective_gap_p95": gap.quantile(0.95).item(),
        "solution_distance_mean": distance.mean().item(),
    }
    if bool((optimal.abs() > RELATIVE_GAP_FLOOR).all()):
        relative = gap / optimal.abs()
        metrics.update(relative_gap_mean=relative.mean().item(), relative_gap_p95=relative.quantile(0.95).item())
    return metrics


@torch.no_grad()
def evaluate_model(
    problem: Problem, model: torch.nn.Module, reference: ReferenceSet, timing_repeats: int
) -> dict[str, float]:
    """Gap metrics plus seconds per solution for model and solver on the same batch and device.

    Both are timed by the one rule of :func:`amorctl.eval.timing.seconds_per_call` (the amortization
    report's): the whole held-out batch per call, one thread each, the median of at least
    ``timing_repeats`` blocks after a warm-up, on a CPU the thread's CPU time. ``speedup`` is the
    solver's seconds over the model's; without a solver both solver figures are left out.
    """
    device = reference.contexts.device
    batch = reference.contexts.shape[0]
    training = model.training
    model.eval()
    predictions = model(reference.contexts)
    model_seconds = seconds_per_call(lambda: model(reference.contexts), device, timing_repeats) / batch
    model.train(training)
    metrics = {**gap_metrics(problem, predictions, reference), "model_seconds_per_solution": model_seconds}
    if reference.optimal_values is not None:
        solver_seconds = seconds_per_call(lambda: problem.solve(reference.contexts), device, timing_repeats) / batch
        metrics.update(solver_seconds_per_solution=solver_seconds, speedup=solver_seconds / model_seconds)
    return {**metrics, "num_contexts": batch}


def format_table(metrics: dict[str, Any]) -> str:
    """A short two-column table of the scalar metrics for the terminal (per-episode lists are left out)."""
    scalars = {key: value for key, value in metrics.items() if not isinstance(value, (list, tuple, dict))}
    width = max(len(key) for key in scalars)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ----------"]
    for key, value in scalars.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)

"""Held-out evaluation of an amortization model against the reference solver.

A family without a reference solver (its :meth:`~amorctl.problems.Problem.solve` raises
``NotImplementedError``) is still evaluated: on the objective alone, without gaps, distances or
speedup.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from amorctl.problems import Problem

RELATIVE_GAP_FLOOR = 1e-8
"""Relative gaps are reported only when every held-out |f*| exceeds this (not for f* = 0 families)."""


@dataclass
class ReferenceSet:
    """Held-out contexts with their reference solutions and how long the solver took for them.

    ``solutions``, ``optimal_values`` and ``solver_seconds`` are ``None`` when the family has no
    reference solver; planted references (``solutions`` planted by the sampler) have no optimal
    values or solver time.
    """

    contexts: torch.Tensor
    solutions: torch.Tensor | None
    optimal_values: torch.Tensor | None
    solver_seconds: float | None

    @classmethod
    def build(
        cls, problem: Problem, num_contexts: int, seed: int, device: torch.device, target: str = "solver"
    ) -> ReferenceSet:
        """Draw ``num_contexts`` contexts from their own seeded generator and solve them once, timed.

        A solve of two contexts first warms the solver up (library initialisation, first kernel
        launches), as the model's timing is warmed up, so that neither pays start-up in its time.
        With ``target="planted"`` the references are the solutions the family's sampler planted in the
        contexts (:meth:`~amorctl.problems.Problem.sample_planted`); no solver runs, so there are no
        optimal values or solver time.
        """
        generator = torch.Generator(device=device).manual_seed(seed)
        if target == "planted":
            contexts, planted = problem.sample_planted(num_contexts, generator, device)
            return cls(contexts, planted, None, None)
        contexts = problem.sample_contexts(num_contexts, generator, device)
        try:
            problem.solve(contexts[:2])
            solutions, seconds = timed(lambda: problem.solve(contexts), device)
        except NotImplementedError:
            return cls(contexts, None, None, None)
        return cls(contexts, solutions, problem.objective(solutions, contexts), seconds)

    @property
    def solved(self) -> bool:
        """Whether reference solutions are known (the family has a solver)."""
        return self.solutions is not None


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    """``fn()`` and its wall-clock seconds, synchronising the device around it."""
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

    The model's time is the median of ``timing_repeats`` forward passes over the whole held-out
    batch (after one warm-up pass); the solver's is its single timed run in
    :meth:`ReferenceSet.build`. ``speedup`` is their ratio; without a solver run (no solver, or planted
    references) both are left out.
    """
    device = reference.contexts.device
    model.eval()
    predictions = model(reference.contexts)
    seconds = [timed(lambda: model(reference.contexts), device)[1] for _ in range(timing_repeats)]
    model.train()
    batch = reference.contexts.shape[0]
    model_seconds = statistics.median(seconds) / batch
    metrics = {**gap_metrics(problem, predictions, reference), "model_seconds_per_solution": model_seconds}
    if reference.solver_seconds is not None:
        solver_seconds = reference.solver_seconds / batch
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

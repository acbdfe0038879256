"""Implicit differentiation of iMAML's proximal inner problem (eq. 2.13; Rajeswaran et al. 2019).

With ``gradient.estimator: implicit`` a semi-amortized model's prediction is the solution of

    ŷ(x) = argmin_y F(y; x),   F(y; x) := f(y; x) + (λ/2)‖y − ŷ⁰θ(x)‖²,

found by the model's own descent steps from ŷ⁰ (at most K = ``model.steps`` of them; ``eval.steps``
at evaluation), stopping once every context has ‖∇F‖ ≤ ``tolerance`` · ‖∇F(ŷ⁰)‖, without keeping a
graph. At the solution ∇f(ŷ) + λ(ŷ − ŷ⁰) = 0, so the implicit function theorem (seed Theorem 1) gives

    Dŷ⁰ ŷ = λ (∇²f(ŷ) + λI)⁻¹.

The backward pass turns v = ∂L/∂ŷ into λu with (∇²f(ŷ) + (λ + δ)I) u = v, solved per context by
conjugate gradients whose matrix-vector products are Hessian-vector products (``torch.func.jvp`` of
∇f: the Hessian is never formed), at most ``cg_steps`` iterations to the same relative ``tolerance``;
λu then flows into ŷ⁰θ(x) and θ. Only ŷ and the contexts are kept for backward: the memory does not
grow with K.

What this differentiates is the proximal model, not K steps of gradient descent on f (the seed's
warning after eq. 2.13): the learned step sizes receive no gradient (the solution does not depend on
them once the inner problem is solved), they only set how fast it is solved, and they must be stable
for F (α < 2 / (L + λ)). The damping δ (``cg_damping``) keeps the system positive definite where f is
not convex (biased when δ > 0). Composite (lasso) and box-constrained families have no ∇²f-based
stationarity condition here and are refused.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from amorctl.gradients.base import UnrollEstimator
from amorctl.optimizers import gradient_step
from amorctl.problems import Problem
from amorctl.schema import NonNegativeFloat, PositiveFloat, PositiveInt


class ProximalObjective:
    """F(y; x) = f(y; x) + (λ/2)‖y − ŷ⁰‖², eq. 2.13's inner objective, for the model's step rule."""

    bounds = None

    def __init__(self, problem: Problem, start: torch.Tensor, lam: float):
        self.problem, self.start, self.lam = problem, start, lam

    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.problem.objective(y, x) + 0.5 * self.lam * (y - self.start).square().sum(-1)

    def gradient(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.problem.gradient(y, x) + self.lam * (y - self.start)


class ProximalSolution(torch.autograd.Function):
    """ŷ = solve(ŷ⁰) forward (no graph), ``vjp(ŷ, v)`` backward: the implicit derivative's only link to θ."""

    @staticmethod
    def forward(ctx, start: torch.Tensor, solve: Callable, vjp: Callable) -> torch.Tensor:  # type: ignore[override]
        solution = solve(start.detach())
        ctx.save_for_backward(solution)
        ctx.vjp = vjp
        return solution

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (solution,) = ctx.saved_tensors
        return ctx.vjp(solution, grad_output), None, None


def conjugate_gradient(
    operator: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, max_steps: int, tolerance: float
) -> tuple[torch.Tensor, int]:
    """Solve A_b u_b = v_b for every row b of ``v`` (``(B, n)``, each A_b symmetric positive definite).

    ``operator(p)`` returns the rows A_b p_b. Stops after ``max_steps`` iterations or once every row has
    ‖r_b‖ ≤ ``tolerance`` · ‖v_b‖. Returns u and the iterations taken.
    """
    u = torch.zeros_like(v)
    residual, direction = v.clone(), v.clone()
    squared = residual.square().sum(-1, keepdim=True)
    stop = tolerance**2 * squared
    for iteration in range(max_steps):
        if bool((squared <= stop).all()):
            return u, iteration
        product = operator(direction)
        curvature = (direction * product).sum(-1, keepdim=True)
        alpha = torch.where(curvature > 0, squared / curvature, 0.0)  # a converged row has direction 0
        u = u + alpha * direction
        residual = residual - alpha * product
        new_squared = residual.square().sum(-1, keepdim=True)
        direction = residual + torch.where(squared > 0, new_squared / squared, 0.0) * direction
        squared = new_squared
    return u, max_steps


class Implicit(UnrollEstimator):
    """Implicit differentiation of the proximal inner problem (``implicit``, eq. 2.13, iMAML).

    Args:
        lam: λ, the weight of the proximal term (λ/2)‖y − ŷ⁰θ(x)‖²; larger keeps ŷ closer to ŷ⁰ and makes
            the inner problem better conditioned.
        tolerance: the inner solve stops once ‖∇F‖ ≤ tolerance · ‖∇F(ŷ⁰)‖ in every context, and the
            conjugate-gradient solve once ‖r‖ ≤ tolerance · ‖v‖ (each within its iteration cap).
        cg_steps: the cap on conjugate-gradient iterations per backward pass.
        cg_damping: δ added to λ in the backward system (∇²f + (λ + δ)I) u = v; 0 is exact.
    """

    name = "implicit"
    needs_unroll = True
    replaces_unroll = True

    def __init__(
        self,
        *,
        lam: PositiveFloat = 1.0,
        tolerance: PositiveFloat = 1e-5,
        cg_steps: PositiveInt = 50,
        cg_damping: NonNegativeFloat = 0.0,
    ):
        self.lam, self.tolerance, self.cg_steps, self.cg_damping = lam, tolerance, cg_steps, cg_damping
        self._last: dict[str, torch.Tensor] = {}

    def check(self, model: nn.Module) -> None:
        if not getattr(model, "supports_implicit", False):
            raise ValueError(f"gradient.estimator: implicit needs a model that refines a learned start ŷ⁰ by plain "
                             f"gradient steps on f (model.kind: unrolled_gd), and {type(model).__name__} is not one")
        if model.step_rule is not gradient_step:
            raise ValueError(f"gradient.estimator: implicit needs a smooth family without a box (its stationarity "
                             f"condition uses ∇²f), but {type(model.problem).__name__}'s steps are "
                             f"{model.step_rule.__name__}s; use gradient.estimator: bptt")

    def solution(self, model: nn.Module, start: torch.Tensor, x: torch.Tensor, steps: int) -> torch.Tensor:
        """ŷ(x) of eq. 2.13 from ŷ⁰ = ``start`` in at most ``steps`` model steps; differentiable in ``start``."""
        sizes = model.step_sizes(steps).detach()
        problem, step_rule = model.problem, model.step_rule

        def solve(start: torch.Tensor) -> torch.Tensor:
            objective = ProximalObjective(problem, start, self.lam)
            y, threshold, taken = start, None, 0  # steps = 0 (a report's K = 0 point): the start itself
            for step in range(steps):
                following = step_rule(objective, y, x, sizes[step])
                gradient_norm = ((y - following) / sizes[step]).norm(dim=-1)  # ‖∇F(yᵗ)‖ of a gradient step
                threshold = self.tolerance * gradient_norm if threshold is None else threshold
                y, taken = following, step + 1
                if bool((gradient_norm <= threshold).all()):
                    break
            self._last["inner_steps"] = torch.tensor(float(taken))
            return y

        def vjp(solution: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            gradient = lambda y: problem.gradient(y, x)  # noqa: E731
            shift = self.lam + self.cg_damping
            hessian_plus_shift = lambda p: torch.func.jvp(gradient, (solution,), (p,))[1] + shift * p  # noqa: E731
            u, iterations = conjugate_gradient(hessian_plus_shift, v, self.cg_steps, self.tolerance)
            self._last["cg_steps"] = torch.tensor(float(iterations))
            return self.lam * u

        return ProximalSolution.apply(start, solve, vjp)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """``gradient/inner_steps`` (model steps of the last inner solve) and ``gradient/cg_steps``."""
        return {f"gradient/{key}": value for key, value in self._last.items()}

"""Shifted n-dimensional Rosenbrock functions with a context-dependent valley curvature."""

from __future__ import annotations

import math

import torch

from amorctl.problems.base import Problem, require


class Rosenbrock(Problem):
    """f(y; x) = Σ_{i=1}^{n-1} [ a·(z_{i+1} − z_i²)² + (1 − z_i)² ] with z = y − s.

    The context x = (s_1, ..., s_n, log a), ``context_dim = n + 1``, holds a shift s and the log
    of the valley curvature a. p(x): s ~ U(−shift_max, shift_max)^n and a log-uniform in
    [curvature_min, curvature_max] (the classic Rosenbrock function is s = 0, a = 100).

    Solver: the global minimiser is closed-form, y*(x) = s + 1 with f* = 0, exact
    (``solver_tolerance = 0``). Y = R^n.
    """

    solver_tolerance = 0.0

    def __init__(
        self,
        *,
        dim: int = 2,
        shift_max: float = 1.0,
        curvature_min: float = 1.0,
        curvature_max: float = 10.0,
    ):
        require(dim >= 2, "dim", "an integer >= 2", dim)
        require(shift_max >= 0.0, "shift_max", "a non-negative number", shift_max)
        require(curvature_min > 0.0, "curvature_min", "a positive number", curvature_min)
        expected_max = f"a number >= curvature_min ({curvature_min})"
        require(curvature_max >= curvature_min, "curvature_max", expected_max, curvature_max)
        self.dim, self.shift_max = dim, shift_max
        self.curvature_min, self.curvature_max = curvature_min, curvature_max
        self.solution_dim, self.context_dim = dim, dim + 1

    def sample_contexts(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        uniform = torch.rand(batch_size, self.dim + 1, generator=generator, device=generator.device)
        shift = self.shift_max * (2.0 * uniform[:, :-1] - 1.0)
        log_low, log_high = math.log(self.curvature_min), math.log(self.curvature_max)
        log_curvature = log_low + (log_high - log_low) * uniform[:, -1:]
        return torch.cat([shift, log_curvature], dim=-1).to(device)

    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = y - x[:, : self.dim]
        curvature = x[:, -1:].exp()
        valley = curvature * (z[:, 1:] - z[:, :-1].square()).square()
        return (valley + (1.0 - z[:, :-1]).square()).sum(-1)

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.dim] + 1.0

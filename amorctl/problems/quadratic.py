"""Strongly convex quadratics with a closed-form minimiser."""

from __future__ import annotations

import math
from typing import Literal

import torch

from amorctl.problems.base import Problem, ProblemSeed, require


def _random_rotation(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Haar-distributed orthogonal matrices of shape ``(..., n, n)`` (QR of a Gaussian, sign-fixed)."""
    gaussian = torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


class Quadratic(Problem):
    """f(y; x) = ½ yᵀA(x)y − b(x)ᵀy with A(x) symmetric positive definite.

    p(x): a condition number κ is drawn log-uniformly in [cond_min, cond_max]; the eigenvalues of
    A are λ_i = κ^{u_i} with u = (0, 1, u_3, ..., u_n), u_i ~ U(0, 1), in a random order, so the
    smallest eigenvalue is 1 and the largest exactly κ; b ~ N(0, I_n).

    The context x encodes (A, b) in one of two ways:

    - ``encoding="eigen"`` (default, compact): A = Q diag(λ) Qᵀ with one fixed orthogonal Q drawn
      from ``seed`` when the family is built; x = (log λ_1, ..., log λ_n, b), ``context_dim = 2n``.
      Log-eigenvalues lie in [0, log cond_max], a well-scaled input for a model.
    - ``encoding="full"``: every problem has its own random eigenbasis Q(x) (Haar); x holds the
      upper triangle of A row by row (diagonal included) followed by b,
      ``context_dim = n(n+1)/2 + n``.

    Solver: y*(x) = A(x)⁻¹b(x) by a batched linear solve in float64, exact up to rounding
    (``solver_tolerance = 0``); f* = −½ bᵀA⁻¹b (:meth:`optimal_value`). Y = R^n.
    """

    solver_tolerance = 0.0

    def __init__(
        self,
        *,
        dim: int = 10,
        cond_min: float = 1.0,
        cond_max: float = 100.0,
        encoding: Literal["eigen", "full"] = "eigen",
        seed: ProblemSeed = 0,
    ):
        require(dim >= 2, "dim", "an integer >= 2 (a condition number needs two eigenvalues)", dim)
        require(cond_min >= 1.0, "cond_min", "a condition number >= 1", cond_min)
        require(cond_max >= cond_min, "cond_max", f"a condition number >= cond_min ({cond_min})", cond_max)
        require(encoding in ("eigen", "full"), "encoding", "'eigen' or 'full'", encoding)
        self.dim, self.cond_min, self.cond_max, self.encoding = dim, cond_min, cond_max, encoding
        self.solution_dim = dim
        self.context_dim = 2 * dim if encoding == "eigen" else dim * (dim + 1) // 2 + dim
        self._basis = _random_rotation((dim, dim), torch.Generator().manual_seed(seed), torch.float64)

    @classmethod
    def memory_bytes(cls, *, dim: int = 10, **kwargs) -> dict[str, int]:
        """The random rotation: a dim × dim float64 matrix and its QR factorisation's workspace."""
        return {"dim": 3 * 8 * dim * dim}

    def sample_contexts(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        log_eigenvalues = self._sample_log_eigenvalues(batch_size, generator)
        b = torch.randn(batch_size, self.dim, generator=generator, device=generator.device)
        if self.encoding == "eigen":
            context = torch.cat([log_eigenvalues, b], dim=-1)
        else:
            basis = _random_rotation((batch_size, self.dim, self.dim), generator, torch.float32)
            a = basis @ torch.diag_embed(log_eigenvalues.exp()) @ basis.mT
            rows, cols = torch.triu_indices(self.dim, self.dim, device=a.device)
            context = torch.cat([a[:, rows, cols], b], dim=-1)
        return context.to(device)

    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        a, b = self.matrix(x), self.linear_term(x)
        return 0.5 * torch.einsum("bi,bij,bj->b", y, a, y) - (b * y).sum(-1)

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.matrix(x.double()), self.linear_term(x.double())
        return torch.linalg.solve(a, b).to(x.dtype)

    def optimal_value(self, x: torch.Tensor) -> torch.Tensor:
        """f* = f(y*; x) = −½ bᵀA⁻¹b for a batch of contexts, ``(B,)``."""
        return -0.5 * (self.linear_term(x) * self.solve(x)).sum(-1)

    def matrix(self, x: torch.Tensor) -> torch.Tensor:
        """Decode A(x) from a batch of contexts, ``(B, n, n)`` in the dtype of ``x``."""
        if self.encoding == "eigen":
            basis = self._basis.to(device=x.device, dtype=x.dtype)
            return basis @ torch.diag_embed(x[:, : self.dim].exp()) @ basis.mT
        rows, cols = torch.triu_indices(self.dim, self.dim, device=x.device)
        upper = x.new_zeros(x.shape[0], self.dim, self.dim)
        upper[:, rows, cols] = x[:, : -self.dim]
        return upper + upper.mT - torch.diag_embed(torch.diagonal(upper, dim1=-2, dim2=-1))

    def linear_term(self, x: torch.Tensor) -> torch.Tensor:
        """Decode b(x) from a batch of contexts, ``(B, n)``."""
        return x[:, -self.dim :]

    def _sample_log_eigenvalues(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """log λ = u·log κ per problem, with u ∋ {0, 1} so that λ_max / λ_min = κ exactly."""
        draws = torch.rand(batch_size, self.dim - 1, generator=generator, device=generator.device)
        log_low, log_high = math.log(self.cond_min), math.log(self.cond_max)
        log_cond = log_low + (log_high - log_low) * draws[:, :1]
        fractions = torch.cat([torch.zeros_like(log_cond), torch.ones_like(log_cond), draws[:, 1:]], dim=-1)
        order = torch.rand(batch_size, self.dim, generator=generator, device=generator.device).argsort(dim=-1)
        return fractions.gather(-1, order) * log_cond

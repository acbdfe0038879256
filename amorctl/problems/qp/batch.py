"""A batch of convex quadratic programs and the protocol of a QP family.

A QP in OSQP's form (Stellato et al. 2020, eq. 1) is

    minimise ½ xᵀPx + qᵀx   subject to   l ≤ Ax ≤ u,

with P ⪰ 0 (n × n), A (m × n) and bounds l ≤ u that may be ±inf. A :class:`QPBatch` holds N such problems
of one size as dense tensors with a leading batch dimension, on any device; dense is the right storage for
the few hundred variables the families here have, and it is what batched linear algebra (one Cholesky per
problem, ``torch.linalg.cholesky`` over the batch) needs.

Why QP families are not :class:`amorctl.problems.Problem` s: the problem protocol is f(y; x) over a box or
all of Rⁿ, with a flat context x. A QP's data (P, q, A, l, u) could be flattened into a context, but its
constraints l ≤ Ax ≤ u cannot be expressed as f or as a box domain, and every consumer of a QP (the ADMM
solver, its environment, the osqp reference) needs the matrices, not a flat vector. So QP families have
their own small protocol, :class:`QPFamily`: sizes fixed at construction (config keys), and
:meth:`QPFamily.sample` drawing a :class:`QPBatch` from a ``torch.Generator``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields

import torch

INFINITY = 1e20
"""Bounds beyond ±INFINITY are infinite (OSQP treats |bound| > OSQP_INFTY·MIN_SCALING = 1e26 so; the
families here write ±inf, and anything above 1e20 is far outside every family's data)."""


@dataclass(frozen=True)
class QPBatch:
    """N quadratic programs min ½xᵀPx + qᵀx s.t. l ≤ Ax ≤ u of one size, as dense batched tensors.

    Attributes:
        P: ``(N, n, n)`` symmetric positive semidefinite cost matrices.
        q: ``(N, n)`` linear costs.
        A: ``(N, m, n)`` constraint matrices.
        lower: ``(N, m)`` lower bounds l (``-inf`` where a row has none).
        upper: ``(N, m)`` upper bounds u (``+inf`` where a row has none); l ≤ u, equal on equality rows.
    """

    P: torch.Tensor
    q: torch.Tensor
    A: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor

    def __post_init__(self) -> None:
        N, n = self.q.shape
        m = self.lower.shape[-1]
        expected = {"P": (N, n, n), "q": (N, n), "A": (N, m, n), "lower": (N, m), "upper": (N, m)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"QPBatch.{name} must have shape {shape}, got {tuple(getattr(self, name).shape)}")

    @property
    def num_problems(self) -> int:
        """N."""
        return self.q.shape[0]

    @property
    def num_variables(self) -> int:
        """n."""
        return self.q.shape[1]

    @property
    def num_constraints(self) -> int:
        """m."""
        return self.lower.shape[1]

    @property
    def device(self) -> torch.device:
        return self.q.device

    @property
    def dtype(self) -> torch.dtype:
        return self.q.dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> QPBatch:
        """The same problems on ``device`` in ``dtype``."""
        return QPBatch(*(getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)))

    def __getitem__(self, index: int | slice | torch.Tensor) -> QPBatch:
        """The problems at ``index`` (an int keeps a batch of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return QPBatch(*(getattr(self, f.name)[index] for f in fields(self)))

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        """½xᵀPx + qᵀx for ``x`` of shape ``(N, n)``; returns ``(N,)``."""
        return 0.5 * torch.einsum("bi,bij,bj->b", x, self.P, x) + (self.q * x).sum(-1)

    def kkt_residuals(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The primal and dual residuals of a primal-dual pair, ``(N,)`` each (∞-norms).

        Primal: the distance of Ax to [l, u]; dual: ‖Px + q + Aᵀy‖∞. A pair solves the QP when both vanish
        and y is complementary (y_i ≥ 0 only where the upper bound is active, ≤ 0 only where the lower is);
        :meth:`complementarity` measures the latter.
        """
        Ax = torch.einsum("bmn,bn->bm", self.A, x)
        primal = (Ax - Ax.clamp(self.lower, self.upper)).abs().amax(-1)
        dual = torch.einsum("bij,bj->bi", self.P, x) + self.q + torch.einsum("bmn,bm->bn", self.A, y)
        return primal, dual.abs().amax(-1)

    def complementarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """max_i |y_i⁺ (u_i − a_iᵀx)| + |y_i⁻ (a_iᵀx − l_i)|, ``(N,)`` (0 on finite-bound terms only)."""
        Ax = torch.einsum("bmn,bn->bm", self.A, x)
        upper = torch.where(torch.isfinite(self.upper), y.clamp(min=0) * (self.upper - Ax), torch.zeros_like(y))
        lower = torch.where(torch.isfinite(self.lower), y.clamp(max=0) * (Ax - self.lower), torch.zeros_like(y))
        return (upper.abs() + lower.abs()).amax(-1)


class QPFamily(ABC):
    """A family of parametric QPs: sizes fixed at construction, problems drawn by :meth:`sample`.

    Attributes:
        num_variables: n of every problem the family draws.
        num_constraints: m of every problem the family draws.
    """

    num_variables: int
    num_constraints: int

    def sample(
        self,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> QPBatch:
        """Draw ``batch_size`` problems as a :class:`QPBatch` on ``device`` in ``dtype``.

        All randomness comes from ``generator`` (draws happen on its device, in float64), so a seeded generator
        gives the same problems on every device up to the generator's own stream.
        """
        batch = self._sample(batch_size, generator)
        return batch.to(device=device, dtype=dtype)

    @abstractmethod
    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        """The float64 batch, drawn on the generator's device."""

"""OSQP's ADMM iteration for N quadratic programs at once (Stellato et al. 2020, Algorithm 1).

For min ½xᵀPx + qᵀx s.t. l ≤ Ax ≤ u with a per-constraint step-size vector ρ ∈ R^m, one iteration is

    x̃  = (P + σI + Aᵀdiag(ρ)A)⁻¹ (σxᵏ − q + Aᵀ(ρ∘zᵏ − yᵏ))        (the reduced KKT system, eq. 20)
    z̃  = A x̃
    xᵏ⁺¹ = α x̃ + (1 − α) xᵏ                                          (over-relaxation α)
    zᵏ⁺¹ = Π_[l,u](α z̃ + (1 − α) zᵏ + yᵏ/ρ)
    yᵏ⁺¹ = yᵏ + ρ∘(α z̃ + (1 − α) zᵏ − zᵏ⁺¹)

with the matrix factored by a batched Cholesky only when ρ changes (:meth:`BatchedADMM.set_rho`). OSQP solves
the equivalent quasi-definite (n + m) system with a sparse LDLᵀ; for dense batches of small problems the n × n
reduced form is the cheaper one, and mathematically the iterates are the same.

Termination (eq. 24 with the ∞-norm, checked every ``check_termination`` iterations): a problem is solved when
‖Ax − z‖∞ ≤ ε_abs + ε_rel·max(‖Ax‖∞, ‖z‖∞) and ‖Px + q + Aᵀy‖∞ ≤ ε_abs + ε_rel·max(‖Px‖∞, ‖Aᵀy‖∞, ‖q‖∞);
primal / dual infeasibility certificates (§3.4) from δy = yᵏ⁺¹ − yᵏ and δx = xᵏ⁺¹ − xᵏ are optional. A
problem that terminates is frozen: its iterates, ρ and iteration count no longer change while the others run.

ρ vectors follow OSQP's constraint types (``set_rho_vec`` in OSQP's auxil.c): rows with both bounds
infinite get ρ_min = 1e-6, equality rows (u − l < 1e-4) get 10³·ρ, inequality rows get ρ.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from amorctl.problems.qp.batch import INFINITY, QPBatch

if TYPE_CHECKING:
    from amorctl.solvers.rho import RhoRule

RHO_MIN, RHO_MAX = 1e-6, 1e6
"""OSQP's bounds on ρ (OSQP_RHO_MIN, OSQP_RHO_MAX)."""
RHO_EQ_OVER_RHO_INEQ = 1e3
"""OSQP's factor between the ρ of an equality row and the scalar ρ."""
RHO_TOL = 1e-4
"""A row with u − l below this is an equality (OSQP_RHO_TOL)."""
DIVISION_TOL = 1e-10
"""Guards the divisions of the adaptive-ρ estimate (OSQP_DIVISION_TOL)."""


class Status(enum.IntEnum):
    """Where a problem's solve stands (OSQP's status values, by name)."""

    UNSOLVED = 0
    SOLVED = 1
    PRIMAL_INFEASIBLE = 2
    DUAL_INFEASIBLE = 3
    MAX_ITER_REACHED = 4


class ConstraintType(enum.IntEnum):
    """OSQP's constraint types, which decide a row's ρ: loose (no finite bound), inequality, equality."""

    LOOSE = -1
    INEQUALITY = 0
    EQUALITY = 1


@dataclass(frozen=True)
class ADMMSettings:
    """OSQP's settings of the iteration, with OSQP's defaults (osqp 1.x; scaling and polishing are not part of
    this solver, so compare with the osqp package under ``scaling=0, polishing=0``).

    Attributes:
        rho: the initial scalar ρ (inequality rows; equality rows get 10³ρ).
        sigma: σ, the proximal weight on x that makes the system definite for P ⪰ 0.
        alpha: the relaxation α ∈ (0, 2).
        eps_abs, eps_rel: the termination tolerances.
        eps_prim_inf, eps_dual_inf: the infeasibility certificates' tolerances.
        max_iter: iterations after which an unsolved problem stops with ``MAX_ITER_REACHED``.
        check_termination: iterations between termination checks (OSQP's default 25; 1 checks every one).
        detect_infeasibility: whether the certificates are checked at all.
    """

    rho: float = 0.1
    sigma: float = 1e-6
    alpha: float = 1.6
    eps_abs: float = 1e-3
    eps_rel: float = 1e-3
    eps_prim_inf: float = 1e-4
    eps_dual_inf: float = 1e-4
    max_iter: int = 4000
    check_termination: int = 25
    detect_infeasibility: bool = True

    def __post_init__(self) -> None:
        checks = {
            "rho": self.rho > 0, "sigma": self.sigma > 0, "alpha": 0 < self.alpha < 2,
            "eps_abs": self.eps_abs >= 0, "eps_rel": self.eps_rel >= 0, "eps_prim_inf": self.eps_prim_inf > 0,
            "eps_dual_inf": self.eps_dual_inf > 0, "max_iter": self.max_iter >= 1,
            "check_termination": self.check_termination >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"ADMMSettings: {', '.join(bad)} out of range (rho, sigma > 0; 0 < alpha < 2; "
                             "eps_* >= 0, eps_*_inf > 0; max_iter, check_termination >= 1)")


@dataclass(frozen=True)
class Residuals:
    """The quantities of OSQP's termination test and adaptive-ρ rule, ``(N,)`` tensors each.

    Attributes:
        primal: ‖Ax − z‖∞.
        dual: ‖Px + q + Aᵀy‖∞.
        primal_scale: max(‖Ax‖∞, ‖z‖∞), the primal residual's normaliser.
        dual_scale: max(‖Px‖∞, ‖Aᵀy‖∞, ‖q‖∞), the dual residual's normaliser.
    """

    primal: torch.Tensor
    dual: torch.Tensor
    primal_scale: torch.Tensor
    dual_scale: torch.Tensor

    def converged(self, eps_abs: float, eps_rel: float) -> torch.Tensor:
        """Whether both residuals meet ε_abs + ε_rel·scale, ``(N,)`` bool."""
        return ((self.primal <= eps_abs + eps_rel * self.primal_scale)
                & (self.dual <= eps_abs + eps_rel * self.dual_scale))


def constraint_types(qp: QPBatch) -> torch.Tensor:
    """Each row's :class:`ConstraintType`, ``(N, m)`` int8."""
    loose = (qp.l < -INFINITY) & (qp.u > INFINITY)
    equality = (qp.u - qp.l) < RHO_TOL
    types = torch.full_like(qp.l, ConstraintType.INEQUALITY, dtype=torch.int8)
    types = torch.where(equality, torch.tensor(ConstraintType.EQUALITY, dtype=torch.int8), types)
    return torch.where(loose, torch.tensor(ConstraintType.LOOSE, dtype=torch.int8), types)


def rho_vector(rho: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """OSQP's per-row ρ from a scalar ρ per problem: ``rho`` ``(N,)``, ``types`` ``(N, m)`` → ``(N, m)``."""
    rho = rho.clamp(RHO_MIN, RHO_MAX).unsqueeze(-1).expand_as(types).to(torch.float64)
    rho = torch.where(types == ConstraintType.EQUALITY, RHO_EQ_OVER_RHO_INEQ * rho, rho)
    return torch.where(types == ConstraintType.LOOSE, torch.full_like(rho, RHO_MIN), rho)


def _bmv(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector product ``(N, a, b) @ (N, b) -> (N, a)``."""
    return torch.matmul(matrix, vector.unsqueeze(-1)).squeeze(-1)


def _norm(vector: torch.Tensor) -> torch.Tensor:
    """∞-norm over the last dimension (0 for an empty one)."""
    return vector.abs().amax(-1) if vector.shape[-1] else vector.new_zeros(vector.shape[:-1])


class BatchedADMM:
    """OSQP's ADMM iteration on a :class:`QPBatch` of N problems, all state as ``(N, ·)`` tensors.

    Typical use is :meth:`solve` with a ρ rule (:mod:`amorctl.solvers.rho`); the pieces it is made of are
    public for callers that drive the iteration themselves (the ADMM environment): :meth:`iterate` runs
    iterations on the problems still running, :meth:`residuals` measures, :meth:`check` freezes the problems
    that met the tolerance (or proved infeasible), :meth:`set_rho` changes ρ and refactors only where it changed.

    Attributes:
        x, z, y: the iterates, ``(N, n)``, ``(N, m)``, ``(N, m)`` (cold start: zeros).
        rho: the per-row ρ, ``(N, m)``; ``rho_scalar`` ``(N,)`` is the scalar it was built from (OSQP's
            ``settings->rho``, which the adaptive rule scales), NaN once a caller set rows individually.
        types: each row's :class:`ConstraintType`, ``(N, m)``.
        iterations: iterations each problem has run, ``(N,)`` int64 (frozen when it terminates).
        status: each problem's :class:`Status`, ``(N,)`` int8.
        factorizations: Cholesky factorizations each problem has had, ``(N,)`` int64.
    """

    def __init__(self, qp: QPBatch, settings: ADMMSettings | None = None):
        self.qp, self.settings = qp, settings or ADMMSettings()
        N, n, m = qp.num_problems, qp.num_variables, qp.num_constraints
        like = {"device": qp.device, "dtype": qp.dtype}
        self.x, self.z, self.y = qp.q.new_zeros(N, n), qp.l.new_zeros(N, m), qp.l.new_zeros(N, m)
        self.delta_x, self.delta_y = torch.zeros_like(self.x), torch.zeros_like(self.y)
        self.types = constraint_types(qp)
        self.iterations = torch.zeros(N, dtype=torch.int64, device=qp.device)
        self.status = torch.zeros(N, dtype=torch.int8, device=qp.device)
        self.factorizations = torch.zeros(N, dtype=torch.int64, device=qp.device)
        self.rho_scalar = torch.full((N,), self.settings.rho, **like).clamp(RHO_MIN, RHO_MAX)
        self.rho = rho_vector(self.rho_scalar, self.types).to(qp.dtype)
        self._sigma_eye = self.settings.sigma * torch.eye(n, **like)
        self._cholesky = torch.empty(N, n, n, **like)
        self._factor(torch.ones(N, dtype=torch.bool, device=qp.device))

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> torch.Tensor:
        """``(N,)`` bool: the problems that have not terminated."""
        return self.status == Status.UNSOLVED

    def warm_start(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
        """Start from ``x`` (and z = Ax) and/or ``y`` instead of zeros, as osqp's ``warm_start``."""
        if x is not None:
            self.x = x.to(self.x).clone()
            self.z = _bmv(self.qp.A, self.x)
        if y is not None:
            self.y = y.to(self.y).clone()

    def _factor(self, which: torch.Tensor) -> None:
        """Cholesky of P + σI + Aᵀdiag(ρ)A for the problems in ``which`` ``(N,)`` bool."""
        index = which.nonzero().squeeze(-1)
        if index.numel() == 0:
            return
        A, rho = self.qp.A[index], self.rho[index]
        kkt = self.qp.P[index] + self._sigma_eye + A.mT @ (rho.unsqueeze(-1) * A)
        self._cholesky[index] = torch.linalg.cholesky(kkt)
        self.factorizations[index] += 1

    def set_rho(self, rho: torch.Tensor, which: torch.Tensor | None = None, scalar: torch.Tensor | None = None) -> None:
        """Use the per-row ``rho`` ``(N, m)`` (clipped to [ρ_min, ρ_max]) for the problems in ``which``
        (``(N,)`` bool, default all running ones); refactors only problems whose ρ changed.

        ``scalar`` ``(N,)`` records the scalar ρ a vector was built from (the adaptive rule's state).

        Per OSQP (``osqp_update_rho``), y is kept and the ADMM iterates continue; a frozen problem is never
        changed.
        """
        which = self.running if which is None else which & self.running
        new = torch.where(which.unsqueeze(-1), rho.to(self.rho).clamp(RHO_MIN, RHO_MAX), self.rho)
        changed = (new != self.rho).any(-1)
        self.rho = new
        if scalar is not None:
            self.rho_scalar = torch.where(which, scalar.to(self.rho_scalar), self.rho_scalar)
        else:
            self.rho_scalar = torch.where(changed, torch.full_like(self.rho_scalar, math.nan), self.rho_scalar)
        self._factor(changed)

    # -------------------------------------------------------------- iteration
    def iterate(self, count: int = 1) -> None:
        """Run ``count`` ADMM iterations on the running problems (the frozen ones keep their iterates)."""
        qp, alpha, sigma = self.qp, self.settings.alpha, self.settings.sigma
        running = self.running
        if not bool(running.any()):
            return
        keep = running.unsqueeze(-1)
        for _ in range(count):
            rhs = sigma * self.x - qp.q + _bmv(qp.A.mT, self.rho * self.z - self.y)
            x_tilde = torch.cholesky_solve(rhs.unsqueeze(-1), self._cholesky).squeeze(-1)
            z_tilde = _bmv(qp.A, x_tilde)
            x_new = alpha * x_tilde + (1 - alpha) * self.x
            z_relaxed = alpha * z_tilde + (1 - alpha) * self.z
            z_new = torch.clamp(z_relaxed + self.y / self.rho, qp.l, qp.u)
            y_new = self.y + self.rho * (z_relaxed - z_new)
            self.delta_x = torch.where(keep, x_new - self.x, self.delta_x)
            self.delta_y = torch.where(keep, y_new - self.y, self.delta_y)
            self.x = torch.where(keep, x_new, self.x)
            self.z = torch.where(keep, z_new, self.z)
            self.y = torch.where(keep, y_new, self.y)
        self.iterations += count * running

    def residuals(self) -> Residuals:
        """OSQP's residuals and their normalisers at the current iterates (all problems)."""
        qp = self.qp
        Ax, Px, Aty = _bmv(qp.A, self.x), _bmv(qp.P, self.x), _bmv(qp.A.mT, self.y)
        return Residuals(
            primal=_norm(Ax - self.z),
            dual=_norm(Px + qp.q + Aty),
            primal_scale=torch.maximum(_norm(Ax), _norm(self.z)),
            dual_scale=torch.maximum(torch.maximum(_norm(Px), _norm(Aty)), _norm(qp.q)),
        )

    def primal_infeasible(self) -> torch.Tensor:
        """OSQP's primal infeasibility certificate on δy (``is_primal_infeasible``), ``(N,)`` bool.

        δy is projected onto the polar cone of [l, u]'s recession cone (zero where both bounds are infinite,
        ≤ 0 where only u is, ≥ 0 where only l is); then ‖Aᵀδy‖∞ < ε‖δy‖∞ and
        uᵀmax(δy, 0) + lᵀmin(δy, 0) < −ε‖δy‖∞ certify that no x has l ≤ Ax ≤ u.
        """
        qp, eps, dy = self.qp, self.settings.eps_prim_inf, self.delta_y
        upper_inf, lower_inf = qp.u > INFINITY, qp.l < -INFINITY
        dy = torch.where(upper_inf & lower_inf, torch.zeros_like(dy), dy)
        dy = torch.where(upper_inf & ~lower_inf, dy.clamp(max=0), dy)
        dy = torch.where(lower_inf & ~upper_inf, dy.clamp(min=0), dy)
        norm = _norm(dy)
        u = torch.where(upper_inf, torch.zeros_like(qp.u), qp.u)
        l = torch.where(lower_inf, torch.zeros_like(qp.l), qp.l)
        support = (u * dy.clamp(min=0) + l * dy.clamp(max=0)).sum(-1)
        return (norm > eps) & (support < -eps * norm) & (_norm(_bmv(qp.A.mT, dy)) < eps * norm)

    def dual_infeasible(self) -> torch.Tensor:
        """OSQP's dual infeasibility certificate on δx (``is_dual_infeasible``), ``(N,)`` bool:
        ‖Pδx‖∞ < ε‖δx‖∞, qᵀδx < −ε‖δx‖∞ and (Aδx)_i within ±ε‖δx‖∞ of the recession cone of [l, u]."""
        qp, eps, dx = self.qp, self.settings.eps_dual_inf, self.delta_x
        norm = _norm(dx)
        bound = (eps * norm).unsqueeze(-1)
        Adx = _bmv(qp.A, dx)
        cone = torch.where(qp.u < INFINITY, Adx <= bound, True) & torch.where(qp.l > -INFINITY, Adx >= -bound, True)
        return ((norm > eps) & ((qp.q * dx).sum(-1) < -eps * norm) & (_norm(_bmv(qp.P, dx)) < eps * norm)
                & cone.all(-1))

    def check(self, residuals: Residuals | None = None) -> Residuals:
        """Freeze the running problems that meet the tolerances (``SOLVED``) or, with infeasibility detection
        on, carry a certificate; returns the residuals it measured (or was given)."""
        residuals = residuals if residuals is not None else self.residuals()
        running = self.running
        solved = running & residuals.converged(self.settings.eps_abs, self.settings.eps_rel)
        status = torch.where(solved, torch.tensor(Status.SOLVED, dtype=torch.int8, device=self.status.device),
                             self.status)
        if self.settings.detect_infeasibility:
            primal = running & ~solved & self.primal_infeasible()
            dual = running & ~solved & ~primal & self.dual_infeasible()
            status = torch.where(primal, torch.tensor(Status.PRIMAL_INFEASIBLE, dtype=torch.int8,
                                                      device=status.device), status)
            status = torch.where(dual, torch.tensor(Status.DUAL_INFEASIBLE, dtype=torch.int8,
                                                    device=status.device), status)
        self.status = status
        return residuals

    def solve(self, rule: RhoRule | None = None) -> BatchedADMM:
        """Iterate until every problem terminates or reaches ``max_iter``, OSQP's loop (``osqp_solve``):
        termination is checked every ``check_termination`` iterations; ``rule`` (default: fixed ρ) may change
        ρ after the check of every iteration it asks for. Returns ``self``."""
        settings = self.settings
        every = settings.check_termination
        interval = rule.interval if rule is not None else None
        if interval:
            every = math.gcd(every, interval)
        while bool(self.running.any()):
            done = int(self.iterations[self.running].max())
            if done >= settings.max_iter:
                break
            count = min(every - done % every, settings.max_iter - done)
            self.iterate(count)
            done += count
            residuals = None
            if done % settings.check_termination == 0 or done == settings.max_iter:
                residuals = self.check()
            if interval and done % interval == 0 and bool(self.running.any()):
                rule.update(self, residuals if residuals is not None else self.residuals())
        self.status = torch.where(self.running, torch.tensor(Status.MAX_ITER_REACHED, dtype=torch.int8,
                                                             device=self.status.device), self.status)
        return self

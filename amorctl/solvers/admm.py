"""OSQP's ADMM iteration for N quadratic programs at once (Stellato et al. 2020, Algorithm 1).

For min ½xᵀPx + qᵀx s.t. l ≤ Ax ≤ u with a per-constraint step-size vector ρ ∈ R^m, one iteration is

    x̃  = (P + σI + Aᵀdiag(ρ)A)⁻¹ (σxᵏ − q + Aᵀ(ρ∘zᵏ − yᵏ))        (the reduced KKT system, eq. 20)
    z̃  = A x̃
    xᵏ⁺¹ = α x̃ + (1 − α) xᵏ                                          (over-relaxation α)
    zᵏ⁺¹ = Π_[l,u](α z̃ + (1 − α) zᵏ + yᵏ/ρ)
    yᵏ⁺¹ = yᵏ + ρ∘(α z̃ + (1 − α) zᵏ − zᵏ⁺¹)

with the matrix factored by a batched Cholesky (and inverted) only when ρ changes (:meth:`BatchedADMM.set_rho`).
OSQP solves the equivalent quasi-definite (n + m) system with a sparse LDLᵀ; for dense batches of small problems
the n × n reduced form is the cheaper one, and mathematically the iterates are the same.

Termination (eq. 24 with the ∞-norm, checked every ``check_termination`` iterations): a problem is solved when
‖Ax − z‖∞ ≤ ε_abs + ε_rel·max(‖Ax‖∞, ‖z‖∞) and ‖Px + q + Aᵀy‖∞ ≤ ε_abs + ε_rel·max(‖Px‖∞, ‖Aᵀy‖∞, ‖q‖∞);
primal / dual infeasibility certificates (§3.4) from δy = yᵏ⁺¹ − yᵏ and δx = xᵏ⁺¹ − xᵏ are optional. A
problem that terminates is frozen: its iterates, ρ and iteration count no longer change while the others run.

Two implementations of the same arithmetic (``ADMMSettings.backend``) — the matrix factored by Cholesky and
inverted, each solve a product with the inverse plus one refinement step: on a CPU, compiled per-problem loops
(:mod:`amorctl.solvers.admm_kernels`, numba), each problem iterating with its data in cache; on a GPU (or on request),
the batched tensor form below.

ρ vectors follow OSQP's constraint types (``set_rho_vec`` in OSQP's auxil.c): rows with both bounds
infinite get ρ_min = 1e-6, equality rows (u − l < 1e-4) get 10³·ρ, inequality rows get ρ.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
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
BACKENDS = ("auto", "numba", "torch")
"""Values of ``ADMMSettings.backend``."""


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
        backend: ``"numba"`` (compiled CPU loops, :mod:`amorctl.solvers.admm_kernels`), ``"torch"`` (batched tensor
            operations, any device) or ``"auto"``: numba for a batch on the CPU, torch otherwise. Both run the same
            iteration (``tests/solvers/test_admm.py`` checks them against osqp and each other).
        threads: numba backend: CPU threads the problems are spread over (at most numba's ``NUMBA_NUM_THREADS``, the
            core count by default); the results do not depend on it.
        refine_solve: one step of iterative refinement after each solve with the explicit inverse (two more n × n
            products per iteration; both backends). On (the default), the iterates follow osqp's to round-off and
            the iteration counts match. Off, the solve's error grows with the matrix's conditioning: in float64
            Huber's counts drift by a check interval or two; in float32 Portfolio, Lasso and Equality QP need 3–5×
            the iterations and Huber fails on a third of its problems (``benchmarks/RESULTS.md``, RLQP).
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
    backend: str = "auto"
    threads: int = 1
    refine_solve: bool = True

    def __post_init__(self) -> None:
        checks = {
            "rho": self.rho > 0,
            "sigma": self.sigma > 0,
            "alpha": 0 < self.alpha < 2,
            "eps_abs": self.eps_abs >= 0,
            "eps_rel": self.eps_rel >= 0,
            "eps_prim_inf": self.eps_prim_inf > 0,
            "eps_dual_inf": self.eps_dual_inf > 0,
            "max_iter": self.max_iter >= 1,
            "check_termination": self.check_termination >= 1,
            "threads": self.threads >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if self.backend not in BACKENDS:
            raise ValueError(f"ADMMSettings: backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if bad:
            raise ValueError(
                f"ADMMSettings: {', '.join(bad)} out of range (rho, sigma > 0; 0 < alpha < 2; "
                "eps_* >= 0, eps_*_inf > 0; max_iter, check_termination, threads >= 1)"
            )


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
        return (self.primal <= eps_abs + eps_rel * self.primal_scale) & (
            self.dual <= eps_abs + eps_rel * self.dual_scale
        )


def constraint_types(qp: QPBatch) -> torch.Tensor:
    """Each row's :class:`ConstraintType`, ``(N, m)`` int8."""
    loose = (qp.lower < -INFINITY) & (qp.upper > INFINITY)
    equality = (qp.upper - qp.lower) < RHO_TOL
    types = torch.full_like(qp.lower, ConstraintType.INEQUALITY, dtype=torch.int8)
    types = torch.where(equality, torch.tensor(ConstraintType.EQUALITY, dtype=torch.int8), types)
    return torch.where(loose, torch.tensor(ConstraintType.LOOSE, dtype=torch.int8), types)


def rho_vector(rho: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """OSQP's per-row ρ from a scalar ρ per problem: ``rho`` ``(N,)``, ``types`` ``(N, m)`` → ``(N, m)``."""
    rho = rho.clamp(RHO_MIN, RHO_MAX).unsqueeze(-1).expand(types.shape)
    rho = torch.where(types == ConstraintType.EQUALITY, RHO_EQ_OVER_RHO_INEQ * rho, rho)
    return torch.where(types == ConstraintType.LOOSE, torch.full_like(rho, RHO_MIN), rho)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``ADMMSettings.backend`` for a batch on ``device``: ``"auto"`` is numba on a CPU and torch elsewhere."""
    if backend == "auto":
        return "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"ADMMSettings: the numba backend runs on the CPU, but the problems are on {device}")
    return backend


def check_threads(threads: int) -> None:
    """Raise ``ValueError`` if the numba backend cannot run on ``threads`` threads (``ADMMSettings.threads``)."""
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"ADMMSettings: threads={threads}, but numba runs at most {numba.config.NUMBA_NUM_THREADS} "
            "(NUMBA_NUM_THREADS, the core count by default)"
        )


def _raise_if_indefinite(index: torch.Tensor, failed: np.ndarray) -> None:
    """The error of a factorization that met a matrix that is not positive definite (``failed`` by position)."""
    if failed.any():
        first = int(index[int(failed.argmax())])
        raise torch.linalg.LinAlgError(f"problem {first}: P + σI + Aᵀdiag(ρ)A is not positive definite (is P PSD?)")


def _row_times(vector: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``vector @ matrix`` per problem, ``(N, a) × (N, a, b) -> (N, b)``: Aᵀw as wᵀA, Ax as xᵀAᵀ.

    A row vector times a matrix stored row-major is several times faster than a batched matrix times a
    column vector for the small matrices here (torch's bmm with a width-one right factor is slow on CPUs).
    """
    return torch.matmul(vector.unsqueeze(-2), matrix).squeeze(-2)


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
        self.settings = settings or ADMMSettings()
        self.backend = resolve_backend(self.settings.backend, qp.device)
        if self.backend == "numba":  # the kernels read the tensors' memory as C-ordered arrays
            qp = QPBatch(*(t.detach().contiguous() for t in (qp.P, qp.q, qp.A, qp.lower, qp.upper)))
        self.qp = qp
        N, n, m = qp.num_problems, qp.num_variables, qp.num_constraints
        like = {"device": qp.device, "dtype": qp.dtype}
        self.x, self.z, self.y = qp.q.new_zeros(N, n), qp.lower.new_zeros(N, m), qp.lower.new_zeros(N, m)
        self.delta_x, self.delta_y = torch.zeros_like(self.x), torch.zeros_like(self.y)
        self.types = constraint_types(qp)
        self.iterations = torch.zeros(N, dtype=torch.int64, device=qp.device)
        self.status = torch.zeros(N, dtype=torch.int8, device=qp.device)
        self.factorizations = torch.zeros(N, dtype=torch.int64, device=qp.device)
        self.rho_scalar = torch.full((N,), self.settings.rho, **like).clamp(RHO_MIN, RHO_MAX)
        self.rho = rho_vector(self.rho_scalar, self.types)
        self._At = qp.A.mT.contiguous()
        self._inverse = torch.empty(N, n, n, **like)
        self._kkt = torch.empty(N, n, n, **like) if self.settings.refine_solve else None
        if self.backend == "numba":
            from amorctl.solvers import admm_kernels

            check_threads(self.settings.threads)
            self._kernels = admm_kernels
            s = self.settings
            constants = [s.alpha, s.sigma, 0, 1, s.eps_prim_inf, s.eps_dual_inf, 0, s.eps_abs, s.eps_rel]
            self._constants = np.array(constants, dtype=self.x.numpy().dtype)
        else:
            self._sigma_eye = self.settings.sigma * torch.eye(n, **like)
        self._factor(torch.ones(N, dtype=torch.bool, device=qp.device))

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> torch.Tensor:
        """``(N,)`` bool: the problems that have not terminated."""
        return self.status == Status.UNSOLVED

    def warm_start(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
        """Start from ``x`` (and z = Ax) and/or ``y`` instead of zeros, as osqp's ``warm_start``."""
        if x is not None:
            self.x = x.to(self.x).clone(memory_format=torch.contiguous_format)
            self.z = _row_times(self.x, self.qp.A.mT)
        if y is not None:
            self.y = y.to(self.y).clone(memory_format=torch.contiguous_format)

    def _factor(self, which: torch.Tensor) -> None:
        """(P + σI + Aᵀdiag(ρ)A)⁻¹ for the problems in ``which`` ``(N,)`` bool, from its Cholesky factor (both
        backends; the numba backend in :func:`amorctl.solvers.admm_kernels.factor`).

        The explicit inverse (``torch.cholesky_inverse``) makes the per-iteration solve small matrix products,
        several times cheaper than a batched triangular solve per iteration; :meth:`iterate` adds one step of
        iterative refinement with the matrix itself (``refine_solve``), which brings the solve's accuracy back to
        the triangular solve's (without it, iteration counts on ill-conditioned classes such as Huber drift from
        OSQP's).
        Raises ``torch.linalg.LinAlgError`` if a matrix is not positive definite (P not PSD).
        """
        index = which.nonzero().squeeze(-1)
        if index.numel() == 0:
            return
        self.factorizations[index] += 1
        if self.backend == "numba":
            qp = self.qp
            failed = np.zeros(index.numel(), dtype=bool)
            arrays = (qp.P.numpy(), self._At.numpy(), self.rho.numpy(), self._constants, *self._factors())
            self._kernel("factor")(index.numpy(), *arrays, failed)
            _raise_if_indefinite(index, failed)
            return
        A, rho = self.qp.A[index], self.rho[index]
        kkt = self.qp.P[index] + self._sigma_eye + A.mT @ (rho.unsqueeze(-1) * A)
        if self._kkt is not None:
            self._kkt[index] = kkt
        self._inverse[index] = torch.cholesky_inverse(torch.linalg.cholesky(kkt))

    def set_rho(self, rho: torch.Tensor, which: torch.Tensor | None = None, scalar: torch.Tensor | None = None) -> None:
        """Use the per-row ``rho`` ``(N, m)`` (positive; not clipped, as OSQP's equality rows go up to 10³ρ_max)
        for the problems in ``which`` (``(N,)`` bool, default all running ones); refactors only problems whose ρ
        changed.

        ``scalar`` ``(N,)`` records the scalar ρ a vector was built from (the adaptive rule's state).

        Per OSQP (``osqp_update_rho``), y is kept and the ADMM iterates continue; a frozen problem is never
        changed.
        """
        which = self.running if which is None else which & self.running
        new = torch.where(which.unsqueeze(-1), rho.to(self.rho), self.rho)
        changed = (new != self.rho).any(-1)
        self.rho = new
        if scalar is not None:
            self.rho_scalar = torch.where(which, scalar.to(self.rho_scalar), self.rho_scalar)
        else:
            self.rho_scalar = torch.where(changed, torch.full_like(self.rho_scalar, math.nan), self.rho_scalar)
        self._factor(changed)

    def replace(self, which: torch.Tensor, problems: QPBatch) -> None:
        """Put new ``problems`` (one per True entry of ``which``, ``(N,)`` bool, same sizes) in those rows and
        start them afresh: zero iterates, ρ from the settings, a new factorization, ``UNSOLVED``, 0 iterations.

        An environment's auto-reset: finished rows get new problems while the others keep running. The rows are
        written into the solver's :class:`QPBatch` tensors in place (the batch it was built with).
        """
        index = which.nonzero().squeeze(-1)
        if index.numel() != problems.num_problems:
            raise ValueError(f"replace: {index.numel()} rows selected but {problems.num_problems} problems given")
        sizes = (problems.num_variables, problems.num_constraints)
        mine = (self.qp.num_variables, self.qp.num_constraints)
        if sizes != mine:
            raise ValueError(f"replace: the new problems have (n, m) = {sizes}, the solver's {mine}")
        problems = problems.to(self.qp.device, self.qp.dtype)
        for name in ("P", "q", "A", "lower", "upper"):
            getattr(self.qp, name)[index] = getattr(problems, name)
        self._At[index] = problems.A.mT
        self.types[index] = constraint_types(problems)
        for state in (self.x, self.z, self.y, self.delta_x, self.delta_y):
            state[index] = 0
        self.iterations[index] = 0
        self.status[index] = Status.UNSOLVED
        self.rho_scalar[index] = min(max(self.settings.rho, RHO_MIN), RHO_MAX)
        self.rho[index] = rho_vector(self.rho_scalar[index], self.types[index])
        self._factor(which)

    # -------------------------------------------------------------- iteration
    def iterate(self, count: int = 1) -> None:
        """Run ``count`` ADMM iterations on the running problems (the frozen ones keep their iterates).

        The running problems' data are gathered once per call, so a batch whose problems finish at different
        iterations costs what its running problems cost.
        """
        qp, alpha, sigma = self.qp, self.settings.alpha, self.settings.sigma
        index = self.running.nonzero().squeeze(-1)
        if index.numel() == 0:
            return
        if self.backend == "numba":
            kkt, inverse = self._factors()
            arrays = (qp.q, self._At, qp.lower, qp.upper, self.rho, self.x, self.z, self.y)
            q, At, lower, upper, rho, x, z, y = (t.numpy() for t in arrays)
            self._kernel("iterate")(
                index.numpy(), q, At, inverse, kkt, rho, lower, upper,
                x, z, y, self.delta_x.numpy(), self.delta_y.numpy(), count, self._constants,
            )  # fmt: skip
            self.iterations[index] += count
            return
        every = index.numel() == qp.num_problems
        pick = (lambda t: t) if every else (lambda t: t[index])
        q, A, At, lower, upper = pick(qp.q), pick(qp.A), pick(self._At), pick(qp.lower), pick(qp.upper)
        inverse, rho = pick(self._inverse), pick(self.rho)
        kkt = pick(self._kkt) if self._kkt is not None else None
        x, z, y = pick(self.x), pick(self.z), pick(self.y)
        x_old, y_old = x, y
        rho_inverse = 1 / rho
        for _ in range(count):
            x_old, y_old = x, y
            rhs = sigma * x - q - _row_times(torch.addcmul(y, rho, z, value=-1), A)
            x_tilde = _row_times(rhs, inverse)
            if kkt is not None:
                x_tilde = x_tilde + _row_times(rhs - _row_times(x_tilde, kkt), inverse)
            z_relaxed = torch.lerp(z, _row_times(x_tilde, At), alpha)
            x = torch.lerp(x, x_tilde, alpha)
            z = torch.clamp(torch.addcmul(z_relaxed, y, rho_inverse), lower, upper)
            y = torch.addcmul(y, rho, z_relaxed - z)
        for name, value in (("x", x), ("z", z), ("y", y), ("delta_x", x - x_old), ("delta_y", y - y_old)):
            if every:
                setattr(self, name, value)
            else:
                getattr(self, name)[index] = value
        self.iterations[index] += count

    def residuals(self) -> Residuals:
        """OSQP's residuals and their normalisers at the current iterates, measured on the running problems
        (the frozen ones read 0)."""
        index = self.running.nonzero().squeeze(-1)
        if self.backend == "numba":
            out = np.zeros((4, self.qp.num_problems), dtype=self._constants.dtype)
            qp = self.qp
            self._kernels.residuals(
                index.numpy(), qp.P.numpy(), qp.q.numpy(), self._At.numpy(),
                self.x.numpy(), self.z.numpy(), self.y.numpy(), self._constants, out,
            )  # fmt: skip
            return Residuals(*torch.from_numpy(out))
        x, y, z, q = self.x[index], self.y[index], self.z[index], self.qp.q[index]
        Ax, Px, Aty = _row_times(x, self._At[index]), _row_times(x, self.qp.P[index]), _row_times(y, self.qp.A[index])
        measured = (
            _norm(Ax - z),
            _norm(Px + q + Aty),
            torch.maximum(_norm(Ax), _norm(z)),
            torch.maximum(torch.maximum(_norm(Px), _norm(Aty)), _norm(q)),
        )
        return Residuals(*(self.x.new_zeros(self.qp.num_problems).index_copy(0, index, value) for value in measured))

    def primal_infeasible(self, index: torch.Tensor) -> torch.Tensor:
        """OSQP's primal infeasibility certificate on δy (``is_primal_infeasible``) for the problems at
        ``index``, bool of ``index``'s length.

        δy is projected onto the polar cone of [l, u]'s recession cone (zero where both bounds are infinite,
        ≤ 0 where only u is, ≥ 0 where only l is); then ‖Aᵀδy‖∞ < ε‖δy‖∞ and
        uᵀmax(δy, 0) + lᵀmin(δy, 0) < −ε‖δy‖∞ certify that no x has l ≤ Ax ≤ u.
        """
        if self.backend == "numba":
            out = np.zeros(index.numel(), dtype=bool)
            self._kernels.primal_infeasible(
                index.numpy(), self._At.numpy(),
                self.qp.lower.numpy(), self.qp.upper.numpy(), self.delta_y.numpy(), self._constants, out,
            )  # fmt: skip
            return torch.from_numpy(out)
        eps, dy = self.settings.eps_prim_inf, self.delta_y[index]
        lower, upper = self.qp.lower[index], self.qp.upper[index]
        upper_inf, lower_inf = upper > INFINITY, lower < -INFINITY
        dy = torch.where(upper_inf & lower_inf, torch.zeros_like(dy), dy)
        dy = torch.where(upper_inf & ~lower_inf, dy.clamp(max=0), dy)
        dy = torch.where(lower_inf & ~upper_inf, dy.clamp(min=0), dy)
        norm = _norm(dy)
        upper = torch.where(upper_inf, torch.zeros_like(upper), upper)
        lower = torch.where(lower_inf, torch.zeros_like(lower), lower)
        support = (upper * dy.clamp(min=0) + lower * dy.clamp(max=0)).sum(-1)
        return (norm > eps) & (support < -eps * norm) & (_norm(_row_times(dy, self.qp.A[index])) < eps * norm)

    def dual_infeasible(self, index: torch.Tensor) -> torch.Tensor:
        """OSQP's dual infeasibility certificate on δx (``is_dual_infeasible``) for the problems at ``index``:
        ‖Pδx‖∞ < ε‖δx‖∞, qᵀδx < −ε‖δx‖∞ and (Aδx)_i within ±ε‖δx‖∞ of the recession cone of [l, u]."""
        if self.backend == "numba":
            out, qp = np.zeros(index.numel(), dtype=bool), self.qp
            self._kernels.dual_infeasible(
                index.numpy(), qp.P.numpy(), qp.q.numpy(), self._At.numpy(),
                qp.lower.numpy(), qp.upper.numpy(), self.delta_x.numpy(), self._constants, out,
            )  # fmt: skip
            return torch.from_numpy(out)
        eps, dx = self.settings.eps_dual_inf, self.delta_x[index]
        lower, upper = self.qp.lower[index], self.qp.upper[index]
        norm = _norm(dx)
        bound = (eps * norm).unsqueeze(-1)
        Adx = _row_times(dx, self._At[index])
        cone = torch.where(upper < INFINITY, Adx <= bound, True) & torch.where(lower > -INFINITY, Adx >= -bound, True)
        return (
            (norm > eps)
            & ((self.qp.q[index] * dx).sum(-1) < -eps * norm)
            & (_norm(_row_times(dx, self.qp.P[index])) < eps * norm)
            & cone.all(-1)
        )

    def check(self, residuals: Residuals | None = None) -> Residuals:
        """Freeze the running problems that meet the tolerances (``SOLVED``) or, with infeasibility detection
        on, carry a certificate; returns the residuals it measured (or was given)."""
        residuals = residuals if residuals is not None else self.residuals()
        running = self.running
        solved = running & residuals.converged(self.settings.eps_abs, self.settings.eps_rel)
        self.status[solved] = Status.SOLVED
        if self.settings.detect_infeasibility:
            index = (running & ~solved).nonzero().squeeze(-1)
            primal = self.primal_infeasible(index)
            self.status[index[primal]] = Status.PRIMAL_INFEASIBLE
            index = index[~primal]
            self.status[index[self.dual_infeasible(index)]] = Status.DUAL_INFEASIBLE
        return residuals

    def solve(self, rule: RhoRule | None = None) -> BatchedADMM:
        """Iterate until every problem terminates or reaches ``max_iter``, OSQP's loop (``osqp_solve``):
        termination is checked every ``check_termination`` iterations; ``rule`` (default: fixed ρ) may change
        ρ after the check of every iteration it asks for. Returns ``self``.

        On the numba backend, fixed ρ and :class:`~amorctl.solvers.rho.OSQPAdaptiveRho` run the whole loop in one
        compiled call per batch (:func:`amorctl.solvers.admm_kernels.solve`), each problem on its own schedule —
        the same as this loop's when the problems start with equal iteration counts, as in a solve from scratch.
        """
        if self.backend == "numba" and self._solve_compiled(rule):
            return self
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
        self.status[self.running] = Status.MAX_ITER_REACHED
        return self

    def _kernel(self, name: str) -> Callable[..., object]:
        """(numba backend) The batch kernel ``name`` (``factor``, ``iterate``, ``solve``): serial for one thread, else
        its ``*_threads`` twin on ``settings.threads`` of numba's threads (numba's ``workqueue`` layer unless
        ``NUMBA_THREADING_LAYER`` names one: see :data:`amorctl.solvers.admm_kernels._parallel`)."""
        threads = self.settings.threads
        if threads == 1:
            return getattr(self._kernels, name)
        import numba

        if "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = "workqueue"
        threaded = getattr(self._kernels, f"{name}_threads")

        def call(*args: object) -> object:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads)
            try:
                return threaded(*args)
            finally:
                numba.set_num_threads(previous)

        return call

    def _factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(numba backend) The matrices K (``(N, 0, 0)`` without refinement) and K⁻¹ as arrays for the kernels."""
        kkt = (
            self._kkt.numpy()
            if self._kkt is not None
            else np.zeros((self.qp.num_problems, 0, 0), self._constants.dtype)
        )
        return kkt, self._inverse.numpy()

    def _solve_compiled(self, rule: RhoRule | None) -> bool:
        """:meth:`solve` in one call of the numba kernel when ``rule`` is one it implements (fixed ρ, OSQP's adaptive
        rule on a scalar ρ per problem); False (nothing done) otherwise."""
        from amorctl.solvers.rho import FixedRho, OSQPAdaptiveRho

        index = self.running.nonzero().squeeze(-1)
        adaptive = type(rule) is OSQPAdaptiveRho
        if not (rule is None or type(rule) is FixedRho or adaptive):
            return False
        if adaptive and bool(torch.isnan(self.rho_scalar[index]).any()):
            return False  # the generic loop raises OSQPAdaptiveRho's error
        settings, qp = self.settings, self.qp
        constants = self._constants.copy()
        constants[6] = rule.tolerance if adaptive else 1
        interval = rule.interval if adaptive else 0
        options = np.array(
            [settings.max_iter, settings.check_termination, settings.detect_infeasibility, interval], dtype=np.int64
        )
        failed = np.zeros(index.numel(), dtype=bool)
        self._kernel("solve")(
            index.numpy(), qp.P.numpy(), qp.q.numpy(), self._At.numpy(), *reversed(self._factors()),
            self.rho.numpy(), self.rho_scalar.numpy(), self.types.numpy(), qp.lower.numpy(), qp.upper.numpy(),
            self.x.numpy(), self.z.numpy(), self.y.numpy(), self.delta_x.numpy(), self.delta_y.numpy(),
            self.iterations.numpy(), self.status.numpy(), self.factorizations.numpy(), constants, options, failed,
        )  # fmt: skip
        _raise_if_indefinite(index, failed)
        return True

"""Rules that set ADMM's step size ρ between iterations: the baselines a learned ρ policy is measured against.

A :class:`RhoRule` is called by :meth:`BatchedADMM.solve` every ``interval`` iterations (after that
iteration's termination check) and may call :meth:`BatchedADMM.set_rho`. :class:`FixedRho` never changes ρ;
:class:`OSQPAdaptiveRho` is OSQP's rule (Stellato et al. 2020, §5.2; ``adapt_rho`` in OSQP's auxil.c).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from amorctl.solvers.admm import DIVISION_TOL, RHO_MAX, RHO_MIN, BatchedADMM, Residuals, rho_vector


class RhoRule(ABC):
    """A ρ schedule: ``interval`` iterations between calls of :meth:`update` (``None``: never called)."""

    interval: int | None

    @abstractmethod
    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        """Change ``solver``'s ρ (through :meth:`BatchedADMM.set_rho`) from the residuals just measured."""


class FixedRho(RhoRule):
    """ρ stays what :class:`~amorctl.solvers.admm.ADMMSettings` set (``rho``, 10³ρ on equality rows)."""

    interval = None

    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        """Nothing: ρ is fixed."""


def osqp_rho_estimate(rho: torch.Tensor, residuals: Residuals) -> torch.Tensor:
    """OSQP's ρ estimate (``compute_rho_estimate``), ``(N,)``:

        ρ · sqrt( (‖r_prim‖∞ / max(‖Ax‖∞, ‖z‖∞)) / (‖r_dual‖∞ / max(‖Px‖∞, ‖Aᵀy‖∞, ‖q‖∞)) )

    clipped to [10⁻⁶, 10⁶], each division guarded by 10⁻¹⁰ as OSQP does.
    """
    primal = residuals.primal / (residuals.primal_scale + DIVISION_TOL)
    dual = residuals.dual / (residuals.dual_scale + DIVISION_TOL)
    return (rho * torch.sqrt(primal / (dual + DIVISION_TOL))).clamp(RHO_MIN, RHO_MAX)


class OSQPAdaptiveRho(RhoRule):
    """OSQP's adaptive ρ: every ``interval`` iterations, ρ ← :func:`osqp_rho_estimate`, applied (and the
    matrix refactored) only where it changes ρ by more than a factor ``tolerance``.

    osqp 1.x's defaults without profiling: interval 50 (twice ``check_termination``), tolerance 5. The rule
    scales the scalar ρ of each problem (``BatchedADMM.rho_scalar``) and rebuilds OSQP's per-row vector from it.
    On the numba backend, :meth:`BatchedADMM.solve` runs this rule inside its compiled loop
    (``amorctl.solvers.admm_kernels._solve_one``) instead of calling :meth:`update`; a subclass is always called
    (``tests/solvers/test_admm.py`` checks that both give the same iterations).
    """

    def __init__(self, interval: int = 50, tolerance: float = 5.0):
        if interval < 1 or tolerance < 1:
            raise ValueError(f"OSQPAdaptiveRho needs interval >= 1 and tolerance >= 1, got {interval}, {tolerance}")
        self.interval, self.tolerance = interval, tolerance

    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        rho = solver.rho_scalar
        if bool(torch.isnan(rho[solver.running]).any()):
            raise ValueError("OSQPAdaptiveRho scales a scalar ρ per problem, but some rows' ρ were set one by one")
        estimate = osqp_rho_estimate(rho, residuals)
        change = (estimate > rho * self.tolerance) | (estimate < rho / self.tolerance)
        solver.set_rho(rho_vector(estimate, solver.types), which=change, scalar=estimate)

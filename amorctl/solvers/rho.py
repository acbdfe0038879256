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

    def start(self, solver: BatchedADMM) -> None:  # noqa: B027  (an optional hook: most rules keep the settings' ρ)
        """Set ρ before the first iteration of a solve from scratch (default: leave the settings' ρ); called by
        whoever starts the solve (the learned-ρ comparison), not by :meth:`BatchedADMM.solve`."""

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


class ActiveSetRho(RhoRule):
    """A two-level ρ per constraint from the active set: every ``interval`` iterations, ρ_i = ``high`` on the rows
    whose z_i is at a bound or outside (min(z_i − l_i, u_i − z_i) ≤ ``tolerance``·max(‖z‖∞, 1): equality rows
    always) and ``low`` on the others (:meth:`start`, before any iteration, reads the cold start z = 0).

    Not an OSQP rule: the hand-written form of what RLQP's learned per-constraint policies do (a large ρ where a
    constraint binds, a small one where it does not — Ichnowski et al. 2021; OSQP's 10³ρ on equality rows is the
    fixed-ρ version of it), kept as the reference a learned ρ policy is read against.
    """

    def __init__(self, high: float = 10.0, low: float = 0.1, interval: int = 25, tolerance: float = 1e-6):
        if not (RHO_MIN <= low <= high <= RHO_MAX) or interval < 1 or not tolerance > 0:
            raise ValueError(
                f"ActiveSetRho needs {RHO_MIN:g} <= low <= high <= {RHO_MAX:g}, interval >= 1 and tolerance > 0, "
                f"got low={low}, high={high}, interval={interval}, tolerance={tolerance}"
            )
        self.high, self.low, self.interval, self.tolerance = high, low, interval, tolerance

    def start(self, solver: BatchedADMM) -> None:
        """Set ρ from the cold start, before the first iteration."""
        self.update(solver, solver.residuals())

    def update(self, solver: BatchedADMM, residuals: Residuals) -> None:
        qp, z = solver.qp, solver.z
        slack = torch.minimum(z - qp.lower, qp.upper - z)
        scale = z.abs().amax(-1, keepdim=True).clamp_min(1.0)
        active = slack <= self.tolerance * scale
        solver.set_rho(torch.full_like(solver.rho, self.low).masked_fill_(active, self.high))

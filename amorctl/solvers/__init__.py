"""Batched solvers: OSQP's ADMM for quadratic programs (:class:`BatchedADMM`) and the ρ rules it is run with."""

from __future__ import annotations

from amorctl.solvers.admm import ADMMSettings, BatchedADMM, ConstraintType, Residuals, Status, rho_vector
from amorctl.solvers.rho import ActiveSetRho, FixedRho, OSQPAdaptiveRho, RhoRule, osqp_rho_estimate

__all__ = [
    "ADMMSettings",
    "ActiveSetRho",
    "BatchedADMM",
    "ConstraintType",
    "FixedRho",
    "OSQPAdaptiveRho",
    "Residuals",
    "RhoRule",
    "Status",
    "osqp_rho_estimate",
    "rho_vector",
]

"""Reference solutions of a :class:`QPBatch` from the ``osqp`` package, one problem at a time.

:func:`osqp_solve` runs the real OSQP (Stellato et al. 2020) on every problem of a batch with the given
settings; :func:`reference_solutions` runs it to a tight tolerance with solution polishing, which is what the
families are checked against and what the batched ADMM solver is validated against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from amorctl.problems.qp.batch import QPBatch

if TYPE_CHECKING:
    import scipy.sparse as sparse

REFERENCE_SETTINGS: dict[str, Any] = {
    "eps_abs": 1e-9,
    "eps_rel": 1e-9,
    "max_iter": 200_000,
    "polishing": True,
    "polish_refine_iter": 10,
}
"""osqp settings of :func:`reference_solutions`: tolerances 1e-9 and the active-set polish on top."""


@dataclass(frozen=True)
class OSQPResult:
    """The osqp package's answers for a batch, as tensors on the batch's device and dtype.

    Attributes:
        x: ``(N, n)`` primal solutions.
        y: ``(N, m)`` dual solutions (OSQP's sign convention: y > 0 on active upper bounds).
        iterations: ``(N,)`` ADMM iterations osqp ran.
        status: osqp's status strings, one per problem (``"solved"`` when it converged).
        solve_seconds: osqp's own solve time per problem (``info.solve_time``), excluding set-up.
    """

    x: torch.Tensor
    y: torch.Tensor
    iterations: torch.Tensor
    status: list[str]
    solve_seconds: torch.Tensor


def problem_data(
    batch: QPBatch, index: int
) -> tuple[sparse.csc_matrix, np.ndarray, sparse.csc_matrix, np.ndarray, np.ndarray]:
    """Problem ``index`` of ``batch`` as osqp's (P upper triangle, q, A, l, u), float64 on the CPU."""
    import scipy.sparse as sparse  # here, not at the top: scipy loads only when osqp is used

    P, q, A, lower, upper = (
        t[index].detach().to("cpu", torch.float64).numpy()
        for t in (batch.P, batch.q, batch.A, batch.lower, batch.upper)
    )
    return sparse.csc_matrix(np.triu(P)), q, sparse.csc_matrix(A), lower, upper


def osqp_solve(batch: QPBatch, **settings: Any) -> OSQPResult:
    """Solve every problem of ``batch`` with the osqp package (``verbose`` off, the rest as given)."""
    import osqp

    xs, ys, iterations, status, seconds = [], [], [], [], []
    for i in range(batch.num_problems):
        solver = osqp.OSQP()
        solver.setup(*problem_data(batch, i), verbose=False, **settings)
        result = solver.solve(raise_error=False)
        xs.append(result.x)
        ys.append(result.y)
        iterations.append(result.info.iter)
        status.append(result.info.status)
        seconds.append(result.info.solve_time)
    like = {"device": batch.device, "dtype": batch.dtype}
    return OSQPResult(
        torch.as_tensor(np.stack(xs), **like),
        torch.as_tensor(np.stack(ys), **like),
        torch.as_tensor(iterations, device=batch.device),
        status,
        torch.as_tensor(seconds, dtype=torch.float64),
    )


FALLBACK_RHOS = (1.0, 0.1, 10.0)
"""Fixed ρ values :func:`reference_solutions` retries a problem with when adaptive ρ does not converge."""


def reference_solutions(batch: QPBatch) -> OSQPResult:
    """osqp run to tolerance 1e-9 with polishing (:data:`REFERENCE_SETTINGS`) on every problem of ``batch``.

    OSQP's adaptive ρ occasionally oscillates on a problem and stalls far above 1e-9 (about one Random QP in
    fifty at n = 10); such a problem is solved again with ρ fixed at each of :data:`FALLBACK_RHOS` until one
    run converges. Raises ``RuntimeError`` naming the problems no run solved (infeasible or out of iterations).
    """
    result = osqp_solve(batch, **REFERENCE_SETTINGS)
    x, y, status = result.x.clone(), result.y.clone(), list(result.status)
    for rho in FALLBACK_RHOS:
        failed = [i for i, s in enumerate(status) if s != "solved"]
        if not failed:
            break
        retry = osqp_solve(batch[torch.tensor(failed)], adaptive_rho=0, rho=rho, **REFERENCE_SETTINGS)
        for j, i in enumerate(failed):
            if retry.status[j] == "solved":
                x[i], y[i], status[i] = retry.x[j], retry.y[j], "solved"
    failed = [(i, s) for i, s in enumerate(status) if s != "solved"]
    if failed:
        raise RuntimeError(
            f"osqp did not solve {len(failed)} of {batch.num_problems} problems to the reference "
            f"tolerance: {failed[:5]}"
        )
    return OSQPResult(x, y, result.iterations, status, result.solve_seconds)

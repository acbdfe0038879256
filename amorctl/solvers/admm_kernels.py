"""Compiled CPU kernels of :class:`~amorctl.solvers.BatchedADMM` (numba): a loop over the problems of a batch, each
problem's ADMM iterations run back to back on data that stay in the core's cache.

Why hand-written loops: on a CPU, the batched tensor form streams every problem's A, Aᵀ and inverse through memory
once per iteration and pays torch's dispatch for each of ~20 operations, so a batch of small QPs ran at 0.5–5× the
osqp package's C loop (``benchmarks/RESULTS.md``, RLQP). Here each problem runs its iterations while its data are in
L1/L2, with the same dense arithmetic as the torch form: Aᵀ stored ``(n, m)`` so that both products run along
rows of length m (vectorised), the explicit inverse of P + σI + Aᵀdiag(ρ)A from its Cholesky factor, and one step
of iterative refinement with the matrix itself (``ADMMSettings.refine_solve``). :func:`solve` runs OSQP's whole
loop per problem (termination checks, infeasibility certificates, the adaptive-ρ rule with its refactorizations),
so a batch costs no Python between its start and its end. The arithmetic is OSQP's (Stellato et al. 2020,
Algorithm 1), stated in :mod:`amorctl.solvers.admm`, whose torch form serves GPUs.

Every kernel takes ``index``, the problems to work on, and writes its results in place into arrays shared with the
solver's torch tensors (``Tensor.numpy()``): ``At`` ``(N, n, m)``, ``inverse`` and ``kkt`` ``(N, n, n)`` (``kkt``
``(N, 0, 0)`` without refinement). Scalars arrive in ``constants`` = (α, σ, 0, 1, ε_prim_inf, ε_dual_inf, the
adaptive-ρ tolerance, ε_abs, ε_rel), an array of the batch's dtype, so float32 batches compute in float32.
"""

from __future__ import annotations

import numba
import numpy as np

from amorctl.problems.qp.batch import INFINITY
from amorctl.solvers.admm import DIVISION_TOL, RHO_EQ_OVER_RHO_INEQ, RHO_MAX, RHO_MIN, ConstraintType, Status

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
"""LLVM's fast-math flags that allow vectorised sums; not ``nnan``/``ninf``: bounds may be ±inf."""

_jit = numba.njit(cache=True, fastmath=FASTMATH, boundscheck=False, nogil=True, error_model="numpy")
_parallel = numba.njit(cache=True, fastmath=FASTMATH, boundscheck=False, nogil=True, error_model="numpy", parallel=True)
"""The ``*_threads`` twins of the batch kernels that carry the work spread their problems over numba's threads
(``ADMMSettings.threads`` > 1); problems are independent, so the results do not depend on the thread count. The
serial kernels never start numba's thread pool: its OpenMP layer, once started, made torch's own CPU work in the
same process 3× slower (measured: a 64-64 MLP's forward and backward, 28 → 93 ms), so :class:`BatchedADMM` selects
numba's ``workqueue`` layer before the first threaded call unless ``NUMBA_THREADING_LAYER`` says otherwise."""

_UNSOLVED, _SOLVED, _PRIMAL_INFEASIBLE, _DUAL_INFEASIBLE, _MAX_ITER = (
    int(Status.UNSOLVED),
    int(Status.SOLVED),
    int(Status.PRIMAL_INFEASIBLE),
    int(Status.DUAL_INFEASIBLE),
    int(Status.MAX_ITER_REACHED),
)
_LOOSE, _EQUALITY = int(ConstraintType.LOOSE), int(ConstraintType.EQUALITY)


# ----------------------------------------------------------------------------------------- one problem at a time
@_jit
def _factor_one(b, P, At, rho, sigma, kkt, inverse, scratch, cholesky, lower_inverse):
    """Problem b's matrix K = P + σI + Aᵀdiag(ρ)A (into ``kkt[b]`` when refinement keeps it) and K⁻¹ = L⁻ᵀL⁻¹ (into
    ``inverse[b]``) from its Cholesky factor L (in ``cholesky`` ``(n, n)``, L⁻¹ in ``lower_inverse``); every inner loop
    runs along a row. False if K is not positive definite."""
    n, m = At.shape[1], At.shape[2]
    Atb = At[b]
    for j in range(n):
        for i in range(m):
            scratch[i] = rho[b, i] * Atb[j, i]
        for k in range(j + 1):
            total = P[b, j, k]
            for i in range(m):
                total += scratch[i] * Atb[k, i]
            cholesky[j, k] = total
            cholesky[k, j] = total
        cholesky[j, j] += sigma
    if kkt.shape[1]:
        kkt[b, :, :] = cholesky
    for j in range(n):  # Cholesky on the lower triangle, in place
        pivot = cholesky[j, j]
        for t in range(j):
            pivot -= cholesky[j, t] * cholesky[j, t]
        if not pivot > 0:
            return False
        pivot = np.sqrt(pivot)
        cholesky[j, j] = pivot
        for r in range(j + 1, n):
            value = cholesky[r, j]
            for t in range(j):
                value -= cholesky[r, t] * cholesky[j, t]
            cholesky[r, j] = value / pivot
    for i in range(n):  # row i of L⁻¹: (e_i − Σ_{k<i} L_ik (L⁻¹)_k) / L_ii
        row = lower_inverse[i]
        row[:] = 0
        row[i] = 1
        for k in range(i):
            c = cholesky[i, k]
            for t in range(k + 1):
                row[t] -= c * lower_inverse[k, t]
        scale = 1 / cholesky[i, i]
        for t in range(i + 1):
            row[t] *= scale
    inv = inverse[b]
    inv[:, :] = 0
    for k in range(n):  # K⁻¹ = Σ_k (row k of L⁻¹)ᵀ(row k of L⁻¹)
        for a in range(k + 1):
            c = lower_inverse[k, a]
            for t in range(k + 1):
                inv[a, t] += c * lower_inverse[k, t]
    return True


@_jit
def _combine(matrix, coefficients, out, zero):
    """out = Σ_k coefficients[k] · matrix[k, :] (for a symmetric K⁻¹ or K, K · coefficients; for Aᵀ ``(n, m)``,
    A · coefficients), four rows at a time so that ``out`` is loaded and stored once per four rows (1.2–1.7×
    faster per ADMM iteration than one row at a time on the OSQP classes, measured in float32)."""
    rows, width = coefficients.shape[0], out.shape[0]
    out[:] = zero
    blocked = rows - rows % 4
    for k in range(0, blocked, 4):
        c0, c1, c2, c3 = coefficients[k], coefficients[k + 1], coefficients[k + 2], coefficients[k + 3]
        for j in range(width):
            out[j] += c0 * matrix[k, j] + c1 * matrix[k + 1, j] + c2 * matrix[k + 2, j] + c3 * matrix[k + 3, j]
    for k in range(blocked, rows):
        c = coefficients[k]
        for j in range(width):
            out[j] += c * matrix[k, j]


@_jit
def _dots(matrix, vector, out, zero):
    """out[j] = Σ_i matrix[j, i] · vector[i] (Aᵀw for Aᵀ ``(n, m)``), four rows at a time so that each load of
    ``vector`` serves four sums."""
    rows, width = out.shape[0], vector.shape[0]
    blocked = rows - rows % 4
    for j in range(0, blocked, 4):
        s0, s1, s2, s3 = zero, zero, zero, zero
        for i in range(width):
            v = vector[i]
            s0 += matrix[j, i] * v
            s1 += matrix[j + 1, i] * v
            s2 += matrix[j + 2, i] * v
            s3 += matrix[j + 3, i] * v
        out[j], out[j + 1], out[j + 2], out[j + 3] = s0, s1, s2, s3
    for j in range(blocked, rows):
        total = zero
        for i in range(width):
            total += matrix[j, i] * vector[i]
        out[j] = total


@_jit
def _run(b, count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants, work):
    """``count`` ADMM iterations of problem b in place; δx, δy of the last one. ``work`` ``(6, max(n, m))``."""
    n, m = x.shape[1], z.shape[1]
    alpha, sigma, zero, one = constants[0], constants[1], constants[2], constants[3]
    refine = kkt.shape[1] > 0
    rhs, solution, residual, w, ax, rho_inverse = (
        work[0, :n],
        work[1, :n],
        work[2, :n],
        work[3, :m],
        work[4, :m],
        work[5, :m],
    )
    xb, zb, yb, rb, Atb = x[b], z[b], y[b], rho[b], At[b]
    for i in range(m):
        rho_inverse[i] = one / rb[i]
    for step in range(count):
        if step == count - 1:
            delta_x[b, :] = xb
            delta_y[b, :] = yb
        for i in range(m):
            w[i] = rb[i] * zb[i] - yb[i]
        _dots(Atb, w, rhs, zero)  # rhs = σx − q + Aᵀ(ρ∘z − y)
        for j in range(n):
            rhs[j] += sigma * xb[j] - q[b, j]
        _combine(inverse[b], rhs, solution, zero)  # x̃ = K⁻¹ rhs
        if refine:  # x̃ += K⁻¹ (rhs − K x̃)
            _combine(kkt[b], solution, residual, zero)
            for j in range(n):
                residual[j] = rhs[j] - residual[j]
            _combine(inverse[b], residual, rhs, zero)
            for j in range(n):
                solution[j] += rhs[j]
        _combine(Atb, solution, ax, zero)  # z̃ = A x̃
        for j in range(n):
            xb[j] += alpha * (solution[j] - xb[j])
        for i in range(m):
            relaxed = zb[i] + alpha * (ax[i] - zb[i])
            new_z = min(max(relaxed + yb[i] * rho_inverse[i], lower[b, i]), upper[b, i])
            yb[i] += rb[i] * (relaxed - new_z)
            zb[i] = new_z
    for j in range(n):
        delta_x[b, j] = xb[j] - delta_x[b, j]
    for i in range(m):
        delta_y[b, i] = yb[i] - delta_y[b, i]


@_jit
def _largest(a, b):
    """max(a, b) that keeps a NaN (Python's ``max`` drops one in second place, so a NaN residual read as 0 and a
    diverged problem as solved), as torch's ``amax`` does."""
    return b if (b > a or b != b) else a


@_jit
def _measure(b, P, q, At, x, z, y, zero, ax):
    """OSQP's residuals of problem b: ‖Ax − z‖∞, ‖Px + q + Aᵀy‖∞, max(‖Ax‖∞, ‖z‖∞), max(‖Px‖∞, ‖Aᵀy‖∞, ‖q‖∞)."""
    n, m = x.shape[1], z.shape[1]
    ax[:m] = 0
    dual, dual_scale = zero, zero
    for j in range(n):
        aty, px, c = zero, zero, x[b, j]
        for i in range(m):
            ax[i] += At[b, j, i] * c
            aty += At[b, j, i] * y[b, i]
        for k in range(n):
            px += P[b, j, k] * x[b, k]
        dual = _largest(dual, abs(px + q[b, j] + aty))
        dual_scale = _largest(_largest(dual_scale, abs(px)), _largest(abs(aty), abs(q[b, j])))
    primal, primal_scale = zero, zero
    for i in range(m):
        primal = _largest(primal, abs(ax[i] - z[b, i]))
        primal_scale = _largest(primal_scale, _largest(abs(ax[i]), abs(z[b, i])))
    return primal, dual, primal_scale, dual_scale


@_jit
def _primal_certificate(b, At, lower, upper, delta_y, zero, eps, projected):
    """OSQP's primal infeasibility certificate on δy (``is_primal_infeasible``; see
    :meth:`BatchedADMM.primal_infeasible`): δy projected onto the polar cone of [l, u]'s recession cone, then
    ‖Aᵀδy‖∞ < ε‖δy‖∞ and uᵀmax(δy, 0) + lᵀmin(δy, 0) < −ε‖δy‖∞."""
    n, m = At.shape[1], At.shape[2]
    norm, support = zero, zero
    for i in range(m):
        upper_finite, lower_finite = upper[b, i] <= INFINITY, lower[b, i] >= -INFINITY
        dy = delta_y[b, i]
        if not upper_finite:
            dy = min(dy, zero) if lower_finite else zero
        elif not lower_finite:
            dy = max(dy, zero)
        projected[i] = dy
        norm = _largest(norm, abs(dy))
        if upper_finite:
            support += upper[b, i] * max(dy, zero)
        if lower_finite:
            support += lower[b, i] * min(dy, zero)
    if not (norm > eps and support < -eps * norm):
        return False
    for j in range(n):
        total = zero
        for i in range(m):
            total += At[b, j, i] * projected[i]
        if not abs(total) < eps * norm:
            return False
    return True


@_jit
def _dual_certificate(b, P, q, At, lower, upper, delta_x, zero, eps, a_dx):
    """OSQP's dual infeasibility certificate on δx (``is_dual_infeasible``; see :meth:`BatchedADMM.dual_infeasible`):
    ‖Pδx‖∞ < ε‖δx‖∞, qᵀδx < −ε‖δx‖∞ and Aδx within ±ε‖δx‖∞ of the recession cone of [l, u]."""
    n, m = At.shape[1], At.shape[2]
    norm, q_dx = zero, zero
    for j in range(n):
        norm = _largest(norm, abs(delta_x[b, j]))
        q_dx += q[b, j] * delta_x[b, j]
    bound = eps * norm
    if not (norm > eps and q_dx < -bound):
        return False
    for r in range(n):
        value = zero
        for c in range(n):
            value += P[b, r, c] * delta_x[b, c]
        if not abs(value) < bound:
            return False
    a_dx[:m] = 0
    for j in range(n):
        c = delta_x[b, j]
        for i in range(m):
            a_dx[i] += At[b, j, i] * c
    for i in range(m):
        if (upper[b, i] < INFINITY and a_dx[i] > bound) or (lower[b, i] > -INFINITY and a_dx[i] < -bound):
            return False
    return True


# --------------------------------------------------------------------------------------------- batch kernels
@_jit
def _factor_new(b, P, At, rho, sigma, kkt, inverse):
    """:func:`_factor_one` with its own scratch arrays."""
    n, m = At.shape[1], At.shape[2]
    scratch = np.empty(max(m, 1), dtype=At.dtype)
    cholesky, lower_inverse = np.empty((n, n), dtype=At.dtype), np.empty((n, n), dtype=At.dtype)
    return _factor_one(b, P, At, rho, sigma, kkt, inverse, scratch, cholesky, lower_inverse)


@_jit
def factor(index, P, At, rho, constants, kkt, inverse, failed):
    """Factor and invert (in place) for the problems in ``index``; ``failed[k]`` says whether problem ``index[k]``'s
    matrix is not positive definite."""
    for k in range(index.shape[0]):
        failed[k] = not _factor_new(index[k], P, At, rho, constants[1], kkt, inverse)


@_parallel
def factor_threads(index, P, At, rho, constants, kkt, inverse, failed):
    """:func:`factor` on numba's threads."""
    for k in numba.prange(index.shape[0]):
        failed[k] = not _factor_new(index[k], P, At, rho, constants[1], kkt, inverse)


@_jit
def _iterate_new(b, count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants):
    """:func:`_run` with its own work arrays."""
    work = np.empty((6, max(x.shape[1], z.shape[1], 1)), dtype=x.dtype)
    _run(b, count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants, work)


@_jit
def iterate(index, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, count, constants):
    """``count`` ADMM iterations of each problem in ``index`` (x, z, y in place; δx, δy of the last iteration)."""
    for k in range(index.shape[0]):
        _iterate_new(index[k], count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants)


@_parallel
def iterate_threads(index, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, count, constants):
    """:func:`iterate` on numba's threads."""
    for k in numba.prange(index.shape[0]):
        _iterate_new(index[k], count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants)


@_jit
def residuals(index, P, q, At, x, z, y, constants, out):
    """OSQP's residuals of the problems in ``index`` into ``out`` ``(4, N)`` (see :func:`_measure`)."""
    ax = np.empty(max(z.shape[1], 1), dtype=x.dtype)
    for k in range(index.shape[0]):
        b = index[k]
        out[0, b], out[1, b], out[2, b], out[3, b] = _measure(b, P, q, At, x, z, y, constants[2], ax)


@_jit
def primal_infeasible(index, At, lower, upper, delta_y, constants, out):
    """The primal infeasibility certificate of each problem in ``index`` into ``out[k]``."""
    projected = np.empty(max(delta_y.shape[1], 1), dtype=delta_y.dtype)
    for k in range(index.shape[0]):
        out[k] = _primal_certificate(index[k], At, lower, upper, delta_y, constants[2], constants[4], projected)


@_jit
def dual_infeasible(index, P, q, At, lower, upper, delta_x, constants, out):
    """The dual infeasibility certificate of each problem in ``index`` into ``out[k]``."""
    a_dx = np.empty(max(lower.shape[1], 1), dtype=delta_x.dtype)
    for k in range(index.shape[0]):
        out[k] = _dual_certificate(index[k], P, q, At, lower, upper, delta_x, constants[2], constants[5], a_dx)


@_jit
def _solve_one(b, P, q, At, inverse, kkt, rho, rho_scalar, types, lower, upper, x, z, y, delta_x, delta_y,
               iterations, status, factorizations, constants, options):  # fmt: skip
    """OSQP's loop (``osqp_solve``) for problem b until it terminates or reaches ``max_iter``: the schedule of
    :meth:`BatchedADMM.solve` with :class:`FixedRho` (``interval`` 0) or :class:`OSQPAdaptiveRho`.

    ``options`` (int64) = (max_iter, check_termination, detect_infeasibility, adaptive-ρ interval or 0); the
    adaptive rule's tolerance is ``constants[6]``. Returns False if the matrix stopped being positive definite after
    a ρ change (the problem stops there).
    """
    max_iter, check_every, detect, interval = options[0], options[1], options[2] != 0, options[3]
    n, m = x.shape[1], z.shape[1]
    zero, tolerance, eps_abs, eps_rel = constants[2], constants[6], constants[7], constants[8]
    every = check_every
    if interval > 0:
        a, c = check_every, interval
        while c:
            a, c = c, a % c
        every = a
    work = np.empty((6, max(n, m, 1)), dtype=x.dtype)
    scratch = np.empty(max(m, 1), dtype=x.dtype)
    cholesky, lower_inverse = np.empty((n, n), dtype=x.dtype), np.empty((n, n), dtype=x.dtype)
    done = iterations[b]
    definite = True
    while status[b] == _UNSOLVED and done < max_iter and definite:
        count = min(every - done % every, max_iter - done)
        _run(b, count, q, At, inverse, kkt, rho, lower, upper, x, z, y, delta_x, delta_y, constants, work)
        done += count
        measured = False
        primal, dual, primal_scale, dual_scale = zero, zero, zero, zero
        if done % check_every == 0 or done == max_iter:
            primal, dual, primal_scale, dual_scale = _measure(b, P, q, At, x, z, y, zero, work[4])
            measured = True
            if primal <= eps_abs + eps_rel * primal_scale and dual <= eps_abs + eps_rel * dual_scale:
                status[b] = _SOLVED
            elif detect and _primal_certificate(b, At, lower, upper, delta_y, zero, constants[4], work[4]):
                status[b] = _PRIMAL_INFEASIBLE
            elif detect and _dual_certificate(b, P, q, At, lower, upper, delta_x, zero, constants[5], work[4]):
                status[b] = _DUAL_INFEASIBLE
        if interval > 0 and done % interval == 0 and status[b] == _UNSOLVED:
            if not measured:
                primal, dual, primal_scale, dual_scale = _measure(b, P, q, At, x, z, y, zero, work[4])
            current = rho_scalar[b]
            ratio = (primal / (primal_scale + DIVISION_TOL)) / (dual / (dual_scale + DIVISION_TOL) + DIVISION_TOL)
            estimate = min(max(current * np.sqrt(ratio), RHO_MIN), RHO_MAX)
            if estimate > current * tolerance or estimate < current / tolerance:
                rho_scalar[b] = estimate
                changed = False
                for i in range(m):
                    new = RHO_MIN if types[b, i] == _LOOSE else estimate
                    if types[b, i] == _EQUALITY:
                        new = RHO_EQ_OVER_RHO_INEQ * estimate
                    changed = changed or new != rho[b, i]
                    rho[b, i] = new
                if changed:
                    factorizations[b] += 1
                    definite = _factor_one(b, P, At, rho, constants[1], kkt, inverse, scratch, cholesky, lower_inverse)
    iterations[b] = done
    if status[b] == _UNSOLVED and definite:
        status[b] = _MAX_ITER
    return definite


@_jit
def solve(index, P, q, At, inverse, kkt, rho, rho_scalar, types, lower, upper, x, z, y, delta_x, delta_y,
          iterations, status, factorizations, constants, options, failed):  # fmt: skip
    """:func:`_solve_one` for each problem in ``index``; ``failed[k]`` says whether problem ``index[k]``'s matrix
    stopped being positive definite."""
    for k in range(index.shape[0]):
        failed[k] = not _solve_one(index[k], P, q, At, inverse, kkt, rho, rho_scalar, types, lower, upper,
                                   x, z, y, delta_x, delta_y, iterations, status, factorizations, constants,
                                   options)  # fmt: skip


@_parallel
def solve_threads(index, P, q, At, inverse, kkt, rho, rho_scalar, types, lower, upper, x, z, y, delta_x, delta_y,
                  iterations, status, factorizations, constants, options, failed):  # fmt: skip
    """:func:`solve` on numba's threads."""
    for k in numba.prange(index.shape[0]):
        failed[k] = not _solve_one(index[k], P, q, At, inverse, kkt, rho, rho_scalar, types, lower, upper,
                                   x, z, y, delta_x, delta_y, iterations, status, factorizations, constants,
                                   options)  # fmt: skip


def compile_kernels() -> None:
    """Compile every kernel for float32 and float64 batches into numba's cache (``__pycache__`` beside this module,
    or ``NUMBA_CACHE_DIR``), so that later processes load them in well under a second. The first compilation takes
    about a minute on 2 cores; ``.ci/run`` calls this once before the test suite."""
    import torch

    from amorctl.problems.qp import QPBatch
    from amorctl.solvers.admm import ADMMSettings, BatchedADMM
    from amorctl.solvers.rho import OSQPAdaptiveRho

    for dtype in (torch.float32, torch.float64):
        # min x² − x s.t. 0 ≤ x ≤ 1 and x ≤ 2: the step API (iterate, residuals, certificates) and the fused solve
        data = (torch.eye(1)[None], -torch.ones(1, 1), torch.ones(1, 2, 1), torch.zeros(1, 2), torch.full((1, 2), 2.0))
        qp = QPBatch(*(t.to(dtype) for t in data))
        solver = BatchedADMM(qp, ADMMSettings(backend="numba", check_termination=1))
        solver.iterate(1)
        solver.check()
        solver.primal_infeasible(torch.zeros(1, dtype=torch.int64))
        solver.dual_infeasible(torch.zeros(1, dtype=torch.int64))
        BatchedADMM(qp, ADMMSettings(backend="numba")).solve(OSQPAdaptiveRho())
        if numba.config.NUMBA_NUM_THREADS > 1:  # the *_threads twins
            threaded = BatchedADMM(qp, ADMMSettings(backend="numba", threads=2))
            threaded.iterate(1)
            threaded.solve(OSQPAdaptiveRho())

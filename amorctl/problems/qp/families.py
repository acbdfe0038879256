"""The seven QP classes of the OSQP benchmark suite, drawn in batches from a ``torch.Generator``.

Each class follows the description in Stellato et al. 2020 ("OSQP: an operator splitting solver for quadratic
programs", Appendix A) and the generators of the osqp_benchmarks repository (``problem_classes/``): the same
matrices, distributions and densities, with the sizes as constructor arguments (config keys). Where a class at
the small sizes used here could draw an infeasible problem, the deviation that prevents it is stated in its
docstring. Everything is drawn in float64 on the generator's device; :meth:`QPFamily.sample` moves the batch.
"""

from __future__ import annotations

import math

import torch

from amorctl.problems.base import require
from amorctl.problems.qp.batch import QPBatch, QPFamily


def sparse_normal(generator: torch.Generator, shape: tuple[int, ...], density: float) -> torch.Tensor:
    """A dense tensor whose entries are N(0, 1) with probability ``density`` and 0 otherwise
    (``scipy.sparse.random(..., data_rvs=np.random.randn)`` of the benchmark generators)."""
    where = generator.device
    mask = torch.rand(shape, generator=generator, device=where, dtype=torch.float64) < density
    return torch.randn(shape, generator=generator, device=where, dtype=torch.float64) * mask


def with_nonempty_rows(generator: torch.Generator, matrix: torch.Tensor) -> torch.Tensor:
    """``matrix`` (…, m, n) with an N(0, 1) entry in a uniformly drawn column of every all-zero row.

    At 15 % density a row of a small matrix is empty with probability 0.85ⁿ (20 % at n = 10); an empty
    constraint row with non-zero bounds makes a problem infeasible, one with zero bounds is dead weight.
    """
    where, shape = generator.device, matrix.shape
    column = torch.randint(shape[-1], (*shape[:-1], 1), generator=generator, device=where)
    value = torch.randn((*shape[:-1], 1), generator=generator, device=where, dtype=matrix.dtype)
    empty = (matrix == 0).all(-1, keepdim=True)
    filler = torch.zeros_like(matrix).scatter(-1, column, value)
    return torch.where(empty, filler, matrix)


def assemble(
    batch: int, rows: list[int], columns: list[int], blocks: dict[tuple[int, int], torch.Tensor], like: torch.Tensor
) -> torch.Tensor:
    """A ``(batch, Σrows, Σcolumns)`` matrix from blocks at (block row, block column); missing blocks are 0.

    A block is a ``(batch, r, c)`` tensor or an unbatched ``(r, c)`` one (broadcast over the batch).
    """
    out = like.new_zeros(batch, sum(rows), sum(columns))
    row_starts = [sum(rows[:i]) for i in range(len(rows))]
    column_starts = [sum(columns[:j]) for j in range(len(columns))]
    for (i, j), block in blocks.items():
        r0, c0 = row_starts[i], column_starts[j]
        out[:, r0 : r0 + rows[i], c0 : c0 + columns[j]] = block
    return out


def eye(size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(size, dtype=like.dtype, device=like.device)


def _random_cost(generator: torch.Generator, batch: int, n: int, density: float) -> torch.Tensor:
    """P = M Mᵀ + 10⁻² I with M sparse N(0, 1) at ``density`` (Random and Equality QP)."""
    M = sparse_normal(generator, (batch, n, n), density)
    return M @ M.mT + 1e-2 * eye(n, M)


class RandomQP(QPFamily):
    """Random QP: P = MMᵀ + 10⁻²I, q ~ N(0, I), A sparse N(0, 1), l_i ~ −U(0, 1), u_i ~ U(0, 1), m = 10n.

    M and A have ``density`` non-zeros (15 % in the OSQP paper). Every problem is feasible (x = 0 is) and
    strongly convex. Rows of A that come out empty get one entry (:func:`with_nonempty_rows`).
    """

    def __init__(self, *, n: int = 10, constraints_per_variable: int = 10, density: float = 0.15):
        require(n >= 1, "n", "a positive integer (the number of variables)", n)
        require(
            constraints_per_variable >= 1, "constraints_per_variable", "a positive integer", constraints_per_variable
        )
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        self.n, self.density = n, density
        self.num_variables, self.num_constraints = n, constraints_per_variable * n

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, m, where = self.n, self.num_constraints, generator.device
        P = _random_cost(generator, batch_size, n, self.density)
        q = torch.randn(batch_size, n, generator=generator, device=where, dtype=torch.float64)
        A = with_nonempty_rows(generator, sparse_normal(generator, (batch_size, m, n), self.density))
        lower = -torch.rand(batch_size, m, generator=generator, device=where, dtype=torch.float64)
        upper = torch.rand(batch_size, m, generator=generator, device=where, dtype=torch.float64)
        return QPBatch(P, q, A, lower, upper)


class EqualityQP(QPFamily):
    """Equality QP: P = MMᵀ + 10⁻²I, q ~ N(0, I), Ax = b with A sparse N(0, 1), m = ⌊n/2⌋.

    The benchmark draws b ~ N(0, I); at small n a sparse A can be rank deficient (two rows with their single
    entry in one column), and then such a b is infeasible. Here b = A x̄ with x̄ ~ N(0, I), feasible always.
    """

    def __init__(self, *, n: int = 10, density: float = 0.15):
        require(n >= 2, "n", "an integer >= 2 (the number of variables; m = n // 2)", n)
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        self.n, self.density = n, density
        self.num_variables, self.num_constraints = n, n // 2

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, m, where = self.n, self.num_constraints, generator.device
        P = _random_cost(generator, batch_size, n, self.density)
        q = torch.randn(batch_size, n, generator=generator, device=where, dtype=torch.float64)
        A = with_nonempty_rows(generator, sparse_normal(generator, (batch_size, m, n), self.density))
        x_bar = torch.randn(batch_size, n, 1, generator=generator, device=where, dtype=torch.float64)
        b = (A @ x_bar).squeeze(-1)
        return QPBatch(P, q, A, b, b.clone())


class Portfolio(QPFamily):
    """Factor-model portfolio optimisation: min xᵀDx + yᵀy − μᵀx/γ s.t. y = Fᵀx, 1ᵀx = 1, 0 ≤ x ≤ 1.

    ``assets`` n, ``factors`` k; F (n × k) sparse N(0, 1) at 50 %, D diagonal with D_ii ~ U(0, √k),
    μ ~ N(0, I), γ = 1. Variables (x, y) ∈ R^{n+k}; constraints: the budget row, the k factor equalities and
    the n bounds (m = 1 + k + n). The benchmark takes n = 100k; small instances set ``assets`` directly.
    """

    def __init__(self, *, assets: int = 20, factors: int = 2, density: float = 0.5, risk_aversion: float = 1.0):
        require(assets >= 1, "assets", "a positive integer", assets)
        require(factors >= 1, "factors", "a positive integer", factors)
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        require(risk_aversion > 0.0, "risk_aversion", "a positive number (γ)", risk_aversion)
        self.assets, self.factors, self.density, self.gamma = assets, factors, density, risk_aversion
        self.num_variables, self.num_constraints = assets + factors, 1 + factors + assets

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, k, B, where = self.assets, self.factors, batch_size, generator.device
        F = sparse_normal(generator, (B, n, k), self.density)
        D = torch.rand(B, n, generator=generator, device=where, dtype=torch.float64) * math.sqrt(k)
        mu = torch.randn(B, n, generator=generator, device=where, dtype=torch.float64)
        P = torch.diag_embed(torch.cat([2 * D, 2 * torch.ones_like(D[:, :k])], -1))
        q = torch.cat([-mu / self.gamma, torch.zeros_like(mu[:, :k])], -1)
        A = assemble(
            B,
            [1, k, n],
            [n, k],
            {
                (0, 0): torch.ones_like(F[:, :1, :1]).expand(B, 1, n),
                (1, 0): F.mT,
                (1, 1): -eye(k, F),
                (2, 0): eye(n, F),
            },
            F,
        )
        zeros, ones = torch.zeros_like(mu[:, :1]), torch.ones_like(mu[:, :1])
        lower = torch.cat([ones, zeros.expand(B, k), zeros.expand(B, n)], -1)
        upper = torch.cat([ones, zeros.expand(B, k), ones.expand(B, n)], -1)
        return QPBatch(P, q, A, lower, upper)


def _regression_data(generator: torch.Generator, batch: int, data: int, features: int, density: float) -> torch.Tensor:
    """The data matrix of the regression classes: sparse N(0, 1), no empty row (an empty row is a constant)."""
    return with_nonempty_rows(generator, sparse_normal(generator, (batch, data, features), density))


class Lasso(QPFamily):
    """Lasso as a QP: min yᵀy + λ1ᵀt s.t. y = Ãx − b, −t ≤ x ≤ t (i.e. min ‖Ãx − b‖² + λ‖x‖₁).

    ``features`` n, ``data`` m (the benchmark's m = 100n); Ã sparse N(0, 1) at 50 %, x_true with half its
    entries N(0, 1/n) and the rest 0, b = Ãx_true + ε with ε ~ N(0, I), λ = ‖Ãᵀb‖∞ / 5. Variables
    (x, y, t) ∈ R^{2n+m}; constraints: m equalities, then n rows x − t ≤ 0 and n rows x + t ≥ 0.
    """

    def __init__(self, *, features: int = 5, data: int = 50, density: float = 0.5):
        require(features >= 1, "features", "a positive integer", features)
        require(data >= 1, "data", "a positive integer", data)
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        self.features, self.data, self.density = features, data, density
        self.num_variables, self.num_constraints = 2 * features + data, data + 2 * features

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, m, B, where = self.features, self.data, batch_size, generator.device
        Ad = _regression_data(generator, B, m, n, self.density)
        support = torch.rand(B, n, generator=generator, device=where, dtype=torch.float64) > 0.5
        x_true = support * torch.randn(B, n, generator=generator, device=where, dtype=torch.float64) / math.sqrt(n)
        b = (Ad @ x_true.unsqueeze(-1)).squeeze(-1) + torch.randn(
            B, m, generator=generator, device=where, dtype=torch.float64
        )
        lam = (Ad.mT @ b.unsqueeze(-1)).squeeze(-1).abs().amax(-1, keepdim=True) / 5
        P = assemble(B, [n, m, n], [n, m, n], {(1, 1): 2 * eye(m, Ad)}, Ad)
        q = torch.cat([torch.zeros_like(Ad[:, 0, :]), torch.zeros_like(b), lam.expand(B, n)], -1)
        I_n = eye(n, Ad)
        A = assemble(
            B,
            [m, n, n],
            [n, m, n],
            {(0, 0): Ad, (0, 1): -eye(m, Ad), (1, 0): I_n, (1, 2): -I_n, (2, 0): I_n, (2, 2): I_n},
            Ad,
        )
        inf = torch.full_like(lam.expand(B, n), math.inf)
        zeros = torch.zeros_like(inf)
        return QPBatch(P, q, A, torch.cat([b, -inf, zeros], -1), torch.cat([b, zeros, inf], -1))


class Huber(QPFamily):
    """Huber fitting as a QP: min ½zᵀz + 1ᵀ(r + s) s.t. Ãx − b − z = r − s, r ≥ 0, s ≥ 0.

    Minimising over z, r, s gives Σ_i huber(ã_iᵀx − b_i) with the unit-threshold Huber loss. ``features`` n,
    ``data`` m (the benchmark's m = 100n); Ã sparse N(0, 1) at 50 %, x_true ~ N(0, I/n),
    b = Ãx_true + ε with ε_i ~ N(0, 1/4) with probability 0.95 and U(0, 10) otherwise (outliers). Variables
    (x, z, r, s) ∈ R^{n+3m}; constraints: m equalities and the 2m sign bounds.
    """

    def __init__(self, *, features: int = 5, data: int = 20, density: float = 0.5):
        require(features >= 1, "features", "a positive integer", features)
        require(data >= 1, "data", "a positive integer", data)
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        self.features, self.data, self.density = features, data, density
        self.num_variables, self.num_constraints = features + 3 * data, 3 * data

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, m, B, where = self.features, self.data, batch_size, generator.device
        Ad = _regression_data(generator, B, m, n, self.density)
        x_true = torch.randn(B, n, 1, generator=generator, device=where, dtype=torch.float64) / math.sqrt(n)
        inlier = torch.rand(B, m, generator=generator, device=where, dtype=torch.float64) < 0.95
        noise = torch.where(
            inlier,
            0.5 * torch.randn(B, m, generator=generator, device=where, dtype=torch.float64),
            10.0 * torch.rand(B, m, generator=generator, device=where, dtype=torch.float64),
        )
        b = (Ad @ x_true).squeeze(-1) + noise
        I_m = eye(m, Ad)
        P = assemble(B, [n, m, 2 * m], [n, m, 2 * m], {(1, 1): I_m}, Ad)
        q = torch.cat(
            [torch.zeros_like(x_true.squeeze(-1)), torch.zeros_like(b), torch.ones_like(b), torch.ones_like(b)], -1
        )
        A = assemble(
            B,
            [m, m, m],
            [n, m, m, m],
            {(0, 0): Ad, (0, 1): -I_m, (0, 2): -I_m, (0, 3): I_m, (1, 2): I_m, (2, 3): I_m},
            Ad,
        )
        zeros, inf = torch.zeros_like(b), torch.full_like(b, math.inf)
        return QPBatch(P, q, A, torch.cat([b, zeros, zeros], -1), torch.cat([b, inf, inf], -1))


class SVM(QPFamily):
    """Support vector machine as a QP: min ½xᵀx + (γ/2)1ᵀt s.t. t ≥ diag(b)Ãx + 1, t ≥ 0.

    That is ½‖x‖² + (γ/2) Σ_i max(0, b_i ã_iᵀx + 1), the hinge loss as the benchmark code writes it, γ = 1.
    ``features`` n, ``data`` m (even; the benchmark's m = 100n): the first m/2 labels are +1, the rest −1; Ã's
    rows are sparse N(0, 1) at 15 % scaled by 1/√n, shifted by +1/n (first half) or −1/n (second half) on their
    non-zeros. Variables (x, t) ∈ R^{n+m}; constraints: the m rows diag(b)Ãx − t ≤ −1 and the m bounds t ≥ 0.
    """

    def __init__(self, *, features: int = 5, data: int = 40, density: float = 0.15, gamma: float = 1.0):
        require(features >= 1, "features", "a positive integer", features)
        require(data >= 2 and data % 2 == 0, "data", "an even integer >= 2 (half of each label)", data)
        require(0.0 < density <= 1.0, "density", "a fraction in (0, 1]", density)
        require(gamma > 0.0, "gamma", "a positive number", gamma)
        self.features, self.data, self.density, self.gamma = features, data, density, gamma
        self.num_variables, self.num_constraints = features + data, 2 * data

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        n, m, B, where = self.features, self.data, batch_size, generator.device
        half = m // 2
        raw = sparse_normal(generator, (B, m, n), self.density)
        sign = torch.cat(
            [torch.ones(half, device=where, dtype=torch.float64), -torch.ones(half, device=where, dtype=torch.float64)]
        )
        features = raw / math.sqrt(n) + sign[:, None] * (raw != 0) / n
        I_m = eye(m, raw)
        P = assemble(B, [n, m], [n, m], {(0, 0): eye(n, raw)}, raw)
        q = torch.cat(
            [
                torch.zeros(B, n, device=where, dtype=torch.float64),
                torch.full((B, m), self.gamma / 2, device=where, dtype=torch.float64),
            ],
            -1,
        )
        A = assemble(B, [m, m], [n, m], {(0, 0): sign[:, None] * features, (0, 1): -I_m, (1, 1): I_m}, raw)
        inf = torch.full((B, m), math.inf, device=where, dtype=torch.float64)
        return QPBatch(
            P, q, A, torch.cat([-inf, torch.zeros_like(inf)], -1), torch.cat([-torch.ones_like(inf), inf], -1)
        )


def discrete_riccati(
    A: torch.Tensor, B: torch.Tensor, Q: torch.Tensor, R: torch.Tensor, iterations: int = 100, tolerance: float = 1e-13
) -> torch.Tensor:
    """The stabilising solution X = Q + AᵀXA − AᵀXB(R + BᵀXB)⁻¹BᵀXA of the discrete algebraic Riccati
    equation, batched (``scipy.linalg.solve_discrete_are`` in the benchmark).

    Structure-preserving doubling (Chu et al. 2004): from A₀ = A, G₀ = BR⁻¹Bᵀ, H₀ = Q,
    W = (I + G_k H_k)⁻¹, A_{k+1} = A_k W A_k, G_{k+1} = G_k + A_k W G_k A_kᵀ, H_{k+1} = H_k + A_kᵀ H_k W A_k;
    H_k → X quadratically, until the relative change is below ``tolerance``.
    """
    G = B @ torch.linalg.solve(R, B.mT)
    H, identity = Q.clone(), torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    for _ in range(iterations):
        W = torch.linalg.inv(identity + G @ H)
        A, G, H_new = A @ W @ A, G + A @ W @ G @ A.mT, H + A.mT @ H @ W @ A
        H_new = 0.5 * (H_new + H_new.mT)
        change = (H_new - H).abs().amax() / H_new.abs().amax().clamp(min=1e-300)
        H = H_new
        if change < tolerance:
            break
    return H


class Control(QPFamily):
    """Finite-horizon optimal control (MPC) as a QP with states and inputs as variables.

    min x_Tᵀ Q_T x_T + Σ_{t<T} x_tᵀQx_t + u_tᵀRu_t s.t. x_{t+1} = A x_t + B u_t, x_0 = x_init,
    x_min ≤ x_t ≤ x_max, u_min ≤ u_t ≤ u_max (OSQP's P is twice these weights). ``states`` n_x, ``inputs``
    n_u (the benchmark's n_u = n_x / 2), ``horizon`` T = 10. A = I + 0.1·N(0, 1) with every eigenvalue of
    modulus ≥ 0.99 pulled inside the unit circle (λ ← λ / (|λ| + 0.01)); B ~ N(0, 1); R = 0.1 I;
    Q = diag(U(0, 1)) with 30 % of the diagonal zeroed; Q_T the solution of the discrete Riccati equation
    (the benchmark's code squares it, Q_T·Q_Tᵀ; the paper and this class use the solution itself);
    u_max = −u_min ~ U(0, 1), x_max = −x_min ~ 1 + U(0, 1), x_init uniform in [x_min/2, x_max/2].
    Variables (x_0..x_T, u_0..u_{T−1}) ∈ R^{(T+1)n_x + T n_u}; constraints: (T+1)n_x dynamics equalities,
    then the state and input bounds.
    """

    def __init__(self, *, states: int = 4, inputs: int | None = None, horizon: int = 10):
        require(states >= 1, "states", "a positive integer", states)
        inputs = max(states // 2, 1) if inputs is None else inputs
        require(inputs >= 1, "inputs", "a positive integer (default states // 2)", inputs)
        require(horizon >= 1, "horizon", "a positive integer", horizon)
        self.states, self.inputs, self.horizon = states, inputs, horizon
        nx, nu, T = states, inputs, horizon
        self.num_variables = (T + 1) * nx + T * nu
        self.num_constraints = 2 * (T + 1) * nx + T * nu

    def _sample(self, batch_size: int, generator: torch.Generator) -> QPBatch:
        nx, nu, T, Bn, where = self.states, self.inputs, self.horizon, batch_size, generator.device
        f64 = {"device": where, "dtype": torch.float64}
        Ad = torch.eye(nx, **f64) + 0.1 * torch.randn(Bn, nx, nx, generator=generator, **f64)
        eigenvalues, vectors = torch.linalg.eig(Ad)
        modulus = eigenvalues.abs()
        eigenvalues = torch.where(modulus < 1 - 1e-2, eigenvalues, eigenvalues / (modulus + 1e-2))
        Ad = (vectors @ torch.diag_embed(eigenvalues) @ torch.linalg.inv(vectors)).real
        Bd = torch.randn(Bn, nx, nu, generator=generator, **f64)
        R = 0.1 * torch.eye(nu, **f64).expand(Bn, nu, nu)
        keep = torch.rand(Bn, nx, generator=generator, **f64) < 0.7
        Q = torch.diag_embed(torch.rand(Bn, nx, generator=generator, **f64) * keep)
        QT = discrete_riccati(Ad, Bd, Q, R)
        u_max = torch.rand(Bn, nu, generator=generator, **f64)
        x_max = 1.0 + torch.rand(Bn, nx, generator=generator, **f64)
        x_init = -0.5 * x_max + torch.rand(Bn, nx, generator=generator, **f64) * x_max

        sizes_x, sizes_u = [nx] * (T + 1), [nu] * T
        cost = {(t, t): 2 * Q for t in range(T)} | {(T, T): 2 * QT}
        cost |= {(T + 1 + t, T + 1 + t): 2 * R for t in range(T)}
        P = assemble(Bn, sizes_x + sizes_u, sizes_x + sizes_u, cost, Ad)
        dynamics = {(t, t): -eye(nx, Ad) for t in range(T + 1)}
        dynamics |= {(t + 1, t): Ad for t in range(T)} | {(t + 1, T + 1 + t): Bd for t in range(T)}
        A_dyn = assemble(Bn, sizes_x, sizes_x + sizes_u, dynamics, Ad)
        A = torch.cat([A_dyn, eye(self.num_variables, Ad).expand(Bn, -1, -1)], 1)
        b = torch.cat([-x_init, torch.zeros(Bn, T * nx, **f64)], -1)
        lower = torch.cat([b, (-x_max).repeat(1, T + 1), (-u_max).repeat(1, T)], -1)
        upper = torch.cat([b, x_max.repeat(1, T + 1), u_max.repeat(1, T)], -1)
        return QPBatch(P, torch.zeros(Bn, self.num_variables, **f64), A, lower, upper)

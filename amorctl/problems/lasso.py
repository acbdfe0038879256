"""Sparse coding: the lasso over a fixed dictionary, the classic home of ISTA and LISTA."""

from __future__ import annotations

from typing import Literal

import torch

from amorctl.problems.base import Problem, ProblemSeed, require


class Lasso(Problem):
    """f(y; x) = ½‖D y − x‖² + λ‖y‖₁ with one fixed dictionary D ∈ R^{m×n}.

    m = ``signal_dim``, n = ``code_dim``, λ = ``l1``.

    The dictionary is drawn once from ``seed`` when the family is built and is the same for every
    context (:attr:`dictionary`, float64):

    - ``dictionary_type="gaussian"`` (default): D_ij ~ N(0, 1/m), then every column scaled to unit
      norm; overcomplete when n > m.
    - ``dictionary_type="orthogonal"``: a Haar-random orthogonal matrix (needs n = m). Then
      y*(x) = soft-threshold(Dᵀx, λ) in closed form, which makes a known-solution check.

    The context is the signal itself, x ∈ R^m (``context_dim = m``), and y ∈ R^n is its code
    (``solution_dim = n``, Y = R^n). p(x): x = D s + ε with a ``sparsity``-sparse code s (a
    support of k = ``sparsity`` indices drawn uniformly without replacement, N(0, 1) amplitudes
    on it) and noise ε ~ N(0, noise_std² I_m). With the defaults (m = 20, n = 50, k = 3, λ = 0.1,
    noise 0.01) the codes are recoverable (k ≪ m), D is 2.5× overcomplete, and λ is about a tenth
    of the typical ‖Dᵀx‖_∞, so y* is sparse but not trivially zero. :meth:`sample_planted` returns the
    codes s with the signals: the target of sparse coding (LISTA, ``loss.target: planted``). The
    standard sparse-coding setting of the LISTA papers is m = 250, n = 500, k = 50, noise 0
    (``configs/amortize_lasso_lista.yaml``).

    f = g + h is non-smooth: g(y) = ½‖Dy − x‖² is smooth with gradient Dᵀ(Dy − x)
    (:meth:`smooth_gradient`) and Lipschitz constant L = ‖D‖₂² (:attr:`lipschitz`); h = λ‖·‖₁ has the
    soft-threshold as its proximal map (:meth:`prox`). :meth:`gradient` (inherited, torch.func)
    returns the subgradient Dᵀ(Dy − x) + λ·sign(y) with sign(0) = 0; it is not zero at y*, so use
    the optimality conditions below, not its norm, to judge a solution.

    Solver: FISTA (Beck & Teboulle 2009) with gradient-based adaptive restart (O'Donoghue & Candès
    2015), batched, in float64, step 1/L, from y = 0, until for every problem the fixed-point
    residual ‖y − prox_{1/L}(y − ∇g(y)/L)‖₂ ≤ ``solver_tolerance`` = 1e-10; it returns that last
    proximal-gradient point y*, which is exactly sparse and satisfies the optimality conditions
    |[Dᵀ(Dy* − x)]_i| ≤ λ where y*_i = 0 and [Dᵀ(Dy* − x)]_i = −λ sign(y*_i) elsewhere, up to
    2L·1e-10. It raises ``RuntimeError`` when some problem has not converged after
    ``max_solver_iterations`` iterations. For a dictionary in general position (the Gaussian one,
    almost surely) y* is unique.

    Attributes (besides the protocol's):
        dictionary: D, ``(signal_dim, code_dim)``, float64 with unit-norm columns; cast it with
            ``.to(x)`` before use.
        lipschitz: L = ‖D‖₂² (a float), the Lipschitz constant of ∇g; 1/L is the classic ISTA/FISTA
            step (≈ 6.5 for the default Gaussian dictionary, 1 for an orthogonal one).
    """

    solver_tolerance = 1e-10
    max_solver_iterations = 20_000

    def __init__(
        self,
        *,
        signal_dim: int = 20,
        code_dim: int = 50,
        sparsity: int = 3,
        l1: float = 0.1,
        noise_std: float = 0.01,
        dictionary_type: Literal["gaussian", "orthogonal"] = "gaussian",
        seed: ProblemSeed = 0,
    ):
        require(signal_dim >= 1, "signal_dim", "a positive integer", signal_dim)
        require(code_dim >= 1, "code_dim", "a positive integer", code_dim)
        require(1 <= sparsity <= code_dim, "sparsity", f"an integer in [1, code_dim] = [1, {code_dim}]", sparsity)
        require(l1 > 0.0, "l1", "a positive number (the weight λ of the l1 penalty)", l1)
        require(noise_std >= 0.0, "noise_std", "a non-negative number", noise_std)
        require(dictionary_type in ("gaussian", "orthogonal"), "dictionary_type", "'gaussian' or 'orthogonal'",
                dictionary_type)
        if dictionary_type == "orthogonal":
            expected = f"equal to signal_dim ({signal_dim}) for an orthogonal dictionary"
            require(code_dim == signal_dim, "code_dim", expected, code_dim)
        self.signal_dim, self.code_dim, self.sparsity = signal_dim, code_dim, sparsity
        self.l1, self.noise_std, self.dictionary_type = l1, noise_std, dictionary_type
        self.context_dim, self.solution_dim = signal_dim, code_dim

        generator = torch.Generator().manual_seed(seed)
        gaussian = torch.randn(signal_dim, code_dim, generator=generator, dtype=torch.float64)
        if dictionary_type == "gaussian":
            dictionary = gaussian / torch.linalg.vector_norm(gaussian, dim=0, keepdim=True)
        else:
            q, r = torch.linalg.qr(gaussian)
            dictionary = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        self.dictionary: torch.Tensor = dictionary
        self.lipschitz: float = float(torch.linalg.matrix_norm(dictionary, ord=2)) ** 2

    @classmethod
    def memory_bytes(cls, *, signal_dim: int = 20, code_dim: int = 50, **kwargs) -> dict[str, int]:
        """The dictionary: a signal_dim × code_dim float64 matrix, its normalisation or QR, and its norm's SVD."""
        return {"code_dim" if code_dim >= signal_dim else "signal_dim": 4 * 8 * signal_dim * code_dim}

    def sample_contexts(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        return self.sample_planted(batch_size, generator, device)[0]

    def sample_planted(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Signals x = D s + ε and the sparse codes s that generated them (the sparse-coding target of LISTA).

        s is the planted solution: the code to recover, not the lasso minimiser y*, which λ shrinks
        towards 0 (and, with noise, x's own noise moves).
        """
        n, k, where = self.code_dim, self.sparsity, generator.device
        support = torch.rand(batch_size, n, generator=generator, device=where).argsort(dim=-1)[:, :k]
        amplitudes = torch.randn(batch_size, k, generator=generator, device=where)
        codes = amplitudes.new_zeros(batch_size, n).scatter(-1, support, amplitudes)
        noise = torch.randn(batch_size, self.signal_dim, generator=generator, device=where)
        dictionary = self.dictionary.to(device=where, dtype=codes.dtype)
        return (codes @ dictionary.mT + self.noise_std * noise).to(device), codes.to(device)

    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.smooth_objective(y, x) + self.l1 * y.abs().sum(-1)

    def smooth_objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """g(y; x) = ½‖Dy − x‖², the smooth part of f, ``(B,)``."""
        return 0.5 * (y @ self._dictionary_like(y).mT - x).square().sum(-1)

    def smooth_gradient(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """∇g(y; x) = Dᵀ(Dy − x) in closed form, ``(B, code_dim)``."""
        dictionary = self._dictionary_like(y)
        return (y @ dictionary.mT - x) @ dictionary

    def prox(self, v: torch.Tensor, step: float | torch.Tensor) -> torch.Tensor:
        """prox_{step·λ‖·‖₁}(v) = sign(v)·max(|v| − step·λ, 0), the soft threshold.

        ``step`` is a number or a tensor broadcastable against ``v`` (e.g. ``(B, 1)`` for one step
        per problem); the result is differentiable in ``v`` and in ``step`` (learned thresholds).
        """
        return torch.sign(v) * torch.clamp(v.abs() - self.l1 * step, min=0.0)

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        xd = x.double()
        step = 1.0 / self.lipschitz

        def prox_gradient_step(point: torch.Tensor) -> torch.Tensor:
            return self.prox(point - step * self.smooth_gradient(point, xd), step)

        y = xd.new_zeros(x.shape[0], self.code_dim)
        lookahead, momentum = y.clone(), xd.new_ones(x.shape[0], 1)
        done = torch.zeros(x.shape[0], 1, dtype=torch.bool, device=x.device)
        for iteration in range(self.max_solver_iterations):
            candidate = prox_gradient_step(lookahead)
            # Restart the momentum where the step and the momentum disagree (O'Donoghue & Candès).
            restart = ((lookahead - candidate) * (candidate - y)).sum(-1, keepdim=True) > 0
            next_momentum = torch.where(restart, 1.0, 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * momentum.square())))
            extrapolation = torch.where(restart, 0.0, (momentum - 1.0) / next_momentum)
            next_lookahead = candidate + extrapolation * (candidate - y)
            y = torch.where(done, y, candidate)
            lookahead = torch.where(done, lookahead, next_lookahead)
            momentum = torch.where(done, momentum, next_momentum)
            residual = torch.linalg.vector_norm(y - prox_gradient_step(y), dim=-1, keepdim=True)
            done = done | (residual <= self.solver_tolerance)
            if iteration % 10 == 9 and bool(done.all()):
                return prox_gradient_step(y).to(x.dtype)
        residual = torch.linalg.vector_norm(y - prox_gradient_step(y), dim=-1)
        if bool((residual <= self.solver_tolerance).all()):
            return prox_gradient_step(y).to(x.dtype)
        unconverged = int((residual > self.solver_tolerance).sum())
        raise RuntimeError(
            f"Lasso.solve: {unconverged} of {x.shape[0]} problems did not reach fixed-point residual "
            f"<= {self.solver_tolerance:g} in {self.max_solver_iterations} FISTA iterations "
            f"(largest residual {float(residual.max()):.3g})"
        )

    def _dictionary_like(self, reference: torch.Tensor) -> torch.Tensor:
        return self.dictionary.to(device=reference.device, dtype=reference.dtype)

"""L2-regularised logistic regression: the context is a small labelled data set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amorctl.problems.base import DataSetLayout, Problem, require


def _regularized_loss(
    y: torch.Tensor, features: torch.Tensor, signs: torch.Tensor, l2: float
) -> torch.Tensor:
    """The objective for K candidate weights per problem: y ``(B, K, d)`` -> ``(B, K)``.

    ``features`` is ``(B, m, d)`` and ``signs`` ``(B, m)`` holds s_i = 2t_i − 1.
    """
    margins = signs.unsqueeze(1) * (y @ features.mT)
    return F.softplus(-margins).mean(-1) + 0.5 * l2 * y.square().sum(-1)


class LogisticRegression(Problem):
    """f(y; x) = (1/m) Σ_i log(1 + exp(−s_i φ_iᵀy)) + (λ/2)‖y‖², s_i = 2t_i − 1.

    The context x is a data set of m examples with d features and labels t_i ∈ {0, 1}:
    x = (φ_1, ..., φ_m, t_1, ..., t_m), the rows of Φ ∈ R^{m×d} one after another followed by the
    labels, so ``context_dim = m·d + m``; :attr:`data_set_layout` says so to set models (the sample
i is (φ_i, t_i), and f is invariant to permuting the samples). The solution y ∈ R^d is a weight vector without an
    intercept (the data have none). p(x): w_true ~ N(0, I_d), φ_i ~ N(0, I_d) and
    t_i ~ Bernoulli(σ(φ_iᵀ w_true)), independently per problem.

    Solver: Newton's method in float64 from y = 0 with the Hessian
    Φᵀ diag(σ_i(1 − σ_i)) Φ / m + λI and a backtracking (Armijo) line search, run until every
    problem's gradient norm ‖∇_y f‖₂ ≤ ``solver_tolerance`` = 1e-8; it raises ``RuntimeError``
    when some problem has not converged after ``max_newton_steps`` steps. λ > 0 makes f strongly
    convex, so y* is unique. Y = R^d.
    """

    solver_tolerance = 1e-8
    max_newton_steps = 50
    armijo_fraction = 1e-4
    step_halvings = 30

    def __init__(self, *, num_features: int = 5, num_samples: int = 32, l2: float = 0.01):
        require(num_features >= 1, "num_features", "a positive integer", num_features)
        require(num_samples >= 1, "num_samples", "a positive integer", num_samples)
        require(l2 > 0.0, "l2", "a positive number (it makes the problem strongly convex)", l2)
        self.num_features, self.num_samples, self.l2 = num_features, num_samples, l2
        self.solution_dim = num_features
        self.context_dim = num_samples * num_features + num_samples
        self.data_set_layout = DataSetLayout(num_samples, fields=(num_features, 1))

    def sample_contexts(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        m, d, where = self.num_samples, self.num_features, generator.device
        true_weights = torch.randn(batch_size, d, 1, generator=generator, device=where)
        features = torch.randn(batch_size, m, d, generator=generator, device=where)
        probabilities = torch.sigmoid(features @ true_weights).squeeze(-1)
        coins = torch.rand(batch_size, m, generator=generator, device=where)
        labels = (coins < probabilities).to(features.dtype)
        return torch.cat([features.flatten(1), labels], dim=-1).to(device)

    def objective(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        features, signs = self.decode(x)
        return _regularized_loss(y.unsqueeze(1), features, signs, self.l2).squeeze(1)

    def decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split contexts into features Φ ``(B, m, d)`` and label signs s = 2t − 1 ``(B, m)``."""
        m, d = self.num_samples, self.num_features
        return x[:, : m * d].reshape(-1, m, d), 2.0 * x[:, m * d :] - 1.0

    def solve(self, x: torch.Tensor) -> torch.Tensor:
        features, signs = self.decode(x.double())
        y = features.new_zeros(x.shape[0], self.num_features)
        for _ in range(self.max_newton_steps):
            gradient, hessian = self._gradient_and_hessian(y, features, signs)
            converged = torch.linalg.vector_norm(gradient, dim=-1) <= self.solver_tolerance
            if bool(converged.all()):
                return y.to(x.dtype)
            direction = -torch.linalg.solve(hessian, gradient)
            step = self._armijo_step(y, direction, gradient, features, signs)
            y = torch.where(converged.unsqueeze(-1), y, y + step.unsqueeze(-1) * direction)
        gradient_norm = torch.linalg.vector_norm(self._gradient_and_hessian(y, features, signs)[0], dim=-1)
        unconverged = int((gradient_norm > self.solver_tolerance).sum())
        raise RuntimeError(
            f"LogisticRegression.solve: {unconverged} of {x.shape[0]} problems did not reach gradient norm "
            f"<= {self.solver_tolerance:g} in {self.max_newton_steps} Newton steps "
            f"(largest gradient norm {float(gradient_norm.max()):.3g})"
        )

    def _gradient_and_hessian(
        self, y: torch.Tensor, features: torch.Tensor, signs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """∇_y f ``(B, d)`` and ∇²_y f ``(B, d, d)`` in closed form."""
        margins = signs * (features @ y.unsqueeze(-1)).squeeze(-1)
        residual_weights = -signs * torch.sigmoid(-margins) / self.num_samples
        gradient = (residual_weights.unsqueeze(-1) * features).sum(1) + self.l2 * y
        curvature = torch.sigmoid(margins) * torch.sigmoid(-margins) / self.num_samples
        identity = torch.eye(self.num_features, dtype=y.dtype, device=y.device)
        hessian = features.mT @ (curvature.unsqueeze(-1) * features) + self.l2 * identity
        return gradient, hessian

    def _armijo_step(
        self,
        y: torch.Tensor,
        direction: torch.Tensor,
        gradient: torch.Tensor,
        features: torch.Tensor,
        signs: torch.Tensor,
    ) -> torch.Tensor:
        """The largest step 2^-k (k < ``step_halvings``) with sufficient decrease, per problem, ``(B,)``.

        All candidate steps are tried at once. Where none qualifies, which only happens once the
        decrease is below rounding error, the full Newton step 1 is taken.
        """
        steps = 0.5 ** torch.arange(self.step_halvings, dtype=y.dtype, device=y.device)
        candidates = y.unsqueeze(1) + steps.view(1, -1, 1) * direction.unsqueeze(1)
        values = _regularized_loss(candidates, features, signs, self.l2)
        current = _regularized_loss(y.unsqueeze(1), features, signs, self.l2)
        slope = (gradient * direction).sum(-1, keepdim=True)
        sufficient = values <= current + self.armijo_fraction * steps * slope
        largest = torch.where(sufficient, steps, torch.zeros_like(steps)).amax(-1)
        return torch.where(largest > 0, largest, torch.ones_like(largest))

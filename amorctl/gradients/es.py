"""Gaussian smoothing and evolution strategies (eq. 2.14; Metz et al. 2019, Salimans et al. 2017).

The smoothed loss L_σ(θ) = E_{ε∼N(0, I)} L(θ + σε) has the gradient ∇L_σ(θ) = E[L(θ + σε) ε] / σ, which
antithetic pairs estimate without any derivative of the model or of f:

    ĝ = 1/(2σN) Σⱼ (L(θ + σεⱼ) − L(θ − σεⱼ)) εⱼ,   εⱼ ∼ N(0, I), j = 1..N.

``perturb: parameters`` perturbs every trainable parameter θ at once (the estimate above; any model,
even one whose steps are not differentiable). ``perturb: prediction`` perturbs the model's prediction
instead: each context's loss L(ŷ) is smoothed around its own prediction ŷθ(x), ĝ_ŷ estimates its
gradient (per context, so the noise does not grow with the batch), and ĝ_ŷ flows into θ by
backpropagation through the model (through its unroll, for a semi-amortized model, with every
derivative kept). Each iterate the loss weights (eq. 2.12) is perturbed in its own right.

ĝ is unbiased for ∇L_σ, not for ∇L: smoothing moves minima (Remark 4). ``sigma_final`` decays σ over
the run, linearly or geometrically in the fraction of ``train.steps`` done, as a function of the
learner's step, so a resumed run continues the same schedule. For a quadratic loss L_σ = L + const,
so ĝ is then unbiased for ∇L itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from annotated_types import Le
from torch import nn

from amorctl.gradients.base import BatchLoss, UnrollEstimator
from amorctl.schema import PositiveFloat, PositiveInt

MAX_PERTURBATIONS = 65536
"""The most antithetic pairs per step a config may ask for (2·65,536 loss evaluations per step)."""


class EvolutionStrategies(UnrollEstimator):
    """Antithetic Gaussian-smoothing gradients (``es``, eq. 2.14) of the parameters or of the prediction.

    Args:
        sigma: σ, the standard deviation of the perturbations (at the start of training).
        num_perturbations: N antithetic pairs per step (2N loss evaluations), at most 65,536.
        perturb: ``parameters`` (θ, every trainable parameter) or ``prediction`` (ŷθ(x), per context).
        sigma_final: σ at the end of training (Remark 4), or ``None`` for a constant σ.
        sigma_decay: how σ moves from ``sigma`` to ``sigma_final``: ``linear`` or ``geometric`` (log-linear).
    """

    name = "es"

    def __init__(
        self,
        *,
        sigma: PositiveFloat = 0.01,
        num_perturbations: Annotated[PositiveInt, Le(MAX_PERTURBATIONS)] = 16,
        perturb: Literal["parameters", "prediction"] = "parameters",
        sigma_final: PositiveFloat | None = None,
        sigma_decay: Literal["linear", "geometric"] = "geometric",
    ):
        if perturb not in ("parameters", "prediction"):
            raise ValueError(f"gradient.perturb must be 'parameters' or 'prediction', got {perturb!r}")
        if sigma_decay not in ("linear", "geometric"):
            raise ValueError(f"gradient.sigma_decay must be 'linear' or 'geometric', got {sigma_decay!r}")
        self.sigma, self.sigma_final, self.sigma_decay = sigma, sigma_final, sigma_decay
        self.num_perturbations, self.perturb = num_perturbations, perturb
        self._sigma_used = sigma

    def sigma_at(self, progress: float) -> float:
        """σ after the fraction ``progress`` ∈ [0, 1] of training."""
        if self.sigma_final is None:
            return self.sigma
        progress = min(max(progress, 0.0), 1.0)
        if self.sigma_decay == "linear":
            return self.sigma + (self.sigma_final - self.sigma) * progress
        return math.exp(math.log(self.sigma) + (math.log(self.sigma_final) - math.log(self.sigma)) * progress)

    def gradient(self, loss: BatchLoss, parameters: Sequence[nn.Parameter], progress: float) -> torch.Tensor:
        sigma = self._sigma_used = self.sigma_at(progress)
        if self.perturb == "parameters":
            return self._parameter_gradient(loss, list(parameters), sigma)
        return self._prediction_gradient(loss, sigma)

    def _parameter_gradient(self, loss: BatchLoss, parameters: list[nn.Parameter], sigma: float) -> torch.Tensor:
        """ĝ of eq. 2.14 over θ, accumulated into ``.grad``; returns L(θ)."""
        with torch.no_grad():
            centre = [p.detach().clone() for p in parameters]
            estimate = [torch.zeros_like(p) for p in parameters]
            for _ in range(self.num_perturbations):
                noise = [torch.randn_like(p) for p in parameters]
                values = []
                for sign in (1.0, -1.0):
                    for p, c, e in zip(parameters, centre, noise):
                        p.copy_(c + sign * sigma * e)
                    values.append(loss())
                scale = (values[0] - values[1]) / (2 * sigma * self.num_perturbations)
                for g, e in zip(estimate, noise):
                    g.add_(scale * e)
            for p, c, g in zip(parameters, centre, estimate):
                p.copy_(c)
                p.grad = g if p.grad is None else p.grad + g
            return loss()

    def _prediction_gradient(self, loss: BatchLoss, sigma: float) -> torch.Tensor:
        """ĝ of eq. 2.14 over each weighted iterate ŷⁱ, per context, backpropagated into θ; returns L_Σ."""
        iterates = loss.iterates()
        weights = loss.weights(len(iterates))
        surrogate = []
        with torch.no_grad():
            for weight, y in zip(weights.tolist(), iterates):
                if weight == 0.0:
                    continue
                y = y.detach()
                estimate = torch.zeros_like(y)
                for _ in range(self.num_perturbations):
                    noise = torch.randn_like(y)
                    difference = loss.context_loss(y + sigma * noise) - loss.context_loss(y - sigma * noise)
                    estimate.add_(difference.unsqueeze(-1) * noise)
                # ∂/∂ŷ_b of the batch mean (1/B) Σ_b L(ŷ_b), times the iterate's weight
                surrogate.append(weight * estimate / (2 * sigma * self.num_perturbations * y.shape[0]))
        attached = [y for weight, y in zip(weights.tolist(), iterates) if weight != 0.0]
        torch.stack([(g * y).sum() for g, y in zip(surrogate, attached)]).sum().backward()
        with torch.no_grad():
            return loss.of_iterates([y.detach() for y in iterates])

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """``gradient/sigma``: the σ of the last step."""
        return {"gradient/sigma": torch.tensor(self._sigma_used)}

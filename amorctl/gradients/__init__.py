"""Gradient estimators: how a run computes θ's gradient of its loss (seed sections 2.2.2 and 2.2.3).

Through a semi-amortized model's K unrolled steps ŷᵗ = step(ŷᵗ⁻¹), an estimator decides which
derivatives are kept when the loss is backpropagated into the model's parameters θ (the initial
iterate's and the step sizes):

- ``bptt``: all of them, Hessian-vector products included (the gradient inside each step is
  differentiable: torch.func.grad composed with autograd); the exact Dθ of the unrolled model.
- ``first_order``: the gradient ∇f inside each step is detached, so Dθ[ŷᴷ] ≈ Dθ[ŷ⁰] plus the step
  sizes' own terms (first-order MAML, Finn et al. 2017): no second-order terms, biased wherever
  f is curved.
- ``truncated``: backpropagation through the last ``horizon`` steps only (TBPTT): ŷᴷ⁻ᴴ is detached,
  so a loss on ŷᴷ never reaches the initial iterate when H < K (biased, see seed section 2.2.2;
  H = K is bptt);
  losses of earlier iterates (eq. 2.12) still reach θ through their own, shorter chains.

``gradient.estimator`` names one in a config; its other keys are the constructor's
(``gradient.horizon``, ``gradient.lam``, ``gradient.sigma``, ...). :func:`register_estimator` adds one from outside.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from amorctl.gradients.base import BatchLoss, UnrollEstimator
from amorctl.gradients.es import EvolutionStrategies
from amorctl.gradients.implicit import Implicit
from amorctl.registry import Registry
from amorctl.schema import PositiveInt


class FirstOrder(UnrollEstimator):
    """First-order MAML (``first_order``): ∇f inside each step is a constant, Dθ ≈ I through the steps."""

    name = "first_order"
    detach_gradient = True
    needs_unroll = True


class Truncated(UnrollEstimator):
    """Truncated backpropagation through time (``truncated``): only the last ``horizon`` steps.

    Args:
        horizon: H, the number of final steps the loss is backpropagated through (1 ≤ H ≤ K).
    """

    name = "truncated"
    needs_unroll = True

    def __init__(self, *, horizon: PositiveInt = 1):
        self.horizon = horizon

    def iterate(self, y: torch.Tensor, step: int, total: int) -> torch.Tensor:
        return y.detach() if 0 < step == total - self.horizon else y  # H = K cuts nothing: bptt

    def check(self, model: nn.Module) -> None:
        steps = model.steps
        if self.horizon > steps:
            raise ValueError(f"gradient.horizon={self.horizon} is more than the model's {steps} unrolled steps "
                             f"(model.steps); use at most {steps}, or gradient.estimator: bptt")


ESTIMATORS: Registry[type[UnrollEstimator]] = Registry("gradient estimator", "gradient.estimator")
for _cls in (UnrollEstimator, FirstOrder, Truncated, Implicit, EvolutionStrategies):
    ESTIMATORS.register(_cls.name, _cls)


def register_estimator(name: str, cls: type[UnrollEstimator]) -> None:
    """Make an estimator class available to configs as ``gradient.estimator: <name>``."""
    if not (isinstance(cls, type) and issubclass(cls, UnrollEstimator)):
        raise TypeError(f"register_estimator({name!r}, ...) needs a subclass of amorctl.gradients.UnrollEstimator")
    ESTIMATORS.register(name, cls)


def make_estimator(estimator: str = "bptt", **keys: Any) -> UnrollEstimator:
    """The estimator a validated ``gradient`` section names."""
    return ESTIMATORS.lookup(estimator)(**keys)


__all__ = [
    "ESTIMATORS",
    "BatchLoss",
    "EvolutionStrategies",
    "FirstOrder",
    "Implicit",
    "Truncated",
    "UnrollEstimator",
    "make_estimator",
    "register_estimator",
]

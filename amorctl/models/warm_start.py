"""The warm-start baseline (seed §2.1.2; Kim et al. 2018, Table 2): a fully-amortized prediction refined by a solver.

:class:`WarmStart` trains a fully-amortized model ŷ⁰ = MLP_θ(x) alone, by the configured loss on its own
prediction, and only at inference (``eval()``) runs K classical solver steps from it,

    ŷᵗ = step(ŷᵗ⁻¹; α), t = 1..K,  α = 1/L (the family's ``lipschitz``) or ``model.step_size``,

with the family's descent step of :mod:`amorctl.optimizers` (the rule of ``unrolled_gd``, gradient
descent, ISTA and the projected gradient method: proximal for composite families, projected for boxes).
No gradient ever flows through the steps, which is the contrast with semi-amortization (eq. 2.1): the
start is trained to be a good answer, not a good start for the solver. In training the model is the MLP
(``iterates`` is [ŷ⁰]), so eq. 2.12's iterate weights other than ``last`` and estimators other than
``bptt`` mean nothing for it and are refused (:meth:`WarmStart.check_training`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from amorctl.gradients import UnrollEstimator
from amorctl.models.registry import mlp, register_model
from amorctl.optimizers import descent_step_rule
from amorctl.problems import Problem
from amorctl.schema import PositiveFloat, PositiveInt


class WarmStart(nn.Module):
    """A fully-amortized model trained alone, followed in evaluation mode by K untrained solver steps.

    Args:
        problem: the family whose descent steps refine the prediction.
        initial: the fully-amortized model ŷ⁰ = MLP_θ(x).
        steps: K, the solver steps run at inference.
        step_size: α of every solver step.

    Attributes:
        inference_steps: the solver steps run in evaluation mode (``eval.steps``; K by default).
        estimator: kept for the run code's interface; only full backpropagation (of the MLP alone) applies.
    """

    def __init__(self, problem: Problem, initial: nn.Module, steps: int, step_size: float):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (step_size > 0 and math.isfinite(step_size)):
            raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
        self.problem, self.initial = problem, initial
        self.steps, self.inference_steps, self.step_size = steps, steps, step_size
        self.step_rule = descent_step_rule(problem)
        self.estimator = UnrollEstimator()

    def iterates(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """[ŷ⁰, ..., ŷ^steps]; ``steps`` defaults to none in training (the MLP alone), ``inference_steps`` in eval.

        The solver steps start from ŷ⁰ detached and run without a graph: nothing is trained through them.
        """
        if steps is None:
            steps = 0 if self.training else self.inference_steps
        y = self.initial(x)
        out = [y]
        with torch.no_grad():
            y = y.detach()
            for _ in range(steps):
                y = self.step_rule(self.problem, y, x, self.step_size)
                out.append(y)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP's prediction in training; after ``inference_steps`` solver steps in evaluation mode."""
        return self.iterates(x)[-1]

    def check_training(self, iterate_weights: str, estimator: str) -> None:
        """Refuse (``ValueError`` naming the key) training settings that need a gradient through the steps."""
        if iterate_weights != "last":
            raise ValueError(f"loss.iterate_weights={iterate_weights!r} does not apply to model.kind 'warm_start', "
                             "whose model is trained on its own prediction alone; use 'last'")
        if estimator != "bptt":
            raise ValueError(f"gradient.estimator={estimator!r} does not apply to model.kind 'warm_start', whose "
                             "solver steps are never differentiated; use 'bptt'")

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, inference_steps={self.inference_steps}, step_size={self.step_size:.4g}, "
                f"step={self.step_rule.__name__}")


def warm_start(
    problem: Problem,
    *,
    steps: PositiveInt = 10,
    step_size: PositiveFloat | None = None,
    hidden_sizes: Sequence[PositiveInt] = (256, 256),
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu",
    projection: Literal["auto", "none", "tanh", "sigmoid"] = "auto",
) -> WarmStart:
    """The warm-start baseline (``model.kind: warm_start``): an ``mlp`` trained alone, then ``steps`` solver steps.

    ``step_size``: α of the solver steps, by default 1/L for families with a ``lipschitz`` constant (required
    otherwise). ``hidden_sizes``, ``activation``, ``projection``: the MLP, as for ``mlp``.
    """
    if step_size is None:
        lipschitz = getattr(problem, "lipschitz", None)
        if not lipschitz:
            raise ValueError(f"model.step_size is required: {type(problem).__name__} has no Lipschitz constant "
                             "to take the solver's step size 1/L from")
        step_size = 1.0 / lipschitz
    initial = mlp(problem, hidden_sizes=hidden_sizes, activation=activation, projection=projection)
    return WarmStart(problem, initial, steps, step_size)


register_model("warm_start", warm_start)

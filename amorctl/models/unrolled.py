"""Semi-amortized models over the domain (Definition 3): K learned descent steps on f(·; x).

:class:`UnrolledGradientDescent` is eq. 2.1 with a learned start and learned step sizes:

    ŷ⁰ = θ (MAML, ``init="constant"``) or ŷ⁰ = MLP_θ(x) (``init="mlp"``),
    ŷᵗ = step(ŷᵗ⁻¹; αₜ) for t = 1..K,  ŷθ(x) := ŷᴷ,

where ``step`` is the family's descent step from :mod:`amorctl.optimizers` (the rule gradient
descent, ISTA and the projected gradient method use there): y − α∇f for smooth families, the
proximal-gradient step prox_{αh}(y − α∇g) for composite ones (``smooth_gradient`` and ``prox``,
e.g. the lasso), the projected step Π_box(y − α∇f) for families with ``bounds``. The step sizes
αₜ = exp(log αₜ) are positive by construction, one per step (``per_coordinate=False``) or one per
step and coordinate. Which derivatives the unroll keeps is the model's ``estimator``
(:mod:`amorctl.gradients`); an estimator that replaces the unroll (``implicit``, eq. 2.13) gets the
start ŷ⁰ and returns its inner problem's solution instead, so the iterates are then [ŷ⁰, ŷ].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from amorctl.gradients import UnrollEstimator
from amorctl.optimizers import descent_step_rule
from amorctl.problems import Problem


class LearnedStart(nn.Module):
    """The learned initial iterate ŷ⁰ shared by the semi-amortized models: a learned constant θ or a model's prediction.

    Subclasses call :meth:`init_start` in their constructor; the parameters are ``initial`` (an ``nn.Module``
    mapping contexts to ŷ⁰) or ``initial_constant`` (θ, one per coordinate).
    """

    def init_start(self, problem: Problem, initial: nn.Module | None) -> None:
        """Set the start: ``initial``'s prediction, or a learned constant θ = 0 when ``initial`` is ``None``."""
        self.initial = initial
        self.initial_constant = nn.Parameter(torch.zeros(problem.solution_dim)) if initial is None else None

    def initial_iterate(self, x: torch.Tensor) -> torch.Tensor:
        """ŷ⁰(x), ``(B, n)``: the initial model's prediction, or θ repeated (clipped into a box domain)."""
        if self.initial is not None:
            return self.initial(x)
        y = self.initial_constant.unsqueeze(0).expand(x.shape[0], -1)
        return y.clamp(*self.problem.bounds) if self.problem.bounds is not None else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷθ(x) = the last of the subclass's ``iterates(x)``, ``(B, n)``."""
        return self.iterates(x)[-1]


class UnrolledGradientDescent(LearnedStart):
    """ŷθ(x) = ŷᴷ of K learned descent steps from a learned initial iterate (eq. 2.1).

    Args:
        problem: the family whose objective the steps descend.
        steps: K, the number of steps unrolled in training.
        initial: an ``nn.Module`` mapping contexts to ŷ⁰ (e.g. a fully-amortized MLP), or ``None`` for
            a learned constant θ shared by every context (MAML).
        step_size: the initial value of every αₜ.
        per_coordinate: one step size per step and coordinate instead of one per step.

    Attributes:
        inference_steps: the number of steps run in evaluation mode (``eval()``), K by default. Steps
            beyond K reuse the last learned step size.
        estimator: the gradient estimator of the unroll (:class:`~amorctl.gradients.UnrollEstimator`,
            full backpropagation through time by default).
        supports_implicit: a capability: ŷ⁰ (:meth:`initial_iterate`), :meth:`step_sizes` and the
            ``step_rule`` are all the ``implicit`` estimator needs to solve eq. 2.13 with this model's steps.
    """

    supports_implicit = True

    def __init__(
        self,
        problem: Problem,
        steps: int,
        initial: nn.Module | None,
        step_size: float,
        per_coordinate: bool = False,
    ):
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (step_size > 0 and math.isfinite(step_size)):
            raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
        n = problem.solution_dim
        self.problem, self.steps, self.inference_steps = problem, steps, steps
        self.per_coordinate = per_coordinate
        self.init_start(problem, initial)
        self.log_step_sizes = nn.Parameter(torch.full((steps, n if per_coordinate else 1), math.log(step_size)))
        self.step_rule = descent_step_rule(problem)
        self.estimator = UnrollEstimator()

    def step_sizes(self, steps: int | None = None) -> torch.Tensor:
        """α₁..α_steps as a ``(steps, 1)`` or ``(steps, n)`` tensor; steps past K repeat α_K."""
        steps = self.steps if steps is None else steps
        sizes = self.log_step_sizes.exp()
        if steps > self.steps:
            sizes = torch.cat([sizes, sizes[-1:].expand(steps - self.steps, -1)])
        return sizes[:steps]

    def iterates(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """[ŷ⁰, ŷ¹, ..., ŷ^steps], each ``(B, n)``; ``steps`` defaults to K in training, ``inference_steps`` in eval.

        The estimator decides which derivatives the steps keep (it sees K = ``self.steps`` as the length
        of the differentiated unroll); one that replaces the unroll returns [ŷ⁰, its solution in at most
        ``steps`` steps].
        """
        if steps is None:
            steps = self.steps if self.training else self.inference_steps
        estimator = self.estimator
        y = self.initial_iterate(x)
        if estimator.replaces_unroll:
            return [y, estimator.solution(self, y, x, steps)]
        sizes = self.step_sizes(steps)
        out = [y]
        for t in range(steps):
            y = estimator.iterate(y, t, self.steps)
            y = self.step_rule(self.problem, y, x, sizes[t], estimator.detach_gradient)
            out.append(y)
        return out

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, inference_steps={self.inference_steps}, per_coordinate={self.per_coordinate}, "
                f"step={self.step_rule.__name__}, estimator={self.estimator.name}")


def model_iterates(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The iterates ŷ⁰..ŷᴷ of a semi-amortized model, or ``[ŷθ(x)]`` for a fully-amortized one."""
    iterates = getattr(model, "iterates", None)
    return iterates(x) if callable(iterates) else [model(x)]


def is_semi_amortized(model: nn.Module) -> bool:
    """Whether ``model`` unrolls iterations (has ``iterates`` and ``steps``)."""
    return callable(getattr(model, "iterates", None)) and isinstance(getattr(model, "steps", None), int)

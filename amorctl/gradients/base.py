"""The gradient-estimator protocol: how θ's gradient of one training batch's loss is computed.

An estimator plays two parts, both optional:

- **inside a semi-amortized model's unroll** (:meth:`UnrollEstimator.iterate`,
  :attr:`~UnrollEstimator.detach_gradient`): which derivatives the K steps keep (bptt, first order,
  truncated); an estimator that :attr:`~UnrollEstimator.replaces_unroll` instead returns the solution
  of an inner problem from the model's start (:meth:`~UnrollEstimator.solution`, implicit
  differentiation);
- **around the loss** (:meth:`UnrollEstimator.gradient`): given the batch's :class:`BatchLoss`, fill
  the parameters' ``.grad``. The default is plain backpropagation, ``loss().backward()``; a
  zeroth-order estimator (``es``) evaluates the loss at perturbations instead.

The run code calls only these methods; it never asks for an estimator by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from amorctl.losses import iterate_weighted_loss


@dataclass
class BatchLoss:
    """One training batch's loss as an estimator sees it: L_Σ = Σᵢ wᵢ L(ŷⁱ) over the model's iterates (eq. 2.12).

    Attributes:
        iterates: a fresh forward pass of the model on the batch, ``[ŷ⁰, ..., ŷᴷ]`` (one for a
            fully-amortized model), each ``(B, n)``.
        context_loss: L of each context's prediction, ``(B, n) -> (B,)``; its batch mean is the loss of
            eq. 2.9 / 2.10 (y* of the batch, if any, is solved once, outside).
        weights: the iterate weights w₀..w_K for a number of iterates.
    """

    iterates: Callable[[], list[torch.Tensor]]
    context_loss: Callable[[torch.Tensor], torch.Tensor]
    weights: Callable[[int], torch.Tensor]

    def __call__(self) -> torch.Tensor:
        """The scalar loss of the model's current parameters (differentiable unless under ``no_grad``)."""
        return self.of_iterates(self.iterates())

    def of_iterates(self, iterates: Sequence[torch.Tensor]) -> torch.Tensor:
        """L_Σ of given iterates."""
        return iterate_weighted_loss(lambda y: self.context_loss(y).mean(), iterates, self.weights(len(iterates)))


class UnrollEstimator:
    """The estimator protocol, and full backpropagation through time (``bptt``) as its default.

    ``bptt`` differentiates every unrolled step, second-order terms included (eq. 2.8): the exact Dθ of
    the unrolled model.
    """

    name = "bptt"
    detach_gradient = False
    """Whether the gradient inside each unrolled step is detached (first order)."""
    needs_unroll = False
    """Whether the estimator only means something through a semi-amortized model's iterations (then a
    fully-amortized ``mlp`` is refused); plain backpropagation works on any model."""
    replaces_unroll = False
    """Whether a model that supports it returns ``[ŷ⁰, solution(...)]`` instead of unrolling its steps."""

    def iterate(self, y: torch.Tensor, step: int, total: int) -> torch.Tensor:
        """The iterate ŷ^``step`` as the next step should see it (of ``total`` differentiated steps)."""
        return y

    def check(self, model: nn.Module) -> None:
        """Refuse (``ValueError``, one sentence naming the key) a model this estimator cannot train."""

    def solution(self, model: nn.Module, start: torch.Tensor, x: torch.Tensor, steps: int) -> torch.Tensor:
        """For estimators that :attr:`replace_unroll`: ŷ(x) from ŷ⁰ = ``start`` in at most ``steps`` model steps."""
        raise NotImplementedError(f"gradient.estimator {self.name!r} unrolls the model's steps")

    def gradient(self, loss: BatchLoss, parameters: Sequence[nn.Parameter], progress: float) -> torch.Tensor:
        """Accumulate this estimator's ∇θ of ``loss`` into the ``.grad`` of ``parameters``; returns the detached loss.

        ``progress`` is the fraction of training done, in [0, 1] (for schedules). The default backpropagates.
        """
        value = loss()
        value.backward()
        return value.detach()

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Scalars of the last :meth:`gradient` call worth logging (``gradient/...``); none by default."""
        return {}

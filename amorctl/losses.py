"""Amortization losses (seed chapter 2, section 2.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from amorctl.problems import Problem

Reduction = Literal["mean", "none"]
"""``mean``: the batch mean (the expectation over x ~ p(x)); ``none``: one value per context, ``(B,)``."""


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    return values.mean() if reduction == "mean" else values


def regression_loss(y_hat: torch.Tensor, y_star: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """The regression-based loss, eq. 2.9: E_x ‖y*(x) − ŷθ(x)‖², a batch mean of squared distances."""
    return _reduce((y_star - y_hat).square().sum(-1), reduction)


def objective_loss(
    problem: Problem, y_hat: torch.Tensor, x: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """The objective-based loss, eq. 2.10: E_x f(ŷθ(x); x). Needs f only, never y*."""
    return _reduce(problem.objective(y_hat, x), reduction)


def mixed_loss(
    problem: Problem,
    y_hat: torch.Tensor,
    x: torch.Tensor,
    y_star: torch.Tensor,
    regression_weight: float,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """(1 − w)·eq. 2.10 + w·eq. 2.9, with w = ``regression_weight`` in [0, 1]."""
    return (1 - regression_weight) * objective_loss(problem, y_hat, x, reduction) + regression_weight * regression_loss(
        y_hat, y_star, reduction
    )


IterateSchedule = Literal["last", "uniform", "linear", "geometric"]


def iterate_weights(
    schedule: IterateSchedule, num_iterates: int, ratio: float = 0.5, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The weights w₀..w_K of eq. 2.12 for ``num_iterates`` = K + 1 iterates, normalised to sum to 1.

    ``last``: only ŷᴷ (the plain loss); ``uniform``: wᵢ ∝ 1 (every iterate should be good);
    ``linear``: wᵢ ∝ i + 1; ``geometric``: wᵢ ∝ ratio^(K − i), 0 < ratio ≤ 1 (later iterates count more).
    """
    if num_iterates < 1:
        raise ValueError(f"num_iterates must be a positive integer, got {num_iterates!r}")
    index = torch.arange(num_iterates, dtype=torch.float64)
    if schedule == "last":
        weights = (index == num_iterates - 1).double()
    elif schedule == "uniform":
        weights = torch.ones_like(index)
    elif schedule == "linear":
        weights = index + 1
    elif schedule == "geometric":
        if not 0 < ratio <= 1:
            raise ValueError(f"the geometric ratio must be in (0, 1], got {ratio!r}")
        weights = torch.tensor(ratio, dtype=torch.float64) ** (num_iterates - 1 - index)
    else:
        raise ValueError(f"unknown iterate schedule {schedule!r}; expected last, uniform, linear or geometric")
    return (weights / weights.sum()).to(dtype)


def iterate_weighted_loss(
    loss: Callable[[torch.Tensor], torch.Tensor], iterates: Sequence[torch.Tensor], weights: torch.Tensor
) -> torch.Tensor:
    """L_Σ = Σᵢ wᵢ L(ŷⁱ), eq. 2.12: ``loss`` of each iterate (skipped where wᵢ = 0), weighted and summed."""
    if len(iterates) != len(weights):
        raise ValueError(f"{len(iterates)} iterates but {len(weights)} weights")
    terms = [float(w) * loss(y) for w, y in zip(weights, iterates) if float(w) != 0.0]
    return torch.stack(terms).sum()


def actor_objective_loss(
    q_values: torch.Tensor, log_prob: torch.Tensor | None = None, alpha: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """The objective loss (eq. 2.10) of a policy, with f(a; s) = −Q(s, a): E_s[−Q(s, π(s))].

    With ``log_prob`` (a stochastic policy's log π(a|s) at its sampled actions) it is the
    entropy-regularised objective of SAC, E_s[α log π(a|s) − Q(s, a)]: the objective smoothed by the
    policy's own distribution, as in the Gaussian smoothing of eq. 2.14. DDPG, TD3 and SAC all train
    their actors with it.
    """
    if log_prob is None:
        return -q_values.mean()
    return (alpha * log_prob - q_values).mean()

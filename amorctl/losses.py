"""Amortization losses (seed chapter 2, section 2.2)."""

from __future__ import annotations

import torch

from amorctl.problems import Problem


def regression_loss(y_hat: torch.Tensor, y_star: torch.Tensor) -> torch.Tensor:
    """The regression-based loss, eq. 2.9: E_x ‖y*(x) − ŷθ(x)‖², a batch mean of squared distances."""
    return (y_star - y_hat).square().sum(-1).mean()


def objective_loss(problem: Problem, y_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The objective-based loss, eq. 2.10: E_x f(ŷθ(x); x). Needs f only, never y*."""
    return problem.objective(y_hat, x).mean()


def mixed_loss(
    problem: Problem, y_hat: torch.Tensor, x: torch.Tensor, y_star: torch.Tensor, regression_weight: float
) -> torch.Tensor:
    """(1 − w)·eq. 2.10 + w·eq. 2.9, with w = ``regression_weight`` in [0, 1]."""
    return (1 - regression_weight) * objective_loss(problem, y_hat, x) + regression_weight * regression_loss(
        y_hat, y_star
    )


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

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

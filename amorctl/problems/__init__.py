"""Problem families (Definition 1) and the registry that configs name them by."""

from __future__ import annotations

from amorctl.problems.base import Problem, ProblemArgumentError, require
from amorctl.problems.lasso import Lasso
from amorctl.problems.logistic_regression import LogisticRegression
from amorctl.problems.pendulum_mpc import PendulumMPC
from amorctl.problems.quadratic import Quadratic
from amorctl.problems.rosenbrock import Rosenbrock

PROBLEMS: dict[str, type[Problem]] = {
    "quadratic": Quadratic,
    "rosenbrock": Rosenbrock,
    "logistic_regression": LogisticRegression,
    "pendulum_mpc": PendulumMPC,
    "lasso": Lasso,
}


def register_problem(name: str, cls: type[Problem]) -> None:
    """Make a user-defined family available to configs as ``problem.name: <name>``."""
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise TypeError(f"register_problem({name!r}, ...) needs a subclass of amorctl.problems.Problem")
    PROBLEMS[name] = cls


def make_problem(name: str, **kwargs) -> Problem:
    """Build the registered family ``name`` with its keyword arguments."""
    if name not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; known: {', '.join(sorted(PROBLEMS))}")
    return PROBLEMS[name](**kwargs)


__all__ = [
    "PROBLEMS",
    "Lasso",
    "LogisticRegression",
    "PendulumMPC",
    "Problem",
    "ProblemArgumentError",
    "Quadratic",
    "Rosenbrock",
    "make_problem",
    "register_problem",
    "require",
]

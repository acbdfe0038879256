"""Problem families (Definition 1) and the registry that configs name them by."""

from __future__ import annotations

from amorctl.problems.base import (
    DataSetLayout,
    Problem,
    ProblemArgumentError,
    ProblemSeed,
    has_planted_solutions,
    require,
)
from amorctl.problems.lasso import Lasso
from amorctl.problems.logistic_regression import LogisticRegression
from amorctl.problems.pendulum_mpc import PendulumMPC
from amorctl.problems.quadratic import Quadratic
from amorctl.problems.rosenbrock import Rosenbrock
from amorctl.registry import Registry

PROBLEMS: Registry[type[Problem]] = Registry("problem family", "problem.name")
for _name, _family in (
    ("quadratic", Quadratic),
    ("rosenbrock", Rosenbrock),
    ("logistic_regression", LogisticRegression),
    ("pendulum_mpc", PendulumMPC),
    ("lasso", Lasso),
):
    PROBLEMS.register(_name, _family)


def register_problem(name: str, cls: type[Problem]) -> None:
    """Make a user-defined family available to configs as ``problem.name: <name>``."""
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise TypeError(f"register_problem({name!r}, ...) needs a subclass of amorctl.problems.Problem")
    PROBLEMS.register(name, cls)


def make_problem(name: str, **kwargs) -> Problem:
    """Build the registered family ``name`` with its keyword arguments."""
    return PROBLEMS.lookup(name)(**kwargs)


__all__ = [
    "PROBLEMS",
    "DataSetLayout",
    "Lasso",
    "LogisticRegression",
    "PendulumMPC",
    "Problem",
    "ProblemArgumentError",
    "ProblemSeed",
    "Quadratic",
    "Rosenbrock",
    "has_planted_solutions",
    "make_problem",
    "register_problem",
    "require",
]

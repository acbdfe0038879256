"""Parametric convex quadratic programs: batches, the seven OSQP benchmark classes, osqp references.

``QP_FAMILIES`` names the classes for configs (``random_qp``, ``eq_qp``, ``portfolio``, ``lasso``, ``huber``,
``svm``, ``control``); :func:`make_qp_family` builds one with its size keywords.
"""

from __future__ import annotations

from amorctl.problems.qp.batch import QPBatch, QPFamily
from amorctl.problems.qp.families import SVM, Control, EqualityQP, Huber, Lasso, Portfolio, RandomQP
from amorctl.problems.qp.reference import OSQPResult, osqp_solve, reference_solutions
from amorctl.registry import Registry

QP_FAMILIES: Registry[type[QPFamily]] = Registry("QP family", "env.family")
for _name, _family in (
    ("random_qp", RandomQP),
    ("eq_qp", EqualityQP),
    ("portfolio", Portfolio),
    ("lasso", Lasso),
    ("huber", Huber),
    ("svm", SVM),
    ("control", Control),
):
    QP_FAMILIES.register(_name, _family)

SMALL_SIZES: dict[str, dict[str, int]] = {
    "random_qp": {"n": 6},
    "eq_qp": {"n": 8},
    "portfolio": {"assets": 8, "factors": 2},
    "lasso": {"features": 4, "data": 12},
    "huber": {"features": 3, "data": 8},
    "svm": {"features": 3, "data": 10},
    "control": {"states": 2, "horizon": 4},
}
"""Size keywords at which every class draws problems of 6–27 variables that osqp and the batched solver finish in
milliseconds: for tests and smoke runs."""


def make_qp_family(name: str, **kwargs) -> QPFamily:
    """Build the registered QP family ``name`` with its size keywords."""
    return QP_FAMILIES.lookup(name)(**kwargs)


__all__ = [
    "QP_FAMILIES",
    "SMALL_SIZES",
    "SVM",
    "Control",
    "EqualityQP",
    "Huber",
    "Lasso",
    "OSQPResult",
    "Portfolio",
    "QPBatch",
    "QPFamily",
    "RandomQP",
    "make_qp_family",
    "osqp_solve",
    "reference_solutions",
]

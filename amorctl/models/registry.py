"""The model registry: ``model.kind`` names a builder ``build(problem, **keys) -> nn.Module``.

A builder's keyword arguments (after ``problem``) are the ``model.*`` config keys, with their
defaults; a model of your own is a function plus one :func:`register_model` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from torch import nn

from amorctl.models.mlp import FullyAmortizedMLP
from amorctl.models.projections import make_projection
from amorctl.models.unrolled import UnrolledGradientDescent
from amorctl.problems import Problem
from amorctl.registry import Registry
from amorctl.schema import PositiveFloat, PositiveInt

ModelBuilder = Callable[..., nn.Module]

MODELS: Registry[ModelBuilder] = Registry("model", "model.kind")


def register_model(name: str, build: ModelBuilder) -> None:
    """Make ``build(problem, **keys)`` available to configs as ``model.kind: <name>``."""
    if not callable(build):
        raise TypeError(f"register_model({name!r}, ...) needs a callable build(problem, **keys)")
    MODELS.register(name, build)


def build_model(section: dict, problem: Problem) -> nn.Module:
    """The model a validated ``model`` section (``kind`` and the builder's keys) names, for ``problem``."""
    return MODELS.lookup(section["kind"])(problem, **{key: value for key, value in section.items() if key != "kind"})


def mlp(
    problem: Problem,
    *,
    hidden_sizes: Sequence[PositiveInt] = (256, 256),
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu",
    projection: Literal["auto", "none", "tanh", "sigmoid"] = "auto",
) -> FullyAmortizedMLP:
    """The fully-amortized MLP ŷθ(x) (Definition 2) for ``problem``.

    ``projection``: ``tanh`` or ``sigmoid`` end in that projection onto the problem's box (Definition 4;
    sigmoid is eq. 2.20), ``none`` in nothing, ``auto`` in the tanh projection when the problem has a box.
    The other projections of :data:`~amorctl.models.projections.PROJECTIONS` (simplex, sphere, cone, ...)
    map onto domains no problem family declares, so they are for models of your own (``make_projection``).
    """
    if projection in ("tanh", "sigmoid") and problem.bounds is None:
        raise ValueError(f"model.projection={projection!r} needs a box domain, but {type(problem).__name__} has none")
    if projection == "auto":
        projection = "tanh" if problem.bounds is not None else "none"
    return FullyAmortizedMLP(
        problem.context_dim,
        problem.solution_dim,
        hidden_sizes,
        activation,
        None if projection == "none" else make_projection(projection, low=problem.bounds[0], high=problem.bounds[1]),
    )


register_model("mlp", mlp)


def initial_model(problem: Problem, init: Literal["constant", "mlp"], **mlp_keys) -> nn.Module | None:
    """A semi-amortized model's start (``model.init``): ``None`` for a learned constant, else an ``mlp``."""
    return mlp(problem, **mlp_keys) if init == "mlp" else None


def unrolled_gd(
    problem: Problem,
    *,
    steps: PositiveInt = 10,
    init: Literal["constant", "mlp"] = "mlp",
    hidden_sizes: Sequence[PositiveInt] = (256, 256),
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu",
    projection: Literal["auto", "none", "tanh"] = "auto",
    step_size: PositiveFloat | None = None,
    per_coordinate: bool = False,
) -> UnrolledGradientDescent:
    """The semi-amortized model of eq. 2.1: ``steps`` learned descent steps on f(·; x) (``model.kind: unrolled_gd``).

    ``init``: ``constant`` starts every context from one learned θ (MAML), ``mlp`` from a fully-amortized
    MLP's prediction (``hidden_sizes``, ``activation``, ``projection`` as for ``mlp``).
    ``step_size``: the initial step sizes (default 1/L for families with a ``lipschitz`` constant, else 0.1);
    the step is proximal for composite families and projected for box domains.
    """
    initial = initial_model(problem, init, hidden_sizes=hidden_sizes, activation=activation, projection=projection)
    if step_size is None:
        lipschitz = getattr(problem, "lipschitz", None)
        step_size = 1.0 / lipschitz if lipschitz else 0.1
    return UnrolledGradientDescent(problem, steps, initial, step_size, per_coordinate)


register_model("unrolled_gd", unrolled_gd)

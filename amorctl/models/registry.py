"""The model registry: ``model.kind`` names a builder ``build(problem, **keys) -> nn.Module``.

A builder's keyword arguments (after ``problem``) are the ``model.*`` config keys, with their
defaults; a model of your own is a function plus one :func:`register_model` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from torch import nn

from amorctl.models.lista import LISTA
from amorctl.models.mlp import FullyAmortizedMLP
from amorctl.models.projections import make_projection
from amorctl.models.set import DeepSet
from amorctl.models.unrolled import UnrolledGradientDescent
from amorctl.problems import Problem
from amorctl.registry import Registry
from amorctl.schema import PositiveFloat, PositiveInt, Tau

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
    return FullyAmortizedMLP(
        problem.context_dim, problem.solution_dim, hidden_sizes, activation, _box_projection(problem, projection)
    )


def _box_projection(problem: Problem, projection: str) -> nn.Module | None:
    """The ``model.projection`` onto the problem's box (``auto``: tanh when it has one), or ``None``."""
    if projection in ("tanh", "sigmoid") and problem.bounds is None:
        raise ValueError(f"model.projection={projection!r} needs a box domain, but {type(problem).__name__} has none")
    if projection == "auto":
        projection = "tanh" if problem.bounds is not None else "none"
    return None if projection == "none" else make_projection(projection, low=problem.bounds[0], high=problem.bounds[1])


register_model("mlp", mlp)


def set_model(
    problem: Problem,
    *,
    encoder_sizes: Sequence[PositiveInt] = (128, 128),
    decoder_sizes: Sequence[PositiveInt] = (256, 256),
    pooling: Literal["mean", "sum", "attention"] = "mean",
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu",
    projection: Literal["auto", "none", "tanh", "sigmoid"] = "auto",
    sample_features: Literal["raw", "quadratic"] = "raw",
    heads: PositiveInt = 4,
    queries: PositiveInt = 1,
    rounds: PositiveInt = 1,
    normalize: bool = True,
) -> DeepSet:
    """The permutation-invariant Deep Sets model (``model.kind: set``): ŷ = π(W c_R + b) after R rounds
    c_r = ρ_r(pool_i φ_r(s_i, c_{r−1}), g); one round is π(ρ(pool_i φ(s_i), g)).

    For families whose context is a data set (``problem.data_set_layout``). ``encoder_sizes``: φ's layers,
    shared by every sample; ``decoder_sizes``: ρ's hidden layers; ``pooling``: ``mean``, ``sum`` or
    ``attention`` (``queries`` learned queries, ``heads`` heads dividing ``encoder_sizes[-1]``);
    ``sample_features: quadratic`` adds each sample's pairwise products; ``rounds`` > 1 pools again with every
    sample re-encoded next to the previous round's code; ``normalize`` standardizes each pooled code over
    the batch (batch normalization; running statistics in evaluation); ``activation`` and ``projection`` as
    for ``mlp``.
    """
    layout = problem.data_set_layout
    if layout is None:
        raise ValueError(f"model.kind='set' needs a family whose context is a data set (a data_set_layout), "
                         f"but {type(problem).__name__} declares none; use model.kind: mlp")
    if layout.context_dim != problem.context_dim:
        raise ValueError(f"model.kind='set' cannot read {type(problem).__name__}'s contexts: its data_set_layout "
                         f"describes {layout.context_dim} numbers, its context_dim is {problem.context_dim}")
    if not encoder_sizes:
        raise ValueError("model.encoder_sizes needs at least one layer (its last width is the pooled code's)")
    if pooling == "attention" and encoder_sizes[-1] % heads:
        raise ValueError(f"model.heads={heads} must divide the code width model.encoder_sizes[-1]={encoder_sizes[-1]}")
    return DeepSet(layout, problem.solution_dim, encoder_sizes, decoder_sizes, pooling, activation,
                   _box_projection(problem, projection), sample_features, heads, queries, rounds, normalize)


register_model("set", set_model)

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


def lista(
    problem: Problem,
    *,
    steps: PositiveInt = 16,
    variant: Literal["untied", "coupled"] = "coupled",
    support_selection: bool = False,
    support_step: Tau = 0.012,
    support_max: Tau = 0.13,
) -> LISTA:
    """Learned ISTA for a lasso-like family (§3.2, Gregor & LeCun 2010; ``model.kind: lista``).

    ``steps`` layers initialised as ISTA's iterations; ``variant``: ``untied`` (a learned W_e and S per
    layer) or ``coupled`` (LISTA-CP, Chen et al. 2018: one W per layer, S = I − WD); ``support_selection``
    (LISTA-CPSS) lets the largest min((k+1)·``support_step``, ``support_max``) fraction of layer k's
    entries pass unthresholded. Refused (``ValueError``) for a family that is not composite.
    """
    return LISTA(problem, steps, variant, support_selection, support_step, support_max)


register_model("lista", lista)

"""Amortization models ŷθ(x), the differentiable projections they end in, and the model registry."""

from __future__ import annotations

from amorctl.models.learned_update import LearnedUpdate, learned_update, log_sign_features
from amorctl.models.lista import LISTA
from amorctl.models.mlp import ACTIVATIONS, FullyAmortizedMLP
from amorctl.models.projections import (
    PROJECTIONS,
    OrthantReLU,
    OrthantSoftplus,
    SecondOrderCone,
    SigmoidBox,
    SoftmaxSimplex,
    Sparsemax,
    Sphere,
    TanhBox,
    make_projection,
    register_projection,
    sparsemax,
)
from amorctl.models.registry import (
    MODELS,
    build_model,
    initial_model,
    lista,
    mlp,
    register_model,
    set_model,
    unrolled_gd,
)
from amorctl.models.set import DeepSet
from amorctl.models.unrolled import LearnedStart, UnrolledGradientDescent, is_semi_amortized, model_iterates
from amorctl.models.warm_start import WarmStart, warm_start

__all__ = [
    "ACTIVATIONS",
    "LISTA",
    "MODELS",
    "PROJECTIONS",
    "DeepSet",
    "FullyAmortizedMLP",
    "LearnedStart",
    "LearnedUpdate",
    "OrthantReLU",
    "OrthantSoftplus",
    "SecondOrderCone",
    "SigmoidBox",
    "SoftmaxSimplex",
    "Sparsemax",
    "Sphere",
    "TanhBox",
    "UnrolledGradientDescent",
    "WarmStart",
    "build_model",
    "initial_model",
    "is_semi_amortized",
    "learned_update",
    "lista",
    "log_sign_features",
    "make_projection",
    "mlp",
    "model_iterates",
    "register_model",
    "register_projection",
    "set_model",
    "sparsemax",
    "unrolled_gd",
    "warm_start",
]

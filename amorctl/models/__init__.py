"""Amortization models ŷθ(x), the differentiable projections they end in, and the model registry."""

from __future__ import annotations

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
from amorctl.models.registry import MODELS, build_model, mlp, register_model

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "PROJECTIONS",
    "FullyAmortizedMLP",
    "OrthantReLU",
    "OrthantSoftplus",
    "SecondOrderCone",
    "SigmoidBox",
    "SoftmaxSimplex",
    "Sparsemax",
    "Sphere",
    "TanhBox",
    "build_model",
    "make_projection",
    "mlp",
    "register_model",
    "register_projection",
    "sparsemax",
]

"""Amortization models ŷθ(x), the differentiable projections they end in, and the model registry."""

from __future__ import annotations

from amorctl.models.mlp import ACTIVATIONS, FullyAmortizedMLP
from amorctl.models.projections import TanhBox
from amorctl.models.registry import MODELS, build_model, mlp, register_model, unrolled_gd
from amorctl.models.unrolled import UnrolledGradientDescent, is_semi_amortized, model_iterates

__all__ = [
    "ACTIVATIONS",
    "MODELS",
    "FullyAmortizedMLP",
    "TanhBox",
    "UnrolledGradientDescent",
    "build_model",
    "is_semi_amortized",
    "mlp",
    "model_iterates",
    "register_model",
    "unrolled_gd",
]

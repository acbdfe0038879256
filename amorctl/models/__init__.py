"""Amortization models ŷθ(x), the differentiable projections they end in, and the model registry."""

from __future__ import annotations

from amorctl.models.mlp import ACTIVATIONS, FullyAmortizedMLP
from amorctl.models.projections import TanhBox
from amorctl.models.registry import MODELS, build_model, mlp, register_model

__all__ = ["ACTIVATIONS", "MODELS", "FullyAmortizedMLP", "TanhBox", "build_model", "mlp", "register_model"]

"""Amortization models ŷθ(x) and the differentiable projections they end in."""

from __future__ import annotations

from amorctl.models.mlp import ACTIVATIONS, FullyAmortizedMLP
from amorctl.models.projections import TanhBox

__all__ = ["ACTIVATIONS", "FullyAmortizedMLP", "TanhBox"]

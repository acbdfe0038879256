"""Differentiable projections onto a model's output domain (Definition 4)."""

from __future__ import annotations

import torch
from torch import nn


class TanhBox(nn.Module):
    """Maps R^n smoothly onto the open box (low, high)^n: low + (high − low)·(tanh(z) + 1)/2."""

    def __init__(self, low: float, high: float):
        super().__init__()
        if not low < high:
            raise ValueError(f"TanhBox needs low < high, got ({low}, {high})")
        self.center, self.half_width = (high + low) / 2, (high - low) / 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.center + self.half_width * torch.tanh(z)

    def extra_repr(self) -> str:
        return f"low={self.center - self.half_width}, high={self.center + self.half_width}"

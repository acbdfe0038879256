"""The fully-amortized model: an MLP from contexts to solutions (Definition 2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class FullyAmortizedMLP(nn.Module):
    """ŷθ(x) = π(MLP(x)): a map from context to solution that never queries the objective.

    Args:
        context_dim: input size m.
        solution_dim: output size n.
        hidden_sizes: widths of the hidden layers.
        activation: one of ``relu``, ``elu``, ``silu``, ``tanh``.
        projection: an optional differentiable projection π onto the domain (e.g.
            :class:`~amorctl.models.projections.TanhBox`); identity when ``None``.
    """

    def __init__(
        self,
        context_dim: int,
        solution_dim: int,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        projection: nn.Module | None = None,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        width = context_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, solution_dim))
        self.body = nn.Sequential(*layers)
        self.projection = projection if projection is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.body(x))

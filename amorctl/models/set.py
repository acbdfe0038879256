"""A permutation-invariant fully-amortized model for contexts that are data sets (Deep Sets).

When the context x is a data set {s_1, ..., s_N} (a family's :class:`~amorctl.problems.DataSetLayout`
says where the samples sit in the flat context), the solution cannot depend on the order the samples
are listed in. A plain MLP on the flat context must learn that from data, one permutation at a time;
Deep Sets (Zaheer et al. 2017) builds it in:

    ŷθ(x) = π(ρ(pool_{i=1..N} φ(s_i), g)),

a per-sample encoder φ shared by every sample, a symmetric pooling over the samples, and a decoder ρ
(an MLP) from the pooled code and the context's global part g to the solution, ending in the
projection π onto the domain (Definition 4). Any such map is invariant to permuting the samples, and
every continuous permutation-invariant function of a set of fixed size can be written this way.

Pooling: ``mean`` (1/N) Σ_i φ(s_i), ``sum`` Σ_i φ(s_i), or ``attention``: learned queries q_1..q_Q
attend over the encoded samples, pool_k = Σ_i softmax_i(q_kᵀ W_K φ(s_i)) W_V φ(s_i) per head (the
pooling by multi-head attention of the Set Transformer, Lee et al. 2019), concatenated over k.

``sample_features: quadratic`` appends the products s_{ij} s_{ik} (j ≤ k) of each sample's entries to
it before φ: the mean of those over the set are the second moments (for logistic regression, the
sums Σ t_i φ_i and Σ φ_i φ_iᵀ of the loss's Newton step at 0), which φ would otherwise have to learn
to multiply.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from amorctl.models.mlp import ACTIVATIONS
from amorctl.problems.base import DataSetLayout

POOLINGS = ("mean", "sum", "attention")
SAMPLE_FEATURES = ("raw", "quadratic")


def _mlp(sizes: Sequence[int], activation: str, last_activation: bool) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, the activation after each (after the last one too if asked)."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(width_in, width_out))
        if last_activation or index < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def quadratic_features(samples: torch.Tensor) -> torch.Tensor:
    """Each sample ``(..., W)`` followed by its products s_j s_k for j ≤ k: ``(..., W + W(W + 1)/2)``."""
    width = samples.shape[-1]
    rows, cols = torch.triu_indices(width, width, device=samples.device)
    return torch.cat([samples, samples[..., rows] * samples[..., cols]], dim=-1)


class EquivariantLayer(nn.Module):
    """A permutation-equivariant layer (Zaheer et al. 2017, eq. 4 with mean pooling): h_i ↦ σ(W h_i + U mean_j h_j + b).

    Each sample's new features see the whole set through its mean, so permuting the samples permutes
    the outputs the same way; stacked before the pooling, the samples can be encoded relative to each other.
    """

    def __init__(self, width_in: int, width_out: int, activation: str):
        super().__init__()
        self.own, self.shared = nn.Linear(width_in, width_out), nn.Linear(width_in, width_out, bias=False)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.activation(self.own(h) + self.shared(h.mean(1, keepdim=True)))


class AttentionPooling(nn.Module):
    """Pooling by multi-head attention: ``queries`` learned queries attend over the samples, (B, N, E) → (B, Q·E)."""

    def __init__(self, width: int, heads: int, queries: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, width) / width**0.5)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        queries = self.queries.unsqueeze(0).expand(encoded.shape[0], -1, -1)
        pooled, _ = self.attention(queries, encoded, encoded, need_weights=False)
        return pooled.flatten(1)


class DeepSet(nn.Module):
    """ŷθ(x) = π(ρ(pool_i φ(s_i), g)): a fully-amortized model invariant to the order of the samples.

    Args:
        layout: where the samples and the global part sit in the flat context.
        solution_dim: output size n.
        encoder_sizes: widths of φ's layers (each followed by the activation); the last is the code width E.
        decoder_sizes: widths of ρ's hidden layers; a last linear layer maps to ``solution_dim``.
        pooling: ``mean``, ``sum`` or ``attention``.
        activation: one of ``relu``, ``elu``, ``silu``, ``tanh``.
        projection: an optional differentiable projection π onto the domain; identity when ``None``.
        sample_features: ``raw`` (the sample as stored) or ``quadratic`` (with its pairwise products).
        heads, queries: for ``attention``: attention heads (must divide E) and learned queries.
        equivariant: φ's layers are :class:`EquivariantLayer` layers (each sample sees the set's mean) instead
            of a per-sample MLP.
    """

    def __init__(
        self,
        layout: DataSetLayout,
        solution_dim: int,
        encoder_sizes: Sequence[int] = (128, 128),
        decoder_sizes: Sequence[int] = (256, 256),
        pooling: str = "mean",
        activation: str = "relu",
        projection: nn.Module | None = None,
        sample_features: str = "raw",
        heads: int = 4,
        queries: int = 1,
        equivariant: bool = False,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        if pooling not in POOLINGS or sample_features not in SAMPLE_FEATURES:
            raise ValueError(f"pooling must be one of {POOLINGS} and sample_features one of {SAMPLE_FEATURES}, "
                             f"got {pooling!r} and {sample_features!r}")
        if not encoder_sizes:
            raise ValueError("encoder_sizes needs at least one layer (its last width is the pooled code's)")
        width = encoder_sizes[-1]
        if pooling == "attention" and width % heads:
            raise ValueError(f"heads={heads} must divide the code width encoder_sizes[-1]={width}")
        self.layout, self.pooling, self.sample_features = layout, pooling, sample_features
        sample_width = layout.sample_width
        if sample_features == "quadratic":
            sample_width += sample_width * (sample_width + 1) // 2
        if equivariant:
            widths = [sample_width, *encoder_sizes]
            self.encoder = nn.Sequential(*(EquivariantLayer(a, b, activation) for a, b in pairwise(widths)))
        else:
            self.encoder = _mlp([sample_width, *encoder_sizes], activation, last_activation=True)
        self.attention = AttentionPooling(width, heads, queries) if pooling == "attention" else None
        pooled_width = width * (queries if pooling == "attention" else 1)
        self.decoder = _mlp([pooled_width + layout.global_dim, *decoder_sizes, solution_dim], activation, False)
        self.projection = projection if projection is not None else nn.Identity()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The permutation-invariant code of each context: pooled φ(s_i) and the global part, ``(B, width)``."""
        samples, global_part = self.layout.split(x)
        if self.sample_features == "quadratic":
            samples = quadratic_features(samples)
        encoded = self.encoder(samples)
        if self.attention is not None:
            pooled = self.attention(encoded)
        elif self.pooling == "sum":
            pooled = encoded.sum(1)
        else:
            pooled = encoded.mean(1)
        return torch.cat([pooled, global_part], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.decoder(self.pool(x)))

    def extra_repr(self) -> str:
        return f"num_samples={self.layout.num_samples}, pooling={self.pooling}, sample_features={self.sample_features}"

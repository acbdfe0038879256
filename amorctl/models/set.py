"""A permutation-invariant fully-amortized model for contexts that are data sets (Deep Sets).

When the context x is a data set {s_1, ..., s_N} (a family's :class:`~amorctl.problems.DataSetLayout`
says where the samples sit in the flat context), the solution cannot depend on the order the samples
are listed in. A plain MLP on the flat context must learn that from data, one permutation at a time;
Deep Sets (Zaheer et al. 2017) builds it in:

    ŷθ(x) = π(ρ(pool_{i=1..N} φ(s_i), g)),

a per-sample encoder φ shared by every sample, a symmetric pooling over the samples, and a decoder ρ
(an MLP) from the pooled code and the context's global part g to the solution, ending in the
projection π onto the domain (Definition 4). Any such map is invariant to permuting the samples, and
with a wide enough code every permutation-invariant function can be written this way (Zaheer et al.
2017; Wagstaff et al. 2019: for some functions the code must be at least N wide).

Pooling: ``mean`` (1/N) Σ_i φ(s_i), ``sum`` Σ_i φ(s_i), or ``attention``: learned queries q_1..q_Q
attend over the encoded samples, pool_k = Σ_i softmax_i(q_kᵀ W_K φ(s_i)) W_V φ(s_i) per head (the
pooling by multi-head attention of the Set Transformer, Lee et al. 2019), concatenated over k.

Rounds (``rounds`` = R > 1): a single pooling has to summarise the whole set before anything knows
which samples matter; for logistic regression the optimum y* = (1/(mλ)) Σ_i σ(−s_i φ_iᵀy*) s_i φ_i weights
each sample by its margin under y* itself. Round r re-encodes every sample next to the code of round
r − 1, c_r = ρ_r(pool_i φ_r(s_i, c_{r−1}), g), and the prediction is read from c_R; every round is
permutation-invariant, so the model is. (R rounds play the part of R Newton-like refinements, learned and
without access to f: the model stays fully amortized, Definition 2.)

``sample_features: quadratic`` appends the products s_{ij} s_{ik} (j ≤ k) of each sample's entries to
it before φ: the mean of those over the set are the second moments (for logistic regression, the
sums Σ t_i φ_i and Σ φ_i φ_iᵀ of the loss's Newton step at 0), which φ would otherwise have to learn
to multiply.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from amorctl.models.mlp import ACTIVATIONS
from amorctl.problems.base import DataSetLayout

POOLINGS = ("mean", "sum", "attention")
SAMPLE_FEATURES = ("raw", "quadratic")


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, each followed by the activation."""
    layers: list[nn.Module] = []
    for width_in, width_out in pairwise(sizes):
        layers += [nn.Linear(width_in, width_out), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def quadratic_features(samples: torch.Tensor) -> torch.Tensor:
    """Each sample ``(..., W)`` followed by its products s_j s_k for j ≤ k: ``(..., W + W(W + 1)/2)``."""
    width = samples.shape[-1]
    rows, cols = torch.triu_indices(width, width, device=samples.device)
    return torch.cat([samples, samples[..., rows] * samples[..., cols]], dim=-1)


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


class PooledNorm(nn.BatchNorm1d):
    """Standardizes each entry of the pooled code over the batch's contexts (batch normalization).

    A mean over N samples moves little from one context to the next (by about 1/√N of a sample's spread)
    around a large common part; standardized, those differences reach the decoder at unit scale instead
    of through large first-layer weights that Adam takes long to grow. In training the statistics are
    the batch's (a batch of one context uses the running ones); in evaluation mode the running
    statistics, so each context's prediction is its own.
    """

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.training and pooled.shape[0] == 1:
            return F.batch_norm(pooled, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0,
                                self.eps)
        return super().forward(pooled)


class SetRound(nn.Module):
    """One pooling round, c_r = ρ_r(pool_i φ_r(s_i, c_{r−1}), g): encode every sample (with the previous
    round's code, if any), pool over the samples, decode with the global part into the round's code.

    φ_r's first layer is (W s_i + b) ⊙ (1 + U c_{r−1}) + V c_{r−1}, the sample's features scaled and shifted
    by the code (feature-wise modulation, FiLM: Perez et al. 2018), so that one layer holds products such
    as s_iᵀy between a sample and an estimate carried by the code; the others are a per-sample MLP. The
    pooled code (with g) is standardized (:class:`PooledNorm`) unless ``normalize`` is false; ρ_r is an MLP
    whose every layer ends in the activation, so c_r is ``decoder_sizes[-1]`` wide (the pooled code and g
    when ``decoder_sizes`` is empty).
    """

    def __init__(
        self,
        sample_width: int,
        previous_width: int,
        global_dim: int,
        encoder_sizes: Sequence[int],
        decoder_sizes: Sequence[int],
        pooling: str,
        activation: str,
        heads: int,
        queries: int,
        normalize: bool,
    ):
        super().__init__()
        self.pooling = pooling
        self.sample_in = nn.Linear(sample_width, encoder_sizes[0])
        self.code_in = nn.Linear(previous_width, 2 * encoder_sizes[0], bias=False) if previous_width else None
        self.encoder = nn.Sequential(ACTIVATIONS[activation](), *_mlp(encoder_sizes, activation))
        width = encoder_sizes[-1]
        self.attention = AttentionPooling(width, heads, queries) if pooling == "attention" else None
        pooled_width = width * (queries if pooling == "attention" else 1) + global_dim
        self.normalize = PooledNorm(pooled_width) if normalize else nn.Identity()
        self.decoder = _mlp([pooled_width, *decoder_sizes], activation)
        self.code_width = decoder_sizes[-1] if decoder_sizes else pooled_width

    def forward(self, samples: torch.Tensor, global_part: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        h = self.sample_in(samples)
        if self.code_in is not None:
            scale, shift = self.code_in(code).unsqueeze(1).chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        encoded = self.encoder(h)
        if self.attention is not None:
            pooled = self.attention(encoded)
        elif self.pooling == "sum":
            pooled = encoded.sum(1)
        else:
            pooled = encoded.mean(1)
        return self.decoder(self.normalize(torch.cat([pooled, global_part], dim=-1)))


class DeepSet(nn.Module):
    """ŷθ(x) = π(W c_R + b) after R pooling rounds c_r = ρ_r(pool_i φ_r(s_i, c_{r−1}), g): invariant to the
    order of the samples. One round is Deep Sets, π(ρ(pool_i φ(s_i), g)).

    With R > 1 every sample is encoded again knowing the previous round's code — for a data-fitting
    family, roughly "where the current estimate puts this sample" (its margin), which a single pooling of
    fixed-width codes can only represent through very wide ones. Each round is permutation-invariant, so
    the whole model is.

    Args:
        layout: where the samples and the global part sit in the flat context.
        solution_dim: output size n.
        encoder_sizes: widths of φ_r's layers (each followed by the activation); the last is the code width E.
        decoder_sizes: widths of ρ_r's layers; a last linear layer after the last round maps to ``solution_dim``.
        pooling: ``mean``, ``sum`` or ``attention``.
        activation: one of ``relu``, ``elu``, ``silu``, ``tanh``.
        projection: an optional differentiable projection π onto the domain; identity when ``None``.
        sample_features: ``raw`` (the sample as stored) or ``quadratic`` (with its pairwise products).
        heads, queries: for ``attention``: attention heads (must divide E) and learned queries.
        rounds: R, the number of pooling rounds.
        normalize: standardize each round's pooled code over the batch (:class:`PooledNorm`).
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
        rounds: int = 1,
        normalize: bool = True,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        if pooling not in POOLINGS or sample_features not in SAMPLE_FEATURES:
            raise ValueError(f"pooling must be one of {POOLINGS} and sample_features one of {SAMPLE_FEATURES}, "
                             f"got {pooling!r} and {sample_features!r}")
        if not encoder_sizes or rounds < 1:
            raise ValueError(f"encoder_sizes needs at least one layer and rounds >= 1, got {encoder_sizes}, {rounds}")
        if pooling == "attention" and encoder_sizes[-1] % heads:
            raise ValueError(f"heads={heads} must divide the code width encoder_sizes[-1]={encoder_sizes[-1]}")
        self.layout, self.pooling, self.sample_features = layout, pooling, sample_features
        sample_width = layout.sample_width
        if sample_features == "quadratic":
            sample_width += sample_width * (sample_width + 1) // 2
        self.rounds = nn.ModuleList()
        previous = 0
        for _ in range(rounds):
            self.rounds.append(SetRound(sample_width, previous, layout.global_dim, encoder_sizes, decoder_sizes,
                                        pooling, activation, heads, queries, normalize))
            previous = self.rounds[-1].code_width
        self.head = nn.Linear(previous, solution_dim)
        self.projection = projection if projection is not None else nn.Identity()

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The last round's permutation-invariant code c_R of each context, ``(B, code width)``."""
        samples, global_part = self.layout.split(x)
        if self.sample_features == "quadratic":
            samples = quadratic_features(samples)
        code = None
        for set_round in self.rounds:
            code = set_round(samples, global_part, code)
        return code

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.head(self.code(x)))

    def extra_repr(self) -> str:
        return (f"num_samples={self.layout.num_samples}, pooling={self.pooling}, "
                f"sample_features={self.sample_features}, rounds={len(self.rounds)}")

"""Differentiable projections onto a model's output domain (Definition 4, eqs. 2.18–2.24).

Definition 4 (eq. 2.18): πC(x) ∈ argmin_{y ∈ C} D(x, y) + Ω(y). Two kinds live here:

* **Euclidean projections** (D = ½‖x − y‖², Ω = 0): :class:`OrthantReLU` (eq. 2.19),
  :class:`Sparsemax` (eq. 2.22), :class:`Sphere` (eq. 2.23), :class:`SecondOrderCone` (eq. 2.24).
  They are idempotent (π ∘ π = π): a point already in C stays where it is. ``euclidean = True``.
* **Regularized maps onto the interior** (an entropy Ω, or a smooth squashing): :class:`TanhBox`,
  :class:`SigmoidBox` (eq. 2.20), :class:`SoftmaxSimplex` (eq. 2.21), :class:`OrthantSoftplus`.
  Their outputs lie in the open interior of C and they are *not* idempotent — the seed's "lack of
  idempotency" remark: Ω moves points that are already in C. ``euclidean = False``.

Equation numbers: the seed's extraction (``000_…txt``) ends at eq. (2.19) and names (2.24) as the
second-order cone (Figure 2.9); (2.20)–(2.23) follow the order of the tutorial's list in §2.3.1
(Amos, *Tutorial on Amortized Optimization*, 2023: sigmoid, softmax, sparsemax, sphere).

Every projection acts on the last dimension and broadcasts over leading (batch) dimensions.
:data:`PROJECTIONS` names them for configs and plugins; :func:`make_projection` builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from amorctl.registry import Registry


class TanhBox(nn.Module):
    """Maps R^n smoothly onto the open box (low, high)^n: low + (high − low)·(tanh(z) + 1)/2.

    Equal to :class:`SigmoidBox` at temperature ½ (tanh(z) = 2·sigmoid(2z) − 1): the entropy-regularized
    map of eq. (2.20), rescaled to the box. Onto the interior; not a Euclidean projection.
    """

    euclidean = False

    def __init__(self, low: float, high: float):
        super().__init__()
        if not low < high:
            raise ValueError(f"TanhBox needs low < high, got ({low}, {high})")
        self.center, self.half_width = (high + low) / 2, (high - low) / 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.center + self.half_width * torch.tanh(z)

    def extra_repr(self) -> str:
        return f"low={self.center - self.half_width}, high={self.center + self.half_width}"


class SigmoidBox(nn.Module):
    """Entropy-regularized projection onto the open box (low, high)^n (eq. 2.20, rescaled).

    On the unit hypercube, eq. (2.20) is π(x) ∈ argmin_{0<y<1} −xᵀy − τ·H_b(y) with the binary entropy
    H_b(y) = −Σ_i [y_i log y_i + (1 − y_i) log(1 − y_i)]; its stationarity condition
    x = τ·(log y − log(1 − y)) gives the closed form y = sigmoid(x / τ). This module returns
    low + (high − low)·sigmoid(z / temperature). Onto the interior; not a Euclidean projection.
    """

    euclidean = False

    def __init__(self, low: float = 0.0, high: float = 1.0, temperature: float = 1.0):
        super().__init__()
        if not low < high:
            raise ValueError(f"SigmoidBox needs low < high, got ({low}, {high})")
        if not temperature > 0:
            raise ValueError(f"SigmoidBox needs temperature > 0, got {temperature}")
        self.low, self.high, self.temperature = low, high, temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.low + (self.high - self.low) * torch.sigmoid(z / self.temperature)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}, temperature={self.temperature}"


class OrthantReLU(nn.Module):
    """Euclidean projection onto the non-negative orthant (eq. 2.19): argmin_{y ≥ 0} ½‖x − y‖² = max{0, x}.

    Idempotent; its (sub)derivative is 1 where x > 0 and 0 where x < 0.
    """

    euclidean = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(z)


class OrthantSoftplus(nn.Module):
    """Smooth map onto the open orthant (0, ∞)^n: softplus(z) = log(1 + exp(β z)) / β.

    Not one of the seed's equations: a smooth alternative to :class:`OrthantReLU` whose gradient never
    vanishes. Onto the interior; not a Euclidean projection (softplus(y) ≠ y for y > 0).
    """

    euclidean = False

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"OrthantSoftplus needs beta > 0, got {beta}")
        self.beta = beta

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.softplus(z, beta=self.beta, threshold=20.0)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class SoftmaxSimplex(nn.Module):
    """Entropy-regularized projection onto the open simplex (eq. 2.21): the soft-argmax.

    π(x) ∈ argmin_{0<y<1} −xᵀy − τ·H(y) s.t. 1ᵀy = 1, with the Shannon entropy H(y) = −Σ_i y_i log y_i,
    has the closed form π(x)_j = exp(x_j / τ) / Σ_i exp(x_i / τ). Every entry is positive: onto the
    interior, not a Euclidean projection (for the Euclidean one, :class:`Sparsemax`).
    """

    euclidean = False

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"SoftmaxSimplex needs temperature > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z / self.temperature, dim=-1)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


def _sparsemax_threshold(z: torch.Tensor) -> torch.Tensor:
    """The sparsemax threshold τ(z) over the last dimension, shape ``(..., 1)`` (Martins & Astudillo 2016)."""
    sorted_z, _ = torch.sort(z, dim=-1, descending=True)
    cumulative = sorted_z.cumsum(dim=-1)
    k = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    # the support size k(z) = max{k : 1 + k·z_(k) > Σ_{j ≤ k} z_(j)}; k = 1 always qualifies
    support = (1 + k * sorted_z > cumulative).sum(dim=-1, keepdim=True)
    return (cumulative.gather(-1, support - 1) - 1) / support.to(z.dtype)


class _SparsemaxFunction(torch.autograd.Function):
    """sparsemax with the closed-form backward: J = diag(s) − s sᵀ / |S| for the support indicator s."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        # sparsemax(z + c·1) = sparsemax(z): shifting by the maximum keeps large inputs accurate
        z = z - z.amax(dim=-1, keepdim=True)
        p = torch.clamp(z - _sparsemax_threshold(z), min=0)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (p,) = ctx.saved_tensors
        support = (p > 0).to(grad_output.dtype)
        mean_on_support = (grad_output * support).sum(-1, keepdim=True) / support.sum(-1, keepdim=True)
        return support * (grad_output - mean_on_support)


def sparsemax(z: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of ``z`` onto the probability simplex along the last dimension (eq. 2.22)."""
    if z.dim() == 0 or z.shape[-1] == 0:
        raise ValueError(f"sparsemax needs a non-empty last dimension, got shape {tuple(z.shape)}")
    return _SparsemaxFunction.apply(z)


class Sparsemax(nn.Module):
    """Euclidean projection onto the simplex Δ^{n−1} = {y ≥ 0, 1ᵀy = 1} (eq. 2.22; Martins & Astudillo 2016).

    π(x) = argmin_{y ∈ Δ} ½‖x − y‖² = max{0, x − τ(x)}, with the threshold τ found by sorting (one
    O(n log n) pass). Unlike :class:`SoftmaxSimplex` it reaches the boundary — outputs have exact zeros —
    and it is idempotent. The backward pass is the closed form: on the support S, the incoming gradient
    minus its mean over S; zero off S.
    """

    euclidean = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return sparsemax(z)


def _safe_norm(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """‖u‖ over the last dimension and a copy with zeros replaced by one, both with finite gradients at u = 0."""
    squared = (u * u).sum(-1, keepdim=True)
    positive = squared > 0
    root = torch.sqrt(torch.where(positive, squared, torch.ones_like(squared)))
    return torch.where(positive, root, torch.zeros_like(root)), root


class Sphere(nn.Module):
    """Euclidean projection onto the sphere of radius r (eq. 2.23): π(x) = r·x / ‖x‖.

    Exact and idempotent for x ≠ 0; at x = 0 (where every point of the sphere is nearest) the norm is
    clamped below by ``eps``, as :func:`torch.nn.functional.normalize` does: the output is 0 there and
    the gradient finite but of order r/eps.
    """

    euclidean = True

    def __init__(self, radius: float = 1.0, eps: float = 1e-12):
        super().__init__()
        if not radius > 0:
            raise ValueError(f"Sphere needs radius > 0, got {radius}")
        self.radius, self.eps = radius, eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.radius * F.normalize(z, dim=-1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"radius={self.radius}"


class SecondOrderCone(nn.Module):
    """Euclidean projection onto the second-order cone K = {(u, t) ∈ R^n × R : ‖u‖ ≤ t} (eq. 2.24).

    The last entry of the input is t, the others u. In closed form:

    * ‖u‖ ≤ t (inside K): (u, t) itself;
    * ‖u‖ ≤ −t (inside the polar cone −K): 0;
    * otherwise: ½(1 + t/‖u‖)·(u, ‖u‖), i.e. α·(u/‖u‖, 1) with α = (‖u‖ + t)/2, on the boundary.

    Idempotent; differentiable everywhere except on the boundaries ‖u‖ = |t| (where autograd takes one side).
    """

    euclidean = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] < 2:
            raise ValueError(f"SecondOrderCone needs (u, t) with u non-empty: last dimension >= 2, got {z.shape[-1]}")
        u, t = z[..., :-1], z[..., -1:]
        norm, safe = _safe_norm(u)
        alpha = (norm + t) / 2
        boundary = torch.cat([alpha * u / safe, alpha], dim=-1)
        return torch.where(norm <= t, z, torch.where(norm <= -t, torch.zeros_like(z), boundary))


ProjectionBuilder = Callable[..., nn.Module]

PROJECTIONS: Registry[ProjectionBuilder] = Registry("projection", "model.projection")
"""Projections by name: ``make_projection(name, **keys)`` builds one (``low``/``high`` for the boxes, ...)."""


def register_projection(name: str, build: ProjectionBuilder) -> None:
    """Make ``build(**keys) -> nn.Module`` available as ``make_projection(name, **keys)``."""
    if not callable(build):
        raise TypeError(f"register_projection({name!r}, ...) needs a callable build(**keys)")
    PROJECTIONS.register(name, build)


def make_projection(name: str, **keys) -> nn.Module:
    """The projection registered as ``name``, built with ``keys`` (e.g. ``make_projection("sphere", radius=2)``)."""
    return PROJECTIONS.lookup(name)(**keys)


for _name, _build in {
    "relu": OrthantReLU,
    "softplus": OrthantSoftplus,
    "tanh": TanhBox,
    "sigmoid": SigmoidBox,
    "softmax": SoftmaxSimplex,
    "sparsemax": Sparsemax,
    "sphere": Sphere,
    "second_order_cone": SecondOrderCone,
}.items():
    register_projection(_name, _build)

"""Learned ISTA (LISTA): ISTA's iterations for the lasso with learned matrices and thresholds (seed §3.2).

ISTA on f(y; x) = ½‖D y − x‖² + λ‖y‖₁ iterates, from y⁰ = 0,

    yᵏ⁺¹ = η_{λ/L}(yᵏ − (1/L) Dᵀ(D yᵏ − x)) = η_{λ/L}(W_e x + S yᵏ),  W_e = Dᵀ/L,  S = I − DᵀD/L,

with η_θ the soft threshold (the lasso's ``prox``). LISTA (Gregor & LeCun 2010) truncates it to K
layers and learns every layer's weights and threshold, untied across layers — a semi-amortized
model (Definition 3) whose K layers are the iterations. Two variants:

- ``untied`` (Gregor & LeCun): yᵏ⁺¹ = η_{θₖ}(W_eᵏ x + Sᵏ yᵏ), W_eᵏ ∈ R^{n×m}, Sᵏ ∈ R^{n×n};
- ``coupled`` (LISTA-CP, Chen et al. 2018): yᵏ⁺¹ = η_{θₖ}(yᵏ + Wᵏ(x − D yᵏ)), Wᵏ ∈ R^{n×m}, which
  couples Sᵏ = I − WᵏD to W_eᵏ = Wᵏ as their analysis of convergence asks; half the parameters.

Support selection (``support_selection=True``, LISTA-SS/CPSS of Chen et al. 2018) lets the largest
pᵏ = min((k+1)·``support_step``, ``support_max``) fraction of the entries |vᵢ| > θₖ of each layer's
input v pass unthresholded: they are trusted as support, so their amplitudes are not shrunk.

The thresholds enter through the family's own proximal map: layer k applies ``problem.prox(v, αₖ)``,
the soft threshold at θₖ = λ·αₖ for the lasso. Every layer starts as ISTA's step (Wᵏ = W_e = Dᵀ/L,
Sᵏ = S, αₖ = 1/L), so an untrained LISTA *is* ISTA with step 1/L iterate for iterate (with support
selection off). The family must be composite with a linear model: ``smooth_gradient``, ``prox`` and a
``dictionary`` D, as :class:`~amorctl.problems.Lasso` has.

LISTA is usually trained by regression onto the codes that generated the signals (``loss.kind:
regression`` with ``loss.target: planted``), not onto the λ-biased lasso solutions.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from amorctl.gradients import UnrollEstimator
from amorctl.optimizers import is_composite
from amorctl.problems import Problem

Variant = Literal["untied", "coupled"]


class LISTA(nn.Module):
    """K learned ISTA layers ŷᵏ⁺¹ = η_{θₖ}(…) from ŷ⁰ = 0 (see the module docstring for the variants).

    Args:
        problem: a composite family with a ``dictionary`` D ``(m, n)``, ``lipschitz`` L = ‖D‖₂² and ``prox``.
        steps: K, the number of layers.
        variant: ``untied`` or ``coupled``.
        support_selection: pass the largest entries of each layer's input unthresholded (LISTA-SS / CPSS).
        support_step, support_max: layer k (0-based) trusts the top min((k+1)·support_step, support_max)
            fraction of the n entries (those above the threshold).

    Attributes:
        inference_steps: the layers run in evaluation mode, K by default; fewer runs the first layers,
            more is impossible (the layers are untied, there is none to repeat): ``max_inference_steps``.
        estimator: the gradient estimator through the layers (``truncated`` cuts the chain H layers
            before the end; ``first_order`` treats each layer's update as constant in its input iterate,
            so derivatives pass through the layers as the identity, as first-order MAML does with ∇f).
    """

    def __init__(
        self,
        problem: Problem,
        steps: int,
        variant: Variant = "coupled",
        support_selection: bool = False,
        support_step: float = 0.012,
        support_max: float = 0.13,
    ):
        super().__init__()
        require_linear_composite(problem)
        if steps < 1:
            raise ValueError(f"model.steps must be a positive integer, got {steps!r}")
        if variant not in ("untied", "coupled"):
            raise ValueError(f"model.variant must be 'untied' or 'coupled', got {variant!r}")
        if not (0 < support_step <= 1 and 0 < support_max <= 1):
            raise ValueError(f"model.support_step and model.support_max must be fractions in (0, 1], "
                             f"got {support_step!r} and {support_max!r}")
        self.problem, self.steps, self.inference_steps, self.variant = problem, steps, steps, variant
        self.support_selection, self.support_step, self.support_max = support_selection, support_step, support_max
        dictionary = problem.dictionary  # float64; the initial weights are rounded once, to the default dtype
        dtype, n = torch.get_default_dtype(), dictionary.shape[1]
        lipschitz = float(problem.lipschitz)
        self.register_buffer("dictionary", dictionary.to(dtype))
        encoder = (dictionary.T / lipschitz).to(dtype).expand(steps, -1, -1).clone()
        self.encoders = nn.Parameter(encoder)  # W_eᵏ (untied) or Wᵏ (coupled), (K, n, m)
        if variant == "untied":
            identity = torch.eye(n, dtype=dictionary.dtype, device=dictionary.device)
            mutual = identity - dictionary.T @ dictionary / lipschitz
            self.mutual = nn.Parameter(mutual.to(dtype).expand(steps, -1, -1).clone())  # Sᵏ, (K, n, n)
        else:
            self.mutual = None
        self.prox_steps = nn.Parameter(torch.full((steps,), 1.0 / lipschitz))  # αₖ: threshold θₖ = λαₖ
        self.estimator = UnrollEstimator()

    @property
    def max_inference_steps(self) -> int:
        """The most layers evaluation can run: K (untied layers have no rule to repeat)."""
        return self.steps

    def layer_input(self, k: int, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """vᵏ = W_eᵏx + Sᵏyᵏ (untied) or yᵏ + Wᵏ(x − Dyᵏ) (coupled), ``(B, n)``, before the threshold.

        Written as yᵏ + uᵏ(yᵏ): with a first-order estimator the update uᵏ sees a detached yᵏ.
        """
        inner = y.detach() if self.estimator.detach_gradient else y
        encoder = self.encoders[k]
        if self.variant == "coupled":
            return y + (x - inner @ self.dictionary.T) @ encoder.T
        if inner is y:
            return x @ encoder.T + y @ self.mutual[k].T
        return y + x @ encoder.T + inner @ self.mutual[k].T - inner

    def support_size(self, k: int) -> int:
        """How many entries layer k (0-based) may trust: ⌊min((k+1)·support_step, support_max)·n⌋, at least 1."""
        return max(1, math.floor(min((k + 1) * self.support_step, self.support_max) * self.dictionary.shape[1]))

    def layer(self, k: int, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """yᵏ⁺¹ from yᵏ: the family's prox at the learned step αₖ; with support selection, the largest
        entries of vᵏ that survive the threshold pass unshrunk."""
        v = self.layer_input(k, y, x)
        out = self.problem.prox(v, self.prox_steps[k])
        if not self.support_selection:
            return out
        top = v.detach().abs().topk(self.support_size(k), dim=-1).indices
        trusted = torch.zeros_like(v, dtype=torch.bool).scatter(-1, top, True) & (out != 0)
        return torch.where(trusted, v, out)

    def iterates(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """[ŷ⁰ = 0, ŷ¹, ..., ŷ^steps], each ``(B, n)``; ``steps`` is K in training, ``inference_steps`` in eval."""
        if steps is None:
            steps = self.steps if self.training else self.inference_steps
        if steps > self.steps:
            raise ValueError(f"LISTA has {self.steps} untied layers (model.steps); it cannot run {steps}")
        y = x.new_zeros(x.shape[0], self.dictionary.shape[1])
        out = [y]
        for k in range(steps):
            y = self.layer(k, self.estimator.iterate(y, k, self.steps), x)
            out.append(y)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ŷθ(x) = the last layer's output, ``(B, n)``."""
        return self.iterates(x)[-1]

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, variant={self.variant}, support_selection={self.support_selection}, "
                f"estimator={self.estimator.name}")


def require_linear_composite(problem: Problem) -> None:
    """Raise ``ValueError`` naming ``model.kind`` unless ``problem`` is a composite family with a dictionary."""
    name = type(problem).__name__
    if not is_composite(problem):
        raise ValueError(f"model.kind='lista' needs a composite problem family with smooth_gradient and prox "
                         f"(e.g. lasso); {name} has no such split")
    if getattr(problem, "dictionary", None) is None or getattr(problem, "lipschitz", None) is None:
        raise ValueError(f"model.kind='lista' needs a family with a linear model ½‖D y − x‖² (attributes "
                         f"dictionary and lipschitz, e.g. lasso); {name} has none")

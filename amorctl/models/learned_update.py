"""A learned update rule (eq. 2.2): ŷᵗ = ŷᵗ⁻¹ + s · g_θ(hᵗ⁻¹, ŷᵗ⁻¹, ∇f(ŷᵗ⁻¹; x)), a recurrent cell.

:class:`LearnedUpdate` is the coordinatewise learned optimizer of Andrychowicz et al. (2016): one small
recurrent cell (LSTM or GRU) shared by every coordinate of y — coordinate i of every problem in the batch is
one batch element of the cell, with its own hidden state — so the model has the same parameters for any
dimension n and treats the coordinates symmetrically (permuting them permutes its updates). The cell reads
the gradient through the log-and-sign preprocessing of that paper's appendix (p = 10),

    ∇ ↦ (log|∇| / p, sign ∇)  if |∇| ≥ e⁻ᵖ,   (−1, eᵖ ∇)  otherwise,

optionally with the iterate's coordinate ŷᵢ, and a linear head maps its output to the coordinate's update,
scaled by one learned positive factor s = exp(log s) (``output="update"``). With ``output="step_size"`` the head's
output is instead a log step size of the coordinate, ŷᵗ = ŷᵗ⁻¹ − s · exp(g_out) ⊙ ∇f (a learned, state-dependent
per-coordinate step, as the direction-and-step outputs of Wichrowska et al. 2017): the cell then only has to
learn how far to go, not to rebuild ∇f's magnitude from its logarithm, and a constant output is exactly
``unrolled_gd``'s step. The start ŷ⁰ is a learned constant or an amortized
prediction, as for :class:`~amorctl.models.UnrolledGradientDescent`; box families are projected onto the box
after each update. Composite families (f = g + h, e.g. the lasso) are refused: an update that knows
neither h nor its proximal map cannot stay on the non-smooth part's structure (use ``unrolled_gd``'s
proximal steps or ``lista`` there).

Which derivatives the unroll keeps is the model's ``estimator`` (:mod:`amorctl.gradients`): ``bptt``
differentiates everything, second-order terms through ∇f included; ``first_order`` detaches the gradient
input; ``truncated`` cuts the iterate and the hidden state H steps before the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from amorctl.gradients import UnrollEstimator
from amorctl.models.registry import initial_model, register_model
from amorctl.models.unrolled import LearnedStart
from amorctl.optimizers import is_composite
from amorctl.problems import Problem
from amorctl.schema import PositiveFloat, PositiveInt

PREPROCESS_P = 10.0
"""p of the log-and-sign gradient preprocessing (Andrychowicz et al. 2016, appendix A)."""

CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}


def log_sign_features(gradient: torch.Tensor, p: float = PREPROCESS_P) -> torch.Tensor:
    """The gradient's log-and-sign preprocessing, ``(..., 2)``: (log|g|/p, sign g) where |g| ≥ e⁻ᵖ, else (−1, eᵖ g).

    Magnitudes spanning many orders become inputs of order one; tiny gradients keep a linear, signed input.
    """
    threshold = math.exp(-p)
    large = gradient.abs() >= threshold
    magnitude = torch.where(large, gradient.abs().clamp_min(threshold).log() / p, -torch.ones_like(gradient))
    direction = torch.where(large, gradient.sign(), gradient / threshold)
    return torch.stack([magnitude, direction], dim=-1)


class LearnedUpdate(LearnedStart):
    """ŷθ(x) = ŷᴷ of K updates by a coordinatewise recurrent cell from a learned start (eq. 2.2).

    Args:
        problem: the family whose gradient the cell reads (smooth, or smooth on a box).
        steps: K, the number of updates unrolled in training.
        initial: an ``nn.Module`` mapping contexts to ŷ⁰, or ``None`` for a learned constant θ.
        cell: ``lstm`` or ``gru``.
        cell_size: the hidden size of each layer of the cell.
        cell_layers: stacked cell layers.
        iterate_input: also feed the iterate's coordinate ŷᵢ to the cell (besides the preprocessed ∇ᵢf).
        output_scale: the initial value of the learned scale s of the cell's output.
        output: ``update`` (the cell's output is the step, eq. 2.2 as in Andrychowicz et al.) or ``step_size``
            (the cell's output is a log step size along −∇f per coordinate).

    Attributes:
        inference_steps: the number of updates run in evaluation mode (K by default; the cell continues).
        estimator: the gradient estimator of the unroll (full backpropagation through time by default).
    """

    def __init__(
        self,
        problem: Problem,
        steps: int,
        initial: nn.Module | None,
        cell: Literal["lstm", "gru"] = "lstm",
        cell_size: int = 20,
        cell_layers: int = 2,
        iterate_input: bool = False,
        output_scale: float = 0.1,
        output: Literal["update", "step_size"] = "update",
    ):
        super().__init__()
        if is_composite(problem):
            raise ValueError(f"model.kind 'learned_update' needs a smooth objective, but {type(problem).__name__} is "
                             "composite (f = g + h) and a learned update without h's proximal map ignores its "
                             "structure; use model.kind: unrolled_gd (proximal steps)")
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if not (output_scale > 0 and math.isfinite(output_scale)):
            raise ValueError(f"output_scale must be positive and finite, got {output_scale!r}")
        self.problem, self.steps, self.inference_steps = problem, steps, steps
        self.init_start(problem, initial)
        self.cell_kind, self.iterate_input, self.output = cell, iterate_input, output
        inputs = 3 if iterate_input else 2
        self.cells = nn.ModuleList(CELLS[cell](inputs if i == 0 else cell_size, cell_size) for i in range(cell_layers))
        self.head = nn.Linear(cell_size, 1)
        self.log_output_scale = nn.Parameter(torch.tensor(math.log(output_scale)))
        self.estimator = UnrollEstimator()

    def initial_state(self, rows: int, like: torch.Tensor) -> list[torch.Tensor]:
        """Zero hidden states for ``rows`` coordinates: per layer h (GRU) or h and c (LSTM)."""
        size = self.cells[0].hidden_size
        per_layer = 2 if self.cell_kind == "lstm" else 1
        return [like.new_zeros(rows, size) for _ in range(per_layer * len(self.cells))]

    def cell_step(self, inputs: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One step of the stacked cell on ``(rows, inputs)`` features: the head's output ``(rows,)`` and new state."""
        new_state, h = [], inputs
        per_layer = len(state) // len(self.cells)
        for i, cell in enumerate(self.cells):
            layer = state[i * per_layer:(i + 1) * per_layer]
            if self.cell_kind == "lstm":
                h, c = cell(h, (layer[0], layer[1]))
                new_state += [h, c]
            else:
                h = cell(h, layer[0])
                new_state.append(h)
        return self.head(h).squeeze(-1), new_state

    def iterates(self, x: torch.Tensor, steps: int | None = None) -> list[torch.Tensor]:
        """[ŷ⁰, ..., ŷ^steps], each ``(B, n)``; ``steps`` defaults to K in training, ``inference_steps`` in eval."""
        if steps is None:
            steps = self.steps if self.training else self.inference_steps
        estimator = self.estimator
        y = self.initial_iterate(x)
        batch, n = y.shape
        state = self.initial_state(batch * n, y)
        scale = self.log_output_scale.exp()
        out = [y]
        for t in range(steps):
            y = estimator.iterate(y, t, self.steps)
            state = [estimator.iterate(s, t, self.steps) for s in state]
            gradient = self.problem.gradient(y, x)
            if estimator.detach_gradient:
                gradient = gradient.detach()
            features = log_sign_features(gradient)
            if self.iterate_input:
                features = torch.cat([features, y.unsqueeze(-1)], dim=-1)
            update, state = self.cell_step(features.reshape(batch * n, -1), state)
            update = update.view(batch, n)
            y = y - scale * update.exp() * gradient if self.output == "step_size" else y + scale * update
            if self.problem.bounds is not None:
                y = y.clamp(*self.problem.bounds)
            out.append(y)
        return out

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, inference_steps={self.inference_steps}, output={self.output}, "
                f"iterate_input={self.iterate_input}, estimator={self.estimator.name}")


def learned_update(
    problem: Problem,
    *,
    steps: PositiveInt = 10,
    cell: Literal["lstm", "gru"] = "lstm",
    cell_size: PositiveInt = 20,
    cell_layers: PositiveInt = 2,
    iterate_input: bool = False,
    output_scale: PositiveFloat = 0.1,
    output: Literal["update", "step_size"] = "update",
    init: Literal["constant", "mlp"] = "mlp",
    hidden_sizes: Sequence[PositiveInt] = (256, 256),
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu",
    projection: Literal["auto", "none", "tanh"] = "auto",
) -> LearnedUpdate:
    """The learned update of eq. 2.2 (``model.kind: learned_update``): ``steps`` updates by a coordinatewise cell.

    ``cell``, ``cell_size``, ``cell_layers``: the recurrent cell shared by all coordinates; ``iterate_input``
    adds ŷᵢ to its inputs; ``output_scale`` is the initial learned scale of its output; ``output``: ``update``
    (ŷ + s·g_out) or ``step_size`` (ŷ − s·exp(g_out)⊙∇f, a learned per-coordinate step). ``init``,
    ``hidden_sizes``, ``activation``, ``projection``: the start, as for ``unrolled_gd``.
    """
    initial = initial_model(problem, init, hidden_sizes=hidden_sizes, activation=activation, projection=projection)
    return LearnedUpdate(problem, steps, initial, cell, cell_size, cell_layers, iterate_input, output_scale, output)


register_model("learned_update", learned_update)

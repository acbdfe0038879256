"""Direct amortization: fit ŷθ(x) by gradient descent on a loss over fresh contexts x ~ p(x).

Each step draws a new batch of contexts (the seed blog's "keep sampling new a's on the fly"),
predicts ŷθ(x) and descends the objective loss (eq. 2.10), the regression loss (eq. 2.9, which
calls the problem's reference solver on the batch) or their weighted mix.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from amorctl.losses import mixed_loss, objective_loss, regression_loss
from amorctl.problems import Problem

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class DirectAmortization:
    """The learner: a model, its optimizer and learning-rate schedule, and the context stream.

    Args:
        problem: the family whose contexts and objective are trained on.
        model: ŷθ, already on ``device``.
        loss: ``objective`` (eq. 2.10), ``regression`` (eq. 2.9) or ``mixed``.
        regression_weight: w of the mixed loss (1 − w)·objective + w·regression.
        optimizer, lr, weight_decay: the parameter optimizer.
        lr_schedule: ``constant`` or ``cosine`` (annealed to 0 over ``total_steps``).
        total_steps: length of the run, for the schedule.
        batch_size: fresh contexts per step.
        grad_clip: maximum gradient norm, or ``None``.
        seed: seeds the context stream.
        device: where contexts are drawn and the model runs.
    """

    def __init__(
        self,
        problem: Problem,
        model: nn.Module,
        *,
        loss: Literal["objective", "regression", "mixed"] = "objective",
        regression_weight: float = 0.5,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
        total_steps: int = 1000,
        batch_size: int = 1024,
        grad_clip: float | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ):
        self.problem, self.model = problem, model
        self.loss_kind, self.regression_weight = loss, regression_weight
        self.batch_size, self.grad_clip = batch_size, grad_clip
        self.device = torch.device(device)
        self.optimizer = OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)
        if lr_schedule == "cosine":
            schedule = lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))  # noqa: E731
        else:
            schedule = lambda step: 1.0  # noqa: E731
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.step = 0

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The configured loss of the model on contexts ``x``."""
        y_hat = self.model(x)
        if self.loss_kind == "objective":
            return objective_loss(self.problem, y_hat, x)
        with torch.no_grad():
            y_star = self.problem.solve(x)
        if self.loss_kind == "regression":
            return regression_loss(y_hat, y_star)
        return mixed_loss(self.problem, y_hat, x, y_star, self.regression_weight)

    def train_step(self) -> torch.Tensor:
        """One gradient step on a fresh batch of contexts; returns the detached loss."""
        x = self.problem.sample_contexts(self.batch_size, self.generator, self.device)
        loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.detach()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: parameters, optimizer, schedule, random streams."""
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "context_generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["context_generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

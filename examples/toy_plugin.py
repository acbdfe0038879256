"""A plugin outside the package: a problem family and an agent, registered when this module is imported.

    python scripts/train.py --import examples/toy_plugin.py "problem={name: shifted_sphere, dim: 4}"
    python scripts/train.py --import examples/toy_plugin.py --config examples/running_mean.yaml

The first trains the direct amortization agent on the new family; the second trains the new agent.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from amorctl.agents import Learner, register_agent
from amorctl.problems import Problem, register_problem, require
from amorctl.schema import PositiveFloat, PositiveInt, RunConfig, Schedule, ScheduleConfig


# ----------------------------------------------------------------------------- a problem family
class ShiftedSphere(Problem):
    """f(y; x) = ‖y − x‖² + 0.1‖y‖², x ~ U[-scale, scale]^dim; y* = x / 1.1."""

    def __init__(self, *, dim: int = 4, scale: float = 1.0):
        require(dim >= 1, "dim", "a positive integer", dim)
        require(scale > 0, "scale", "positive", scale)
        self.context_dim = self.solution_dim = dim
        self.scale = scale

    def sample_contexts(self, batch_size, generator, device="cpu"):
        u = torch.rand(batch_size, self.context_dim, generator=generator, device=generator.device)
        return ((2 * u - 1) * self.scale).to(device)

    def objective(self, y, x):
        return (y - x).square().sum(-1) + 0.1 * y.square().sum(-1)

    def solve(self, x):
        return x / 1.1


register_problem("shifted_sphere", ShiftedSphere)


# ------------------------------------------------------------------------------------- an agent
class RunningMeanTrain(ScheduleConfig):
    steps: PositiveInt = 200
    lr: PositiveFloat = 0.05
    log_every: PositiveInt = 50
    eval_every: PositiveInt = 100
    checkpoint_every: PositiveInt = 100


class RunningMeanConfig(RunConfig):
    """``agent: running_mean``: fit one vector θ to the mean of noisy samples by stochastic gradient steps."""

    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, "train.steps")

    agent: Literal["running_mean"] = "running_mean"
    name: str = "running_mean"
    dim: PositiveInt = 3
    train: RunningMeanTrain = Field(default_factory=RunningMeanTrain)

    def schedule(self) -> Schedule:
        t = self.train
        return Schedule(t.steps, t.log_every, t.eval_every, t.checkpoint_every, t.keep_checkpoints, t.max_wall_seconds)


class RunningMean(Learner):
    """θ ← θ − lr (θ − s) for samples s ~ N(μ, I) with a fixed μ = (1, 2, …, dim)."""

    def __init__(self, dim: int, lr: float, seed: int, device: torch.device):
        self.mean = torch.arange(1, dim + 1, dtype=torch.float32, device=device)
        self.theta = torch.zeros(dim, device=device)
        self.lr = lr
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.progress = 0

    def advance(self, units: int) -> dict[str, torch.Tensor]:
        for _ in range(units):
            sample = self.mean + torch.randn(self.mean.shape, generator=self.generator, device=self.mean.device)
            self.theta -= self.lr * (self.theta - sample)
            self.progress += 1
        return {"loss/train": (self.theta - self.mean).square().sum()}

    def evaluate(self) -> dict[str, float]:
        return {"distance": (self.theta - self.mean).norm().item()}

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta}

    def state_dict(self) -> dict[str, Any]:
        return {"theta": self.theta.clone(), "step": self.progress, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.theta.copy_(state["theta"])
        self.progress = state["step"]
        self.generator.set_state(state["generator"])

    def policy(self):
        return lambda x: self.theta.expand(x.shape[0], -1)


def build_running_mean(config: RunningMeanConfig, device: torch.device, inference: bool = False) -> RunningMean:
    return RunningMean(config.dim, config.train.lr, config.seed, device)


register_agent("running_mean", RunningMeanConfig, build_running_mean)

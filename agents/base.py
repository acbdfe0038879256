"""The learner protocol that the one run loop drives, and the agent registry that configs name.

A learner is anything that trains by advancing a counter of progress (optimizer steps for direct
amortization, environment transitions for off-policy agents). The run loop
(:func:`amorctl.run.loop.train`) owns everything around it: device, run directory, resume,
TensorBoard, the progress bar, the log/eval/checkpoint schedule, early stops, the NaN stop and the
final metrics. A new agent is one module that subclasses :class:`Learner`, defines its config (a
:class:`~amorctl.schema.RunConfig`) and calls :func:`register_agent`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from amorctl.eval.rollouts import run_episodes
from amorctl.eval.seeds import periodic_eval_seed
from amorctl.registry import Registry
from amorctl.schema import RunConfig


class Learner(ABC):
    """What the run loop drives.

    Attributes:
        progress: units of training done so far (the schedule's unit); restored by :meth:`load_state_dict`.
        overshoot: how far past the schedule's total a finished run may stand (a vectorized step of N
            copies adds N transitions at once, so N − 1 for off-policy learners, 0 for step-wise ones).
    """

    progress: int = 0
    overshoot: int = 0

    @abstractmethod
    def advance(self, units: int) -> dict[str, torch.Tensor]:
        """Train for about ``units`` more units; returns scalar tensors named as TensorBoard tags.

        May stop early when a loss becomes non-finite, so that the run loop's check names its step.
        """

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """A periodic evaluation of the current model or policy; keys are logged under ``eval/``.

        Each call is the next in a sequence the learner keeps in its state (seeds never repeat).
        """

    def final_metrics(self) -> dict[str, Any]:
        """The held-out metrics written to ``eval/metrics.json`` when training ends (default: an evaluation)."""
        return self.evaluate()

    @abstractmethod
    def finite_quantities(self) -> dict[str, torch.Tensor]:
        """Tensors that must stay finite (losses, parameters, optimizer moments), in the order a
        divergence spreads, under the names a NaN report uses."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (parameters, optimizers, counters, random streams)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; settings that may change on resume keep the learner's new values."""

    @abstractmethod
    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The trained model or policy, ready to call on a batch of contexts or observations."""

    def on_checkpoint(self) -> None:  # noqa: B027 (a hook; most learners need nothing here)
        """Called after each checkpoint is written (e.g. to restart episodes that a checkpoint does not hold)."""

    def close(self) -> None:  # noqa: B027 (a hook; most learners hold nothing)
        """Release environments and other resources."""


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent: its config schema and how to build its learner from a validated config.

    ``build(config, device, inference)`` returns the :class:`Learner`; with ``inference=True`` it may
    skip what only training needs (a full replay buffer, training environments), for :func:`amorctl.load_run`.
    """

    config: type[RunConfig]
    build: Callable[[Any, torch.device, bool], Learner]


class PeriodicEvaluation:
    """Deterministic evaluations of a policy on separate environment copies, for learners that have them.

    The k-th evaluation plays ``eval_episodes`` episodes seeded as
    :func:`~amorctl.eval.seeds.periodic_eval_seed` says, so no two evaluations repeat a seed; the counter,
    the latest result and the progress it was made at go into checkpoints (:meth:`evaluation_state`).
    A learner calls :meth:`_init_evaluation` in its constructor and may override :meth:`_evaluation`
    (e.g. to play an expert on the same seeds).
    """

    eval_env: Any
    eval_episodes: int
    seed: int

    def _init_evaluation(self, eval_env: Any, eval_episodes: int, seed: int) -> None:
        self.eval_env, self.eval_episodes, self.seed = eval_env, eval_episodes, seed
        self.evaluations = 0
        self.last_eval: dict[str, Any] = {}
        self.last_eval_at: int | None = None

    def _evaluation(self, seed: int) -> dict[str, Any]:
        """One evaluation's result: :func:`~amorctl.eval.rollouts.run_episodes` of the deterministic policy."""
        return run_episodes(self.policy(), self.eval_env, self.eval_episodes, seed)  # type: ignore[attr-defined]

    def evaluate(self) -> dict[str, float]:
        """The next evaluation; its numbers (mean and std of return and length, ...) as TensorBoard scalars."""
        if self.eval_env is None:
            raise RuntimeError("this learner was built without an evaluation environment (inference only)")
        self.last_eval = self._evaluation(periodic_eval_seed(self.seed, self.evaluations, self.eval_episodes))
        self.evaluations += 1
        self.last_eval_at = self.progress  # type: ignore[attr-defined]
        return {key: float(value) for key, value in self.last_eval.items()
                if isinstance(value, float | int) and not isinstance(value, bool) and key != "episodes"}

    def final_metrics(self) -> dict[str, Any]:
        """The evaluation of the final policy (with its per-episode seeds, returns and lengths): the latest
        one when it was made at this progress, else a new one."""
        if self.last_eval_at != self.progress:  # type: ignore[attr-defined]
            self.evaluate()
        return dict(self.last_eval)

    def evaluation_state(self) -> dict[str, Any]:
        """The evaluation counter, latest result and its progress (lists and numbers: loadable with weights_only)."""
        return {"evaluations": self.evaluations, "last_eval": dict(self.last_eval), "last_eval_at": self.last_eval_at}

    def load_evaluation_state(self, state: dict[str, Any]) -> None:
        self.evaluations, self.last_eval = state["evaluations"], dict(state["last_eval"])
        self.last_eval_at = state["last_eval_at"]


def parameters_of(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module``'s parameters under the names a NaN report uses: ``parameter '<prefix><name>'``."""
    return {f"parameter '{prefix}{name}'": parameter for name, parameter in module.named_parameters()}


def optimizer_state_of(optimizer: torch.optim.Optimizer, prefix: str = "") -> dict[str, torch.Tensor]:
    """The floating-point state tensors of ``optimizer`` (Adam's moments, ...): ``optimizer state '<prefix>i.key'``."""
    found = {}
    for index, state in enumerate(optimizer.state.values()):
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and key != "step":
                found[f"optimizer state '{prefix}{index}.{key}'"] = value
    return found


AGENTS: Registry[AgentSpec] = Registry("agent", "agent")


def register_agent(name: str, config: type[RunConfig], build: Callable[[Any, torch.device, bool], Learner]) -> None:
    """Make an agent available to configs as ``agent: <name>``.

    ``config`` must declare ``agent: Literal[<name>]`` (plus its own sections); ``build`` is called
    with the validated config, the resolved device and whether the learner is for inference only.
    """
    if not (isinstance(config, type) and issubclass(config, RunConfig)):
        raise TypeError(f"register_agent({name!r}, ...) needs a subclass of amorctl.schema.RunConfig")
    AGENTS.register(name, AgentSpec(config, build))

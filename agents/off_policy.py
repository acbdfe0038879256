"""The run-side shell of an off-policy agent: training and evaluation environments around an algorithm.

An off-policy algorithm (TD3 today) collects transitions from a :class:`~amorctl.envs.BatchedEnv` of
N copies into its replay buffer and updates as it goes. :class:`OffPolicyLearner` adapts any such
algorithm (``collect_and_train``, ``predict``, ``state_dict``, ``restart_episodes``, ``finite_quantities``)
to the :class:`~amorctl.agents.base.Learner` protocol: periodic deterministic evaluations on separate
environments with seeds that never repeat, the episode statistics as TensorBoard tags, and the
evaluation counter in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from amorctl.agents.base import Learner
from amorctl.envs import BatchedEnv
from amorctl.eval.rollouts import run_episodes
from amorctl.eval.seeds import periodic_eval_seed
from amorctl.schema import FiniteFloat, PositiveInt, ScheduleConfig

_TAGS = {
    "charts/episodic_return": "train/episodic_return",
    "charts/episodic_length": "train/episodic_length",
    "losses/qf_loss": "loss/critic",
    "losses/actor_loss": "loss/actor",
    "losses/qf1_values": "train/q_mean",
}
"""The algorithm's CleanRL metric names → amorctl's TensorBoard tags."""


class OffPolicyTrainConfig(ScheduleConfig):
    """The ``train`` section of off-policy runs; progress is counted in environment transitions."""

    total_steps: PositiveInt = 100_000
    """Environment transitions to collect (over all N copies)."""
    eval_every: PositiveInt = 5000
    eval_episodes: PositiveInt = 10
    eval_envs: PositiveInt = 5
    save_replay_buffer: bool = False
    """Store the replay buffer in checkpoints, for an exactly equal continuation after ``--resume``."""
    target_return: FiniteFloat | None = None
    """Stop once the mean evaluation return reaches this (time-to-solve runs)."""


class OffPolicyAlgorithm(Protocol):
    """What :class:`OffPolicyLearner` needs of an algorithm (see :class:`~amorctl.agents.TD3`)."""

    env: BatchedEnv
    num_timesteps: int

    def collect_and_train(self, num_env_steps: int) -> dict[str, torch.Tensor]: ...
    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor: ...
    def finite_quantities(self) -> dict[str, torch.Tensor]: ...
    def state_dict(self, include_replay_buffer: bool = False) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def restart_episodes(self) -> None: ...


class OffPolicyLearner(Learner):
    """An off-policy algorithm with its evaluation environment, driven by the run loop.

    Args:
        algorithm: the agent; owns the training environment (closed with the learner).
        eval_env: separate copies for deterministic evaluations (``None`` for inference only).
        eval_episodes: episodes per evaluation.
        seed: the run's seed; the k-th evaluation's episodes are seeded as
            :func:`~amorctl.eval.seeds.periodic_eval_seed` says.
        save_replay_buffer: keep the replay buffer in checkpoints.
    """

    def __init__(
        self,
        algorithm: OffPolicyAlgorithm,
        eval_env: BatchedEnv | None,
        *,
        eval_episodes: int,
        seed: int,
        save_replay_buffer: bool = False,
    ):
        self.algorithm, self.eval_env = algorithm, eval_env
        self.eval_episodes, self.seed, self.save_replay_buffer = eval_episodes, seed, save_replay_buffer
        self.overshoot = algorithm.env.num_envs - 1
        self.evaluations = 0
        self.last_eval: dict[str, Any] = {}
        self.last_eval_at: int | None = None

    @property
    def progress(self) -> int:
        """Environment transitions collected."""
        return self.algorithm.num_timesteps

    def advance(self, units: int) -> dict[str, torch.Tensor]:
        metrics = self.algorithm.collect_and_train(units)
        return {tag: metrics[name] for name, tag in _TAGS.items() if name in metrics}

    def evaluate(self) -> dict[str, float]:
        """Deterministic episodes of π(s) on the evaluation copies; mean and std of return and length."""
        if self.eval_env is None:
            raise RuntimeError("this learner was built without an evaluation environment (inference only)")
        seed = periodic_eval_seed(self.seed, self.evaluations, self.eval_episodes)
        self.last_eval = run_episodes(self.policy(), self.eval_env, self.eval_episodes, seed)
        self.evaluations += 1
        self.last_eval_at = self.progress
        return {key: value for key, value in self.last_eval.items() if isinstance(value, float)}

    def final_metrics(self) -> dict[str, Any]:
        """The evaluation of the final policy (with its per-episode seeds, returns and lengths): the latest
        one when it was made at this step, else a new one."""
        if self.last_eval_at != self.progress:
            self.evaluate()
        return dict(self.last_eval)

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        return self.algorithm.finite_quantities()

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Deterministic actions π(s) in [-1, 1] for observations (N, observation_dim)."""
        return self.algorithm.predict

    def state_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm.state_dict(include_replay_buffer=self.save_replay_buffer),
            "evaluations": self.evaluations,
            "last_eval": dict(self.last_eval),  # lists and numbers: loadable with weights_only
            "last_eval_at": self.last_eval_at,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.algorithm.load_state_dict(state["algorithm"])
        self.evaluations, self.last_eval = state["evaluations"], dict(state["last_eval"])
        self.last_eval_at = state["last_eval_at"]

    def on_checkpoint(self) -> None:
        """Restart the training episodes: a checkpoint does not hold them, so a resumed run and an
        uninterrupted one continue from the same state."""
        self.algorithm.restart_episodes()

    def close(self) -> None:
        for env in (self.eval_env, self.algorithm.env):
            if env is not None:
                env.close()

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
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator

from amorctl.agents.base import Learner, PeriodicEvaluation
from amorctl.agents.experts import Expert, make_expert, validate_expert
from amorctl.agents.networks import build_actor, build_critic
from amorctl.agents.off_policy_algorithm import OffPolicyAlgorithm
from amorctl.envs import BatchedEnv
from amorctl.envs.kinds import copy_memory, make_env, validate_env_section
from amorctl.run.errors import ConfigError
from amorctl.schema import (
    FiniteFloat,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    RunConfig,
    Schedule,
    ScheduleConfig,
    Section,
    check_memory,
    constructor_schema,
    parameter_bytes,
    validate_section,
)

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

    RESUMABLE: ClassVar[tuple[str, ...]] = (
        "train.total_steps", "train.eval_episodes", "train.eval_envs", "train.save_replay_buffer",
        "train.target_return",
    )
    """The ``train`` keys a resume may change (the run's length, its evaluations and early stop)."""

    def schedule(self) -> Schedule:
        """The run loop's schedule, counted in transitions, stopping early at ``target_return``."""
        target = ("mean_return", self.target_return) if self.target_return is not None else None
        return Schedule(self.total_steps, self.log_every, self.eval_every, self.checkpoint_every,
                        self.keep_checkpoints, self.max_wall_seconds, target, total_key="train.total_steps",
                        target_key="train.target_return")


class WarmStartConfig(Section):
    """The ``warm_start`` section: behavioural cloning from an expert before the agent's own updates.

    The first ``steps`` transitions are the expert's, with Gaussian noise of std ``noise`` on its
    actions (they fill the replay buffer in place of random exploration; without noise the critics
    would see one action per state and learn nothing of how Q depends on it). Then the actor
    regresses onto the buffer's actions for ``imitation_steps`` minibatches (eq. 2.9; the noise
    averages out), the targets copy it, and the critics alone take ``critic_steps`` updates of the
    policy held fixed, so that the actor's first objective-loss steps (eq. 2.10) follow a critic of
    the cloned policy rather than a random one. Then the agent trains as usual.
    """

    expert: Any
    """An expert section (``kind``: ``run``, ``barzilai_borwein``, ``mpc``; see :mod:`amorctl.agents.experts`)."""
    steps: PositiveInt = 10_000
    """Expert transitions collected first (over all N copies)."""
    noise: NonNegativeFloat = 0.2
    """Std of the Gaussian noise on the expert's actions while collecting (clipped to [-1, 1])."""
    imitation_steps: PositiveInt = 5_000
    """Regression steps of the actor onto the expert's actions (the algorithm's batch size and learning rate)."""
    critic_steps: NonNegativeInt = 5_000
    """Critic-only updates after the imitation."""


@dataclass(frozen=True)
class WarmStart:
    """A validated warm start with its expert built (see :class:`WarmStartConfig`)."""

    expert: Expert
    steps: int
    noise: float
    imitation_steps: int
    critic_steps: int


class OffPolicyConfig(RunConfig):
    """Base of the configs of off-policy agents: ``env``, the algorithm's section and ``train``.

    A subclass names the algorithm class (``ALGORITHM``, an :class:`OffPolicyAlgorithm`) and its
    section (``SECTION``, e.g. ``td3``), declares ``agent: Literal[...]`` and the section's field; the
    section's keys, defaults and constraints are the algorithm constructor's.
    """

    ALGORITHM: ClassVar[type[OffPolicyAlgorithm]]
    SECTION: ClassVar[str]
    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, *OffPolicyTrainConfig.RESUMABLE)

    env: Any = Field(default_factory=lambda: {"kind": "gym"})
    train: OffPolicyTrainConfig = Field(default_factory=OffPolicyTrainConfig)
    warm_start: WarmStartConfig | None = None

    @model_validator(mode="after")
    def _check_sections(self) -> OffPolicyConfig:
        self.env = validate_env_section(self.env)
        schema = constructor_schema(self.ALGORITHM, skip=("env", "seed", "device"), name=f"{self.SECTION}Params")
        params = validate_section(schema, getattr(self, self.SECTION), self.SECTION).model_dump()
        setattr(self, self.SECTION, params)
        if params["buffer_size"] < self.env.num_envs:
            raise ConfigError(
                f"config key '{self.SECTION}.buffer_size' must hold one step of all env.num_envs={self.env.num_envs}"
                f" copies, got {params['buffer_size']}"
            )
        widths, policy = params["hidden_sizes"], params.get("policy", "mlp")
        with make_env(self.env, 1, torch.device("cpu")) as env:
            observation_dim, action_dim = env.observation_dim, env.action_dim
            try:
                networks = parameter_bytes(lambda: build_actor(env, widths, policy))
                networks += parameter_bytes(lambda: build_critic(env, widths, 2, policy))
            except ValueError as error:
                raise ConfigError(f"config key '{self.SECTION}.policy': {error}") from None
        copy = sum(copy_memory(self.env).values())
        check_memory({
            "the training copies (env.num_envs)": copy * self.env.num_envs,
            "the evaluation copies (train.eval_envs)": copy * self.train.eval_envs,
            f"the replay buffer ({self.SECTION}.buffer_size)":
                4 * params["buffer_size"] * (2 * observation_dim + action_dim + 2),
            f"the networks ({self.SECTION}.hidden_sizes)": 5 * networks,  # targets, gradients, Adam's moments
            f"a batch through the networks ({self.SECTION}.batch_size, {self.SECTION}.hidden_sizes)":
                4 * 8 * params["batch_size"] * max(widths, default=1),
        }, self.device)
        if self.warm_start is not None:
            if params["learning_starts"] > self.warm_start.steps:
                raise ConfigError(
                    f"config key '{self.SECTION}.learning_starts' ({params['learning_starts']}) exceeds "
                    f"'warm_start.steps' ({self.warm_start.steps}): the expert's transitions take the place of "
                    f"random exploration, so set learning_starts ≤ warm_start.steps"
                )
            self.warm_start.expert = validate_expert(self.warm_start.expert, self.env, "warm_start.expert")
        return self

    def algorithm_params(self) -> dict[str, Any]:
        """The algorithm's validated keyword arguments (its section)."""
        return getattr(self, self.SECTION)

    def schedule(self) -> Schedule:
        return self.train.schedule()


def build_off_policy(config: OffPolicyConfig, device: torch.device, inference: bool = False) -> OffPolicyLearner:
    """The configured algorithm on ``config.env`` with its evaluation copies; for inference, one copy and a
    one-step replay buffer."""
    num_envs = 1 if inference else config.env.num_envs
    params = config.algorithm_params()
    params = {**params, "buffer_size": num_envs} if inference else params
    train_env = make_env(config.env, num_envs, device)
    eval_env = warm_start = None
    try:
        eval_env = None if inference else make_env(config.env, config.train.eval_envs, device)
        algorithm = config.ALGORITHM(train_env, **params, seed=config.seed, device=device)
        section = config.warm_start
        if section is not None and not inference:
            warm_start = WarmStart(make_expert(section.expert, device), section.steps, section.noise,
                                   section.imitation_steps, section.critic_steps)
    except BaseException:
        for env in (train_env, eval_env):
            if env is not None:
                env.close()
        raise
    return OffPolicyLearner(algorithm, eval_env, eval_episodes=config.train.eval_episodes, seed=config.seed,
                            save_replay_buffer=config.train.save_replay_buffer, warm_start=warm_start)


class OffPolicyLearner(PeriodicEvaluation, Learner):
    """An off-policy algorithm with its evaluation environment, driven by the run loop.

    Args:
        algorithm: the agent; owns the training environment (closed with the learner).
        eval_env: separate copies for deterministic evaluations (``None`` for a learner built for inference
            only, which also skips a checkpoint's replay buffer).
        eval_episodes: episodes per evaluation.
        seed: the run's seed; the k-th evaluation's episodes are seeded as
            :func:`~amorctl.eval.seeds.periodic_eval_seed` says.
        save_replay_buffer: keep the replay buffer in checkpoints.
        warm_start: clone an expert first (:class:`WarmStartConfig`); ``None`` for none.
    """

    def __init__(
        self,
        algorithm: OffPolicyAlgorithm,
        eval_env: BatchedEnv | None,
        *,
        eval_episodes: int,
        seed: int,
        save_replay_buffer: bool = False,
        warm_start: WarmStart | None = None,
    ):
        self.algorithm, self.warm_start, self.save_replay_buffer = algorithm, warm_start, save_replay_buffer
        self.warm_started = False
        self.overshoot = algorithm.env.num_envs - 1
        self._init_evaluation(eval_env, eval_episodes, seed)

    @property
    def progress(self) -> int:
        """Environment transitions collected."""
        return self.algorithm.num_timesteps

    def advance(self, units: int) -> dict[str, torch.Tensor]:
        warm = self.warm_start
        if warm is not None and not self.warm_started:
            return self._warm_start(warm, units)
        metrics = self.algorithm.collect_and_train(units)
        return {tag: metrics[name] for name, tag in _TAGS.items() if name in metrics}

    def _warm_start(self, warm: WarmStart, units: int) -> dict[str, torch.Tensor]:
        """Collect the expert's transitions (up to ``units`` of them now); once all are in, clone and fit the
        critics (:class:`WarmStartConfig`)."""
        algorithm = self.algorithm
        def expert(obs: torch.Tensor) -> torch.Tensor:
            action = warm.expert(algorithm.env, obs).to(algorithm.device, torch.float32)
            noise = torch.randn(action.shape, device=algorithm.device, generator=algorithm.generator)
            return (action + warm.noise * noise).clamp_(-1.0, 1.0)

        metrics = algorithm.collect_and_train(min(units, warm.steps - algorithm.num_timesteps), behaviour=expert)
        found = {tag: metrics[name] for name, tag in _TAGS.items() if name in metrics}
        if algorithm.num_timesteps < warm.steps:
            return found
        for _ in range(warm.imitation_steps):
            loss = algorithm.imitation_step()
        algorithm.sync_targets()
        for _ in range(warm.critic_steps):
            algorithm.train_step(update_actor=False)
        self.warm_started = True
        metrics = algorithm.loss_metrics()
        return found | {tag: metrics[name] for name, tag in _TAGS.items() if name in metrics} | {
            "warm_start/imitation_loss": loss}

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        return self.algorithm.finite_quantities()

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Deterministic actions π(s) in [-1, 1] for observations (N, observation_dim)."""
        return self.algorithm.predict

    def state_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm.state_dict(include_replay_buffer=self.save_replay_buffer),
            **self.evaluation_state(),
            "warm_started": self.warm_started,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a learner for inference (no evaluation copies) skips the replay buffer."""
        algorithm = state["algorithm"]
        if self.eval_env is None:
            algorithm = {key: value for key, value in algorithm.items() if key != "replay_buffer"}
        self.algorithm.load_state_dict(algorithm)
        self.load_evaluation_state(state)
        self.warm_started = state.get("warm_started", False)

    def on_checkpoint(self) -> None:
        """Restart the training episodes: a checkpoint does not hold them, so a resumed run and an
        uninterrupted one continue from the same state."""
        self.algorithm.restart_episodes()

    def close(self) -> None:
        for env in (self.eval_env, self.algorithm.env):
            if env is not None:
                env.close()

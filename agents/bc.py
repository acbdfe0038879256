"""Behavioural cloning and DAgger: the regression loss (eq. 2.9) on policies, onto an expert's actions.

The policy πθ(s) is a fully-amortized model of the expert's decision rule a*(s): it is trained by
regression, E_s ‖πθ(s) − a*(s)‖², on states s the expert labels. With ``beta_decay = 1`` the states
come from the expert's own episodes (behavioural cloning); below 1 it is DAgger (Ross, Gordon and
Bagnell 2011): in round r (every ``round_steps`` transitions) each step is taken by the expert with
probability β_r = beta_decay^r and by the learner otherwise, every visited state is labelled by the
expert, and the policy is trained on the aggregated data set of all rounds.

Experts are the registry entries of :mod:`amorctl.agents.experts` (``expert.kind``: a trained run, the
Barzilai–Borwein step size or, in ``update`` mode, its gradient step as coordinate updates, the pendulum MPC
controller). The policy is a flat network or a per-row one (``policy: rowwise | rowwise_odd``, as TD3's), e.g.
the coordinatewise learned optimizer of ``configs/dagger_opt_quadratic_rowwise.yaml``, DAgger-trained from
Barzilai–Borwein's update on an :class:`~amorctl.envs.IterateEnv` with ``observation_layout="rows"``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal

import torch
from annotated_types import Gt, Le
from pydantic import Field, model_validator

from amorctl.agents.base import Learner, PeriodicEvaluation, optimizer_state_of, parameters_of, register_agent
from amorctl.agents.experts import Expert, make_expert, validate_expert
from amorctl.agents.networks import PolicyKind, build_actor
from amorctl.agents.off_policy import OffPolicyTrainConfig
from amorctl.envs import BatchedEnv
from amorctl.envs.kinds import copy_memory, make_env, validate_env_section
from amorctl.eval.rollouts import run_episodes
from amorctl.losses import regression_loss
from amorctl.run.errors import ConfigError
from amorctl.schema import (
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunConfig,
    Schedule,
    check_memory,
    constructor_schema,
    parameter_bytes,
    validate_section,
)


# -------------------------------------------------------------------------------------- learner
class BehaviouralCloning(PeriodicEvaluation, Learner):
    """A policy regressed onto an expert's actions, on the expert's states (BC) or its own (DAgger).

    Args:
        env: the environment states are collected in (N copies).
        expert: labels every visited state (each label is one expert query).
        eval_env: copies for deterministic evaluations of policy and expert (``None`` for inference).
        hidden_sizes: hidden widths of the policy (a ReLU MLP ending in tanh onto [-1, 1]).
        policy: ``"mlp"`` (one network on the flat observation), ``"rowwise"`` (one small network applied to
            every row of an environment with a :class:`~amorctl.envs.RowLayout`, e.g. a coordinatewise learned
            optimizer) or ``"rowwise_odd"`` (the same, odd in the rows' features); see
            :func:`~amorctl.agents.networks.build_actor`.
        loss: ``"squared"``, the regression loss ‖πθ(s) − a*(s)‖² (eq. 2.9), or ``"relative"``, the same divided by
            ‖a*(s)‖² + ``relative_floor``²: every state's error counts relative to the size of its expert
            action. For an expert whose actions span orders of magnitude (a gradient step written as coordinate
            updates shrinks with the gap) the squared loss fits the large early steps and leaves the late small
            ones with relative errors of several per cent, which a chaotic rule such as Barzilai–Borwein's
            amplifies (``benchmarks/RESULTS.md``, RLQP, "Per-row DAgger").
        relative_floor: the action size below which ``relative`` errors count absolutely (policy-box units).
        learning_rate: Adam step size (at the start, with ``final_learning_rate``).
        final_learning_rate: anneal the step size linearly from ``learning_rate`` to this over
            ``total_steps`` transitions (precise imitation needs the step size to shrink: at a constant
            1e-3 the actions of the quadratic DAgger run stay ~3e-3 from the expert's); ``None`` keeps it
            constant.
        total_steps: the run's length in transitions (the annealing horizon; the run sets it).
        batch_size: labelled states per regression step.
        gradient_steps: regression steps per vectorized environment step.
        buffer_size: capacity of the aggregated data set (the oldest labels are overwritten beyond it).
        beta_decay: β_r = beta_decay^r, the probability that the expert acts in round r: 1 is behavioural
            cloning, below 1 DAgger.
        round_steps: transitions per DAgger round.
        eval_episodes: episodes per evaluation.
        seed: seeds initialisation, the expert/learner mixture, sampling and resets.
        save_dataset: keep the aggregated data set in checkpoints (exact resume).
        device: where the policy and the data set live.
    """

    def __init__(
        self,
        env: BatchedEnv,
        expert: Expert,
        eval_env: BatchedEnv | None,
        *,
        hidden_sizes: Sequence[PositiveInt] = (64, 64),
        policy: PolicyKind = "mlp",
        loss: Literal["squared", "relative"] = "squared",
        relative_floor: PositiveFloat = 1e-4,
        learning_rate: PositiveFloat = 1e-3,
        final_learning_rate: PositiveFloat | None = None,
        total_steps: PositiveInt = 1,
        batch_size: PositiveInt = 256,
        gradient_steps: NonNegativeInt = 1,
        buffer_size: PositiveInt = 1_000_000,
        beta_decay: Annotated[float, Gt(0.0), Le(1.0)] = 1.0,
        round_steps: PositiveInt = 1000,
        eval_episodes: int = 10,
        seed: int = 0,
        save_dataset: bool = False,
        device: torch.device | str = "cpu",
    ):
        self.env, self.expert = env, expert
        self.device = torch.device(device)
        self.learning_rate, self.batch_size, self.gradient_steps = learning_rate, batch_size, gradient_steps
        self.final_learning_rate, self.total_steps = final_learning_rate, total_steps
        self.beta_decay, self.round_steps = beta_decay, round_steps
        self.loss, self.relative_floor = loss, relative_floor
        self.save_dataset = save_dataset
        self._init_evaluation(eval_env, eval_episodes, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = build_actor(env, hidden_sizes, policy).to(self.device)
        self.optimizer = torch.optim.Adam(self.actor.parameters(), lr=learning_rate)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.obs_data = torch.zeros(buffer_size, env.observation_dim, device=self.device)
        self.action_data = torch.zeros(buffer_size, env.action_dim, device=self.device)
        self.size = self.pos = 0
        self.progress = self.expert_queries = 0
        self.overshoot = env.num_envs - 1
        self.last_loss = torch.zeros((), device=self.device)
        self._obs: torch.Tensor | None = None

    @property
    def beta(self) -> float:
        """The probability that the expert acts in the current round."""
        return self.beta_decay ** (self.progress // self.round_steps)

    def advance(self, units: int) -> dict[str, torch.Tensor]:
        """Collect about ``units`` transitions (N per step), labelling each state and regressing as it goes."""
        env, n = self.env, self.env.num_envs
        obs = self._obs if self._obs is not None else self._reset_env()
        for _ in range((units + n - 1) // n):
            with torch.no_grad():
                label = self.expert(env, obs).to(self.device, torch.float32)
                own = self.actor(obs)
            expert_acts = torch.rand(n, device=self.device, generator=self.generator) < self.beta
            self._store(obs, label)
            obs = env.step(torch.where(expert_acts.unsqueeze(-1), label, own))[0].to(self.device)
            self.progress += n
            self.expert_queries += n
            self._set_learning_rate()
            for _ in range(self.gradient_steps):
                self.train_step()
        self._obs = obs
        return {"loss/train": self.last_loss, "train/beta": torch.tensor(self.beta),
                "train/learning_rate": torch.tensor(self.optimizer.param_groups[0]["lr"]),
                "train/expert_queries": torch.tensor(float(self.expert_queries))}

    def _set_learning_rate(self) -> None:
        """The step size at the current progress: linear from ``learning_rate`` to ``final_learning_rate``."""
        if self.final_learning_rate is None:
            return
        fraction = min(self.progress / self.total_steps, 1.0)
        lr = self.learning_rate + fraction * (self.final_learning_rate - self.learning_rate)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _store(self, obs: torch.Tensor, label: torch.Tensor) -> None:
        rows = (self.pos + torch.arange(len(obs), device=self.device)) % len(self.obs_data)
        self.obs_data[rows], self.action_data[rows] = obs, label
        self.pos = (self.pos + len(obs)) % len(self.obs_data)
        self.size = min(self.size + len(obs), len(self.obs_data))

    def train_step(self) -> None:
        """One regression step (eq. 2.9, or its ``relative`` form) on a minibatch of the aggregated data set."""
        index = torch.randint(0, self.size, (self.batch_size,), device=self.device, generator=self.generator)
        label = self.action_data[index]
        errors = regression_loss(self.actor(self.obs_data[index]), label, reduction="none")
        if self.loss == "relative":
            errors = errors / (label.square().sum(-1) + self.relative_floor**2)
        loss = errors.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.last_loss = loss.detach()

    def _reset_env(self) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.device))
        return self.env.reset(seed=seed).to(self.device)

    def _evaluation(self, seed: int) -> dict[str, Any]:
        """Deterministic episodes of the policy and of the expert from the same seeds, and the queries so far."""
        result = super()._evaluation(seed)
        expert = run_episodes(lambda obs: self.expert(self.eval_env, obs), self.eval_env, self.eval_episodes, seed)
        return {**result, "expert_mean_return": expert["mean_return"], "expert_queries": self.expert_queries}

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        return {"loss/train": self.last_loss, **parameters_of(self.actor, "actor."),
                **optimizer_state_of(self.optimizer, "actor.")}

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Deterministic actions πθ(s) in [-1, 1]."""
        return torch.no_grad()(self.actor)

    def state_dict(self) -> dict[str, Any]:
        state = {"actor": self.actor.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "generator": self.generator.get_state(), "progress": self.progress,
                 "expert_queries": self.expert_queries, **self.evaluation_state(), "size": self.size,
                 "pos": self.pos}
        if self.save_dataset:
            state |= {"obs_data": self.obs_data[: self.size], "action_data": self.action_data[: self.size]}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; without a saved data set it starts empty (the learning rate stays ours)."""
        self.actor.load_state_dict(state["actor"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
        self.generator.set_state(state["generator"])
        self.progress, self.expert_queries = state["progress"], state["expert_queries"]
        self.load_evaluation_state(state)
        self.size = self.pos = 0
        if "obs_data" in state and self.eval_env is not None:
            self._store(state["obs_data"].to(self.device), state["action_data"].to(self.device))
            self.pos = state["pos"] % len(self.obs_data)
        self._obs = None

    def on_checkpoint(self) -> None:
        """Restart the episodes, which a checkpoint does not hold (a resumed run continues identically)."""
        self._obs = None

    def close(self) -> None:
        for env in (self.eval_env, self.env):
            if env is not None:
                env.close()


# ------------------------------------------------------------------------------------------ config
class BCConfig(RunConfig):
    """A behavioural-cloning / DAgger run: ``env``, ``expert`` (``expert.kind``), ``bc`` (the learner's
    keyword arguments) and ``train`` (progress in transitions, as off-policy runs count it)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = (
        *RunConfig.RESUMABLE, *OffPolicyTrainConfig.RESUMABLE, "bc.learning_rate", "bc.gradient_steps",
        "bc.final_learning_rate",
    )

    agent: Literal["bc"] = "bc"
    name: str = "bc"
    env: Any = Field(default_factory=lambda: {"kind": "gym"})
    expert: Any = Field(default_factory=dict)
    bc: dict = Field(default_factory=dict)
    train: OffPolicyTrainConfig = Field(default_factory=OffPolicyTrainConfig)

    @model_validator(mode="after")
    def _check_sections(self) -> BCConfig:
        self.env = validate_env_section(self.env)
        skip = ("env", "expert", "eval_env", "eval_episodes", "seed", "save_dataset", "device", "total_steps")
        self.bc = validate_section(constructor_schema(BehaviouralCloning, skip=skip, name="BCParams"), self.bc,
                                   "bc").model_dump()
        widths = self.bc["hidden_sizes"]
        with make_env(self.env, 1, torch.device("cpu")) as env:
            observation_dim, action_dim = env.observation_dim, env.action_dim
            try:
                policy = parameter_bytes(lambda: build_actor(env, widths, self.bc["policy"]))
            except ValueError as error:
                raise ConfigError(f"config key 'bc.policy': {error}") from None
        copy = sum(copy_memory(self.env).values())
        check_memory({
            "the training copies (env.num_envs)": copy * self.env.num_envs,
            "the evaluation copies (train.eval_envs)": copy * self.train.eval_envs,
            "the data set (bc.buffer_size)": 4 * self.bc["buffer_size"] * (observation_dim + action_dim),
            "the policy (bc.hidden_sizes)": 4 * policy,  # with gradients and Adam's two moments
            "a batch through the policy (bc.batch_size, bc.hidden_sizes)":
                4 * 8 * self.bc["batch_size"] * max(widths, default=1),
        }, self.device)
        self.expert = validate_expert(self.expert, self.env)
        return self

    def schedule(self) -> Schedule:
        return self.train.schedule()


def build_bc(config: BCConfig, device: torch.device, inference: bool = False) -> BehaviouralCloning:
    """The learner of a validated :class:`BCConfig`; for inference, one copy, no expert and no data set."""
    env = make_env(config.env, 1 if inference else config.env.num_envs, device)
    try:
        if inference:
            return BehaviouralCloning(env, _no_expert, None, **{**config.bc, "buffer_size": 1},
                                      total_steps=config.train.total_steps, seed=config.seed,
                                      device=device)
        expert = make_expert(config.expert, device)
        eval_env = make_env(config.env, config.train.eval_envs, device)
    except BaseException:
        env.close()
        raise
    return BehaviouralCloning(env, expert, eval_env, **config.bc, total_steps=config.train.total_steps,
                              eval_episodes=config.train.eval_episodes,
                              seed=config.seed, save_dataset=config.train.save_replay_buffer, device=device)


def _no_expert(env: BatchedEnv, obs: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("a behavioural-cloning learner loaded for inference has no expert")


register_agent("bc", BCConfig, build_bc)

"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto, van Hoof and Meger, 2018).

The actor π(s) is a fully-amortized model of argmax_a Q(s, a) over the box [-1, 1]: it is trained with
the objective loss (eq. 2.10) with f(a; s) = −Q_1(s, a). The critics regress onto the clipped double-Q
target with target-policy smoothing; the actor and the target networks move every ``policy_delay``
critic updates.

Written to stay on the device: the hot loop never reads a tensor back to the host (episode statistics
accumulate on the device and are read once per :meth:`TD3.collect_and_train` call), noise is drawn in
place into preallocated tensors, and every random number comes from one ``torch.Generator`` that is
saved with the learner.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal

import torch
from annotated_types import Gt, Le
from pydantic import Field, model_validator
from torch import nn

from amorctl.agents.base import optimizer_state_of, parameters_of, register_agent
from amorctl.agents.networks import EnsembleCritic, make_actor
from amorctl.agents.off_policy import OffPolicyLearner, OffPolicyTrainConfig
from amorctl.agents.replay_buffer import ReplayBuffer, Transitions
from amorctl.envs import BatchedEnv
from amorctl.envs.kinds import copy_memory, env_dims, make_env, validate_env_section
from amorctl.run.errors import ConfigError
from amorctl.schema import (
    FiniteFloat,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RunConfig,
    Schedule,
    UnitFloat,
    check_memory,
    constructor_schema,
    parameter_bytes,
    validate_section,
)


def smoothed_target_action(next_action: torch.Tensor, noise: torch.Tensor, noise_clip: float) -> torch.Tensor:
    """Target-policy smoothing: clip(π'(s') + clip(ε, −c, c), −1, 1) for given noise ε."""
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def clipped_double_q_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float
) -> torch.Tensor:
    """y = r + γ (1 − terminated) min_i Q'_i(s', a').

    Args:
        reward: (B,) rewards.
        terminated: (B,) bool, true only where s' is terminal; a time-limit truncation is not
            terminal and still bootstraps from Q'(s', a').
        next_q: (E, B) target-critic values Q'_i(s', a') of the E critics.
        gamma: discount γ.
    """
    return reward + gamma * next_q.min(dim=0).values.masked_fill(terminated, 0.0)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ' ← (1 − τ) θ' + τ θ for every parameter, in one multi-tensor call."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class TD3:
    """The TD3 learner on a :class:`~amorctl.envs.BatchedEnv` of N copies.

    Each vectorized step collects N transitions (uniform random actions before ``learning_starts``
    transitions, then π(s) plus Gaussian exploration noise, clipped to the box) and then makes
    ``gradient_steps`` critic updates. Drive it with :meth:`collect_and_train` (or :meth:`learn`),
    act with :meth:`predict`, checkpoint with :meth:`state_dict` / :meth:`load_state_dict`.

    Defaults follow the paper, except the learning rate (3e-4 as in CleanRL and stable-baselines3; the
    paper used 1e-3) and 256-256 networks (the paper used 400-300).

    Args:
        env: the training environment; actions in [-1, 1].
        learning_rate: Adam step size of actor and critics.
        gamma: discount γ.
        tau: Polyak rate τ of the target networks.
        batch_size: transitions per update.
        policy_delay: critic updates per actor and target update (d).
        target_policy_noise: σ of the smoothing noise ε on target actions (policy-box units).
        target_noise_clip: c, the clip of ε.
        exploration_noise: σ of the Gaussian noise added to π(s) while collecting (policy-box units).
        buffer_size: replay capacity in transitions.
        learning_starts: transitions collected with uniform random actions before learning begins.
        gradient_steps: critic updates per vectorized environment step (each step adds N transitions).
        hidden_sizes: hidden widths of actor and critics.
        compile: apply ``torch.compile`` to the networks. Off by default: on the 2-core development CPU
            (one thread, 256-256, batch 256) it made an update slower, 7.1 ms against 6.4 ms eager; the
            update is bound by its matrix products there, which compilation does not speed up.
        seed: seeds network initialisation, exploration, sampling and the environment resets.
        device: where networks and the replay buffer live; defaults to ``env.device``.
    """

    def __init__(
        self,
        env: BatchedEnv,
        *,
        learning_rate: PositiveFloat = 3e-4,
        gamma: UnitFloat = 0.99,
        tau: Annotated[FiniteFloat, Gt(0.0), Le(1.0)] = 0.005,
        batch_size: PositiveInt = 256,
        policy_delay: PositiveInt = 2,
        target_policy_noise: NonNegativeFloat = 0.2,
        target_noise_clip: NonNegativeFloat = 0.5,
        exploration_noise: NonNegativeFloat = 0.1,
        buffer_size: PositiveInt = 1_000_000,
        learning_starts: NonNegativeInt = 25_000,
        gradient_steps: NonNegativeInt = 1,
        hidden_sizes: Sequence[PositiveInt] = (256, 256),
        compile: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        if min(batch_size, policy_delay) < 1 or gradient_steps < 0:
            raise ValueError(
                "batch_size and policy_delay must be at least 1 and gradient_steps at least 0,"
                f" got {batch_size}, {policy_delay} and {gradient_steps}"
            )
        if buffer_size < env.num_envs:
            raise ValueError(f"buffer_size ({buffer_size}) must hold one step of all {env.num_envs} environments")
        self.env = env
        self.learning_rate = learning_rate
        self.device = torch.device(device) if device is not None else env.device
        self.gamma, self.tau, self.batch_size, self.policy_delay = gamma, tau, batch_size, policy_delay
        self.target_policy_noise, self.target_noise_clip = target_policy_noise, target_noise_clip
        self.exploration_noise, self.learning_starts = exploration_noise, learning_starts
        self.gradient_steps = gradient_steps

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = make_actor(env.observation_dim, env.action_dim, hidden_sizes).to(self.device)
            self.critic = EnsembleCritic(env.observation_dim, env.action_dim, hidden_sizes).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        if compile:
            for module in (self.actor, self.critic, self.actor_target, self.critic_target):
                module.compile()
        # Fused Adam: one kernel per step on any device (on the development CPU as fast as foreach).
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=learning_rate, fused=True)
        self.replay_buffer = ReplayBuffer(buffer_size, env.observation_dim, env.action_dim, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

        self.num_timesteps = 0
        self.num_updates = 0
        self._obs: torch.Tensor | None = None
        self._action_noise = torch.empty(env.num_envs, env.action_dim, device=self.device)
        self._target_noise = torch.empty(batch_size, env.action_dim, device=self.device)
        self._last_critic: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_actor_loss: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions in [-1, 1] for observations (N, D) or (D,): π(s), plus exploration noise unless deterministic.

        The noise of ``deterministic=False`` comes from torch's global random stream, so acting never
        moves the learner's own stream.
        """
        action = self.actor(obs.to(self.device))
        if not deterministic:
            action = (action + self.exploration_noise * torch.randn_like(action)).clamp_(-1.0, 1.0)
        return action

    @torch.no_grad()
    def _explore(self, obs: torch.Tensor) -> torch.Tensor:
        if self.num_timesteps < self.learning_starts:
            return self._action_noise.uniform_(-1.0, 1.0, generator=self.generator).clone()
        noise = self._action_noise.normal_(0.0, self.exploration_noise, generator=self.generator)
        return (self.actor(obs) + noise).clamp_(-1.0, 1.0)

    # --------------------------------------------------------------------------------- learning
    @torch.no_grad()
    def critic_target_value(self, batch: Transitions) -> torch.Tensor:
        """The regression target y of the critics for a batch (B,), with fresh smoothing noise."""
        noise = self._target_noise[: len(batch.action)].normal_(0.0, self.target_policy_noise, generator=self.generator)
        next_action = smoothed_target_action(self.actor_target(batch.next_obs), noise, self.target_noise_clip)
        next_q = self.critic_target(batch.next_obs, next_action)
        return clipped_double_q_target(batch.reward, batch.terminated, next_q, self.gamma)

    def train_step(self) -> None:
        """One critic update on a sampled batch; every ``policy_delay``-th also updates actor and targets."""
        batch = self.replay_buffer.sample(self.batch_size, self.generator)
        target = self.critic_target_value(batch)
        q = self.critic(batch.obs, batch.action)
        qf_losses = (q - target).square().mean(dim=1)
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_losses.sum().backward()
        self.critic_optimizer.step()
        self.num_updates += 1
        self._last_critic = (q.detach(), qf_losses.detach())

        if self.num_updates % self.policy_delay == 0:
            # Objective loss (eq. 2.10) with f(a; s) = −Q_1(s, a); the critic is a constant here.
            actor_loss = -self.critic(batch.obs, self.actor(batch.obs), member=0, frozen=True).mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            polyak_update(self.actor_target, self.actor, self.tau)
            polyak_update(self.critic_target, self.critic, self.tau)
            self._last_actor_loss = actor_loss.detach()

    def collect_and_train(self, num_env_steps: int) -> dict[str, torch.Tensor]:
        """Collect ⌈num_env_steps / N⌉ vectorized steps (N transitions each), training as it goes.

        Returns scalar tensors (CleanRL names): ``losses/qf1_loss``, ``losses/qf2_loss``,
        ``losses/qf_loss``, ``losses/qf1_values`` and ``losses/actor_loss`` of the latest updates (once
        they exist), and ``charts/episodic_return`` / ``charts/episodic_length``, means over the
        episodes that finished during this call, with their count ``charts/episodes`` (when at least
        one did). Reading the episode count is this call's only device-to-host synchronisation.
        """
        env, n, device = self.env, self.env.num_envs, self.device
        obs = self._obs if self._obs is not None else self._reset_env()
        finished = torch.zeros(3, device=device)  # episodes ended, sum of their returns, sum of their lengths
        for _ in range(math.ceil(num_env_steps / n)):
            action = self._explore(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            self.replay_buffer.add(obs, action, reward.to(device), info["final_obs"].to(device), terminated.to(device))
            ended = (terminated | truncated).float()
            returns, lengths = info["episode_return"], info["episode_length"].float()
            finished += torch.stack([ended.sum(), returns @ ended, lengths @ ended]).to(device)
            obs = next_obs.to(device)
            self.num_timesteps += n
            if self.num_timesteps >= self.learning_starts:
                for _ in range(self.gradient_steps):
                    self.train_step()
        self._obs = obs
        return self._metrics(finished)

    def learn(
        self,
        total_timesteps: int,
        callback: Callable[[TD3, dict[str, torch.Tensor]], bool | None] | None = None,
        log_every: int = 1000,
    ) -> TD3:
        """Train until ``num_timesteps`` reaches ``total_timesteps``.

        Every ``log_every`` transitions, ``callback(self, metrics)`` receives the learner and the
        :meth:`collect_and_train` metrics; it may return ``False`` to stop early.
        """
        while self.num_timesteps < total_timesteps:
            metrics = self.collect_and_train(min(log_every, total_timesteps - self.num_timesteps))
            if callback is not None and callback(self, metrics) is False:
                break
        return self

    def latest_losses(self) -> dict[str, torch.Tensor]:
        """``loss/critic`` (mean of the twin critics' losses) and ``loss/actor`` of the latest updates, once made."""
        losses = {}
        if self._last_critic is not None:
            losses["loss/critic"] = self._last_critic[1].mean()
        if self._last_actor_loss is not None:
            losses["loss/actor"] = self._last_actor_loss
        return losses

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        """What must stay finite, in the order a divergence spreads: losses, critics, actor, optimizer moments."""
        return {
            **self.latest_losses(),
            **parameters_of(self.critic, "critic."),
            **parameters_of(self.actor, "actor."),
            **optimizer_state_of(self.critic_optimizer, "critic."),
            **optimizer_state_of(self.actor_optimizer, "actor."),
        }

    def restart_episodes(self) -> None:
        """Make the next collection reset the environments (seeded from the learner's stream).

        Called at checkpoints, so that an uninterrupted run and one resumed from the checkpoint
        (whose in-progress episodes are not saved) continue from the same state.
        """
        self._obs = None

    def _reset_env(self) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.device))
        return self.env.reset(seed=seed).to(self.device)

    def _metrics(self, finished: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        if self._last_critic is not None:
            q, qf_losses = self._last_critic
            metrics |= {
                "losses/qf1_values": q[0].mean(),
                "losses/qf1_loss": qf_losses[0],
                "losses/qf2_loss": qf_losses[1],
                "losses/qf_loss": qf_losses.sum() / 2,
            }
        if self._last_actor_loss is not None:
            metrics["losses/actor_loss"] = self._last_actor_loss
        episodes, return_sum, length_sum = finished
        if episodes.item() > 0:
            metrics |= {
                "charts/episodic_return": return_sum / episodes,
                "charts/episodic_length": length_sum / episodes,
                "charts/episodes": episodes,
            }
        return metrics

    # ------------------------------------------------------------------------------ checkpoints
    def state_dict(self, include_replay_buffer: bool = False) -> dict[str, Any]:
        """Networks, targets, optimizers, counters and the random stream; the replay buffer on request.

        The environments' in-progress episodes are not part of the state: after
        :meth:`load_state_dict` the next collection resets them with a seed drawn from the restored
        random stream, so a learner loaded from a state continues identically wherever it is loaded.
        As with :meth:`torch.nn.Module.state_dict`, the tensors are the live ones: save them (or
        ``copy.deepcopy`` them) to keep a snapshot.
        """
        state: dict[str, Any] = {
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }
        if include_replay_buffer:
            state["replay_buffer"] = self.replay_buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; without a saved replay buffer, the buffer starts empty.

        Nothing in ``state`` is aliased afterwards (optimizers would otherwise keep its tensors as their
        own and update them in place), so one state can be loaded any number of times.
        """
        self.num_timesteps, self.num_updates = state["num_timesteps"], state["num_updates"]
        for name in ("actor", "critic", "actor_target", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("actor_optimizer", "critic_optimizer"):
            optimizer = getattr(self, name)
            optimizer.load_state_dict(copy.deepcopy(state[name]))
            for group in optimizer.param_groups:  # the constructor's rate, so a resume may change it
                group["lr"] = self.learning_rate
        self.generator.set_state(state["generator"])
        self.replay_buffer = ReplayBuffer(
            self.replay_buffer.capacity, self.env.observation_dim, self.env.action_dim, self.device
        )
        if "replay_buffer" in state:
            self.replay_buffer.load_state_dict(state["replay_buffer"])
        self.restart_episodes()
        self._last_critic = self._last_actor_loss = None


# ------------------------------------------------------------------------------------- the run
class TD3Config(RunConfig):
    """A TD3 run: the policy πθ(s) amortizes argmax_a Q(s, a) (objective loss −Q, eq. 2.10).

    ``td3`` holds :class:`TD3`'s keyword arguments (defaults and constraints are the constructor's);
    ``env`` is a section of a registered environment kind (``env.kind``, default ``gym``).
    """

    RESUMABLE: ClassVar[tuple[str, ...]] = (
        *RunConfig.RESUMABLE, "train.total_steps", "train.eval_episodes", "train.eval_envs",
        "train.save_replay_buffer", "train.target_return", "td3.learning_rate", "td3.exploration_noise",
        "td3.gradient_steps",
    )

    agent: Literal["td3"] = "td3"
    name: str = "td3"
    env: Any = Field(default_factory=lambda: {"kind": "gym"})
    td3: dict[str, Any] = Field(default_factory=dict)
    train: OffPolicyTrainConfig = Field(default_factory=OffPolicyTrainConfig)

    @model_validator(mode="after")
    def _check_sections(self) -> TD3Config:
        self.env = validate_env_section(self.env)
        schema = constructor_schema(TD3, skip=("env", "seed", "device"), name="TD3Params")
        self.td3 = validate_section(schema, self.td3, "td3").model_dump()
        if self.td3["buffer_size"] < self.env.num_envs:
            raise ConfigError(
                f"config key 'td3.buffer_size' must hold one step of all env.num_envs={self.env.num_envs} copies,"
                f" got {self.td3['buffer_size']}"
            )
        observation_dim, action_dim = env_dims(self.env)
        networks = parameter_bytes(lambda: make_actor(observation_dim, action_dim, self.td3["hidden_sizes"]))
        networks += parameter_bytes(lambda: EnsembleCritic(observation_dim, action_dim, self.td3["hidden_sizes"]))
        copy = sum(copy_memory(self.env).values())
        check_memory({
            "the training copies (env.num_envs)": copy * self.env.num_envs,
            "the evaluation copies (train.eval_envs)": copy * self.train.eval_envs,
            "the replay buffer (td3.buffer_size)": 4 * self.td3["buffer_size"] * (2 * observation_dim + action_dim + 2),
            "the networks (td3.hidden_sizes)": 5 * networks,  # with targets, gradients and Adam's two moments
            "a batch (td3.batch_size)": 4 * 8 * self.td3["batch_size"] * max(self.td3["hidden_sizes"], default=1),
        }, self.device)
        return self

    def schedule(self) -> Schedule:
        t = self.train
        target = ("mean_return", t.target_return) if t.target_return is not None else None
        return Schedule(t.total_steps, t.log_every, t.eval_every, t.checkpoint_every, t.keep_checkpoints,
                        t.max_wall_seconds, target, total_key="train.total_steps", target_key="train.target_return")


def build_td3(config: TD3Config, device: torch.device, inference: bool = False) -> OffPolicyLearner:
    """TD3 on ``config.env`` with its evaluation copies; for inference, one copy and a one-step buffer."""
    num_envs = 1 if inference else config.env.num_envs
    params = {**config.td3, "buffer_size": num_envs} if inference else config.td3
    train_env = make_env(config.env, num_envs, device)
    eval_env = None
    try:
        eval_env = None if inference else make_env(config.env, config.train.eval_envs, device)
        algorithm = TD3(train_env, **params, seed=config.seed, device=device)
    except BaseException:
        for env in (train_env, eval_env):
            if env is not None:
                env.close()
        raise
    return OffPolicyLearner(algorithm, eval_env, eval_episodes=config.train.eval_episodes, seed=config.seed,
                            save_replay_buffer=config.train.save_replay_buffer)


register_agent("td3", TD3Config, build_td3)

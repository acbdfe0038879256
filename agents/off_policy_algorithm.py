"""The off-policy core shared by TD3, DDPG and SAC: collection, exploration, replay, counters, checkpoints.

An algorithm on this core defines its networks (:meth:`OffPolicyAlgorithm._build`), how it acts
(:meth:`OffPolicyAlgorithm._act`) and one update (:meth:`OffPolicyAlgorithm.train_step`); the core
collects transitions from a :class:`~amorctl.envs.BatchedEnv` of N copies (uniform random actions
before ``learning_starts`` transitions), stores them in the device replay buffer, makes
``gradient_steps`` updates per vectorized step, keeps episode statistics on the device (one host
synchronisation per :meth:`OffPolicyAlgorithm.collect_and_train` call) and saves and restores
everything, optionally with the replay buffer.

Every random number comes from one ``torch.Generator`` saved with the learner, so a run resumed from a
checkpoint continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from amorctl.agents.base import optimizer_state_of, parameters_of
from amorctl.agents.replay_buffer import ReplayBuffer
from amorctl.envs import BatchedEnv
from amorctl.losses import regression_loss


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """θ' ← (1 − τ) θ' + τ θ for every parameter, in one multi-tensor call."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


class OffPolicyAlgorithm(ABC):
    """Collection, replay and checkpoints of an off-policy actor-critic on N environment copies.

    ``stochastic_actor`` (a class attribute) says whether the actor is a distribution (SAC's squashed
    Gaussian) rather than a deterministic map (TD3, DDPG); configs check per-row policy kinds with it.

    Args:
        env: the training environment; actions in [-1, 1].
        learning_rate: Adam step size of every network (re-applied after :meth:`load_state_dict`, so a
            resume may change it).
        gamma: discount γ.
        tau: Polyak rate τ of the target networks.
        batch_size: transitions per update.
        buffer_size: replay capacity in transitions.
        learning_starts: transitions collected with uniform random actions before learning begins.
        gradient_steps: updates per vectorized environment step (each step adds N transitions).
        seed: seeds network initialisation, exploration, sampling and the environment resets.
        device: where networks and the replay buffer live; defaults to ``env.device``.
    """

    stochastic_actor: ClassVar[bool] = False

    def __init__(
        self,
        env: BatchedEnv,
        *,
        learning_rate: float,
        gamma: float,
        tau: float,
        batch_size: int,
        buffer_size: int,
        learning_starts: int,
        gradient_steps: int,
        seed: int,
        device: torch.device | str | None,
    ):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        if batch_size < 1 or gradient_steps < 0:
            raise ValueError(f"batch_size must be at least 1 and gradient_steps at least 0, got {batch_size} and "
                             f"{gradient_steps}")
        if buffer_size < env.num_envs:
            raise ValueError(f"buffer_size ({buffer_size}) must hold one step of all {env.num_envs} environments")
        self.env = env
        self.device = torch.device(device) if device is not None else env.device
        self.learning_rate, self.gamma, self.tau, self.batch_size = learning_rate, gamma, tau, batch_size
        self.learning_starts, self.gradient_steps = learning_starts, gradient_steps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build()
        self.replay_buffer = ReplayBuffer(buffer_size, env.observation_dim, env.action_dim, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_timesteps = 0
        self.num_updates = 0
        self.updates_start = learning_starts
        """``num_timesteps`` from which updates run: ``learning_starts``, or later after a resume whose replay
        buffer holds fewer than ``learning_starts`` transitions (the buffer is refilled first)."""
        self._obs: torch.Tensor | None = None
        self._action_noise = torch.empty(env.num_envs, env.action_dim, device=self.device)

    # ------------------------------------------------------------------------ what an algorithm defines
    @abstractmethod
    def _build(self) -> None:
        """Create the networks and optimizers (called with torch's global stream seeded by ``seed``)."""

    @abstractmethod
    def _act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Actions in [-1, 1] for observations (N, D); exploratory ones draw from ``generator`` (or the global
        stream when ``None``)."""

    @abstractmethod
    def train_step(self, update_actor: bool = True) -> None:
        """One update on a sampled batch; keeps its (detached) losses for :meth:`loss_metrics`.

        ``update_actor=False`` updates the critics (and their targets) only, for the policy held fixed:
        the critic phase of a warm start (:meth:`imitation_step` fitted the policy first)."""

    @abstractmethod
    def loss_metrics(self) -> dict[str, torch.Tensor]:
        """The latest update's losses and values under CleanRL's names (``losses/qf_loss``, ...), once
        there are updates; computed here, not in the update, to keep the hot loop lean."""

    @abstractmethod
    def latest_losses(self) -> dict[str, torch.Tensor]:
        """The latest update's losses under the names a NaN report uses (``loss/critic``, ``loss/actor``)."""

    @abstractmethod
    def forget_losses(self) -> None:
        """Drop the kept losses (after a restore, none of this learner's updates has happened yet)."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The networks by name, in the order a divergence spreads (critics first): saved, restored, checked."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name: saved, restored (with :attr:`learning_rate` re-applied) and checked."""

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors outside the networks to save and check (SAC's log α)."""
        return {}

    # --------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions in [-1, 1] for observations (N, D) or (D,); exploration noise unless ``deterministic``.

        Exploration for ``deterministic=False`` comes from torch's global random stream, so acting never
        moves the learner's own stream.
        """
        return self._act(obs.to(self.device), deterministic, None)

    @torch.no_grad()
    def _explore(self, obs: torch.Tensor) -> torch.Tensor:
        if self.num_timesteps < self.learning_starts:
            return self._action_noise.uniform_(-1.0, 1.0, generator=self.generator).clone()
        return self._act(obs, False, self.generator)

    # ------------------------------------------------------------------------------------ warm start
    def imitation_step(self) -> torch.Tensor:
        """One regression step (eq. 2.9) of the deterministic policy onto the replay buffer's actions: with
        a buffer holding an expert's transitions, behavioural cloning. Returns the (detached) loss."""
        batch = self.replay_buffer.sample(self.batch_size, self.generator)
        loss = regression_loss(self._act(batch.obs, True, None), batch.action)
        optimizer = self.optimizers()["actor"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def sync_targets(self) -> None:
        """Copy every network into its target (``<name>_target``), e.g. after :meth:`imitation_step`."""
        networks = self.networks()
        for name, network in networks.items():
            if name.endswith("_target"):
                polyak_update(network, networks[name.removesuffix("_target")], 1.0)

    # ------------------------------------------------------------------------------------ collecting
    def collect_and_train(
        self, num_env_steps: int, behaviour: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Collect ⌈num_env_steps / N⌉ vectorized steps (N transitions each), training as it goes.

        With ``behaviour`` (e.g. an expert: observations → actions in [-1, 1]) the transitions are
        that policy's and nothing trains.

        Returns scalar tensors (CleanRL names): the latest update's losses (``losses/...``, once there
        are updates), and ``charts/episodic_return`` / ``charts/episodic_length``, means over the
        episodes that finished during this call, with their count ``charts/episodes`` (when at least
        one did). Reading the episode count is this call's only device-to-host synchronisation.
        """
        env, n, device = self.env, self.env.num_envs, self.device
        obs = self._obs if self._obs is not None else self._reset_env()
        finished = torch.zeros(3, device=device)  # episodes ended, sum of their returns, sum of their lengths
        for _ in range(math.ceil(num_env_steps / n)):
            action = self._explore(obs) if behaviour is None else behaviour(obs)
            next_obs, reward, terminated, truncated, info = env.step(action)
            self.replay_buffer.add(obs, action, reward.to(device), info["final_obs"].to(device), terminated.to(device))
            ended = (terminated | truncated).float()
            returns, lengths = info["episode_return"], info["episode_length"].float()
            finished += torch.stack([ended.sum(), returns @ ended, lengths @ ended]).to(device)
            obs = next_obs.to(device)
            self.num_timesteps += n
            if behaviour is None and self.num_timesteps >= self.updates_start:
                for _ in range(self.gradient_steps):
                    self.train_step()
        self._obs = obs
        metrics = self.loss_metrics()
        episodes, return_sum, length_sum = finished
        if episodes.item() > 0:
            metrics |= {
                "charts/episodic_return": return_sum / episodes,
                "charts/episodic_length": length_sum / episodes,
                "charts/episodes": episodes,
            }
        return metrics

    def learn(
        self,
        total_timesteps: int,
        callback: Callable[[OffPolicyAlgorithm, dict[str, torch.Tensor]], bool | None] | None = None,
        log_every: int = 1000,
    ) -> OffPolicyAlgorithm:
        """Train until ``num_timesteps`` reaches ``total_timesteps``.

        Every ``log_every`` transitions, ``callback(self, metrics)`` receives the learner and the
        :meth:`collect_and_train` metrics; it may return ``False`` to stop early.
        """
        while self.num_timesteps < total_timesteps:
            metrics = self.collect_and_train(min(log_every, total_timesteps - self.num_timesteps))
            if callback is not None and callback(self, metrics) is False:
                break
        return self

    def restart_episodes(self) -> None:
        """Make the next collection reset the environments (seeded from the learner's stream).

        Called at checkpoints, so that an uninterrupted run and one resumed from the checkpoint
        (whose in-progress episodes are not saved) continue from the same state.
        """
        self._obs = None

    def _reset_env(self) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.device))
        return self.env.reset(seed=seed).to(self.device)

    # ----------------------------------------------------------------------------------- checkpoints
    def finite_quantities(self) -> dict[str, torch.Tensor]:
        """What must stay finite, in the order a divergence spreads: losses, networks, extra state, moments."""
        quantities = dict(self.latest_losses())
        for name, network in self.networks().items():
            if not name.endswith("_target"):
                quantities |= parameters_of(network, f"{name}.")
        quantities |= self.extra_state()
        for name, optimizer in self.optimizers().items():
            quantities |= optimizer_state_of(optimizer, f"{name}.")
        return quantities

    def state_dict(self, include_replay_buffer: bool = False) -> dict[str, Any]:
        """Networks, optimizers, counters and the random stream; the replay buffer on request.

        The environments' in-progress episodes are not part of the state: after
        :meth:`load_state_dict` the next collection resets them with a seed drawn from the restored
        random stream. As with :meth:`torch.nn.Module.state_dict`, the tensors are the live ones.
        """
        state: dict[str, Any] = {
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
            **{name: network.state_dict() for name, network in self.networks().items()},
            **{f"{name}_optimizer": opt.state_dict() for name, opt in self.optimizers().items()},
            **self.extra_state(),
            "generator": self.generator.get_state(),
        }
        if include_replay_buffer:
            state["replay_buffer"] = self.replay_buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; without a saved replay buffer, the buffer starts empty.

        Updates wait until the buffer holds ``learning_starts`` transitions again (collected by the
        restored policy with its exploration noise, not uniformly), so a resume never trains on a
        nearly empty buffer.

        Nothing in ``state`` is aliased afterwards (optimizers would otherwise keep its tensors as their
        own and update them in place), so one state can be loaded any number of times. The learning
        rate stays this learner's (a resume may change it).
        """
        self.num_timesteps, self.num_updates = state["num_timesteps"], state["num_updates"]
        for name, network in self.networks().items():
            network.load_state_dict(state[name])
        with torch.no_grad():
            for name, tensor in self.extra_state().items():
                tensor.copy_(state[name])
        for name, optimizer in self.optimizers().items():
            optimizer.load_state_dict(copy.deepcopy(state[f"{name}_optimizer"]))
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate
        self.generator.set_state(state["generator"])
        self.replay_buffer = ReplayBuffer(
            self.replay_buffer.capacity, self.env.observation_dim, self.env.action_dim, self.device
        )
        if "replay_buffer" in state:
            self.replay_buffer.load_state_dict(state["replay_buffer"])
        missing = min(self.learning_starts, self.replay_buffer.capacity) - len(self.replay_buffer)
        self.updates_start = max(self.learning_starts, self.num_timesteps + missing)
        self.restart_episodes()
        self.forget_losses()

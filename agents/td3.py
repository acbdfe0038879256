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
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field

from amorctl.agents.base import register_agent
from amorctl.agents.networks import PolicyKind, build_actor, build_critic
from amorctl.agents.off_policy import OffPolicyConfig, build_off_policy
from amorctl.agents.off_policy_algorithm import OffPolicyAlgorithm, polyak_update
from amorctl.agents.replay_buffer import Transitions
from amorctl.envs import BatchedEnv
from amorctl.losses import actor_objective_loss, regression_loss
from amorctl.schema import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Tau, UnitFloat


def smoothed_target_action(next_action: torch.Tensor, noise: torch.Tensor, noise_clip: float) -> torch.Tensor:
    """Target-policy smoothing: clip(π'(s') + clip(ε, −c, c), −1, 1) for given noise ε."""
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td3_bc_actor_loss(
    q_values: torch.Tensor, action: torch.Tensor, reference_action: torch.Tensor, alpha: float
) -> torch.Tensor:
    """The TD3+BC actor loss (Fujimoto & Gu 2021, eq. 3): −λ·E[Q(s, π(s))] + E‖π(s) − a‖², λ = α / E|Q| (detached).

    ``q_values`` are Q_1(s, π(s)) of a batch (B,) (or (B, R) per row), ``action`` the actor's π(s) (B, A) and
    ``reference_action`` the transitions' stored actions a (B, A). Normalising by the batch's mean |Q| makes α
    independent of the reward scale; the second term is the regression loss (eq. 2.9) towards the data's
    actions, which keeps the actor near the behaviour that produced the buffer (e.g. a cloned expert).
    """
    lam = alpha / q_values.abs().mean().detach().clamp_min(1e-8)
    return lam * actor_objective_loss(q_values) + regression_loss(action, reference_action)


def zero_output_layer(actor: torch.nn.Module) -> None:
    """Zero the weights and bias of the actor's last linear layer, so that π(s) ≡ 0 until it learns.

    With an action that is a residual on a classical rule (e.g. ``IterateEnv(step_size_base="bb2")``), the
    initial policy is then that rule exactly (residual policy learning, Silver et al. 2018).
    """
    last = [module for module in actor.modules() if isinstance(module, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


def clipped_double_q_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float
) -> torch.Tensor:
    """y = r + γ (1 − terminated) min_i Q'_i(s', a').

    Args:
        reward: (B,) rewards.
        terminated: (B,) bool, true only where s' is terminal; a time-limit truncation is not
            terminal and still bootstraps from Q'(s', a').
        next_q: (E, B) target-critic values Q'_i(s', a') of the E critics, or (E, B, R) per row of a
            per-row critic (every row's target then shares the transition's reward and flag).
        gamma: discount γ.
    """
    min_q = next_q.min(dim=0).values
    per_row = (1,) * (min_q.dim() - 1)
    return reward.view(*reward.shape, *per_row) + gamma * min_q.masked_fill(terminated.view(*terminated.shape,
                                                                                            *per_row), 0.0)


class TD3(OffPolicyAlgorithm):
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
        policy: ``"mlp"`` (networks on the flat observation), ``"rowwise"`` (one actor applied to every row and
            a critic per row, for an environment with a :class:`~amorctl.envs.RowLayout`) or ``"rowwise_odd"``
            (the same with actions odd in the rows' features), ``"rowwise_set"`` (the per-row actor with one joint
            critic over the rows, :class:`~amorctl.agents.networks.SetCritic`); see :mod:`amorctl.agents.networks`.
        bc_alpha: α of the TD3+BC actor loss (:func:`td3_bc_actor_loss`, Fujimoto & Gu 2021; the paper uses 2.5):
            the actor also regresses onto the replay buffer's actions, which keeps a warm-started clone of an
            expert (whose noisy actions fill the buffer first) from being lost. ``None`` (default): the plain
            objective loss −Q(s, π(s)).
        zero_init_actor: start the actor's last linear layer at zero (:func:`zero_output_layer`), so that
            π ≡ 0 at first; with a residual action the initial policy is the base rule exactly.
        compile: apply ``torch.compile`` to the networks. Off by default: on the 2-core development CPU
            (one thread, 256-256, batch 256) it made an update slower, 7.1 ms against 6.4 ms eager; the
            update is bound by its matrix products there, which compilation does not speed up.
        seed: seeds network initialisation, exploration, sampling and the environment resets.
        device: where networks and the replay buffer live; defaults to ``env.device``.
    """

    num_critics: ClassVar[int] = 2
    """Critics in the ensemble: 2 for TD3's clipped double Q (1 for DDPG)."""

    def __init__(
        self,
        env: BatchedEnv,
        *,
        learning_rate: PositiveFloat = 3e-4,
        gamma: UnitFloat = 0.99,
        tau: Tau = 0.005,
        batch_size: PositiveInt = 256,
        policy_delay: PositiveInt = 2,
        target_policy_noise: NonNegativeFloat = 0.2,
        target_noise_clip: NonNegativeFloat = 0.5,
        exploration_noise: NonNegativeFloat = 0.1,
        buffer_size: PositiveInt = 1_000_000,
        learning_starts: NonNegativeInt = 25_000,
        gradient_steps: NonNegativeInt = 1,
        hidden_sizes: Sequence[PositiveInt] = (256, 256),
        policy: PolicyKind = "mlp",
        bc_alpha: PositiveFloat | None = None,
        zero_init_actor: bool = False,
        compile: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        if policy_delay < 1:
            raise ValueError(f"policy_delay must be at least 1, got {policy_delay}")
        self.policy_delay, self.exploration_noise = policy_delay, exploration_noise
        self.target_policy_noise, self.target_noise_clip = target_policy_noise, target_noise_clip
        self.hidden_sizes, self.compile, self.policy = tuple(hidden_sizes), compile, policy
        self.bc_alpha, self.zero_init_actor = bc_alpha, zero_init_actor
        super().__init__(env, learning_rate=learning_rate, gamma=gamma, tau=tau, batch_size=batch_size,
                         buffer_size=buffer_size, learning_starts=learning_starts, gradient_steps=gradient_steps,
                         seed=seed, device=device)
        self._target_noise = torch.empty(batch_size, env.action_dim, device=self.device)
        self._last_critic: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_actor_loss: torch.Tensor | None = None

    def _build(self) -> None:
        self.actor = build_actor(self.env, self.hidden_sizes, self.policy).to(self.device)
        if self.zero_init_actor:
            zero_output_layer(self.actor)
        self.critic = build_critic(self.env, self.hidden_sizes, self.num_critics, self.policy).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        if self.compile:
            for module in (self.actor, self.critic, self.actor_target, self.critic_target):
                module.compile()
        # Fused Adam: one kernel per step on any device (on the development CPU as fast as foreach).
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.learning_rate, fused=True)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"critic": self.critic, "actor": self.actor, "actor_target": self.actor_target,
                "critic_target": self.critic_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optimizer, "actor": self.actor_optimizer}

    def _act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        """π(s), plus Gaussian exploration noise σ (clipped to the box) unless ``deterministic``."""
        if deterministic:
            return self.actor(obs)
        if generator is None:
            action = self.actor(obs)
            return (action + self.exploration_noise * torch.randn_like(action)).clamp_(-1.0, 1.0)
        noise = self._action_noise.normal_(0.0, self.exploration_noise, generator=generator)
        return (self.actor(obs) + noise).clamp_(-1.0, 1.0)

    # --------------------------------------------------------------------------------- learning
    @torch.no_grad()
    def critic_target_value(self, batch: Transitions) -> torch.Tensor:
        """The regression target y of the critics for a batch (B,), with fresh smoothing noise."""
        noise = self._target_noise[: len(batch.action)].normal_(0.0, self.target_policy_noise, generator=self.generator)
        next_action = smoothed_target_action(self.actor_target(batch.next_obs), noise, self.target_noise_clip)
        next_q = self.critic_target(batch.next_obs, next_action)
        return clipped_double_q_target(batch.reward, batch.terminated, next_q, self.gamma)

    def train_step(self, update_actor: bool = True) -> None:
        """One critic update on a sampled batch; every ``policy_delay``-th also updates actor and targets."""
        batch = self.replay_buffer.sample(self.batch_size, self.generator)
        target = self.critic_target_value(batch)
        q = self.critic(batch.obs, batch.action)
        qf_losses = (q - target).square().flatten(1).mean(dim=1)  # per critic (over rows too, for a per-row one)
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_losses.sum().backward()
        self.critic_optimizer.step()
        self.num_updates += 1
        self._last_critic = (q.detach(), qf_losses.detach())

        if self.num_updates % self.policy_delay == 0:
            if update_actor:
                actor_loss = self.actor_loss(batch)
                self.actor_optimizer.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_optimizer.step()
                polyak_update(self.actor_target, self.actor, self.tau)
                self._last_actor_loss = actor_loss.detach()
            polyak_update(self.critic_target, self.critic, self.tau)

    def actor_loss(self, batch: Transitions) -> torch.Tensor:
        """The actor's loss on a batch: the objective loss (eq. 2.10) with f(a; s) = −Q_1(s, a), the critic held
        constant, or with ``bc_alpha`` the TD3+BC loss (:func:`td3_bc_actor_loss`) towards the batch's actions."""
        action = self.actor(batch.obs)
        q = self.critic(batch.obs, action, member=0, frozen=True)
        if self.bc_alpha is None:
            return actor_objective_loss(q)
        return td3_bc_actor_loss(q, action, batch.action, self.bc_alpha)

    def loss_metrics(self) -> dict[str, torch.Tensor]:
        metrics: dict[str, torch.Tensor] = {}
        if self._last_critic is not None:
            q, qf_losses = self._last_critic
            metrics["losses/qf1_values"] = q[0].mean()
            metrics |= {f"losses/qf{i + 1}_loss": loss for i, loss in enumerate(qf_losses)}
            metrics["losses/qf_loss"] = qf_losses.mean()
        if self._last_actor_loss is not None:
            metrics["losses/actor_loss"] = self._last_actor_loss
        return metrics

    def latest_losses(self) -> dict[str, torch.Tensor]:
        """``loss/critic`` (mean of the critics' losses) and ``loss/actor`` of the latest updates, once made."""
        losses = {}
        if self._last_critic is not None:
            losses["loss/critic"] = self._last_critic[1].mean()
        if self._last_actor_loss is not None:
            losses["loss/actor"] = self._last_actor_loss
        return losses

    def forget_losses(self) -> None:
        self._last_critic = self._last_actor_loss = None


# ------------------------------------------------------------------------------------- the run
class TD3Config(OffPolicyConfig):
    """A TD3 run: the policy πθ(s) amortizes argmax_a Q(s, a) (objective loss −Q, eq. 2.10).

    ``td3`` holds :class:`TD3`'s keyword arguments (defaults and constraints are the constructor's);
    ``env`` is a section of a registered environment kind (``env.kind``, default ``gym``).
    """

    ALGORITHM: ClassVar[type] = TD3
    SECTION: ClassVar[str] = "td3"
    RESUMABLE: ClassVar[tuple[str, ...]] = (
        *OffPolicyConfig.RESUMABLE, "td3.learning_rate", "td3.exploration_noise", "td3.gradient_steps",
    )

    agent: Literal["td3"] = "td3"
    name: str = "td3"
    td3: dict = Field(default_factory=dict)


register_agent("td3", TD3Config, build_off_policy)

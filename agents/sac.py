"""SAC: Soft Actor-Critic (Haarnoja et al. 2018), on the shared off-policy core.

The actor is a stochastic amortization model: it maps a state to the parameters of a tanh-squashed
Gaussian over the action box and is trained with the entropy-regularised objective loss
E_s[α log π(a|s) − Q(s, a)] (eq. 2.10 with f(a; s) = −Q(s, a), smoothed by the policy's own
distribution). The twin critics regress onto the soft clipped double-Q target, and the temperature α is
tuned so that the policy's entropy tracks a target (−dim(A) by default), as stable-baselines3 does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field

from amorctl.agents.base import register_agent
from amorctl.agents.networks import PolicyKind, build_actor, build_critic
from amorctl.agents.off_policy import OffPolicyConfig, build_off_policy
from amorctl.agents.off_policy_algorithm import OffPolicyAlgorithm, polyak_update
from amorctl.agents.td3 import clipped_double_q_target
from amorctl.envs import BatchedEnv
from amorctl.losses import actor_objective_loss
from amorctl.schema import (
    FiniteFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Tau,
    UnitFloat,
)


class SAC(OffPolicyAlgorithm):
    """The SAC learner on a :class:`~amorctl.envs.BatchedEnv` of N copies.

    Defaults are stable-baselines3's (learning rate 3e-4, batch 256, 256-256 networks, τ 0.005, one
    update per step, automatic temperature from α = 1, target entropy −dim(A)), except
    ``learning_starts``, which is counted here in transitions as everywhere in amorctl.

    Args:
        env: the training environment; actions in [-1, 1].
        learning_rate: Adam step size of actor, critics and temperature.
        gamma: discount γ.
        tau: Polyak rate τ of the target critics.
        batch_size: transitions per update.
        buffer_size: replay capacity in transitions.
        learning_starts: transitions collected with uniform random actions before learning begins.
        gradient_steps: updates per vectorized environment step (each step adds N transitions).
        hidden_sizes: hidden widths of actor and critics.
        policy: ``"mlp"`` or ``"rowwise"`` (one Gaussian actor applied to every row, a critic per row, and the
            temperature tuned on the rows' summed entropy; see :mod:`amorctl.agents.networks`).
        ent_coef: the temperature α: ``"auto"`` tunes it (starting from ``initial_ent_coef``), a number
            fixes it.
        initial_ent_coef: α at the start of automatic tuning.
        target_entropy: the entropy automatic tuning aims at; ``"auto"`` is −dim(A).
        seed: seeds network initialisation, exploration, sampling and the environment resets.
        device: where networks and the replay buffer live; defaults to ``env.device``.
    """

    def __init__(
        self,
        env: BatchedEnv,
        *,
        learning_rate: PositiveFloat = 3e-4,
        gamma: UnitFloat = 0.99,
        tau: Tau = 0.005,
        batch_size: PositiveInt = 256,
        buffer_size: PositiveInt = 1_000_000,
        learning_starts: NonNegativeInt = 10_000,
        gradient_steps: NonNegativeInt = 1,
        hidden_sizes: Sequence[PositiveInt] = (256, 256),
        policy: PolicyKind = "mlp",
        ent_coef: Literal["auto"] | PositiveFloat = "auto",
        initial_ent_coef: PositiveFloat = 1.0,
        target_entropy: Literal["auto"] | FiniteFloat = "auto",
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        self.hidden_sizes, self.policy = tuple(hidden_sizes), policy
        self.auto_alpha = ent_coef == "auto"
        self.initial_alpha = initial_ent_coef if self.auto_alpha else float(ent_coef)
        self.target_entropy = -float(env.action_dim) if target_entropy == "auto" else float(target_entropy)
        super().__init__(env, learning_rate=learning_rate, gamma=gamma, tau=tau, batch_size=batch_size,
                         buffer_size=buffer_size, learning_starts=learning_starts, gradient_steps=gradient_steps,
                         seed=seed, device=device)
        self._noise = torch.empty(2, batch_size, env.action_dim, device=self.device)
        self._last_critic: tuple[torch.Tensor, torch.Tensor] | None = None
        self._last_actor: tuple[torch.Tensor, torch.Tensor] | None = None

    def _build(self) -> None:
        device = self.device
        self.actor = build_actor(self.env, self.hidden_sizes, self.policy, gaussian=True).to(device)
        self.critic = build_critic(self.env, self.hidden_sizes, 2, self.policy).to(device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.full((), math.log(self.initial_alpha), device=device, requires_grad=self.auto_alpha)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=self.learning_rate, fused=True)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=self.learning_rate, fused=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=self.learning_rate) if self.auto_alpha else None

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"critic": self.critic, "actor": self.actor, "critic_target": self.critic_target}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        found = {"critic": self.critic_optimizer, "actor": self.actor_optimizer}
        return found | ({"alpha": self.alpha_optimizer} if self.alpha_optimizer is not None else {})

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"log_alpha": self.log_alpha}

    @property
    def alpha(self) -> torch.Tensor:
        """The current temperature α (a detached scalar tensor)."""
        return self.log_alpha.detach().exp()

    def _act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        if deterministic:
            return self.actor(obs)
        noise = torch.empty(*obs.shape[:-1], self.env.action_dim, device=obs.device).normal_(generator=generator)
        return self.actor.sample(obs, noise)[0]

    def train_step(self, update_actor: bool = True) -> None:
        """One SAC update: temperature, critics, actor, then the target critics (stable-baselines3's order);
        the critics and their targets only with ``update_actor=False``."""
        batch = self.replay_buffer.sample(self.batch_size, self.generator)
        noise = self._noise[:, : len(batch.action)].normal_(generator=self.generator)
        action_pi, log_prob_pi = self.actor.sample(batch.obs, noise[0])  # log π: (B,), or (B, R) per row
        alpha = self.alpha  # this update's α, read before the temperature moves (as stable-baselines3 does)
        if update_actor and self.alpha_optimizer is not None:
            alpha_loss = -(self.log_alpha * (_total(log_prob_pi.detach()) + self.target_entropy)).mean()
            self.alpha_optimizer.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_optimizer.step()

        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(batch.next_obs, noise[1])
            next_q = self.critic_target(batch.next_obs, next_action) - alpha * next_log_prob
            target = clipped_double_q_target(batch.reward, batch.terminated, next_q, self.gamma)
        q = self.critic(batch.obs, batch.action)
        qf_losses = (q - target).square().flatten(1).mean(dim=1)
        self.critic_optimizer.zero_grad(set_to_none=True)
        qf_losses.sum().backward()
        self.critic_optimizer.step()

        if update_actor:
            q_pi = self.critic(batch.obs, action_pi, frozen=True).min(dim=0).values
            actor_loss = actor_objective_loss(q_pi, log_prob_pi, alpha)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            self._last_actor = (actor_loss.detach(), log_prob_pi.detach())
        polyak_update(self.critic_target, self.critic, self.tau)
        self.num_updates += 1
        self._last_critic = (q.detach(), qf_losses.detach())

    def loss_metrics(self) -> dict[str, torch.Tensor]:
        if self._last_critic is None or self._last_actor is None:
            return {}
        (q, qf_losses), (actor_loss, log_prob) = self._last_critic, self._last_actor
        return {
            "losses/qf1_values": q[0].mean(),
            "losses/qf1_loss": qf_losses[0],
            "losses/qf2_loss": qf_losses[1],
            "losses/qf_loss": qf_losses.mean(),
            "losses/actor_loss": actor_loss,
            "losses/alpha": self.alpha,
            "losses/entropy": -_total(log_prob).mean(),
        }

    def latest_losses(self) -> dict[str, torch.Tensor]:
        losses = {}
        if self._last_critic is not None:
            losses["loss/critic"] = self._last_critic[1].mean()
        if self._last_actor is not None:
            losses["loss/actor"] = self._last_actor[0]
        return losses

    def forget_losses(self) -> None:
        self._last_critic = self._last_actor = None


def _total(log_prob: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the whole action ``(B,)``: a per-row actor's ``(B, R)`` rows summed (they are independent)."""
    return log_prob.flatten(1).sum(1) if log_prob.dim() > 1 else log_prob


class SACConfig(OffPolicyConfig):
    """A SAC run; ``sac`` holds :class:`SAC`'s keyword arguments."""

    ALGORITHM: ClassVar[type] = SAC
    SECTION: ClassVar[str] = "sac"
    RESUMABLE: ClassVar[tuple[str, ...]] = (*OffPolicyConfig.RESUMABLE, "sac.learning_rate", "sac.gradient_steps")

    agent: Literal["sac"] = "sac"
    name: str = "sac"
    sac: dict = Field(default_factory=dict)


register_agent("sac", SACConfig, build_off_policy)

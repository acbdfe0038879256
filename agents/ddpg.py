"""DDPG: Deep Deterministic Policy Gradient (Lillicrap et al. 2016), as TD3 without its three changes.

One critic, no target-policy smoothing, and the actor and targets updated at every critic update —
stable-baselines3's formulation (TD3 with ``n_critics=1``, ``policy_delay=1``, no target noise). The
actor is trained with the objective loss −Q(s, π(s)) (eq. 2.10), like TD3's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
from pydantic import Field

from amorctl.agents.base import register_agent
from amorctl.agents.networks import PolicyKind
from amorctl.agents.off_policy import OffPolicyConfig, build_off_policy
from amorctl.agents.td3 import TD3
from amorctl.envs import BatchedEnv
from amorctl.schema import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Tau, UnitFloat


class DDPG(TD3):
    """The DDPG learner; defaults are stable-baselines3's (learning rate 1e-3, 400-300 networks).

    Args: as :class:`~amorctl.agents.TD3`, without ``policy_delay``, ``target_policy_noise`` and
    ``target_noise_clip`` (fixed to 1, 0 and 0).
    """

    num_critics: ClassVar[int] = 1

    def __init__(
        self,
        env: BatchedEnv,
        *,
        learning_rate: PositiveFloat = 1e-3,
        gamma: UnitFloat = 0.99,
        tau: Tau = 0.005,
        batch_size: PositiveInt = 256,
        exploration_noise: NonNegativeFloat = 0.1,
        buffer_size: PositiveInt = 1_000_000,
        learning_starts: NonNegativeInt = 10_000,
        gradient_steps: NonNegativeInt = 1,
        hidden_sizes: Sequence[PositiveInt] = (400, 300),
        policy: PolicyKind = "mlp",
        bc_alpha: PositiveFloat | None = None,
        zero_init_actor: bool = False,
        compile: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
    ):
        super().__init__(env, learning_rate=learning_rate, gamma=gamma, tau=tau, batch_size=batch_size,
                         policy_delay=1, target_policy_noise=0.0, target_noise_clip=0.0,
                         exploration_noise=exploration_noise, buffer_size=buffer_size,
                         learning_starts=learning_starts, gradient_steps=gradient_steps, hidden_sizes=hidden_sizes,
                         policy=policy, bc_alpha=bc_alpha, zero_init_actor=zero_init_actor, compile=compile,
                         seed=seed, device=device)


class DDPGConfig(OffPolicyConfig):
    """A DDPG run; ``ddpg`` holds :class:`DDPG`'s keyword arguments."""

    ALGORITHM: ClassVar[type] = DDPG
    SECTION: ClassVar[str] = "ddpg"
    RESUMABLE: ClassVar[tuple[str, ...]] = (
        *OffPolicyConfig.RESUMABLE, "ddpg.learning_rate", "ddpg.exploration_noise", "ddpg.gradient_steps",
    )

    agent: Literal["ddpg"] = "ddpg"
    name: str = "ddpg"
    ddpg: dict = Field(default_factory=dict)


register_agent("ddpg", DDPGConfig, build_off_policy)

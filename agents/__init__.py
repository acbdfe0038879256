"""Learners, installed as ``amorctl.agents``: the learner protocol, the agent registry and the agents.

Importing this package registers the shipped agents (``direct``, ``td3``, ``ddpg``, ``sac``, ``bc``, ``sb3``)
and the experts (``run``, ``barzilai_borwein``, ``mpc``).
"""

from __future__ import annotations

from amorctl.agents.base import AGENTS, AgentSpec, Learner, optimizer_state_of, parameters_of, register_agent
from amorctl.agents.bc import BCConfig, BehaviouralCloning
from amorctl.agents.ddpg import DDPG, DDPGConfig
from amorctl.agents.direct import DirectAmortization, DirectConfig
from amorctl.agents.experts import EXPERTS, register_expert
from amorctl.agents.networks import (
    EnsembleCritic,
    EnsembleLinear,
    RowwiseActor,
    RowwiseCritic,
    build_actor,
    build_critic,
    make_actor,
)
from amorctl.agents.off_policy import OffPolicyLearner
from amorctl.agents.off_policy_algorithm import OffPolicyAlgorithm, polyak_update
from amorctl.agents.replay_buffer import ReplayBuffer, Transitions
from amorctl.agents.sac import SAC, SACConfig
from amorctl.agents.sb3 import SB3Config, SB3Learner, register_gym_form
from amorctl.agents.td3 import TD3, TD3Config, clipped_double_q_target, smoothed_target_action

__all__ = [
    "AGENTS",
    "DDPG",
    "EXPERTS",
    "SAC",
    "TD3",
    "AgentSpec",
    "BCConfig",
    "BehaviouralCloning",
    "DDPGConfig",
    "DirectAmortization",
    "DirectConfig",
    "EnsembleCritic",
    "EnsembleLinear",
    "Learner",
    "OffPolicyAlgorithm",
    "OffPolicyLearner",
    "ReplayBuffer",
    "RowwiseActor",
    "RowwiseCritic",
    "SACConfig",
    "SB3Config",
    "SB3Learner",
    "TD3Config",
    "Transitions",
    "build_actor",
    "build_critic",
    "clipped_double_q_target",
    "make_actor",
    "optimizer_state_of",
    "parameters_of",
    "polyak_update",
    "register_agent",
    "register_expert",
    "register_gym_form",
    "smoothed_target_action",
]

"""Learners, installed as ``amorctl.agents``."""

from __future__ import annotations

from amorctl.agents.direct import DirectAmortization
from amorctl.agents.networks import EnsembleCritic, EnsembleLinear, make_actor
from amorctl.agents.replay_buffer import ReplayBuffer, Transitions
from amorctl.agents.td3 import TD3, clipped_double_q_target, polyak_update, smoothed_target_action

__all__ = [
    "TD3",
    "DirectAmortization",
    "EnsembleCritic",
    "EnsembleLinear",
    "ReplayBuffer",
    "Transitions",
    "clipped_double_q_target",
    "make_actor",
    "polyak_update",
    "smoothed_target_action",
]

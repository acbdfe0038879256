"""MDP views of problems and control tasks, installed as ``amorctl.envs``."""

from __future__ import annotations

from amorctl.envs.base import BatchedEnv, RowLayout, StepResult
from amorctl.envs.gym_adapter import ActionMap, GymVectorEnv, check_env_id, make_gym_env

__all__ = ["ActionMap", "BatchedEnv", "GymVectorEnv", "RowLayout", "StepResult", "check_env_id", "make_gym_env"]

from amorctl.envs.admm import ADMMEnv
from amorctl.envs.admm_gym import ADMMGymEnv
from amorctl.envs.iterate import IterateEnv
from amorctl.envs.iterate_gym import ITERATE_ENV_IDS, IterateGymEnv, register_iterate_envs
from amorctl.envs.mjwarp import MjWarpEnv
from amorctl.envs.pendulum import PendulumControlEnv

__all__ += [
    "ITERATE_ENV_IDS",
    "ADMMEnv",
    "ADMMGymEnv",
    "IterateEnv",
    "IterateGymEnv",
    "MjWarpEnv",
    "PendulumControlEnv",
    "register_iterate_envs",
]

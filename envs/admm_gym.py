"""The single-instance gymnasium form of :class:`~amorctl.envs.ADMMEnv`, for stable-baselines3 and other gymnasium
users."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.admm import LOG_CLIP, ADMMEnv
from amorctl.envs.single_gym import SingleCopyGymEnv
from amorctl.problems.qp import QPFamily, make_qp_family


class ADMMGymEnv(SingleCopyGymEnv):
    """One copy of :class:`~amorctl.envs.ADMMEnv` behind gymnasium's single-environment API.

    Observations are float32 vectors in a ``Box`` bounding every feature (±``observation_clip`` for y and z − Ax,
    ±8 for the log features, log ρ within its range), actions ``Box(-1, 1, (action_dim,))``; the MDP is
    :class:`ADMMEnv`'s. ``info`` holds ``solved`` and ``iterations`` (ADMM iterations the problem has run).
    ``reset(seed=s)`` draws the problem :class:`ADMMEnv` with one copy draws after ``reset(seed=s)``; a
    ``reset()`` after an episode ended starts the problem the underlying environment already drew when it
    auto-reset.

    Args:
        family: a :class:`~amorctl.problems.qp.QPFamily` or a registered QP family name ("random_qp", ...).
        family_kwargs: the family's size keywords when ``family`` is a name.
        render_mode: only ``None`` (nothing to render).
        **env_kwargs: :class:`ADMMEnv` options (``iterations_per_step``, ``action``, ``reward``, ...).
    """

    def __init__(
        self,
        family: QPFamily | str = "random_qp",
        family_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ):
        self._check_arguments(render_mode, env_kwargs)
        if isinstance(family, str):
            family = make_qp_family(family, **(family_kwargs or {}))
        elif family_kwargs:
            raise ValueError("family_kwargs only apply when family is a QP family name")
        self.batched = ADMMEnv(family, 1, **env_kwargs)
        bound = max(self.batched.observation_clip, LOG_CLIP, self.batched.rho_log_range + 3.0)
        self.observation_space = gym.spaces.Box(-bound, bound, (self.batched.observation_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.batched.action_dim,), dtype=np.float32)

    def _step_info(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"solved": bool(info["solved"][0]), "iterations": int(info["iterations"][0])}

"""The single-instance gymnasium form of :class:`~amorctl.envs.ADMMEnv`, for stable-baselines3 and other gymnasium
users."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.admm import LOG_CLIP, ADMMEnv
from amorctl.problems.qp import QPFamily, make_qp_family


class ADMMGymEnv(gym.Env):
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

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        family: QPFamily | str = "random_qp",
        family_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ):
        if render_mode is not None:
            raise ValueError(f"ADMMGymEnv has nothing to render; render_mode must be None, got {render_mode!r}")
        if "num_envs" in env_kwargs:
            raise ValueError("ADMMGymEnv is a single environment; use ADMMEnv for num_envs > 1")
        if isinstance(family, str):
            family = make_qp_family(family, **(family_kwargs or {}))
        elif family_kwargs:
            raise ValueError("family_kwargs only apply when family is a QP family name")
        self.render_mode = render_mode
        self.batched = ADMMEnv(family, 1, **env_kwargs)
        bound = max(self.batched.observation_clip, LOG_CLIP, self.batched.rho_log_range + 3.0)
        self.observation_space = gym.spaces.Box(-bound, bound, (self.batched.observation_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.batched.action_dim,), dtype=np.float32)
        self._pending: np.ndarray | None = None
        self._started = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a new problem; ``seed`` reseeds the problem stream."""
        super().reset(seed=seed)
        if seed is not None or self._pending is None:
            obs = self._to_numpy(self.batched.reset(seed=seed))
        else:
            obs = self._pending
        self._pending, self._started = None, True
        return obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Set ρ from ``action`` and run ``iterations_per_step`` ADMM iterations."""
        if not self._started:
            raise RuntimeError("ADMMGymEnv: call reset() before step()")
        array = np.asarray(action, dtype=np.float32)
        if array.size != self.batched.action_dim:
            raise ValueError(
                f"{self.batched.name} expects actions of shape ({self.batched.action_dim},), got shape {array.shape}"
            )
        tensor = torch.from_numpy(array.reshape(1, -1).copy()).to(self.batched.device)
        obs, reward, terminated, truncated, info = self.batched.step(tensor)
        done_terminated, done_truncated = bool(terminated[0]), bool(truncated[0])
        self._pending = self._to_numpy(obs) if done_terminated or done_truncated else None
        out_info = {"solved": bool(info["solved"][0]), "iterations": int(info["iterations"][0])}
        return self._to_numpy(info["final_obs"]), float(reward[0]), done_terminated, done_truncated, out_info

    def close(self) -> None:
        self.batched.close()

    def _to_numpy(self, obs: torch.Tensor) -> np.ndarray:
        bound = self.observation_space.high[0]
        return np.clip(obs[0].detach().cpu().numpy().astype(np.float32, copy=True), -bound, bound)

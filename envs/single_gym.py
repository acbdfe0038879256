"""gymnasium's single-environment API over one copy of a :class:`~amorctl.envs.base.BatchedEnv`.

The learned-optimizer and ADMM environments are batched torch code; their gymnasium forms
(:class:`~amorctl.envs.IterateGymEnv`, :class:`~amorctl.envs.ADMMGymEnv`) are one copy of them behind
``reset`` / ``step`` with numpy arrays, for stable-baselines3 and other gymnasium users. This base holds what
they share: the numpy ↔ tensor mapping, the auto-reset's first observation kept for the next ``reset()``,
and the action-shape check; a subclass builds ``batched`` and the spaces and maps the step's ``info``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.base import BatchedEnv


class SingleCopyGymEnv(gym.Env):
    """One copy of a batched environment (``self.batched``, ``num_envs`` 1) as a gymnasium ``Env``.

    ``reset(seed=s)`` reseeds the underlying environment; a ``reset()`` after an episode ended starts the
    episode the underlying environment already drew when it auto-reset. Observations are clipped to
    ``observation_space``. Subclasses call :meth:`_check_arguments` first, then set ``batched``,
    ``observation_space`` and ``action_space``, and define :meth:`_step_info`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    batched: BatchedEnv

    def _check_arguments(self, render_mode: str | None, env_kwargs: dict[str, Any]) -> None:
        name = type(self).__name__
        if render_mode is not None:
            raise ValueError(f"{name} has nothing to render; render_mode must be None, got {render_mode!r}")
        if "num_envs" in env_kwargs:
            raise ValueError(f"{name} is a single environment; use its batched form for num_envs > 1")
        self.render_mode = render_mode
        self._pending: np.ndarray | None = None  # the first observation of the episode auto-reset already drew
        self._started = False

    def _step_info(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The gymnasium ``info`` of a step from the batched environment's (row 0)."""
        raise NotImplementedError

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._pending is None:
            obs = self._to_numpy(self.batched.reset(seed=seed))
        else:
            obs = self._pending
        self._pending, self._started = None, True
        return obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        array = np.asarray(action, dtype=np.float32)
        if array.size != self.batched.action_dim:
            raise ValueError(
                f"{self.batched.name} expects actions of shape ({self.batched.action_dim},), got shape {array.shape}"
            )
        tensor = torch.from_numpy(array.reshape(1, -1).copy()).to(self.batched.device)
        obs, reward, terminated, truncated, info = self.batched.step(tensor)
        done_terminated, done_truncated = bool(terminated[0]), bool(truncated[0])
        self._pending = self._to_numpy(obs) if done_terminated or done_truncated else None
        final = self._to_numpy(info["final_obs"])
        return final, float(reward[0]), done_terminated, done_truncated, self._step_info(info)

    def close(self) -> None:
        self.batched.close()

    def _to_numpy(self, obs: torch.Tensor) -> np.ndarray:
        space = self.observation_space
        return np.clip(obs[0].detach().cpu().numpy().astype(np.float32, copy=True), space.low, space.high)

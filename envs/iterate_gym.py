"""The single-instance gymnasium form of :class:`~amorctl.envs.iterate.IterateEnv`, and its registered ids.

After one explicit registration (importing amorctl registers nothing with gymnasium)::

    import amorctl.envs
    amorctl.envs.register_iterate_envs()
    env = gymnasium.make("amorctl/Quadratic-v0", max_iterations=50, reward="log_gap",
                         problem_kwargs={"dim": 5})

Registered ids (``max_episode_steps`` = the default T = 50; when overriding ``max_iterations``
pass ``max_episode_steps`` to ``gymnasium.make`` too, or the time limit cuts episodes at 50):
``amorctl/Quadratic-v0``, ``amorctl/Rosenbrock-v0``, ``amorctl/LogisticRegression-v0``,
``amorctl/Lasso-v0``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.iterate import OBSERVATION_BOUND, IterateEnv
from amorctl.problems import Problem, make_problem

DEFAULT_MAX_ITERATIONS = 50
"""T of the registered ids (IterateEnv's default), also their ``max_episode_steps``."""

ITERATE_ENV_IDS: dict[str, str] = {
    "amorctl/Quadratic-v0": "quadratic",
    "amorctl/Rosenbrock-v0": "rosenbrock",
    "amorctl/LogisticRegression-v0": "logistic_regression",
    "amorctl/Lasso-v0": "lasso",
}
"""gymnasium id -> problem family name (``amorctl.problems.PROBLEMS``)."""


class IterateGymEnv(gym.Env):
    """One copy of :class:`~amorctl.envs.iterate.IterateEnv` behind gymnasium's single-environment API.

    Observations and actions are float32 numpy vectors in ``Box(-1e6, 1e6, (observation_dim,))`` and
    ``Box(-1, 1, (action_dim,))``; the observation layout, rewards and termination are those of
    :class:`IterateEnv` (see its docstring). ``step`` returns a Python float reward and bools, and
    ``info`` holds ``converged``, ``diverged`` and, with a reference solver, ``gap`` = f − f* of the
    iterate reached.

    Seeding: ``reset(seed=s + i)`` seeds the underlying 1-copy environment with s + i, and the
    episodes that follow are exactly those of row i of ``IterateEnv(..., num_envs=N,
    seeding="per_row")`` reset with s and fed the same actions: ``reset()`` after an episode ended
    starts the episode the underlying environment already drew when it auto-reset. A ``reset()`` in
    the middle of an episode draws a new one from the same stream.

    Args:
        problem: a :class:`~amorctl.problems.Problem` or a registered family name ("quadratic", ...).
        problem_kwargs: constructor arguments of the family when ``problem`` is a name.
        render_mode: only ``None`` (nothing to render).
        **env_kwargs: :class:`IterateEnv` options (``max_iterations``, ``action``, ``reward``, ...;
            ``num_envs`` is 1).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        problem: Problem | str = "quadratic",
        problem_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ):
        if render_mode is not None:
            raise ValueError(f"IterateGymEnv has nothing to render; render_mode must be None, got {render_mode!r}")
        if "num_envs" in env_kwargs:
            raise ValueError("IterateGymEnv is a single environment; use IterateEnv for num_envs > 1")
        if isinstance(problem, str):
            problem = make_problem(problem, **(problem_kwargs or {}))
        elif problem_kwargs:
            raise ValueError("problem_kwargs only apply when problem is a family name")
        self.render_mode = render_mode
        self.batched = IterateEnv(problem, 1, **env_kwargs)
        self.observation_space = gym.spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (self.batched.observation_dim,), dtype=np.float32
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.batched.action_dim,), dtype=np.float32)
        self._pending: np.ndarray | None = None  # first observation of the episode auto-reset already drew
        self._started = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the problem stream (see the class docstring)."""
        super().reset(seed=seed)
        if seed is not None or self._pending is None:
            obs = self._to_numpy(self.batched.reset(seed=seed))
        else:
            obs = self._pending
        self._pending, self._started = None, True
        return obs, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One solver iteration with ``action`` in [-1, 1]^action_dim."""
        if not self._started:
            raise RuntimeError("IterateGymEnv: call reset() before step()")
        array = np.asarray(action, dtype=np.float32)
        if array.size != self.batched.action_dim:
            raise ValueError(
                f"{self.batched.name} expects actions of shape ({self.batched.action_dim},), got shape {array.shape}"
            )
        tensor = torch.from_numpy(array.reshape(1, -1).copy()).to(self.batched.device)
        obs, reward, terminated, truncated, info = self.batched.step(tensor)
        done_terminated, done_truncated = bool(terminated[0]), bool(truncated[0])
        ended = done_terminated or done_truncated
        self._pending = self._to_numpy(obs) if ended else None
        out_info: dict[str, Any] = {"converged": bool(info["converged"][0]), "diverged": bool(info["diverged"][0])}
        if "final_gap" in info:
            out_info["gap"] = float(info["final_gap"][0])
        return self._to_numpy(info["final_obs"]), float(reward[0]), done_terminated, done_truncated, out_info

    def close(self) -> None:
        self.batched.close()

    @staticmethod
    def _to_numpy(obs: torch.Tensor) -> np.ndarray:
        return obs[0].detach().cpu().numpy().astype(np.float32, copy=True)


def register_iterate_envs() -> None:
    """Register the ids of :data:`ITERATE_ENV_IDS` with gymnasium (once; a no-op when already there)."""
    for env_id, family in ITERATE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="amorctl.envs.iterate_gym:IterateGymEnv",
                kwargs={"problem": family},
                max_episode_steps=DEFAULT_MAX_ITERATIONS,
            )

"""gymnasium vector environments behind the batched torch interface (:class:`~amorctl.envs.base.BatchedEnv`).

Any gymnasium id with a Box action space and a Box observation space works (``Pendulum-v1``,
``InvertedPendulum-v5``, ``HalfCheetah-v5``, ``Hopper-v5``, ...). Actions arrive in the policy's box
[-1, 1] and are rescaled affinely to the environment's bounds by :class:`ActionMap`, the one such map
(training, :func:`make_gym_env` and :func:`amorctl.eval.video.record_video` all use it); observations
are flattened to float32.

Ids of the form ``"module:Env-v0"`` are accepted only when ``module`` is already imported
(:func:`check_env_id`): an id read from a config file never imports code.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.base import BatchedEnv, StepResult

Vectorization = Literal["auto", "sync", "async"]

ASYNC_MIN_ENVS, ASYNC_MIN_CPUS = 8, 8
"""``vectorization="auto"`` uses worker processes only for this many copies on this many usable cores."""


def check_env_id(env_id: str) -> None:
    """Raise ``ValueError`` (one sentence) unless ``env_id`` is a registered gymnasium id; never imports anything.

    A ``"module:Env-v0"`` id, which :func:`gymnasium.make` would import ``module`` for, is accepted only
    when ``module`` is already in ``sys.modules`` (``scripts/train.py`` and ``scripts/evaluate.py``
    import it with ``--import module``); then ``Env-v0`` must be registered. So a config file, such as
    the ``config.yaml`` of a run someone sent, cannot make evaluation or ``--resume`` execute code: the
    import that :func:`gymnasium.make` and :func:`gymnasium.make_vec` do for such an id is a no-op by
    the time they run. An unknown id gets the closest registered ids as suggestions. amorctl's own
    ids (``amorctl/Quadratic-v0``, ...) are registered here on first use.
    """
    name = env_id
    if ":" in env_id:
        module, name = env_id.split(":", 1)
        if module not in sys.modules:
            raise ValueError(
                f"environment id {env_id!r} names module {module!r}, which is not imported: "
                f"pass --import {module} to import it and register its environments"
            )
    if name.startswith("amorctl/"):
        from amorctl.envs.iterate_gym import register_iterate_envs

        register_iterate_envs()
    if name in gym.registry:
        return
    matches = difflib.get_close_matches(name, list(gym.registry), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, matches))}?" if matches else "; see gymnasium.pprint_registry()"
    raise ValueError(f"unknown gymnasium environment id {name!r}{hint}")


class ActionMap:
    """The one affine map from the policy's box [-1, 1] onto a Box action space's [low, high].

    ``a ↦ center + half_width · clip(a, -1, 1)`` in float64 with ``center = (high + low) / 2`` and
    ``half_width = (high - low) / 2``, cast to the space's dtype. Every path from a policy's action to
    a gymnasium environment goes through it (:class:`GymVectorEnv`, :func:`make_gym_env`,
    :func:`amorctl.eval.video.record_video`), so a filmed or stable-baselines3 episode sees exactly the
    environment actions that training does.

    Args:
        env_id: the environment's name in error messages.
        space: the environment's (single-copy) action space; ``ValueError`` unless a Box with finite bounds.
    """

    def __init__(self, env_id: str, space: gym.Space):
        low, high = _box_bounds(env_id, space)
        self.center = ((high + low) / 2).reshape(-1)
        self.half_width = ((high - low) / 2).reshape(-1)
        self.shape, self.dtype = tuple(space.shape), space.dtype

    def __call__(self, action: np.ndarray) -> np.ndarray:
        """Flat actions ``(..., action_dim)`` in [-1, 1] → environment actions ``(..., *space.shape)``."""
        mapped = self.center + self.half_width * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return mapped.astype(self.dtype, copy=False).reshape(*mapped.shape[:-1], *self.shape)


class UnitActions(gym.ActionWrapper):
    """A gymnasium ``Env`` whose action space is [-1, 1]^shape, mapped onto the wrapped one's by :class:`ActionMap`."""

    def __init__(self, env: gym.Env, env_id: str):
        super().__init__(env)
        self.action_map = ActionMap(env_id, env.action_space)
        self.action_space = gym.spaces.Box(-1.0, 1.0, self.action_map.shape, self.action_map.dtype)

    def action(self, action: np.ndarray) -> np.ndarray:
        return self.action_map(np.reshape(action, -1))


def make_gym_env(env_id: str, **make_kwargs: Any) -> gym.Env:
    """One gymnasium ``Env`` whose actions are in [-1, 1], rescaled like :class:`GymVectorEnv` does.

    The single-instance form for gymnasium users such as stable-baselines3; ``make_kwargs`` go to
    :func:`gymnasium.make` (e.g. ``max_episode_steps``).
    """
    check_env_id(env_id)
    env = gym.make(env_id, **make_kwargs)
    try:
        return UnitActions(env, env_id)
    except ValueError:
        env.close()
        raise


class GymVectorEnv(BatchedEnv):
    """N copies of a gymnasium environment as one :class:`~amorctl.envs.base.BatchedEnv`.

    Built on :func:`gymnasium.make_vec` with ``AutoresetMode.SAME_STEP``, so the true final observation
    of a finished episode comes back in the same step. Per step, the action batch crosses to numpy
    once and each returned array crosses to torch once; the adapter loops in Python only over the
    copies whose episode ended, to gather their final observations.
    Actions are clipped to [-1, 1], then mapped affinely onto the action space's [low, high] (:class:`ActionMap`).

    ``vectorization="auto"`` steps the copies in this process (``SyncVectorEnv``) unless there are at
    least 8 copies and at least 8 usable cores, where it uses worker processes (``AsyncVectorEnv``).
    Measured with random actions on the 2-core development machine (transitions per second, sync /
    async): HalfCheetah-v5 N=1 17.1k / 10.8k, N=2 29.5k / 10.9k, N=8 31.4k / 10.1k; Hopper-v5 N=8
    9.0k / 4.6k; Humanoid-v5 N=8 5.5k / 3.5k. A MuJoCo step costs 60-240 µs there, no more than the
    inter-process round trip and the workers' contention for two cores add, so worker processes can
    only pay when many copies get cores of their own (the 8/8 threshold is that reasoning, not a
    measurement on such a machine).

    Args:
        env_id: a registered gymnasium id (``"module:Env-v0"`` once ``module`` is imported: :func:`check_env_id`).
        num_envs: N.
        device: where the returned tensors live.
        vectorization: ``"auto"``, ``"sync"`` or ``"async"`` (see above).
        seed: seeds the first :meth:`reset` when it is called without a seed.
        **make_kwargs: passed to every copy's :func:`gymnasium.make` (e.g. ``max_episode_steps``).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        vectorization: Vectorization = "auto",
        seed: int | None = None,
        **make_kwargs: Any,
    ):
        check_env_id(env_id)
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if vectorization not in ("auto", "sync", "async"):
            raise ValueError(f"vectorization must be 'auto', 'sync' or 'async', got {vectorization!r}")
        if vectorization == "auto":
            vectorization = "async" if num_envs >= ASYNC_MIN_ENVS and _usable_cpus() >= ASYNC_MIN_CPUS else "sync"
        self.name, self.num_envs, self.device = env_id, num_envs, torch.device(device)
        self.vectorization = vectorization
        self.env = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode=vectorization,
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
            **make_kwargs,
        )
        try:
            self._action_map = ActionMap(env_id, self.env.single_action_space)
            if not isinstance(self.env.single_observation_space, gym.spaces.Box):
                raise ValueError(
                    f"{env_id} has observation space {self.env.single_observation_space}; GymVectorEnv needs a Box"
                )
        except ValueError:
            self.env.close()
            raise
        self.action_dim = int(np.prod(self.env.single_action_space.shape))
        self.observation_dim = int(np.prod(self.env.single_observation_space.shape))
        self._seed = seed
        self._episode_return = torch.zeros(num_envs, dtype=torch.float32, device=self.device)
        self._episode_length = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._needs_reset = True

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        obs, _ = self.env.reset(seed=seed)
        self._episode_return.zero_()
        self._episode_length.zero_()
        self._needs_reset = False
        return self._observations(obs)

    def step(self, action: torch.Tensor) -> StepResult:
        if self._needs_reset:
            raise RuntimeError(f"{self.name}: call reset() before the first step()")
        host = action.detach().cpu() if isinstance(action, torch.Tensor) else action
        self.validate_action(host)
        obs, reward, terminated, truncated, env_info = self.env.step(self._action_map(host.double().numpy()))

        final_obs = obs
        if "final_obs" in env_info:
            final_obs = obs.copy()
            for i in np.flatnonzero(env_info["_final_obs"]):
                final_obs[i] = env_info["final_obs"][i]
        obs_t = self._observations(obs)
        reward_t = torch.as_tensor(reward, dtype=torch.float32, device=self.device)
        terminated_t = torch.as_tensor(terminated, dtype=torch.bool, device=self.device)
        truncated_t = torch.as_tensor(truncated, dtype=torch.bool, device=self.device)

        self._episode_return += reward_t
        self._episode_length += 1
        ended = terminated_t | truncated_t
        info = {
            "final_obs": obs_t if final_obs is obs else self._observations(final_obs),
            "episode_return": self._episode_return.clone(),
            "episode_length": self._episode_length.clone(),
        }
        self._episode_return.masked_fill_(ended, 0.0)
        self._episode_length.masked_fill_(ended, 0)
        return obs_t, reward_t, terminated_t, truncated_t, info

    def close(self) -> None:
        self.env.close()

    def _observations(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, dtype=torch.float32, device=self.device).reshape(self.num_envs, -1)


def _box_bounds(env_id: str, space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    """The finite bounds of a Box action space in float64, or ``ValueError``."""
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"{env_id} has action space {space}; amorctl agents need a Box (continuous) action space")
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"{env_id} has unbounded actions {space}; rescaling from [-1, 1] needs finite bounds")
    return low, high


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

"""The one rollout loop and the one summary of returns: deterministic episodes of a policy callable.

:func:`run_episodes` scores any ``policy(obs) -> action`` on any :class:`~amorctl.envs.BatchedEnv`:
training's periodic evaluations, ``scripts/evaluate.py`` and the benchmark harness (for amorctl's
policies and stable-baselines3's alike) all go through it, and :func:`summarize` is the one place the
per-episode returns and lengths become means and standard deviations. Which seeds each of them uses
is in :mod:`amorctl.eval.seeds`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from amorctl.envs import BatchedEnv
from amorctl.run.errors import EvaluationError, NonFiniteError


@torch.no_grad()
def run_episodes(
    policy: Callable[[torch.Tensor], torch.Tensor], env: BatchedEnv, episodes: int, seed: int
) -> dict[str, Any]:
    """Play ``episodes`` complete episodes of ``policy``; episode k starts from ``reset(seed=seed + k)``.

    The N copies of ``env`` play rounds of N episodes side by side (round r resets with
    ``seed + r·N``, so copy i plays episode r·N + i); a copy that finishes early waits for the
    round's last one (its actions are not scored). On a gymnasium task, and on an
    :class:`~amorctl.envs.IterateEnv` with ``seeding="per_row"``, episode k is therefore the same
    whatever N is. ``env`` is left mid-episode: use one separate from the training environment.

    Args:
        policy: maps observations (N, observation_dim) to actions (N, action_dim) in [-1, 1], e.g. a
            deterministic ``agent.predict``.
        env: the evaluation environment.
        episodes: how many episodes to play (at least 1).
        seed: the first episode's seed.

    Returns:
        :func:`summarize` of the episodes, in episode order.

    Raises:
        EvaluationError: ``episodes`` is below 1.
        NonFiniteError: the policy returned NaN or Inf for an episode being scored, naming its seed
            and step (one ``isfinite`` per step on the actions, before the environment sees them).
    """
    if episodes < 1:
        raise EvaluationError(f"the number of episodes must be at least 1, got {episodes}")
    n = env.num_envs
    returns: list[float] = []
    lengths: list[int] = []
    for first in range(0, episodes, n):
        obs = env.reset(seed=seed + first)
        active = min(n, episodes - first)
        done = torch.zeros(n, dtype=torch.bool)
        done[active:] = True
        round_returns, round_lengths = [math.nan] * active, [0] * active
        step = 0
        while not bool(done.all()):
            action = _finite_actions(policy(obs), done, seed + first, step)
            obs, _, terminated, truncated, info = env.step(action)
            step += 1
            ended = (terminated | truncated).cpu() & ~done
            if ended.any():
                episode_return, episode_length = info["episode_return"].cpu(), info["episode_length"].cpu()
                for i in ended.nonzero().flatten().tolist():
                    round_returns[i], round_lengths[i] = float(episode_return[i]), int(episode_length[i])
                done |= ended
        returns += round_returns
        lengths += round_lengths
    return summarize(returns, lengths, [seed + k for k in range(episodes)])


def _finite_actions(action: torch.Tensor, done: torch.Tensor, round_seed: int, step: int) -> torch.Tensor:
    """``action``, checked finite in the rows still being scored; rows already done get zeros where non-finite."""
    if not isinstance(action, torch.Tensor) or action.dim() != 2 or action.shape[0] != done.numel():
        return action  # not (N, action_dim): the environment's validate_action refuses it in one sentence
    finite = torch.isfinite(action).all(dim=1).cpu()
    if bool(finite.all()):
        return action
    scored = ~finite & ~done
    if scored.any():
        i = int(scored.nonzero()[0])
        raise NonFiniteError(
            f"the policy returned a NaN or Inf action at step {step} of the evaluation episode with seed "
            f"{round_seed + i}; evaluation stopped"
        )
    return torch.where(finite.to(action.device).unsqueeze(-1), action, torch.zeros_like(action))


def summarize(returns: list[float], lengths: list[int], seeds: list[int]) -> dict[str, Any]:
    """Means and population standard deviations of per-episode returns and lengths, with the lists.

    Returns ``episodes``, ``mean_return``, ``std_return``, ``mean_length``, ``std_length`` (float64
    statistics) and the per-episode ``seeds``, ``returns`` and ``lengths``.
    """
    r, length = np.asarray(returns, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    return {
        "episodes": len(returns),
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "mean_length": float(length.mean()),
        "std_length": float(length.std()),
        "seeds": list(seeds),
        "returns": [float(value) for value in returns],
        "lengths": [int(value) for value in lengths],
    }

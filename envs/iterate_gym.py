"""The single-instance gymnasium form of :class:`~amorctl.envs.iterate.IterateEnv`, and its registered ids.

After one explicit registration (importing amorctl registers nothing with gymnasium)::

    import amorctl.envs
    amorctl.envs.register_iterate_envs()
    env = gymnasium.make("amorctl/Quadratic-v0")                 # the learnable defaults below
    env = gymnasium.make("amorctl/Quadratic-v0", problem_kwargs={"dim": 5}, action="update")  # any IterateEnv option

Registered ids: ``amorctl/Quadratic-v0``, ``amorctl/Rosenbrock-v0``, ``amorctl/LogisticRegression-v0``,
``amorctl/Lasso-v0``, each over its family's default problem sizes.

**Defaults of the registered ids** (:data:`REGISTERED_ENV_KWARGS`, :data:`STEP_SIZE_RANGES`; not IterateEnv's own
constructor defaults, which configs rely on): the scale-free step-size set-up that TD3 learns well
(``configs/td3_opt_quadratic.yaml``), chosen so that a stock client (stable-baselines3 with default
hyper-parameters) learns it:

- action ``step_size``: one number a ∈ [-1, 1] picks the step α of gradient descent (ISTA for the lasso)
  log-uniformly in the family's ``step_size_range``: quadratic (0.005, 2), rosenbrock (1e-3, 0.05),
  logistic_regression (0.01, 5), lasso (0.01, 2). Each range starts well below the smallest useful
  step. For quadratic and lasso it ends well past the largest stable step: the stable step of a
  quadratic depends on its condition number (2/κ), so a policy has to read the curvature off the
  secant block (Barzilai–Borwein beats every fixed step by far). For rosenbrock and
  logistic_regression it ends at about the largest step that is stable on the family's problems: with
  a range reaching past it (e.g. rosenbrock (1e-4, 1), logistic (0.01, 100)) the best mean action of
  a noisy (Gaussian, PPO-style) policy sits far below the best deterministic one, and
  stable-baselines3's PPO ended below the zero action after 20,000 steps. The zero action is the
  geometric middle of the range (α = 0.1, 0.0071, 0.22, 0.14), and it is not the best fixed step of
  any family, so there is something to learn;
- observation (6 floats): the log relative gap, the log stationarity ratio, t/T and the ``secant`` block
  (the logs of the two Barzilai–Borwein steps of the last update); no raw iterate, gradient or context,
  so the scale of an observation does not depend on the problem's (history 0);
- reward ``log_gap``: log((f_t − f*)/S + ρ) − log((f_{t+1} − f*)/S + ρ) with S the initial gap and
  ρ = :data:`GAP_FLOOR` = 1e-6, i.e. the decrease of the log relative gap (every family registered has a
  reference solver, so f* is known: closed form for quadratic and rosenbrock, Newton for
  logistic_regression, FISTA for lasso). **Scale**: every per-step reward lies in
  [−:data:`REWARD_BOUND`, :data:`REWARD_BOUND`] = [−5, 5] (``reward_clip``; a divergence is −5 and ends the
  episode), an episode's return telescopes to at most log(1 + 1/ρ) ≈ 13.8 (the gap driven to the floor),
  0 for standing still and negative for a step that overshoots;
- T = ``max_iterations`` = ``max_episode_steps`` = :data:`DEFAULT_MAX_ITERATIONS` = 30, no early
  termination (``tolerance`` 0) except divergence. When overriding ``max_iterations`` pass
  ``max_episode_steps`` to ``gymnasium.make`` too, or the time limit cuts episodes at 30.

``scripts/benchmark.py gym-ids-sb3`` measures SAC, TD3 and PPO of stable-baselines3 on every id against the
random policy and the zero action (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.iterate import OBSERVATION_BOUND, IterateEnv
from amorctl.envs.single_gym import SingleCopyGymEnv
from amorctl.problems import Problem, make_problem

DEFAULT_MAX_ITERATIONS = 30
"""T of the registered ids, also their ``max_episode_steps``."""

REWARD_BOUND = 5.0
"""Every per-step reward of a registered id lies in [−REWARD_BOUND, REWARD_BOUND] (``reward_clip``)."""

GAP_FLOOR = 1e-6
"""ρ of the registered ids: an episode's return is at most log(1 + 1/ρ) ≈ 13.8."""

REGISTERED_ENV_KWARGS: dict[str, Any] = {
    "max_iterations": DEFAULT_MAX_ITERATIONS,
    "action": "step_size",
    "reward": "log_gap",
    "gap_floor": GAP_FLOOR,
    "reward_clip": REWARD_BOUND,
    "divergence_penalty": REWARD_BOUND,
    "history": 0,
    "secant_features": True,
    "omit_blocks": ("iterate", "gradient"),
    "tolerance": 0.0,
}
"""The :class:`IterateEnv` options every registered id shares (the family's step range comes on top)."""

STEP_SIZE_RANGES: dict[str, tuple[float, float]] = {
    "quadratic": (0.005, 2.0),
    "rosenbrock": (1e-3, 0.05),
    "logistic_regression": (0.01, 5.0),
    "lasso": (0.01, 2.0),
}
"""``step_size_range`` of each registered family (its default problem sizes); why these, in the module docstring."""

ITERATE_ENV_IDS: dict[str, str] = {
    "amorctl/Quadratic-v0": "quadratic",
    "amorctl/Rosenbrock-v0": "rosenbrock",
    "amorctl/LogisticRegression-v0": "logistic_regression",
    "amorctl/Lasso-v0": "lasso",
}
"""gymnasium id -> problem family name (``amorctl.problems.PROBLEMS``)."""


class IterateGymEnv(SingleCopyGymEnv):
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

    def __init__(
        self,
        problem: Problem | str = "quadratic",
        problem_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ):
        self._check_arguments(render_mode, env_kwargs)
        if isinstance(problem, str):
            problem = make_problem(problem, **(problem_kwargs or {}))
        elif problem_kwargs:
            raise ValueError("problem_kwargs only apply when problem is a family name")
        self.batched = IterateEnv(problem, 1, **env_kwargs)
        self.observation_space = gym.spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (self.batched.observation_dim,), dtype=np.float32
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.batched.action_dim,), dtype=np.float32)

    def _step_info(self, info: dict[str, torch.Tensor]) -> dict[str, Any]:
        out: dict[str, Any] = {"converged": bool(info["converged"][0]), "diverged": bool(info["diverged"][0])}
        if "final_gap" in info:
            out["gap"] = float(info["final_gap"][0])
        return out


def register_iterate_envs() -> None:
    """Register the ids of :data:`ITERATE_ENV_IDS` with gymnasium (once; a no-op when already there).

    Each id's kwargs are :func:`registered_kwargs` of its family; ``max_episode_steps`` is
    :data:`DEFAULT_MAX_ITERATIONS`.
    """
    for env_id, family in ITERATE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="amorctl.envs.iterate_gym:IterateGymEnv",
                kwargs=registered_kwargs(family),
                max_episode_steps=DEFAULT_MAX_ITERATIONS,
            )


def registered_kwargs(family: str) -> dict[str, Any]:
    """The keyword arguments of the registered id of ``family``: :data:`REGISTERED_ENV_KWARGS` plus its step range."""
    if family not in STEP_SIZE_RANGES:
        raise ValueError(f"no registered id for family {family!r}; expected one of: {', '.join(STEP_SIZE_RANGES)}")
    kwargs: dict[str, Any] = {"problem": family, **REGISTERED_ENV_KWARGS}
    kwargs["step_size_range"] = STEP_SIZE_RANGES[family]
    return kwargs

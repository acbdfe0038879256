"""The one rollout loop and summary: seeds per episode, any number of copies, NaN actions stop with exit code 3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from amorctl.envs import GymVectorEnv, IterateEnv
from amorctl.eval.rollouts import run_episodes, summarize
from amorctl.problems import Quadratic
from amorctl.run.errors import EvaluationError, NonFiniteError


def damping(obs: torch.Tensor) -> torch.Tensor:
    """A deterministic Pendulum policy: torque against the angular velocity."""
    return -obs[:, 2:3].clamp(-1, 1)


def pendulum(num_envs: int, max_episode_steps: int = 4) -> GymVectorEnv:
    return GymVectorEnv("Pendulum-v1", num_envs=num_envs, max_episode_steps=max_episode_steps)


def test_episode_k_starts_from_seed_plus_k_whatever_the_number_of_copies():
    with pendulum(1) as one, pendulum(2) as two, pendulum(5) as five:
        alone = run_episodes(damping, one, episodes=3, seed=3)
        assert run_episodes(damping, two, episodes=3, seed=3)["returns"] == pytest.approx(alone["returns"], rel=1e-6)
        assert run_episodes(damping, five, episodes=3, seed=3)["returns"] == pytest.approx(alone["returns"], rel=1e-6)
        later = run_episodes(damping, two, episodes=2, seed=4)
    assert alone["seeds"] == [3, 4, 5] and alone["lengths"] == [4, 4, 4] and alone["episodes"] == 3
    assert later["returns"] == pytest.approx(alone["returns"][1:], rel=1e-6)
    assert len(set(alone["returns"])) == 3


def test_a_learned_optimizer_episode_is_the_same_on_any_number_of_per_row_copies():
    def env(n: int) -> IterateEnv:
        return IterateEnv(Quadratic(dim=3), n, max_iterations=6, seeding="per_row")

    def policy(obs: torch.Tensor) -> torch.Tensor:
        return torch.full((obs.shape[0], 3), 0.1)

    alone = run_episodes(policy, env(1), episodes=4, seed=11)
    assert run_episodes(policy, env(3), episodes=4, seed=11)["returns"] == pytest.approx(alone["returns"], rel=1e-5)


def test_summarize_gives_population_statistics_and_the_lists():
    result = summarize([1.0, 2.0, 6.0], [10, 20, 30], [7, 8, 9])
    assert result == {
        "episodes": 3,
        "mean_return": 3.0,
        "std_return": pytest.approx(np.sqrt(14 / 3)),
        "mean_length": 20.0,
        "std_length": pytest.approx(np.sqrt(200 / 3)),
        "seeds": [7, 8, 9],
        "returns": [1.0, 2.0, 6.0],
        "lengths": [10, 20, 30],
    }


def test_a_nan_action_stops_with_exit_code_3_naming_the_episode_and_step():
    calls = []

    def breaks_on_row_1_at_step_2(obs: torch.Tensor) -> torch.Tensor:
        action = damping(obs)
        if len(calls) == 2:
            action[1] = float("nan")
        calls.append(1)
        return action

    with pendulum(2) as env, pytest.raises(NonFiniteError) as raised:
        run_episodes(breaks_on_row_1_at_step_2, env, episodes=4, seed=100)
    assert raised.value.exit_code == 3
    assert str(raised.value) == (
        "the policy returned a NaN or Inf action at step 2 of the evaluation episode with seed 101; evaluation stopped"
    )


def test_an_inf_action_in_a_later_round_names_that_episode():
    calls = []

    def inf_at_call_4(obs: torch.Tensor) -> torch.Tensor:
        action = damping(obs)
        if len(calls) == 4:  # round 0 took steps 0-3 of episodes 50 and 51; round 1 plays 52
            action[0] = float("inf")
        calls.append(1)
        return action

    with pendulum(2) as env, pytest.raises(NonFiniteError, match="at step 0 of the evaluation episode with seed 52;"):
        run_episodes(inf_at_call_4, env, episodes=3, seed=50)


def test_nan_in_a_copy_that_is_not_scored_is_ignored():
    """With 2 copies and 1 episode the second copy only waits; its actions never reach the score or the env."""

    def nan_in_row_1(obs: torch.Tensor) -> torch.Tensor:
        action = damping(obs)
        action[1] = float("nan")
        return action

    with pendulum(2) as env, pendulum(1) as one:
        result = run_episodes(nan_in_row_1, env, episodes=1, seed=5)
        assert result["returns"] == pytest.approx(run_episodes(damping, one, episodes=1, seed=5)["returns"], rel=1e-6)


def test_at_least_one_episode():
    with pendulum(1) as env, pytest.raises(EvaluationError, match="at least 1, got 0"):
        run_episodes(damping, env, episodes=0, seed=0)

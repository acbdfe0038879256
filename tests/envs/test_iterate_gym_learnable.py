"""Issue 12 item 4: stable-baselines3 with its default hyper-parameters learns every registered ``amorctl/*`` id.

Slow (one SAC or TD3 cell is several CPU-minutes):
``python -m pytest -m slow tests/envs/test_iterate_gym_learnable.py``.
The same runs make ``python scripts/benchmark.py gym-ids-sb3`` (benchmarks/RESULTS.md).
"""

import pytest

from amorctl.benchmarking.gym_ids import ALGORITHMS, train_and_evaluate
from amorctl.envs import ITERATE_ENV_IDS

STEPS = 20_000
EPISODES = 50


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("env_id", list(ITERATE_ENV_IDS))
def test_sb3_defaults_beat_the_random_policy_and_the_zero_action(env_id, algorithm):
    result = train_and_evaluate(env_id, algorithm, seed=0, steps=STEPS, episodes=EPISODES)
    assert result.trained_return > result.random_return, result
    assert result.trained_return > result.zero_return, result

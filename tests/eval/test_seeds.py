"""The table of evaluation seed offsets: fixed values, and periodic evaluations that never replay an episode."""

from __future__ import annotations

from amorctl.eval import seeds


def test_the_offsets_are_the_recorded_ones():
    """Every recorded result depends on these values: changing one is a change of protocol, not a refactor."""
    assert seeds.PERIODIC_EVAL_SEED_OFFSET == 1_000_000
    assert seeds.EVALUATE_SEED_OFFSET == seeds.HELDOUT_SEED_OFFSET == 2_000_000
    assert seeds.TUNING_SEED_OFFSET == 3_000_000


def test_periodic_evaluations_play_fresh_episodes_apart_from_evaluate_py():
    episodes = 10
    starts = [seeds.periodic_eval_seed(7, k, episodes) for k in range(5)]
    assert starts == [1_000_007, 1_000_017, 1_000_027, 1_000_037, 1_000_047]
    played = [start + j for start in starts for j in range(episodes)]
    assert len(set(played)) == len(played)  # no episode seed twice
    last = seeds.periodic_eval_seed(7, 1_000_000 // episodes - 1, episodes) + episodes - 1
    assert last < 7 + seeds.EVALUATE_SEED_OFFSET

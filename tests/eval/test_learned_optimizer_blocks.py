"""``benchmark.py learned-optimizers --blocks``: the policy against BB on further held-out blocks."""

import torch

from amorctl.benchmarking.learned_optimizers import block_comparison
from amorctl.run.config import load_config


def _config(*overrides):
    return load_config("configs/td3_opt_quadratic_residual.yaml",
                       ["device=cpu", "env.problem.dim=4", "env.iterate.max_iterations=8", *overrides])


def test_the_zero_residual_policy_is_bb2_in_every_block():
    zero = lambda obs: torch.zeros(obs.shape[0], 1)  # noqa: E731
    pooled_policy, pooled_bb, ratio, count, median, spread = block_comparison(
        _config(), zero, "bb2", {"step_size": 1.0}, blocks=3, size=16)
    assert pooled_policy == pooled_bb and ratio == 1.0 and median == 1.0
    assert count == "3/3" and "–" in spread


def test_a_worse_policy_is_counted_worse_and_blocks_differ():
    long = lambda obs: torch.ones(obs.shape[0], 1)  # noqa: E731  (every step e^0.5 times BB2's)
    *_, ratio, count, _, spread = block_comparison(
        _config(), long, "bb2", {"step_size": 1.0}, blocks=3, size=16)
    assert ratio > 1.0 and count != "3/3"
    low, high = spread.split("–")
    assert float(low) < float(high)  # three different draws

"""The benchmark harness end to end with tiny settings (no timing asserted): the TD3 and SAC throughput sections
of the command line, and amorctl's learning runs through the one run loop."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amorctl.benchmarking.td3 import run_amorctl

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_throughput_section_prints_both_rows_and_the_ratio(algorithm):
    command = [
        sys.executable, "scripts/benchmark.py", f"{algorithm}-throughput",
        "--repeats", "1", "--steps", "30", "--learning-starts", "300", "--update-steps", "20",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"### {algorithm.upper()} throughput on HalfCheetah-v5")
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| amorctl", "| stable-baselines3"))]
    assert len(rows) == 2
    for row in rows:
        steps_per_second = float(row.split("|")[2].replace(",", ""))
        assert steps_per_second > 0
    assert re.search(r"amorctl / stable-baselines3 env steps/s: \*\*[\d.]+×\*\*", result.stdout)
    assert f"Command: `python scripts/benchmark.py {algorithm}-throughput" in result.stdout


def test_throughput_compares_the_named_classes_with_identical_shared_settings():
    """Each spec names an amorctl agent and the stable-baselines3 class of the same algorithm."""
    import stable_baselines3

    import amorctl.agents
    from amorctl.benchmarking.throughput import SPECS, _load_class

    assert SPECS["td3"].ratio_target is None and SPECS["sac"].ratio_target == 1.1
    for key, spec in SPECS.items():
        assert _load_class(spec.amorctl_class) is getattr(amorctl.agents, key.upper())
        assert _load_class(spec.sb3_class) is getattr(stable_baselines3, key.upper())


def test_run_amorctl_trains_through_the_run_loop_and_records_a_curve():
    """The harness's amorctl side runs the one run loop (tiny Pendulum budget) and records its evaluations."""
    overrides = (
        "td3.hidden_sizes=[8, 8]", "td3.batch_size=32", "td3.buffer_size=1000", "td3.learning_starts=100",
        "train.log_every=100", "train.eval_every=200", "train.checkpoint_every=200",
        "train.eval_episodes=1", "train.eval_envs=1",
    )
    result = run_amorctl("pendulum", seed=0, threshold=None, budget_seconds=None, max_steps=400, overrides=overrides)
    assert result.implementation == "amorctl"
    assert [step for step, _, _ in result.curve] == [200, 400]
    assert all(math.isfinite(mean_return) and seconds >= 0 for _, seconds, mean_return in result.curve)
    assert result.final_step == 400
    assert math.isfinite(result.final_return)
    assert result.solved_step is None and math.isinf(result.solved_seconds)


def test_run_amorctl_stops_at_the_target_return_through_the_loop():
    """A threshold every policy reaches stops the loop at its first evaluation (``train.target_return``)."""
    overrides = (
        "td3.hidden_sizes=[8, 8]", "td3.batch_size=32", "td3.buffer_size=1000", "td3.learning_starts=100",
        "train.log_every=100", "train.eval_every=200", "train.eval_episodes=1", "train.eval_envs=1",
    )
    result = run_amorctl("pendulum", seed=0, threshold=-1e9, budget_seconds=None, max_steps=1000, overrides=overrides)
    assert len(result.curve) == 1
    assert result.solved_step == 200 == result.final_step
    assert result.solved_seconds == result.curve[0][1]

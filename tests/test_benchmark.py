"""The benchmark harness end to end with tiny settings (no timing asserted): the TD3 and SAC throughput sections
and the time-to-solve section of the command line, each algorithm's learning spec, and amorctl's learning runs
through the one run loop."""

import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from device_under_test import TEST_DEVICE

from amorctl.benchmarking.time_to_solve import run_amorctl

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
    result = run_amorctl("td3", "pendulum", seed=0, threshold=None, budget_seconds=None, max_steps=400,
                         overrides=overrides)
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
    result = run_amorctl("td3", "pendulum", seed=0, threshold=-1e9, budget_seconds=None, max_steps=1000,
                         overrides=overrides)
    assert len(result.curve) == 1
    assert result.solved_step == 200 == result.final_step
    assert result.solved_seconds == result.curve[0][1]


def test_time_to_solve_section_runs_both_implementations_of_an_algorithm():
    """``time-to-solve --algo sac`` with a tiny budget: both rows, the zoo entry and the command in the report."""
    command = [
        sys.executable, "scripts/benchmark.py", "time-to-solve", "--algo", "sac", "--task", "pendulum",
        "--seeds", "1", "--max-steps", "400", "--out", "OUT",
        "sac.hidden_sizes=[8, 8]", "sac.learning_starts=100", "train.log_every=100", "train.eval_every=200",
        "train.checkpoint_every=200", "train.eval_episodes=1", "train.eval_envs=1",
    ]
    with tempfile.TemporaryDirectory() as out:
        command[command.index("OUT")] = out
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        curves = (Path(out) / "sac_time_to_solve_pendulum.csv").read_text().splitlines()
    assert result.stdout.startswith("### SAC time to solve Pendulum-v1 (mean deterministic return ≥ -200)")
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| amorctl", "| stable-baselines3"))]
    assert len(rows) == 2 and all("400" in row for row in rows)
    assert "RL Zoo `hyperparams/sac.yml` entry Pendulum-v1: learning_rate=0.001" in result.stdout
    assert "amorctl median / stable-baselines3 median: **undefined" in result.stdout
    assert "amorctl last eval return over 1 seeds: IQM " in result.stdout
    assert "Command: `python scripts/benchmark.py time-to-solve --algo sac" in result.stdout
    assert curves[0].startswith("implementation,task,seed,env_steps")
    assert {line.split(",")[3] for line in curves[1:]} == {"200", "400"}


def test_time_to_solve_rejects_a_task_without_a_config_in_one_sentence():
    command = [sys.executable, "scripts/benchmark.py", "time-to-solve", "--algo", "ddpg", "--task", "inverted_pendulum"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no inverted_pendulum config for ddpg: choose --task from pendulum"


def test_td3_time_to_solve_command_is_kept():
    result = subprocess.run([sys.executable, "scripts/benchmark.py", "td3-time-to-solve", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "--task" in result.stdout and "--algo" not in result.stdout


@pytest.mark.parametrize("algorithm", ["td3", "sac", "ddpg"])
def test_learning_spec_names_shipped_configs_of_its_agent_and_buildable_sb3_models(algorithm):
    """Every task of a spec: the amorctl config is the algorithm's agent, and the zoo settings build the SB3 model."""
    from amorctl.benchmarking.throughput import _load_class
    from amorctl.benchmarking.time_to_solve import SPECS, TASKS, _load, _sb3_kwargs
    from amorctl.envs.gym_adapter import make_gym_env

    spec = SPECS[algorithm]
    assert spec.sb3_class == f"stable_baselines3:{algorithm.upper()}"
    assert set(spec.configs) == set(spec.zoo) and set(spec.configs) <= set(TASKS)
    for task in spec.configs:
        config = _load(algorithm, task, 0, ())
        assert config.agent == algorithm
        env = make_gym_env(config.env.id)
        model = _load_class(spec.sb3_class)(
            "MlpPolicy", env, seed=0, device=TEST_DEVICE, **_sb3_kwargs(spec.zoo[task], env.action_space.shape[0])
        )
        for key, value in spec.zoo[task].items():
            if key in ("learning_rate", "gamma", "buffer_size", "learning_starts", "batch_size", "gradient_steps"):
                assert getattr(model, key) == value, (task, key)
        if "net_arch" in spec.zoo[task]:
            assert model.policy.net_arch in (spec.zoo[task]["net_arch"], {"pi": spec.zoo[task]["net_arch"],
                                                                          "qf": spec.zoo[task]["net_arch"]})
        env.close()


def test_sac_pendulum_zoo_entry_leaves_the_rest_to_sb3_defaults():
    """The RL Zoo's SAC Pendulum-v1 entry sets only the learning rate (hyperparams/sac.yml)."""
    from amorctl.benchmarking.time_to_solve import SPECS

    assert SPECS["sac"].zoo["pendulum"] == {"entry": "Pendulum-v1", "learning_rate": 1e-3}


def test_expert_sensitivity_reports_the_unperturbed_expert_as_the_reference():
    from amorctl.benchmarking.imitation import expert_sensitivity

    table = expert_sensitivity(32, [0.0, 0.01], [0], biases=[0.5], iterations=[5, 8])
    rows = [[cell.strip() for cell in line.split("|")] for line in table.splitlines() if line.startswith("| ")][2:]
    assert [(row[1], row[3]) for row in rows] == [
        ("5", "σ = 0"), ("5", "σ = 0.01"), ("5", "δ = 0.5"), ("8", "σ = 0"), ("8", "σ = 0.01"), ("8", "δ = 0.5")]
    assert rows[0][5] == "1.00" and rows[0][7] == "1.00"  # the unperturbed expert is each block's reference
    assert float(rows[1][4]) > 0 and float(rows[1][6]) > 0
    assert float(rows[2][5]) != 1.0  # a large constant offset changes the gaps: the rows are not copies
    assert float(rows[3][4]) < float(rows[0][4])  # more iterations, a lower last gap


def test_gym_ids_sb3_section_writes_every_cell_with_its_references(tmp_path):
    command = [
        sys.executable, "scripts/benchmark.py", "gym-ids-sb3", "--steps", "64", "--episodes", "2", "--workers", "1",
        "--algos", "TD3", "--ids", "amorctl/Quadratic-v0", "--out", str(tmp_path),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### stable-baselines3 defaults on the registered ids (64 steps")
    assert "| amorctl/Quadratic-v0 | TD3 |" in result.stdout
    assert "scripts/benchmark.py gym-ids-sb3 --steps 64" in result.stdout and "load average" in result.stdout
    rows = (tmp_path / "gym_ids_sb3.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("env_id,algorithm,seed,steps,")
    assert (tmp_path / "gym_ids_sb3.json").exists()


def test_reference_policies_play_the_same_evaluation_episodes():
    from amorctl.benchmarking.gym_ids import episode_returns, reference_returns
    from amorctl.envs import register_iterate_envs

    register_iterate_envs()
    zero = episode_returns("amorctl/Lasso-v0", lambda obs, k: [0.0], 3)
    again = episode_returns("amorctl/Lasso-v0", lambda obs, k: [0.0], 3)
    assert zero.tolist() == again.tolist() and len(set(zero.tolist())) == 3  # seeded, and three problems
    references = reference_returns("amorctl/Lasso-v0", 3)
    assert references["zero"] == pytest.approx(zero.mean())
    assert references == reference_returns("amorctl/Lasso-v0", 3)  # the random policy is seeded per episode

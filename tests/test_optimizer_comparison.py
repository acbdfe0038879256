"""Learned optimizer vs tuned baselines (compare_with_baselines) and the IterateEnv throughput table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

import amorctl.eval.optimizer_comparison as comparison
from amorctl.agents import TD3
from amorctl.envs import IterateEnv
from amorctl.envs.kinds import make_env
from amorctl.problems import make_problem
from amorctl.run.config import validate_config


def tiny_config(family: str = "quadratic", **problem):
    small = {"dim": 3, "cond_max": 10.0} if family == "quadratic" else {"num_features": 3, "num_samples": 8}
    problem = problem or small
    return validate_config({
        "agent": "td3",
        "name": "tiny_opt",
        "seed": 3,
        "device": TEST_DEVICE.type,
        "env": {
            "kind": "iterate",
            "num_envs": 2,
            "problem": {"name": family, **problem},
            "iterate": {"max_iterations": 5, "action": "step_size", "reward": "log_gap", "secant_features": True,
                        "include_context": family == "quadratic", "history": 1},
        },
        "td3": {"hidden_sizes": [8], "learning_starts": 0, "buffer_size": 1000},
    })


@pytest.fixture
def untrained(tmp_path):
    config = tiny_config()
    env = make_env(config.env, 1, TEST_DEVICE)
    return config, TD3(env, **config.td3, seed=config.seed, device=TEST_DEVICE), tmp_path


def test_writes_json_png_and_tensorboard_with_documented_keys(untrained):
    config, agent, run_dir = untrained
    out = run_dir / "eval"
    summary = comparison.compare_with_baselines(run_dir, config, agent.predict, out, num_heldout=16, num_tuning=16)

    for key in ("final_mean_gap", "final_median_gap", "best_baseline", "ratio", "median_ratio", "iterations",
                "num_heldout", "heldout_seed", "tuning_seed", "json", "png", "best_barzilai_borwein",
                "barzilai_borwein_ratio"):
        assert key in summary
    assert set(summary["final_mean_gap"]) == {"policy", "gd", "momentum", "adam", "bb1", "bb2", "lmsd", "lbfgs"}
    assert summary["best_baseline"] in ("gd", "momentum", "adam")
    best = summary["final_mean_gap"][summary["best_baseline"]]
    assert summary["ratio"] == pytest.approx(summary["final_mean_gap"]["policy"] / best)
    bb = summary["best_barzilai_borwein"]
    assert summary["final_mean_gap"][bb] == min(summary["final_mean_gap"][name] for name in ("bb1", "bb2"))
    assert summary["barzilai_borwein_ratio"] == pytest.approx(summary["final_mean_gap"]["policy"] /
                                                              summary["final_mean_gap"][bb])

    report = json.loads((out / "optimizer_comparison.json").read_text())
    assert report["iterations"] == 5 and report["num_heldout"] == 16
    for name, result in report["optimizers"].items():
        assert len(result["mean_gap"]) == len(result["median_gap"]) == 6, name
        assert result["final_mean_gap"] == result["mean_gap"][-1]
        assert {"hyperparameters", "final_median_gap", "diverged"} <= set(result)
    assert report["optimizers"]["policy"]["hyperparameters"] is None
    assert "momentum" in report["optimizers"]["momentum"]["hyperparameters"]
    # every optimizer starts from the same iterates, so from the same gap
    starts = {round(r["mean_gap"][0], 6) for r in report["optimizers"].values()}
    assert len(starts) == 1 and report["initial_mean_gap"] == pytest.approx(starts.pop(), rel=1e-5)
    assert (out / "optimizer_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "events"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"compare/policy/mean_gap", "compare/adam/mean_gap", "compare/gd/median_gap"} <= set(tags)
    assert [e.step for e in events.Scalars("compare/policy/mean_gap")] == list(range(6))


def test_baselines_are_tuned_on_contexts_disjoint_from_the_held_out_ones(untrained, monkeypatch):
    config, agent, run_dir = untrained
    tuned_on, evaluated_on = [], []
    real_scores, real_run = comparison.step_size_scores, comparison.run_optimizer

    def scores(name, problem, contexts, y0_fn, *args, **kwargs):
        tuned_on.append(contexts.clone())
        assert y0_fn(contexts).shape == (contexts.shape[0], problem.solution_dim)
        return real_scores(name, problem, contexts, y0_fn, *args, **kwargs)

    def run(name, problem, contexts, y0, *args, **kwargs):
        evaluated_on.append((contexts.clone(), y0.clone()))
        return real_run(name, problem, contexts, y0, *args, **kwargs)

    monkeypatch.setattr(comparison, "step_size_scores", scores)
    monkeypatch.setattr(comparison, "run_optimizer", run)
    summary = comparison.compare_with_baselines(
        run_dir, config, agent.predict, run_dir / "eval", num_heldout=16, num_tuning=16
    )

    assert summary["heldout_seed"] != summary["tuning_seed"]
    # the held-out problems and initial iterates are exactly the environment's for the held-out seed
    env = IterateEnv(make_problem(**config.env.problem), 16, device=TEST_DEVICE, **config.env.iterate)
    env.reset(seed=summary["heldout_seed"])
    assert evaluated_on and tuned_on
    for contexts, y0 in evaluated_on:
        torch.testing.assert_close(contexts, env.contexts)
        torch.testing.assert_close(y0, env.iterates)
    held_out = {tuple(row) for row in env.contexts.tolist()}
    for contexts in tuned_on:
        assert not held_out & {tuple(row) for row in contexts.tolist()}


def test_logistic_regression_and_a_non_iterate_run(tmp_path):
    config = tiny_config("logistic_regression")
    agent = TD3(make_env(config.env, 1, TEST_DEVICE), **config.td3, seed=config.seed, device=TEST_DEVICE)
    summary = comparison.compare_with_baselines(
        tmp_path, config, agent.predict, tmp_path / "out", num_heldout=8, num_tuning=8
    )
    assert summary["family"] == "logistic_regression" and summary["ratio"] >= 0

    gym_config = validate_config({"agent": "td3", "env": {"id": "Pendulum-v1"}})
    with pytest.raises(ValueError, match=r"env\.kind: iterate"):
        comparison.compare_with_baselines(tmp_path, gym_config, agent.predict, tmp_path / "out")


def test_iterate_throughput_table_has_both_rows():
    from amorctl.benchmarking.iterate import iterate_throughput

    table = iterate_throughput(num_envs=4, family="quadratic", steps=3, repeats=1)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| environment")
    assert "IterateEnv (batched, cpu)" in lines[2] and "SyncVectorEnv" in lines[3]
    assert all("| quadratic | 4 |" in line for line in lines[2:])
    with pytest.raises(ValueError, match="unknown family"):
        iterate_throughput(num_envs=4, family="nope", steps=1, repeats=1)
    smaller_reference = iterate_throughput(num_envs=4, family="quadratic", steps=2, repeats=1, sync_num_envs=2)
    assert "| quadratic | 4 |" in smaller_reference.splitlines()[2]
    assert "| quadratic | 2 |" in smaller_reference.splitlines()[3]


def test_learned_optimizers_benchmark_lists_every_tuned_classical_optimizer():
    from amorctl.benchmarking.learned_optimizers import learned_optimizers

    config = Path(__file__).resolve().parents[1] / "configs" / "td3_opt_quadratic.yaml"
    table = learned_optimizers(config, ["env.problem.dim=3", "env.iterate.max_iterations=5"], num_heldout=8,
                               num_tuning=8)
    rows = {line.split(" | ")[0].strip("| ") for line in table.splitlines()[4:]}
    assert rows == {"gd", "momentum", "adam", "bb1", "bb2", "lmsd", "lbfgs"}
    assert "T = 5" in table and "step_size=" in table

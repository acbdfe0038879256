"""Amortized MPC in closed loop: the simulation, the MPC controller, and evaluate.py on a direct run."""

from __future__ import annotations

import json

import torch
from device_under_test import TEST_DEVICE

from amorctl.eval.closed_loop import compare_pendulum_controllers, pendulum_closed_loop
from amorctl.problems import PendulumMPC
from amorctl.run.cli import evaluate_main, train_main


def test_the_closed_loop_cost_is_the_sum_of_stage_costs_of_the_applied_torques():
    problem = PendulumMPC(horizon=4)
    initial = torch.tensor([[0.5, 0.0], [-1.0, 1.0]])
    result = pendulum_closed_loop(problem, lambda x: torch.full((len(x), 4), 0.25), initial, steps=3)
    error, velocity, expected = initial[:, 0].double(), initial[:, 1].double(), torch.zeros(2, dtype=torch.float64)
    for _ in range(3):
        accel = -9.81 * torch.sin(error) - 0.1 * velocity + 5.0 * 0.25
        velocity = velocity + 0.05 * accel
        error = error + 0.05 * velocity
        expected += 0.05 * (error**2 + 0.1 * velocity**2 + 0.1 * 0.25**2)
    torch.testing.assert_close(result["costs"], expected, rtol=1e-5, atol=1e-6)
    assert result["seconds_per_step"] > 0


def test_the_mpc_controller_beats_doing_nothing():
    problem = PendulumMPC(horizon=8, solver_iterations=200)
    initial = problem.sample_contexts(4, torch.Generator().manual_seed(0))
    idle = pendulum_closed_loop(problem, lambda x: torch.zeros(len(x), 8), initial, steps=20)
    report = compare_pendulum_controllers(problem, lambda x: torch.zeros(len(x), 8), initial, steps=20)
    assert report["amortized_mean_cost"] == idle["costs"].mean().item()
    assert report["mpc_mean_cost"] < 0.9 * report["amortized_mean_cost"] and report["cost_ratio"] > 1.1
    assert report["speedup"] > 1  # solving takes longer than returning zeros


def test_evaluate_reports_the_closed_loop_of_a_direct_pendulum_run(runs_dir, capsys):
    argv = ["--no-progress", f"runs_dir={runs_dir}", "name=tiny_mpc", f"device={TEST_DEVICE}", "problem.horizon=6",
            "model.hidden_sizes=[16]", "train.steps=20", "train.batch_size=32", "train.log_every=10",
            "train.eval_every=10", "train.checkpoint_every=10", "eval.num_contexts=8", "eval.timing_repeats=1"]
    assert train_main(argv) == 0
    (run,) = (runs_dir / "tiny_mpc").iterdir()
    capsys.readouterr()
    assert evaluate_main([str(run), "--episodes", "3", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "closed loop, 3 episodes of 5 control steps" in out and "cost_ratio" in out
    report = json.loads((run / "eval" / "evaluate.json").read_text())["closed_loop"]
    assert report["episodes"] == 3 and len(report["mpc_costs"]) == 3 and report["mpc_mean_cost"] > 0

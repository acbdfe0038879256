"""Short learning runs (a second or two each) whose targets an untrained or broken learner misses."""

from __future__ import annotations

import json

import pytest
import torch
from device_under_test import TEST_DEVICE
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from amorctl.eval.direct import ReferenceSet
from amorctl.models import build_model
from amorctl.problems import Quadratic, make_problem
from amorctl.run.cli import train_main
from amorctl.run.loop import train
from amorctl.run.rundir import RunDir

QUADRATIC = "problem={name: quadratic, dim: 5, cond_max: 10}"
LEARN = [
    "model.hidden_sizes=[64, 64]",
    "train.batch_size=128",
    "train.lr=1e-2",
    "train.log_every=100",
    "train.eval_every=100",
    "train.checkpoint_every=1000",
    "eval.num_contexts=128",
]


class QuadraticWithoutSolver(Quadratic):
    """The quadratic family with its solver taken away: only f and p(x) are known."""

    def solve(self, x):
        raise NotImplementedError("no solver for this family")


def initial_model(config):
    """The model a run of ``config`` starts from (same seed, same construction order)."""
    torch.manual_seed(config.seed)
    return build_model(config.model, make_problem(**config.problem))


def held_out(config, problem=None):
    """The run's held-out contexts, solved by the real quadratic solver."""
    problem = problem or Quadratic(dim=5, cond_max=10.0)
    return ReferenceSet.build(problem, config.eval.num_contexts, config.eval.seed, TEST_DEVICE)


@torch.no_grad()
def mean_objective(model, contexts) -> float:
    return Quadratic(dim=5, cond_max=10.0).objective(model.to(contexts.device)(contexts), contexts).mean().item()


def test_objective_loss_learns_without_a_solver(register, tiny_config, capsys):
    register("quadratic_without_solver", QuadraticWithoutSolver)
    config = tiny_config(
        "problem={name: quadratic_without_solver, dim: 5, cond_max: 10}",
        "loss.kind=objective",
        "train.steps=800",
        *LEARN,
    )
    run = RunDir.create(config)
    metrics = train(config, run, show_progress=False)
    capsys.readouterr()

    assert not held_out(config, make_problem(**config.problem)).solved
    assert "relative_gap_mean" not in metrics and "speedup" not in metrics
    assert json.loads((run.eval / "metrics.json").read_text()) == pytest.approx(metrics)
    events = EventAccumulator(str(run.events))
    events.Reload()
    assert "eval/objective" in events.Tags()["scalars"]
    assert "eval/relative_gap" not in events.Tags()["scalars"]

    reference = held_out(config)
    untrained = mean_objective(initial_model(config), reference.contexts)
    optimal = reference.optimal_values.mean().item()
    closed = (untrained - metrics["objective_mean"]) / (untrained - optimal)
    assert closed > 0.97, f"objective gap closed by only {closed:.1%}"


def test_regression_on_a_family_whose_solver_raises_exits_2(register, tiny_args, capsys):
    """The config cannot see that an overridden solve raises; training stops with one sentence, not a traceback."""
    register("quadratic_without_solver", QuadraticWithoutSolver)
    argv = ["--no-progress", *tiny_args("problem={name: quadratic_without_solver, dim: 3}", "loss.kind=regression")]
    assert train_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "loss.kind" in err and "quadratic_without_solver" in err


def test_regression_loss_finds_the_solutions(tiny_config, capsys):
    config = tiny_config(QUADRATIC, "loss.kind=regression", "train.steps=800", *LEARN)
    run = RunDir.create(config)
    train(config, run, show_progress=False)
    capsys.readouterr()
    metrics = json.loads((run.eval / "metrics.json").read_text())
    solution_norm = held_out(config).solutions.norm(dim=-1).mean().item()
    assert metrics["solution_distance_mean"] < 0.1 * solution_norm, (metrics["solution_distance_mean"], solution_norm)
    assert metrics["relative_gap_mean"] < 0.05


def test_mixed_loss_improves(tiny_config, capsys):
    config = tiny_config(QUADRATIC, "loss.kind=mixed", "loss.regression_weight=0.5", "train.steps=300", *LEARN)
    run = RunDir.create(config)
    metrics = train(config, run, show_progress=False)
    capsys.readouterr()
    reference = held_out(config)
    untrained_gap = mean_objective(initial_model(config), reference.contexts) - reference.optimal_values.mean().item()
    assert metrics["objective_gap_mean"] < 0.1 * untrained_gap, (metrics["objective_gap_mean"], untrained_gap)

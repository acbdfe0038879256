"""The amortization report (issue 7, item 6): gap against compute for model, warm start and solver.

No wall-clock assertions: seconds are only checked to be positive; the evaluation counts, the curves'
shapes and the monotone gaps of a convex family are exact.
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from device_under_test import TEST_DEVICE
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from amorctl.eval import direct
from amorctl.eval.amortization_report import STEP_GRID, classical_solver, counting
from amorctl.eval.timing import seconds_per_call
from amorctl.problems import Lasso, LogisticRegression, PendulumMPC, Quadratic
from amorctl.run.cli import evaluate_main, train_main

CURVES = {"model", "warm_start", "solver", "reference"}
POINT = {"steps", "forward_passes", "objective_evaluations", "gradient_evaluations", "evaluations",
         "seconds_per_solution", "objective_gap_mean", "objective_gap_p95"}
LOGISTIC = ["problem={name: logistic_regression, num_features: 3, num_samples: 8}", "model.kind=unrolled_gd",
            "model.steps=2", "model.hidden_sizes=[16]", "train.steps=4", "eval.num_contexts=16", "eval.steps=3"]


def test_counting_counts_calls_not_nested_ones_and_restores_the_problem():
    problem = Quadratic(dim=3, cond_max=10.0)
    x = problem.sample_contexts(5, torch.Generator().manual_seed(0))
    y = torch.zeros(5, 3)
    with counting(problem) as counts:
        problem.objective(y, x)
        problem.gradient(y, x)  # evaluates the objective inside torch.func: one gradient, not an objective too
        problem.gradient(y, x)
    assert counts == {"objective_evaluations": 1, "gradient_evaluations": 2}
    assert "objective" not in vars(problem) and "gradient" not in vars(problem)
    with counting(problem) as counts:
        pass
    assert counts == {"objective_evaluations": 0, "gradient_evaluations": 0}


def test_the_classical_solver_follows_the_family():
    assert classical_solver(Lasso()) == "fista"
    assert classical_solver(PendulumMPC(horizon=4)) == "projected_gd"
    assert classical_solver(LogisticRegression()) == classical_solver(Quadratic()) == "lbfgs"


def test_seconds_per_call_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # on the CPU whatever AMORCTL_TEST_DEVICE says: the thread count is the CPU clock's rule
        assert seconds_per_call(lambda: torch.ones(8).sum(), torch.device("cpu"), 2) > 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_final_metrics_speedup_is_the_ratio_of_the_shared_timing(monkeypatch):
    """The final metrics time model and solver with the report's rule, so their speed-ups mean the same."""
    problem = Quadratic(dim=3, cond_max=10.0)
    reference = direct.ReferenceSet.build(problem, 8, 0, TEST_DEVICE)
    model = torch.nn.Linear(problem.context_dim, 3).to(TEST_DEVICE)
    calls = []

    def fake(fn, device, repeats, clock="auto"):
        calls.append(repeats)
        return 2.0 if len(calls) == 1 else 6.0  # the model first, then the solver

    monkeypatch.setattr(direct, "seconds_per_call", fake)
    metrics = direct.evaluate_model(problem, model, reference, timing_repeats=4)
    assert calls == [4, 4] and metrics["speedup"] == pytest.approx(3.0)
    assert metrics["model_seconds_per_solution"] == pytest.approx(2.0 / 8)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A tiny semi-amortized logistic-regression run (K = 2 in training, 3 at inference) and its report."""
    runs_dir = tmp_path_factory.mktemp("report") / "runs"
    settings = ["name=tiny", f"device={TEST_DEVICE}", "train.batch_size=16", "train.checkpoint_every=4",
                "eval.timing_repeats=1"]
    assert train_main(["--no-progress", f"runs_dir={runs_dir}", *settings, *LOGISTIC]) == 0
    (run,) = (runs_dir / "tiny").iterdir()
    assert evaluate_main([str(run), "--solver-steps", "12"]) == 0
    return run, json.loads((run / "eval" / "amortization_report.json").read_text())


def test_the_report_writes_json_png_and_tensorboard(report):
    run, data = report
    assert (run / "eval" / "amortization_report.png").stat().st_size > 10_000
    assert set(data["curves"]) == CURVES
    assert data["solver"]["name"] == "lbfgs" and data["num_contexts"] == 16
    for name, points in data["curves"].items():
        for point in points:
            assert POINT <= set(point), name
            assert point["seconds_per_solution"] > 0
    assert "speed-up" in data["summary"]["sentence"]
    summary = data["summary"]
    for key in ("speedup", "reference_speedup", "model_gap", "solver_seconds_to_model_gap", "sentence", "paid_off"):
        assert key in summary
    assert summary["model_steps"] == 3 and summary["model_evaluations"] == 3
    evaluated = json.loads((run / "eval" / "evaluate.json").read_text())
    assert evaluated["amortization"]["speedup"] == summary["speedup"]

    events = EventAccumulator(str(run / "events"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for name in CURVES:
        assert {f"amortization/{name}/objective_gap", f"amortization/{name}/seconds_per_solution"} <= tags
    assert "amortization/speedup" in tags and "amortization/reference_speedup" in tags
    assert [e.step for e in events.Scalars("amortization/model/objective_gap")] == [0, 1, 2, 3]


def test_the_report_counts_evaluations_and_steps(report):
    _, data = report
    model, warm, solver = (data["curves"][name] for name in ("model", "warm_start", "solver"))
    # the unrolled model: K gradient steps, one forward pass, no objective evaluations
    assert [p["steps"] for p in model] == [0, 1, 2, 3]
    assert [p["gradient_evaluations"] for p in model] == [0, 1, 2, 3]
    assert all(p["objective_evaluations"] == 0 and p["forward_passes"] == 1 for p in model)
    # L-BFGS: ∇f once at the start and once per step; f at least as often (the line search)
    expected_steps = [k for k in STEP_GRID if k < 12] + [12]
    assert [p["steps"] for p in solver] == expected_steps
    for p in solver:
        assert p["gradient_evaluations"] == p["steps"] + 1 and p["objective_evaluations"] >= p["steps"] + 1
        assert p["forward_passes"] == 0
    # the warm start adds the model's own 3 gradient evaluations; k = 0 is the model's prediction
    assert warm[0]["steps"] == 0 and warm[0]["evaluations"] == 3
    assert warm[0]["objective_gap_mean"] == pytest.approx(model[-1]["objective_gap_mean"])
    for p in warm[1:]:
        assert p["gradient_evaluations"] == 3 + p["steps"] + 1 and p["forward_passes"] == 1
    assert data["curves"]["reference"][0]["evaluations"] is None


def test_the_solver_from_scratch_improves_with_steps_on_a_convex_family(report):
    _, data = report
    gaps = [p["objective_gap_mean"] for p in data["curves"]["solver"]]
    assert all(later <= earlier + 1e-7 for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] < 1e-2 * gaps[0]
    summary = data["summary"]
    if summary["solver_steps_to_model_gap"] is not None:  # where the solver first reaches the model's gap
        every_gap = {p["steps"]: p["objective_gap_mean"] for p in data["curves"]["solver"]}
        steps = summary["solver_steps_to_model_gap"]
        assert all(gap > summary["model_gap"] for k, gap in every_gap.items() if k < steps)


def test_a_box_family_gets_projected_gradient_steps(tiny_args, find_runs, capsys):
    """pendulum_mpc (the default run's family): a fully-amortized MLP is one point with 0 evaluations."""
    args = tiny_args("problem={name: pendulum_mpc, horizon: 5}", "eval.num_contexts=8")
    assert train_main(["--no-progress", *args]) == 0
    (run,) = find_runs()
    assert evaluate_main([str(run), "--solver-steps", "5", "--episodes", "1", "--steps", "2"]) == 0
    data = json.loads((run / "eval" / "amortization_report.json").read_text())
    assert data["solver"]["name"] == "projected_gd"
    (model,) = data["curves"]["model"]
    assert model["evaluations"] == 0 and model["forward_passes"] == 1
    for p in data["curves"]["solver"]:
        assert p["gradient_evaluations"] == p["steps"] and p["objective_evaluations"] == 0


def test_bad_report_options_exit_2(tiny_args, find_runs, capsys):
    assert train_main(["--no-progress", *tiny_args()]) == 0
    (run,) = find_runs()
    capsys.readouterr()
    assert evaluate_main([str(run), "--solver-steps", "0"]) == 2
    assert "--solver-steps" in capsys.readouterr().err


def test_the_report_timing_benchmark_measures_both_loads_and_ends_its_busy_loops(tiny_args, find_runs, capsys):
    from amorctl.benchmarking.report_timing import busy_loops, report_timing

    with busy_loops(1):
        pass  # started and ended: no process is left behind (Popen.wait returned)
    assert train_main(["--no-progress", *tiny_args()]) == 0
    (run,) = find_runs()
    capsys.readouterr()
    out = report_timing([str(run)], ["auto"], busy=1, solver_steps=3)
    assert "| tiny | auto | +0 |" in out and "| tiny | auto | +1 |" in out
    assert "speedup: larger / smaller (+0 vs +1)" in out

"""LISTA (issue 7, §3.2): learned ISTA layers, their ISTA initialisation, the planted-solution targets of
sparse coding, and the refusals of families and settings LISTA cannot use."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.benchmarking.lista import lista_benchmark
from amorctl.eval.direct import ReferenceSet, gap_metrics
from amorctl.gradients import FirstOrder, Truncated
from amorctl.models import LISTA, build_model, is_semi_amortized, model_iterates
from amorctl.optimizers import run_optimizer
from amorctl.problems import Lasso, LogisticRegression, Quadratic, has_planted_solutions
from amorctl.run.cli import evaluate_main, train_main
from amorctl.run.errors import AmorctlError

SMALL = {"signal_dim": 10, "code_dim": 20, "sparsity": 2, "l1": 0.1, "noise_std": 0.0}


def small_lasso(**overrides) -> Lasso:
    return Lasso(**{**SMALL, **overrides})


def signals(problem, batch=6, seed=0, device="cpu"):
    return problem.sample_planted(batch, torch.Generator(device).manual_seed(seed), device)


# ------------------------------------------------------------------------------------ the model
@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("variant", ["untied", "coupled"])
def test_untrained_lista_is_ista_iterate_by_iterate(variant, float64):
    problem = small_lasso()
    model = build_model({"kind": "lista", "steps": 6, "variant": variant}, problem)
    x, _ = signals(problem)
    x = x.double()
    ista = run_optimizer("ista", problem, x, torch.zeros(6, 20, dtype=torch.float64), 6)
    iterates = model.iterates(x)
    assert len(iterates) == 7 and torch.equal(iterates[0], torch.zeros(6, 20, dtype=torch.float64))
    y = iterates[0]
    for k in range(1, 7):  # one ISTA step from each LISTA iterate lands on the next LISTA iterate
        y = run_optimizer("ista", problem, x, y, 1).solution
        assert torch.allclose(iterates[k], y, rtol=0, atol=1e-12), k
    assert torch.allclose(iterates[-1], ista.solution, rtol=0, atol=1e-12)
    objective = problem.objective(iterates[-1], x)
    assert torch.allclose(objective, ista.objective_values[-1], rtol=1e-12)


@pytest.mark.parametrize("variant, per_layer", [("untied", 20 * 10 + 20 * 20 + 1), ("coupled", 20 * 10 + 1)])
def test_shapes_and_parameter_counts(variant, per_layer):
    problem = small_lasso()
    model = build_model({"kind": "lista", "steps": 4, "variant": variant}, problem)
    x, _ = signals(problem, batch=5)
    assert is_semi_amortized(model) and model.steps == 4 and model.max_inference_steps == 4
    assert model(x).shape == (5, 20) and all(y.shape == (5, 20) for y in model_iterates(model, x))
    assert sum(p.numel() for p in model.parameters()) == 4 * per_layer
    assert torch.equal(model(x), model.iterates(x)[-1])


def test_fewer_layers_in_evaluation_and_never_more():
    problem = small_lasso()
    model = build_model({"kind": "lista", "steps": 4}, problem)
    x, _ = signals(problem)
    model.inference_steps = 2
    model.eval()
    assert len(model.iterates(x)) == 3
    assert torch.equal(model.iterates(x)[-1], model.train().iterates(x)[2])
    with pytest.raises(ValueError, match="4 untied layers"):
        model.iterates(x, steps=5)


def test_layers_are_untied_and_thresholds_learned():
    problem = small_lasso()
    model = build_model({"kind": "lista", "steps": 3, "variant": "untied"}, problem)
    x, codes = signals(problem, batch=32)
    loss = (model(x) - codes).square().sum(-1).mean()
    loss.backward()
    for name in ("encoders", "mutual", "prox_steps"):
        grad = getattr(model, name).grad
        first = 1 if name == "mutual" else 0  # S⁰ multiplies ŷ⁰ = 0
        assert grad is not None and all(bool(grad[k].abs().sum() > 0) for k in range(first, 3)), name
    with torch.no_grad():
        model.prox_steps[1] *= 3.0  # a larger threshold in layer 1 only
    assert torch.equal(model.prox_steps[0], model.prox_steps[2])
    assert not torch.equal(model.prox_steps[0], model.prox_steps[1])


def test_support_selection_passes_the_largest_surviving_entries_unshrunk():
    problem = small_lasso()
    model = LISTA(problem, 3, "coupled", support_selection=True, support_step=0.1, support_max=0.15)
    assert [model.support_size(k) for k in range(3)] == [2, 3, 3]  # ⌊min(0.1(k+1), 0.15)·20⌋
    x, _ = signals(problem, batch=16)
    y = torch.zeros(16, 20)
    v = model.layer_input(0, y, x)
    shrunk = problem.prox(v, model.prox_steps[0])
    out = model.layer(0, y, x)
    top2 = v.abs().topk(2, dim=-1).indices
    for b in range(16):
        for i in range(20):
            trusted = i in top2[b].tolist() and bool(shrunk[b, i] != 0)
            assert out[b, i] == (v[b, i] if trusted else shrunk[b, i])
    assert bool((out != shrunk).any()), "some entries pass unshrunk"


def test_estimators_cut_what_they_promise():
    problem = small_lasso()
    x, codes = signals(problem, batch=16)

    def gradient(estimator):
        torch.manual_seed(0)
        model = build_model({"kind": "lista", "steps": 3, "variant": "untied"}, problem)
        model.estimator = estimator
        (model(x) - codes).square().sum().backward()
        return model.encoders.grad

    truncated = gradient(Truncated(horizon=1))
    assert bool(truncated[0].abs().sum() == 0) and bool(truncated[1].abs().sum() == 0)
    assert bool(truncated[2].abs().sum() > 0)
    first_order = gradient(FirstOrder())
    exact = gradient(Truncated(horizon=3))
    assert bool(first_order[0].abs().sum() > 0) and not torch.allclose(first_order, exact)
    assert torch.allclose(first_order[2], exact[2])  # the last layer's own term is exact


@pytest.mark.parametrize("family", [Quadratic(dim=3), LogisticRegression(num_features=3, num_samples=8)])
def test_families_that_are_not_composite_are_refused(family):
    with pytest.raises(ValueError, match=r"model\.kind='lista' needs a composite"):
        build_model({"kind": "lista"}, family)


# ------------------------------------------------------------------------ planted solutions
def test_the_lasso_plants_the_codes_it_draws_its_signals_from():
    problem = small_lasso(noise_std=0.0)
    assert has_planted_solutions(problem) and not has_planted_solutions(Quadratic(dim=3))
    x, codes = signals(problem, batch=64, seed=3)
    assert torch.equal(x, problem.sample_contexts(64, torch.Generator().manual_seed(3)))  # the same stream
    assert torch.allclose(x, codes @ problem.dictionary.float().T, atol=1e-6)
    assert bool(((codes != 0).sum(-1) == 2).all())
    with pytest.raises(NotImplementedError, match="plants no solutions"):
        Quadratic(dim=3).sample_planted(2, torch.Generator())


def test_a_planted_reference_reports_nmse_and_no_solver_figures():
    problem = small_lasso()
    reference = ReferenceSet.build(problem, 32, seed=5, device=TEST_DEVICE, target="planted")
    assert reference.solved and reference.optimal_values is None
    x, codes = signals(problem, batch=32, seed=5, device=TEST_DEVICE)
    assert torch.equal(reference.contexts, x) and torch.equal(reference.solutions, codes)
    metrics = gap_metrics(problem, 0.9 * codes, reference)
    assert metrics["nmse_db"] == pytest.approx(10 * math.log10(0.01), abs=1e-5)
    assert "objective_gap_mean" not in metrics and metrics["solution_distance_mean"] > 0



@pytest.mark.parametrize("estimator", [{"estimator": "bptt"}, {"estimator": "es", "num_perturbations": 2}])
def test_planted_training_regresses_onto_the_planted_codes_and_never_solves(monkeypatch, estimator):
    """With loss.target: planted a training step's loss is the regression onto the codes drawn with the batch,
    for any estimator (the estimator's batch loss gets them), and the family's solver is never called."""
    from amorctl.agents.direct import DirectConfig, build_direct

    def no_solver(self, x):
        raise AssertionError("loss.target: planted must not call the solver")

    monkeypatch.setattr(Lasso, "solve", no_solver)
    config = DirectConfig.model_validate({
        "device": TEST_DEVICE.type, "problem": {"name": "lasso", **SMALL}, "model": {"kind": "lista", "steps": 2},
        "loss": {"kind": "regression", "target": "planted"}, "gradient": estimator,
        "train": {"steps": 3, "batch_size": 8}, "eval": {"num_contexts": 8},
    })
    learner = build_direct(config, TEST_DEVICE)
    state = learner.generator.get_state()
    x, codes = learner.problem.sample_planted(8, learner.generator, learner.device)
    learner.generator.set_state(state)
    with torch.no_grad():
        expected = ((learner.model(x) - codes) ** 2).sum(-1).mean() if estimator["estimator"] == "bptt" else None
    loss = learner.train_step()
    if expected is not None:
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert torch.isfinite(loss)

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "amortize_lasso_lista.yaml")
TINY = [
    f"device={TEST_DEVICE}",
    "problem={name: lasso, signal_dim: 20, code_dim: 40, sparsity: 3, l1: 0.1, noise_std: 0.0}",
    "model={kind: lista, steps: 4}", "train.steps=150", "train.batch_size=64", "train.lr=1e-2",
    "train.log_every=50", "train.eval_every=150", "train.checkpoint_every=150", "eval.num_contexts=128",
    "eval.timing_repeats=1",
]


def train_tiny(runs_dir, variant: str) -> dict:
    assert train_main(["--config", CONFIG, f"runs_dir={runs_dir}", *TINY, f"model.variant={variant}",
                       "--no-progress"]) == 0
    (metrics_file,) = runs_dir.glob("*/*/eval/metrics.json")
    return json.loads(metrics_file.read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A coupled LISTA run of a few seconds on a small lasso: its folder and final metrics."""
    runs_dir = tmp_path_factory.mktemp("lista_runs")
    metrics = train_tiny(runs_dir, "coupled")
    (run,) = runs_dir.glob("*/*")
    return run, metrics


def untrained_nmse() -> float:
    problem = Lasso(signal_dim=20, code_dim=40, sparsity=3, l1=0.1, noise_std=0.0)
    untrained = build_model({"kind": "lista", "steps": 4}, problem).to(TEST_DEVICE)
    reference = ReferenceSet.build(problem, 128, seed=12345, device=TEST_DEVICE, target="planted")
    with torch.no_grad():
        return gap_metrics(problem, untrained(reference.contexts), reference)["nmse_db"]


def test_a_tiny_coupled_run_through_train_py_lowers_the_nmse(tiny_run):
    _, metrics = tiny_run
    before = untrained_nmse()
    assert metrics["nmse_db"] < before - 4.0, (metrics["nmse_db"], before)
    assert metrics["model_steps"] == 4 and "speedup" not in metrics and "objective_gap_mean" not in metrics


def test_evaluate_py_reports_nmse_and_refuses_an_objective_race_for_a_planted_run(tiny_run, capsys):
    run, _ = tiny_run
    assert evaluate_main([str(run), "--output", str(run / "eval" / "again.json")]) == 0
    out = capsys.readouterr().out
    assert "nmse_db" in out and "no amortization report: the run was trained toward planted solutions" in out
    assert not (run / "eval" / "amortization_report.json").exists()


def test_a_tiny_untied_run_through_train_py_lowers_the_nmse(tmp_path):
    metrics = train_tiny(tmp_path, "untied")
    assert metrics["nmse_db"] < untrained_nmse() - 4.0


def test_the_benchmark_compares_every_layer_with_ista_and_fista(tiny_run, tmp_path):
    run, metrics = tiny_run
    report = lista_benchmark(str(run), max_iterations=30, tuning_signals=16, lambdas=(0.02, 0.1), out=str(tmp_path))
    with (tmp_path / "lista_nmse.csv").open() as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert [int(row[0]) for row in body] == [1, 2, 3, 4, 10, 20, 30]
    assert header[1].startswith("LISTA") and any(name.startswith("ISTA") for name in header)
    assert any(name.startswith("FISTA") for name in header)
    assert float(body[3][1]) == pytest.approx(metrics["nmse_db"], abs=1e-3)  # layer 4 is the model's output
    assert body[4][1] == "" and all(cell != "" for row in body for cell in row[2:])
    assert "| 4 |" in report and "tuned on 16 other signals" in report
    with pytest.raises(AmorctlError, match="at least the run's 4 layers"):
        lista_benchmark(str(run), max_iterations=3, tuning_signals=16, lambdas=(0.1,), out=str(tmp_path))


@pytest.mark.slow
def test_the_shipped_config_reaches_the_bar(tmp_path):
    """The issue-7 bar: 16 layers, NMSE ≤ −35 dB on held-out signals (about 30 minutes on two cores)."""
    assert train_main(["--config", CONFIG, f"runs_dir={tmp_path}", f"device={TEST_DEVICE}", "--no-progress"]) == 0
    (metrics_file,) = tmp_path.glob("*/*/eval/metrics.json")
    assert json.loads(metrics_file.read_text())["nmse_db"] <= -35.0

"""The implicit (eq. 2.13) and es (eq. 2.14) gradient estimators against exact references on quadratics,
their refusals, and short runs through the CLI (issue 7)."""

from __future__ import annotations

import json

import pytest
import torch

from amorctl.benchmarking.estimators import QuadraticCase, step_memory
from amorctl.gradients import BatchLoss, EvolutionStrategies, Implicit, UnrollEstimator
from amorctl.gradients.implicit import ProximalObjective, conjugate_gradient
from amorctl.optimizers import gradient_step
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.cli import evaluate_main, train_main

DIM, LAM = 4, 2.0


@pytest.fixture
def case() -> QuadraticCase:
    """Eight 4-d quadratics (cond ≤ 10) and a start θ, float64."""
    return QuadraticCase.draw(DIM, 10.0, 8, seed=3)


def implicit_gradient(case: QuadraticCase, estimator: Implicit, steps: int = 400) -> torch.Tensor:
    return case.estimate(case.model(steps, 1.0 / (10.0 + LAM), estimator))


# ------------------------------------------------------------------------------------ implicit
def test_conjugate_gradient_solves_each_row_system():
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(5, 6, 6, generator=generator, dtype=torch.float64)
    matrices = factor @ factor.mT + 0.5 * torch.eye(6, dtype=torch.float64)
    v = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    u, iterations = conjugate_gradient(lambda p: (matrices @ p.unsqueeze(-1)).squeeze(-1), v, 50, 1e-12)
    assert torch.allclose(u, torch.linalg.solve(matrices, v), rtol=1e-9, atol=1e-10)
    assert iterations <= 12, "CG on 6-d systems converges in about 6 steps"
    capped, used = conjugate_gradient(lambda p: (matrices @ p.unsqueeze(-1)).squeeze(-1), v, 2, 1e-12)
    assert used == 2 and not torch.allclose(capped, u, rtol=1e-3)


def test_implicit_solves_the_proximal_problem_and_matches_its_closed_form_derivative(case):
    estimator = Implicit(lam=LAM, tolerance=1e-13, cg_steps=30)
    model = case.model(400, 1.0 / (10.0 + LAM), estimator)
    start, solution = model.iterates(case.x)
    a, b = case.problem.matrix(case.x), case.problem.linear_term(case.x)
    exact = torch.linalg.solve(a + LAM * torch.eye(DIM, dtype=torch.float64), b + LAM * case.theta)
    assert torch.allclose(solution, exact, rtol=0, atol=1e-11)
    assert torch.equal(start, case.theta.expand_as(start))
    assert estimator.diagnostics()["gradient/inner_steps"] < 400, "the tolerance stops the inner solve"

    gradient = case.estimate(model)
    assert torch.allclose(gradient, case.proximal_gradient(LAM), rtol=1e-9, atol=1e-12)
    assert model.log_step_sizes.grad is None, "the step sizes get no gradient under implicit"


def test_implicit_with_zero_inner_steps_returns_the_start(case):
    """K = 0 (the amortization report's first point of an implicit run): the solution is ŷ⁰ itself."""
    estimator = Implicit(lam=LAM)
    model = case.model(5, 1.0 / (10.0 + LAM), estimator)
    start, solution = model.iterates(case.x, 0)
    assert torch.equal(solution, start) and estimator.diagnostics()["gradient/inner_steps"] == 0


def test_implicit_agrees_with_bptt_through_a_converged_inner_solve(case):
    """bptt through 400 of the model's steps on eq. 2.13's objective F (graph kept) and implicit agree."""
    theta = case.theta.clone().requires_grad_(True)
    start = theta.expand(case.x.shape[0], -1)
    objective, y = ProximalObjective(case.problem, start, LAM), start
    for _ in range(400):
        y = gradient_step(objective, y, case.x, 1.0 / (10.0 + LAM))
    (unrolled,) = torch.autograd.grad(case.problem.objective(y, case.x).mean(), theta)
    implicit = implicit_gradient(case, Implicit(lam=LAM, tolerance=1e-13, cg_steps=30))
    assert torch.allclose(implicit, unrolled, rtol=1e-8, atol=1e-11)


def test_implicit_with_a_loose_cap_or_damping_is_biased(case):
    exact = case.proximal_gradient(LAM)
    capped = implicit_gradient(case, Implicit(lam=LAM, tolerance=1e-13, cg_steps=1))
    damped = implicit_gradient(case, Implicit(lam=LAM, tolerance=1e-13, cg_steps=30, cg_damping=1.0))
    for biased in (capped, damped):
        assert (biased - exact).norm() > 1e-3 * exact.norm()


def test_implicit_memory_does_not_grow_with_k_while_bptt_does():
    small = ["model.hidden_sizes=[8]", "train.batch_size=8"]
    implicit = [step_memory(["gradient.tolerance=1e-30", *small], k) for k in (4, 16)]
    bptt = [step_memory(["gradient={estimator: bptt}", *small], k) for k in (4, 16)]
    assert implicit[1]["gradient/inner_steps"] == 16, "every inner step ran"
    # flat in K (within 10 %: a stray free of an earlier test's object can land inside a measurement)
    assert implicit[1]["peak"] <= 1.1 * implicit[0]["peak"] and implicit[1]["graph"] <= 1.1 * implicit[0]["graph"]
    assert bptt[1]["graph"] > 2.5 * bptt[0]["graph"] and bptt[1]["peak"] > 2.5 * bptt[0]["peak"]


# -------------------------------------------------------------------------------------------- es
def test_es_sigma_schedules():
    constant = EvolutionStrategies(sigma=0.3)
    assert constant.sigma_at(0.0) == constant.sigma_at(1.0) == 0.3
    linear = EvolutionStrategies(sigma=0.4, sigma_final=0.1, sigma_decay="linear")
    geometric = EvolutionStrategies(sigma=0.4, sigma_final=0.1)
    assert linear.sigma_at(0.5) == pytest.approx(0.25) and geometric.sigma_at(0.5) == pytest.approx(0.2)
    assert geometric.sigma_at(0.0) == pytest.approx(0.4) and geometric.sigma_at(2.0) == pytest.approx(0.1)


def within_standard_errors(samples: torch.Tensor, expected: torch.Tensor, errors: float = 4.0) -> bool:
    """Whether every coordinate of the samples' mean is within ``errors`` standard errors of ``expected``."""
    standard_error = samples.std(0) / samples.shape[0] ** 0.5
    return bool(((samples.mean(0) - expected).abs() <= errors * standard_error).all())


@pytest.mark.parametrize("perturb", ["parameters", "prediction"])
def test_es_is_unbiased_on_a_quadratic_where_smoothing_changes_nothing(case, perturb):
    torch.manual_seed(0)
    model = case.model(3, 0.1, EvolutionStrategies(sigma=0.5, num_perturbations=4, perturb=perturb))
    samples = torch.stack([case.estimate(model) for _ in range(300)])
    exact = case.unrolled_gradient(3, 0.1)
    assert within_standard_errors(samples, exact)
    assert bool((samples.std(0) > 1e-3 * exact.abs().max()).all()), "a zeroth-order estimate is noisy"
    assert torch.equal(model.initial_constant.detach(), case.theta), "θ is restored after the perturbations"


@pytest.mark.parametrize("perturb", ["parameters", "prediction"])
def test_es_estimates_the_smoothed_gradient_not_the_plain_one(perturb):
    """L(θ) = Σ θᵢ⁴ smoothed with σ: ∇L_σ = 4θ³ + 12σ²θ (eq. 2.14), not ∇L = 4θ³."""
    torch.manual_seed(1)
    theta = torch.nn.Parameter(torch.tensor([1.0, -0.5], dtype=torch.float64))
    loss = BatchLoss(lambda: [theta.unsqueeze(0)], lambda y: y.pow(4).sum(-1),
                     lambda count: torch.ones(count, dtype=torch.float64))
    sigma = 0.5
    estimator = EvolutionStrategies(sigma=sigma, num_perturbations=8, perturb=perturb)
    samples = []
    for _ in range(400):
        theta.grad = None
        value = estimator.gradient(loss, [theta], 0.0)
        samples.append(theta.grad.clone())
    samples = torch.stack(samples)
    assert value.item() == pytest.approx(1.0625)
    smoothed = 4 * theta.detach() ** 3 + 12 * sigma**2 * theta.detach()
    assert within_standard_errors(samples, smoothed)
    assert not within_standard_errors(samples, 4 * theta.detach() ** 3)


def test_es_prediction_gradient_reaches_the_parameters_through_the_model(case):
    """Perturbing the prediction of an unroll: the estimate flows into θ by backpropagation (unbiased)."""
    torch.manual_seed(2)
    model = case.model(3, 0.1, EvolutionStrategies(sigma=0.1, num_perturbations=4, perturb="prediction"))
    samples = torch.stack([case.estimate(model) for _ in range(200)])
    exact = case.estimate(case.model(3, 0.1, UnrollEstimator()))
    assert within_standard_errors(samples, exact)


# ------------------------------------------------------------------------------------ runs and CLI
IMPLICIT = ["model.kind=unrolled_gd", "model.steps=25", "model.step_size=0.07", "gradient.estimator=implicit",
            "gradient.lam=4"]
LEARN = ["train.batch_size=64", "eval.num_contexts=64", "train.eval_every=80", "train.checkpoint_every=80"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["gradient.estimator=implicit"], "gradient.estimator"),
        (["gradient.estimator=implicit", "model.kind=unrolled_gd", "problem={name: lasso}"], "gradient.estimator"),
        (["gradient.estimator=implicit", "model.kind=unrolled_gd", "problem={name: pendulum_mpc, horizon: 5}"],
         "gradient.estimator"),
        ([*IMPLICIT, "gradient.lam=0"], "gradient.lam"),
        ([*IMPLICIT, "gradient.cg_steps=0"], "gradient.cg_steps"),
        ([*IMPLICIT, "gradient.cg_damping=-1"], "gradient.cg_damping"),
        ([*IMPLICIT, "gradient.tolerance=0"], "gradient.tolerance"),
        ([*IMPLICIT, "gradient.sigma=0.1"], "gradient.sigma"),
        (["gradient.estimator=es", "gradient.sigma=0"], "gradient.sigma"),
        (["gradient.estimator=es", "gradient.sigma_final=-0.1"], "gradient.sigma_final"),
        (["gradient.estimator=es", "gradient.sigma_decay=cosine"], "gradient.sigma_decay"),
        (["gradient.estimator=es", "gradient.perturb=both"], "gradient.perturb"),
        (["gradient.estimator=es", "gradient.num_perturbations=0"], "gradient.num_perturbations"),
        (["gradient.estimator=es", "gradient.lam=1"], "gradient.lam"),
    ],
)
def test_bad_estimator_settings_exit_2_before_writing_anything(overrides, key, tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args(*overrides)]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists()


def gap(run) -> float:
    return json.loads((run / "eval" / "metrics.json").read_text())["relative_gap_mean"]


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("implicit", [*IMPLICIT, "train.lr=3e-3"]),
        ("es_parameters", ["gradient.estimator=es", "gradient.sigma=0.02", "gradient.num_perturbations=16",
                           "train.lr=1e-2"]),
        ("es_prediction", ["model.kind=unrolled_gd", "model.steps=2", "model.step_size=0.05", "gradient.estimator=es",
                           "gradient.perturb=prediction", "gradient.sigma=0.1", "gradient.sigma_final=0.01",
                           "train.lr=1e-2"]),
    ],
)
def test_a_short_run_lowers_the_held_out_gap(name, overrides, tiny_args, find_runs, capsys):
    """80 steps against 1 step of a negligible learning rate (the same start): the held-out gap falls."""
    common = [*LEARN, *overrides]
    assert train_main(["--no-progress", *tiny_args(f"name={name}_before", *common, "train.steps=1",
                                                    "train.lr=1e-12")]) == 0
    assert train_main(["--no-progress", *tiny_args(f"name={name}", *common, "train.steps=80")]) == 0
    capsys.readouterr()
    (before,), (after,) = find_runs(f"{name}_before"), find_runs(name)
    assert gap(after) < 0.7 * gap(before), (gap(after), gap(before))


def test_evaluate_py_writes_the_amortization_report_of_an_implicit_run(tiny_args, find_runs, capsys):
    """The report runs the model at every K from 0 (the start itself) to eval.steps under implicit too."""
    assert train_main(["--no-progress", *tiny_args("name=implicit_report", *IMPLICIT, *LEARN, "train.steps=2",
                                                    "train.eval_every=2", "train.checkpoint_every=2")]) == 0
    (run,) = find_runs("implicit_report")
    assert evaluate_main([str(run), "--solver-steps", "3"]) == 0
    assert "amortization report" in capsys.readouterr().out
    model_curve = json.loads((run / "eval" / "amortization_report.json").read_text())["curves"]["model"]
    assert model_curve[0]["steps"] == 0 and len(model_curve) > 1


def test_an_es_run_with_a_decaying_sigma_resumes_exactly(tiny_args, find_runs, capsys, interrupt):
    overrides = tiny_args("gradient.estimator=es", "gradient.sigma=0.1", "gradient.sigma_final=0.001",
                          "gradient.num_perturbations=2", "train.steps=8", "train.checkpoint_every=4")
    assert train_main(["--no-progress", *overrides]) == 0
    (run,) = find_runs()
    interrupted = interrupt(run, 8)
    assert train_main(["--no-progress", "--resume", str(interrupted)]) == 0
    capsys.readouterr()
    straight = load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]
    resumed = load_checkpoint(latest_checkpoint(interrupted / "checkpoints"))["learner"]
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name

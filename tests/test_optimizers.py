import math

import pytest
import torch

from amorctl.optimizers import (
    LBFGS,
    OPTIMIZERS,
    make_optimizer,
    run_optimizer,
    step_size_scores,
    tune_step_size,
)
from amorctl.problems import Lasso, Quadratic, Rosenbrock

SMOOTH = ["gd", "momentum", "nesterov", "adam", "lbfgs"]


def contexts(problem, batch_size, seed):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed)).double()


def zeros_like_solution(problem):
    return lambda x: torch.zeros(x.shape[0], problem.solution_dim, dtype=x.dtype)


@pytest.fixture(scope="module")
def easy_quadratic():
    problem = Quadratic(dim=5, cond_max=5.0)
    # Enough training contexts that their largest curvature is close to the family's (κ ≤ 5): a
    # step tuned to the edge of stability on a few contexts can diverge on held-out ones.
    return problem, contexts(problem, 64, seed=0), contexts(problem, 16, seed=1)


@pytest.fixture(scope="module")
def ill_conditioned_quadratic():
    problem = Quadratic(dim=10, cond_min=100.0, cond_max=100.0)
    return problem, contexts(problem, 16, seed=0), contexts(problem, 16, seed=1)


@pytest.fixture(scope="module")
def lasso():
    problem = Lasso()
    held_out = contexts(problem, 16, seed=1)
    return problem, contexts(problem, 16, seed=0), held_out, problem.objective(problem.solve(held_out), held_out)


def test_registry_and_run_shapes(easy_quadratic):
    problem, _, x = easy_quadratic
    assert set(OPTIMIZERS) == {"gd", "projected_gd", "momentum", "nesterov", "adam", "lbfgs", "ista", "fista"}
    y0 = torch.randn(16, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in SMOOTH:
        run = run_optimizer(name, problem, x, y0, 7)
        assert run.objective_values.shape == (8, 16) and run.solution.shape == (16, 5)
        assert run.diverged.shape == (16,) and not run.diverged.any()
        torch.testing.assert_close(run.objective_values[0], problem.objective(y0, x))
        torch.testing.assert_close(run.objective_values[-1], problem.objective(run.solution, x))
        assert run.objective_values.dtype == torch.float64


@pytest.mark.parametrize("name", SMOOTH)
def test_tuned_optimizer_converges_on_a_well_conditioned_quadratic(name, easy_quadratic):
    problem, train, held_out = easy_quadratic
    hyper = tune_step_size(name, problem, train, zeros_like_solution(problem), num_iterations=200)
    run = run_optimizer(name, problem, held_out, torch.zeros(16, 5, dtype=torch.float64), 200, **hyper)
    gap = run.objective_values[-1] - problem.optimal_value(held_out)
    assert gap.max() < (1e-4 if name == "adam" else 1e-6)
    assert gap.min() > -1e-12


def test_momentum_and_nesterov_beat_gradient_descent_on_an_ill_conditioned_quadratic(ill_conditioned_quadratic):
    problem, train, held_out = ill_conditioned_quadratic
    y0_fn = zeros_like_solution(problem)
    f_star = problem.optimal_value(held_out)
    gaps = {}
    for name in ["gd", "momentum", "nesterov"]:
        hyper = tune_step_size(name, problem, train, y0_fn, num_iterations=100)
        run = run_optimizer(name, problem, held_out, y0_fn(held_out), 100, **hyper)
        gaps[name] = float((run.objective_values[-1] - f_star).mean())
    assert gaps["momentum"] < 1e-3 * gaps["gd"]
    assert gaps["nesterov"] < 1e-3 * gaps["gd"]


def test_tuning_never_picks_a_diverging_step_size(ill_conditioned_quadratic):
    problem, train, _ = ill_conditioned_quadratic
    y0_fn = zeros_like_solution(problem)
    # Gradient descent on eigenvalues up to 100 diverges for steps above 2/100: slowly at 0.025
    # (|1 − 0.025·100|^200 ≈ 1e35, still finite), to inf or NaN at the larger steps.
    grid = [1e-3, 1e-2, 0.019, 0.025, 0.1, 1.0, 1e3]
    _, scores = step_size_scores("gd", problem, train, y0_fn, 200, grid)
    assert all(math.isfinite(score) and score < 0 for score in scores[:3])
    assert scores[3] > 1e10 and all(score == math.inf for score in scores[4:])
    assert tune_step_size("gd", problem, train, y0_fn, 200, grid) == {"step_size": 0.019}
    hyper = tune_step_size("momentum", problem, train, y0_fn, 200, grid, momentum=0.5)
    assert hyper["momentum"] == 0.5 and hyper["step_size"] < 0.1
    with pytest.raises(RuntimeError, match="every step size in the grid diverged"):
        tune_step_size("gd", problem, train, y0_fn, 200, [1.0, 10.0])


def test_diverging_runs_are_scored_inf_and_never_raise(ill_conditioned_quadratic):
    problem, x, _ = ill_conditioned_quadratic
    y0 = torch.zeros(16, 10, dtype=torch.float64)
    for name in SMOOTH:
        run = run_optimizer(name, problem, x, y0, 300, step_size=1e3)
        if name in ("adam", "lbfgs"):  # sign-like steps stay bounded; the line search rejects bad steps
            assert not run.diverged.any()
        else:
            assert run.diverged.all() and (run.objective_values[-1] == math.inf).all()
            assert not torch.isnan(run.objective_values).any()


def test_tuning_evaluates_only_the_training_contexts(easy_quadratic):
    _, train, held_out = easy_quadratic
    spy = Quadratic(dim=5, cond_max=5.0)
    seen = []
    original = spy.objective

    def recording_objective(y, x):
        seen.append(x.detach().clone())
        return original(y, x)

    spy.objective = recording_objective  # problem.gradient goes through it too
    for name in SMOOTH:
        tune_step_size(name, spy, train, zeros_like_solution(spy), num_iterations=5)
    assert len(seen) > 0
    rows = torch.cat(seen)

    def is_training_row(batch):
        return (batch.unsqueeze(1) == train.unsqueeze(0)).all(-1).any(-1)

    assert is_training_row(rows).all()  # every evaluated context is a training context
    assert not is_training_row(held_out).any()


def test_per_problem_step_sizes_match_separate_runs(easy_quadratic):
    problem, _, x = easy_quadratic
    y0 = torch.zeros(2, 5, dtype=torch.float64)
    for name, steps in [("momentum", [0.01, 0.3]), ("lbfgs", [0.1, 2.0]), ("adam", [0.01, 0.3])]:
        together = run_optimizer(name, problem, x[:2], y0, 20, step_size=torch.tensor(steps))
        for i, step in enumerate(steps):
            alone = run_optimizer(name, problem, x[i : i + 1], y0[:1], 20, step_size=step)
            torch.testing.assert_close(together.objective_values[:, i : i + 1], alone.objective_values)


def test_fista_reaches_the_reference_and_ista_is_slower_but_monotone(lasso):
    problem, _, held_out, f_star = lasso
    y0 = torch.zeros(16, problem.code_dim, dtype=torch.float64)
    fista = run_optimizer("fista", problem, held_out, y0, 500)  # step 1/L
    ista = run_optimizer("ista", problem, held_out, y0, 500)
    fista_gap, ista_gap = fista.objective_values - f_star, ista.objective_values - f_star
    assert fista_gap[-1].max() < 1e-6 and fista_gap[-1].min() > -1e-12
    assert (ista.objective_values[1:] - ista.objective_values[:-1]).max() <= 1e-12
    assert ista_gap[100].mean() > 10 * fista_gap[100].mean()
    restarted = run_optimizer("fista", problem, held_out, y0, 200, restart=True)
    assert (restarted.objective_values[-1] - f_star).max() < 1e-6


def test_tuned_proximal_methods_beat_subgradient_descent_on_lasso(lasso):
    problem, train, held_out, f_star = lasso
    y0_fn = zeros_like_solution(problem)
    gaps = {}
    for name in ["ista", "fista", "gd"]:
        hyper = tune_step_size(name, problem, train, y0_fn, 200)
        gaps[name] = float((run_optimizer(name, problem, held_out, y0_fn(held_out), 200, **hyper)
                            .objective_values[-1] - f_star).max())
    assert gaps["fista"] < 1e-6
    assert gaps["ista"] < gaps["gd"] and gaps["fista"] < gaps["gd"]


def test_lbfgs_two_loop_equals_the_dense_bfgs_inverse_hessian():
    generator = torch.Generator().manual_seed(0)
    n, pairs = 6, 4
    optimizer = LBFGS(Quadratic(dim=n), memory=pairs + 2)  # two empty slots stay unused
    hessian = torch.randn(n, n, generator=generator, dtype=torch.float64)
    hessian = hessian @ hessian.T + torch.eye(n, dtype=torch.float64)
    steps = torch.randn(pairs, n, generator=generator, dtype=torch.float64)
    changes = steps @ hessian
    state = {
        "steps": torch.cat([torch.zeros(2, n, dtype=torch.float64), steps]).unsqueeze(0),
        "gradient_changes": torch.cat([torch.zeros(2, n, dtype=torch.float64), changes]).unsqueeze(0),
        "inverse_curvatures": torch.cat([torch.zeros(2, dtype=torch.float64), 1 / (steps * changes).sum(-1)])[None],
    }
    gradient = torch.randn(1, n, generator=generator, dtype=torch.float64)
    s, z = steps[-1], changes[-1]
    inverse = (s @ z) / (z @ z) * torch.eye(n, dtype=torch.float64)
    for s, z in zip(steps, changes):
        rho, identity = 1 / (s @ z), torch.eye(n, dtype=torch.float64)
        inverse = (identity - rho * torch.outer(s, z)) @ inverse @ (identity - rho * torch.outer(z, s))
        inverse = inverse + rho * torch.outer(s, s)
    torch.testing.assert_close(optimizer._two_loop(gradient, state)[0], inverse @ gradient[0])


def test_lbfgs_line_search_is_monotone_on_a_nonconvex_problem():
    problem = Rosenbrock(dim=4)
    x = contexts(problem, 8, seed=0)
    run = run_optimizer("lbfgs", problem, x, torch.zeros(8, 4, dtype=torch.float64), 200)
    assert (run.objective_values[1:] - run.objective_values[:-1]).max() <= 1e-12
    assert run.objective_values[-1].max() < 1e-10  # f* = 0


def test_bad_names_and_hyper_parameters_are_reported(easy_quadratic, lasso):
    problem, _, x = easy_quadratic
    y0 = torch.zeros(16, 5, dtype=torch.float64)
    with pytest.raises(KeyError, match="unknown optimizer 'sgd'"):
        run_optimizer("sgd", problem, x, y0, 3)
    with pytest.raises(KeyError, match="unknown optimizer"):
        tune_step_size("sgd", problem, x, zeros_like_solution(problem), 3)
    with pytest.raises(TypeError, match="no hyper-parameter 'lr'"):
        make_optimizer("adam", problem, lr=0.1)
    with pytest.raises(TypeError, match="composite problem"):
        make_optimizer("ista", problem)
    for hyper in [{"step_size": 0.0}, {"step_size": -1.0}, {"momentum": 1.0}]:
        with pytest.raises(ValueError):
            make_optimizer("momentum", problem, **hyper)
    with pytest.raises(ValueError, match="grid"):
        tune_step_size("gd", problem, x, zeros_like_solution(problem), 3, grid=[0.1, -1.0])
    with pytest.raises(ValueError, match="step_size"):
        run_optimizer("gd", problem, x, y0, 3, step_size=torch.ones(3))
    lasso_problem = lasso[0]
    assert make_optimizer("fista", lasso_problem).step_size == pytest.approx(1 / lasso_problem.lipschitz)

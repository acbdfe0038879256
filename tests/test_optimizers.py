import math

import pytest
import torch

from amorctl.optimizers import (
    LBFGS,
    OPTIMIZERS,
    barzilai_borwein_steps,
    lmsd_sweep,
    make_optimizer,
    ritz_values,
    run_optimizer,
    step_size_scores,
    tune_step_size,
)
from amorctl.problems import Lasso, Problem, Quadratic, Rosenbrock

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
    assert set(OPTIMIZERS) == {"gd", "projected_gd", "momentum", "nesterov", "adam", "bb1", "bb2", "lmsd", "lbfgs",
                               "ista", "fista"}
    y0 = torch.randn(16, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in [*SMOOTH, "bb1", "bb2", "lmsd"]:
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


class _Scalar(Problem):
    """1-D test objectives: ``f = ½·a·y² − y`` (a = x, so y* = 1/a) or ``f = cos y`` (negative curvature near 0)."""

    solution_dim, context_dim = 1, 1

    def __init__(self, kind: str = "parabola"):
        self.kind = kind

    def sample_contexts(self, batch_size, generator, device="cpu"):
        return torch.rand(batch_size, 1, generator=generator, device=device) + 0.5

    def objective(self, y, x):
        if self.kind == "parabola":
            return (0.5 * x * y.square() - y).sum(-1)
        return torch.cos(y).sum(-1)


@pytest.mark.parametrize("name", ["bb1", "bb2"])
def test_barzilai_borwein_is_exact_on_a_one_dimensional_quadratic_after_its_safeguarded_first_step(name):
    problem = _Scalar()
    curvature = torch.tensor([[0.5], [3.0], [40.0]], dtype=torch.float64)
    y0 = torch.zeros(3, 1, dtype=torch.float64)
    first = run_optimizer(name, problem, curvature, y0, 1, step_size=0.01)
    torch.testing.assert_close(first.solution, y0 + 0.01)  # y₀ − α₀∇f(y₀) with ∇f(0) = −1: the first step is step_size
    run = run_optimizer(name, problem, curvature, y0, 2, step_size=0.01)
    torch.testing.assert_close(run.solution, 1.0 / curvature, rtol=1e-12, atol=1e-12)  # 1/BB = a: Newton's step


def test_barzilai_borwein_steps_of_a_diagonal_quadratic():
    s = torch.tensor([[1.0, 1.0], [1.0, -2.0], [1.0, 0.0]], dtype=torch.float64)
    z = s * torch.tensor([1.0, 10.0], dtype=torch.float64)  # z = A s, A = diag(1, 10)
    valid, long_step, short_step = barzilai_borwein_steps(s, z)
    assert valid.all()
    torch.testing.assert_close(long_step, (s * s).sum(-1) / (s * z).sum(-1))
    torch.testing.assert_close(short_step, (s * z).sum(-1) / (z * z).sum(-1))
    assert ((short_step <= long_step) & (long_step <= 1.0) & (short_step >= 0.1)).all()  # 1/λ within [1/λmax, 1/λmin]
    torch.testing.assert_close(long_step[2], torch.tensor(1.0, dtype=torch.float64))  # s an eigenvector: exactly 1/λ
    valid, long_step, short_step = barzilai_borwein_steps(s, -z)  # negative curvature along s
    assert not valid.any() and (long_step == 1).all() and (short_step == 1).all()
    assert not barzilai_borwein_steps(torch.zeros(1, 2), torch.zeros(1, 2))[0].any()  # a zero update


def test_barzilai_borwein_safeguards_negative_curvature_and_step_bounds():
    # cos y near 0: negative curvature, so the secant pair is rejected and the step falls back to step_size.
    problem, y0, x = _Scalar("cosine"), torch.full((1, 1), 0.1, dtype=torch.float64), torch.ones(1, 1)
    run = run_optimizer("bb1", problem, x, y0, 2, step_size=0.1)
    y1 = y0 + 0.1 * torch.sin(y0)
    torch.testing.assert_close(run.solution, y1 + 0.1 * torch.sin(y1))
    # a flat parabola (a = 1e-3) asks for a BB step of 1000; max_step clips it.
    problem, x = _Scalar(), torch.full((1, 1), 1e-3, dtype=torch.float64)
    y0 = torch.zeros(1, 1, dtype=torch.float64)
    run = run_optimizer("bb2", problem, x, y0, 2, step_size=0.01, max_step=10.0)
    y1 = y0 + 0.01
    torch.testing.assert_close(run.solution, y1 - 10.0 * (1e-3 * y1 - 1.0))
    with pytest.raises(ValueError, match="min_step"):
        run_optimizer("bb2", problem, x, y0, 1, min_step=2.0, max_step=1.0)


def test_barzilai_borwein_beats_tuned_momentum_on_the_learned_optimizer_family(ill_conditioned_quadratic):
    problem, train, held_out = ill_conditioned_quadratic
    y0_fn, f_star = zeros_like_solution(problem), problem.optimal_value(held_out)
    gaps = {}
    for name in ["momentum", "bb1", "bb2"]:
        hyper = tune_step_size(name, problem, train, y0_fn, num_iterations=30)
        gaps[name] = float((run_optimizer(name, problem, held_out, y0_fn(held_out), 30, **hyper).objective_values[-1]
                            - f_star).mean())
    assert max(gaps["bb1"], gaps["bb2"]) < 0.1 * gaps["momentum"]  # 80× and 500× measured (κ = 100, T = 30)


def test_barzilai_borwein_takes_proximal_steps_on_a_composite_family(lasso):
    problem, train, held_out, f_star = lasso
    hyper = tune_step_size("bb2", problem, train, zeros_like_solution(problem), num_iterations=100)
    run = run_optimizer("bb2", problem, held_out, torch.zeros(16, problem.solution_dim, dtype=torch.float64), 100,
                        **hyper)
    assert (run.solution == 0).any()  # the soft threshold's exact zeros: proximal, not gradient, steps
    assert float((run.objective_values[-1] - f_star).max()) < 1e-3


def test_ritz_values_match_a_hand_computation():
    a = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    # span{(1, 0, 1), (0, 1, 0)} has the orthonormal basis (e₁ + e₃)/√2, e₂: Qᵀ A Q = diag((1 + 9)/2, 4) = diag(5, 4).
    steps = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]], dtype=torch.float64)
    theta, valid = ritz_values(steps, steps @ a)
    torch.testing.assert_close(theta[0], torch.tensor([5.0, 4.0], dtype=torch.float64))
    assert valid[0].all()
    # an unfilled (zero) slot is dropped: the one pair left gives 1/BB1 = sᵀz / sᵀs = 5
    assert valid[1].tolist() == [True, False]
    torch.testing.assert_close(theta[1, 0], torch.tensor(5.0, dtype=torch.float64))
    # two dependent updates span one direction: one Ritz value, the other slot takes the sweep's shortest step
    dependent = torch.tensor([[[1.0, 0.0, 1.0], [2.0, 0.0, 2.0]]], dtype=torch.float64)
    assert ritz_values(dependent, dependent @ a)[1].tolist() == [[True, False]]
    torch.testing.assert_close(lmsd_sweep(steps, steps @ a, 0.5), torch.tensor([[0.2, 0.25], [0.2, 0.2]],
                                                                                dtype=torch.float64))
    # no positive curvature anywhere: the fallback step
    negative = lmsd_sweep(steps[1:], -(steps[1:] @ a), 0.5)
    torch.testing.assert_close(negative, torch.full((1, 2), 0.5, dtype=torch.float64))


def test_lmsd_with_memory_one_is_bb1_and_with_memory_n_solves_a_quadratic_in_a_few_sweeps(ill_conditioned_quadratic):
    problem, _, x = ill_conditioned_quadratic  # n = 10, κ = 100
    y0, f_star = torch.zeros(16, 10, dtype=torch.float64), problem.optimal_value(x)
    torch.testing.assert_close(run_optimizer("lmsd", problem, x, y0, 20, step_size=0.1, memory=1).objective_values,
                               run_optimizer("bb1", problem, x, y0, 20, step_size=0.1).objective_values)
    # sweeps of 1, 1, 2, 4, 8, 10 steps (26 iterations): the Krylov space of the last 10 updates is the whole space
    # after the 10-step sweep's start, the Ritz values are A's eigenvalues, and the last sweep annihilates ∇f.
    gap = run_optimizer("lmsd", problem, x, y0, 26, step_size=1.0, memory=10).objective_values[-1] - f_star
    bb2_gap = run_optimizer("bb2", problem, x, y0, 26, step_size=1.0).objective_values[-1] - f_star
    assert float(gap.abs().max()) < 1e-12 * float(f_star.abs().max())
    assert float(bb2_gap.mean()) > 1e3 * float(gap.clamp_min(0).mean() + 1e-30)


def test_lmsd_tolerates_float32_and_rejects_a_bad_memory(ill_conditioned_quadratic):
    problem, _, x = ill_conditioned_quadratic
    x, y0 = x.float(), torch.zeros(16, 10)
    run = run_optimizer("lmsd", problem, x, y0, 30, step_size=1.0, memory=10)
    assert not run.diverged.any()
    assert float((run.objective_values[-1] - problem.optimal_value(x.double()).float()).mean()) < 1e-4
    with pytest.raises(ValueError, match="memory"):
        run_optimizer("lmsd", problem, x, y0, 1, memory=0)

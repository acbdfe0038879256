import pytest
import torch

from amorctl.problems import PROBLEMS, make_problem
from amorctl.problems.base import ProblemArgumentError
from amorctl.problems.lasso import Lasso


def contexts(problem, batch_size=64, seed=0):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed))


def soft_threshold(v, threshold):
    return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0.0)


def test_registered():
    assert PROBLEMS["lasso"] is Lasso
    assert isinstance(make_problem("lasso", code_dim=30), Lasso)


def test_shapes_and_dtypes():
    problem = Lasso(signal_dim=8, code_dim=12, sparsity=2)
    x = contexts(problem, batch_size=5)
    y = problem.solve(x)
    assert (problem.context_dim, problem.solution_dim, problem.bounds) == (8, 12, None)
    assert x.shape == (5, 8) and x.dtype == torch.float32
    assert y.shape == (5, 12) and y.dtype == torch.float32
    assert problem.objective(y, x).shape == (5,)
    assert problem.smooth_gradient(y, x).shape == (5, 12)
    assert problem.gradient(y, x).shape == (5, 12)
    assert problem.solve(x.double()).dtype == torch.float64
    assert problem.dictionary.shape == (8, 12) and problem.dictionary.dtype == torch.float64


def test_contexts_and_dictionary_are_reproducible():
    problem = Lasso()
    assert torch.equal(contexts(problem, seed=3), contexts(problem, seed=3))
    assert not torch.allclose(contexts(problem, seed=3), contexts(problem, seed=4))
    assert torch.equal(Lasso(seed=1).dictionary, Lasso(seed=1).dictionary)
    assert not torch.allclose(Lasso(seed=1).dictionary, Lasso(seed=2).dictionary)


def test_dictionary_columns_are_unit_norm_and_lipschitz_is_spectral_norm_squared():
    for problem in (Lasso(), Lasso(signal_dim=6, code_dim=6, dictionary_type="orthogonal")):
        d = problem.dictionary
        torch.testing.assert_close(torch.linalg.vector_norm(d, dim=0), torch.ones(d.shape[1], dtype=d.dtype))
        assert problem.lipschitz == pytest.approx(float(torch.linalg.eigvalsh(d.T @ d).max()), rel=1e-12)
    orthogonal = Lasso(signal_dim=6, code_dim=6, dictionary_type="orthogonal").dictionary
    torch.testing.assert_close(orthogonal.T @ orthogonal, torch.eye(6, dtype=torch.float64))


def test_contexts_are_noisy_sparse_combinations_of_atoms():
    problem = Lasso(noise_std=0.0, sparsity=2)
    x = contexts(problem, batch_size=16).double()
    # With no noise, each x lies exactly in the span of 2 atoms: the best 2-atom fit has zero residual.
    d = problem.dictionary
    pairs = torch.combinations(torch.arange(problem.code_dim), r=2)
    atoms = d[:, pairs].permute(1, 0, 2)  # (P, m, 2)
    fits = torch.linalg.lstsq(atoms.unsqueeze(0), x[:, None, :, None]).solution
    residuals = torch.linalg.vector_norm(atoms.unsqueeze(0) @ fits - x[:, None, :, None], dim=(-2, -1))
    assert residuals.min(-1).values.max() < 1e-5


def test_objective_and_prox_match_their_definitions():
    problem = Lasso(signal_dim=3, code_dim=4, l1=0.5)
    x = contexts(problem, batch_size=2).double()
    y = torch.tensor([[0.5, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    d = problem.dictionary
    expected = 0.5 * ((y @ d.T - x) ** 2).sum(-1) + 0.5 * y.abs().sum(-1)
    torch.testing.assert_close(problem.objective(y, x), expected)
    torch.testing.assert_close(problem.smooth_gradient(y, x), (y @ d.T - x) @ d)
    v = torch.tensor([[-2.0, -0.1, 0.0, 0.3, 1.0]])
    torch.testing.assert_close(problem.prox(v, 0.4), torch.tensor([[-1.8, 0.0, 0.0, 0.1, 0.8]]))
    per_problem_step = torch.tensor([[0.0], [2.0]])
    torch.testing.assert_close(problem.prox(v.expand(2, -1), per_problem_step)[1], torch.tensor([-1.0, 0, 0, 0, 0]))


def test_gradient_is_the_subgradient_with_sign_zero():
    problem = Lasso()
    x = contexts(problem, batch_size=4).double()
    y = torch.zeros(4, problem.code_dim, dtype=torch.float64)
    y[:, :5] = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = problem.smooth_gradient(y, x) + problem.l1 * torch.sign(y)
    torch.testing.assert_close(problem.gradient(y, x), expected)


def test_orthogonal_dictionary_solution_is_soft_thresholding():
    problem = Lasso(signal_dim=10, code_dim=10, sparsity=3, l1=0.3, dictionary_type="orthogonal", seed=5)
    x = contexts(problem).double()
    expected = soft_threshold(x @ problem.dictionary, problem.l1)
    assert (expected == 0).any() and (expected != 0).any()
    torch.testing.assert_close(problem.solve(x), expected, rtol=0, atol=1e-8)


def test_overcomplete_dictionary_recovers_a_planted_solution():
    """x = D y° + r with a dual certificate r: Dᵀ_S r = λ sign(y°_S), |Dᵀ_{S^c} r| < λ, so y* = y°."""
    problem = Lasso()
    d, l1 = problem.dictionary, problem.l1
    support = torch.tensor([5, 22, 38])
    planted = torch.zeros(1, problem.code_dim, dtype=torch.float64)
    planted[0, support] = torch.tensor([1.0, -0.7, 0.4], dtype=torch.float64)
    atoms = d[:, support]
    residual = l1 * atoms @ torch.linalg.solve(atoms.T @ atoms, torch.sign(planted[0, support]))
    off_support = torch.ones(problem.code_dim, dtype=torch.bool)
    off_support[support] = False
    assert (d.T @ residual)[off_support].abs().max() < 0.9 * l1  # strict: y° is the unique solution
    x = planted @ d.T + residual
    torch.testing.assert_close(problem.solve(x), planted, rtol=0, atol=1e-8)


def test_default_solutions_satisfy_the_optimality_conditions():
    problem = Lasso()
    x = contexts(problem, batch_size=32).double()
    y_star = problem.solve(x)
    smooth_gradient = problem.smooth_gradient(y_star, x)
    zero = y_star == 0
    assert zero.any() and (~zero).any()
    assert (smooth_gradient.abs()[zero] <= problem.l1 + 1e-7).all()
    torch.testing.assert_close(
        smooth_gradient[~zero], -problem.l1 * torch.sign(y_star[~zero]), rtol=0, atol=1e-7
    )
    fixed_point = problem.prox(y_star - smooth_gradient / problem.lipschitz, 1.0 / problem.lipschitz)
    assert torch.linalg.vector_norm(y_star - fixed_point, dim=-1).max() <= 1e-9
    perturbed = y_star + 1e-3 * torch.randn(y_star.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    assert (problem.objective(perturbed, x) > problem.objective(y_star, x)).all()


def test_solve_from_float32_contexts_is_consistent():
    problem = Lasso()
    x = contexts(problem, batch_size=8)
    torch.testing.assert_close(problem.solve(x), problem.solve(x.double()).float())


def test_unconverged_solve_raises(monkeypatch):
    problem = Lasso()
    monkeypatch.setattr(problem, "max_solver_iterations", 3)
    with pytest.raises(RuntimeError, match="did not reach fixed-point residual"):
        problem.solve(contexts(problem, batch_size=4))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"signal_dim": 0}, "signal_dim"),
        ({"code_dim": 0}, "code_dim"),
        ({"sparsity": 0}, "sparsity"),
        ({"code_dim": 5, "sparsity": 6}, "sparsity"),
        ({"l1": 0.0}, "l1"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"dictionary_type": "dct"}, "dictionary_type"),
        ({"signal_dim": 5, "code_dim": 8, "dictionary_type": "orthogonal"}, "code_dim"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ProblemArgumentError, match=argument) as error:
        Lasso(**kwargs)
    assert error.value.argument == argument

import numpy as np
import pytest
import torch

from amorctl.problems.base import ProblemArgumentError
from amorctl.problems.quadratic import Quadratic

ENCODINGS = ["eigen", "full"]


def contexts(problem, batch_size=64, seed=0):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_shapes_and_dtypes(encoding):
    problem = Quadratic(dim=6, encoding=encoding)
    x = contexts(problem, batch_size=8)
    y = problem.solve(x)
    assert problem.context_dim == (12 if encoding == "eigen" else 21 + 6)
    assert x.shape == (8, problem.context_dim) and x.dtype == torch.float32
    assert y.shape == (8, 6) and y.dtype == torch.float32
    assert problem.objective(y, x).shape == (8,)
    assert problem.solve(x.double()).dtype == torch.float64


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_contexts_are_reproducible(encoding):
    problem = Quadratic(encoding=encoding)
    assert torch.equal(contexts(problem, seed=3), contexts(problem, seed=3))
    assert not torch.allclose(contexts(problem, seed=3), contexts(problem, seed=4))


def test_fixed_basis_depends_on_seed_only():
    x = contexts(Quadratic())
    assert torch.equal(Quadratic(seed=1).matrix(x), Quadratic(seed=1).matrix(x))
    assert not torch.allclose(Quadratic(seed=1).matrix(x), Quadratic(seed=2).matrix(x))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_decoded_matrix_is_spd_with_condition_number_in_range(encoding):
    problem = Quadratic(dim=5, cond_min=10.0, cond_max=50.0, encoding=encoding)
    a = problem.matrix(contexts(problem).double()).numpy()
    np.testing.assert_allclose(a, a.transpose(0, 2, 1), atol=1e-5)
    eigenvalues = np.linalg.eigvalsh(a)
    assert (eigenvalues > 0).all()
    conditions = np.linalg.cond(a)
    assert conditions.min() >= 10.0 * (1 - 1e-4) and conditions.max() <= 50.0 * (1 + 1e-4)
    assert conditions.max() - conditions.min() > 5.0  # κ is drawn per problem


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_solution_matches_independent_linear_solve(encoding):
    problem = Quadratic(dim=7, encoding=encoding)
    x = contexts(problem).double()
    a, b = problem.matrix(x).numpy(), problem.linear_term(x).numpy()
    expected = np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0] for ai, bi in zip(a, b)])
    np.testing.assert_allclose(problem.solve(x).numpy(), expected, rtol=1e-9, atol=1e-9)


def test_eigen_context_decodes_to_its_eigenvalues():
    problem = Quadratic(dim=4)
    x = contexts(problem, batch_size=4).double()
    eigenvalues = np.linalg.eigvalsh(problem.matrix(x).numpy())
    np.testing.assert_allclose(eigenvalues, np.sort(x[:, :4].exp().numpy(), axis=-1), rtol=1e-10)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_solution_is_a_minimum(encoding):
    problem = Quadratic(encoding=encoding)
    x = contexts(problem).double()
    y_star = problem.solve(x)
    assert problem.gradient(y_star, x).abs().max() < 1e-9
    f_star = problem.objective(y_star, x)
    torch.testing.assert_close(f_star, problem.optimal_value(x))
    perturbed = y_star + 1e-2 * torch.randn(y_star.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    assert (problem.objective(perturbed, x) > f_star).all()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"dim": 1}, "dim"),
        ({"cond_min": 0.5}, "cond_min"),
        ({"cond_min": 10.0, "cond_max": 5.0}, "cond_max"),
        ({"encoding": "cholesky"}, "encoding"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ProblemArgumentError, match=argument) as error:
        Quadratic(**kwargs)
    assert error.value.argument == argument

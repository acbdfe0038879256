import pytest
import torch

from amorctl.problems.base import ProblemArgumentError
from amorctl.problems.rosenbrock import Rosenbrock


def contexts(problem, batch_size=64, seed=0):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed))


def test_shapes_and_dtypes():
    problem = Rosenbrock(dim=4)
    x = contexts(problem, batch_size=8)
    y = problem.solve(x)
    assert x.shape == (8, 5) and x.dtype == torch.float32
    assert y.shape == (8, 4) and y.dtype == torch.float32
    assert problem.objective(y, x).shape == (8,)


def test_contexts_are_reproducible_and_in_range():
    problem = Rosenbrock(dim=3, shift_max=2.0, curvature_min=5.0, curvature_max=50.0)
    x = contexts(problem, batch_size=256, seed=3)
    assert torch.equal(x, contexts(problem, batch_size=256, seed=3))
    assert not torch.allclose(x, contexts(problem, batch_size=256, seed=4))
    assert x[:, :3].abs().max() <= 2.0
    curvature = x[:, 3].exp()
    assert curvature.min() >= 5.0 * (1 - 1e-6) and curvature.max() <= 50.0 * (1 + 1e-6)


def test_classic_rosenbrock_when_unshifted():
    problem = Rosenbrock(dim=2)
    x = torch.tensor([[0.0, 0.0, torch.log(torch.tensor(100.0))]])
    y = torch.tensor([[-1.2, 1.0]])
    torch.testing.assert_close(problem.objective(y, x), torch.tensor([24.2]))


@pytest.mark.parametrize("dim", [2, 5])
def test_solution_is_the_global_minimum(dim):
    problem = Rosenbrock(dim=dim, curvature_max=100.0)
    x = contexts(problem)
    y_star = problem.solve(x)
    f_star = problem.objective(y_star, x)
    assert torch.equal(f_star, torch.zeros(64))
    assert problem.gradient(y_star, x).abs().max() < 1e-5
    perturbed = y_star + 1e-2 * torch.randn(y_star.shape, generator=torch.Generator().manual_seed(0))
    assert (problem.objective(perturbed, x) > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"dim": 1}, "dim"),
        ({"shift_max": -1.0}, "shift_max"),
        ({"curvature_min": 0.0}, "curvature_min"),
        ({"curvature_min": 10.0, "curvature_max": 1.0}, "curvature_max"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ProblemArgumentError, match=argument) as error:
        Rosenbrock(**kwargs)
    assert error.value.argument == argument

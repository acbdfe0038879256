import pytest
import torch

from amorctl.problems.base import ProblemArgumentError
from amorctl.problems.logistic_regression import LogisticRegression


def contexts(problem, batch_size=64, seed=0):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed))


def test_shapes_and_dtypes():
    problem = LogisticRegression(num_features=3, num_samples=10)
    x = contexts(problem, batch_size=8)
    y = problem.solve(x)
    assert problem.context_dim == 40
    assert x.shape == (8, 40) and x.dtype == torch.float32
    assert y.shape == (8, 3) and y.dtype == torch.float32
    assert problem.objective(y, x).shape == (8,)
    assert problem.solve(x.double()).dtype == torch.float64


def test_contexts_are_reproducible_and_labels_binary():
    problem = LogisticRegression()
    x = contexts(problem, seed=3)
    assert torch.equal(x, contexts(problem, seed=3))
    assert not torch.allclose(x, contexts(problem, seed=4))
    labels = x[:, problem.num_samples * problem.num_features :]
    assert set(labels.unique().tolist()) == {0.0, 1.0}


def test_objective_matches_its_definition():
    problem = LogisticRegression(num_features=2, num_samples=2, l2=0.5)
    x = torch.tensor([[1.0, 2.0, -1.0, 0.5, 1.0, 0.0]])  # φ_1 = (1, 2), φ_2 = (-1, 0.5), t = (1, 0)
    y = torch.tensor([[0.3, -0.2]])
    expected = 0.5 * (torch.log1p(torch.exp(torch.tensor(0.1))) + torch.log1p(torch.exp(torch.tensor(-0.4))))
    expected += 0.25 * (0.3**2 + 0.2**2)
    torch.testing.assert_close(problem.objective(y, x), expected.reshape(1))


def test_solution_has_zero_gradient_and_is_a_minimum():
    problem = LogisticRegression()
    x = contexts(problem).double()
    y_star = problem.solve(x)
    assert torch.linalg.vector_norm(problem.gradient(y_star, x), dim=-1).max() <= 1e-8 * 1.01
    assert problem.gradient(y_star.float(), x.float()).abs().max() < 1e-4
    f_star = problem.objective(y_star, x)
    perturbed = y_star + 1e-2 * torch.randn(y_star.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    assert (problem.objective(perturbed, x) > f_star).all()


def test_solution_matches_lbfgs():
    problem = LogisticRegression(l2=0.001)
    x = contexts(problem, batch_size=3).double()
    y_star = problem.solve(x)
    for i in range(3):
        y = torch.zeros(1, problem.solution_dim, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [y], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe"
        )

        def closure(i=i, y=y, optimizer=optimizer):
            optimizer.zero_grad()
            loss = problem.objective(y, x[i : i + 1]).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        torch.testing.assert_close(y.detach()[0], y_star[i], rtol=0, atol=1e-6)


def test_separable_data_with_tiny_l2_still_converges():
    problem = LogisticRegression(num_features=2, num_samples=4, l2=1e-6)
    features = torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 0.0], [-2.0, -1.0]])
    x = torch.cat([features.flatten(), torch.tensor([1.0, 1.0, 0.0, 0.0])]).reshape(1, -1).double()
    y_star = problem.solve(x)
    assert torch.linalg.vector_norm(problem.gradient(y_star, x)) <= 1e-8 * 1.01


def test_unconverged_solve_raises(monkeypatch):
    problem = LogisticRegression()
    monkeypatch.setattr(problem, "max_newton_steps", 1)
    with pytest.raises(RuntimeError, match="did not reach gradient norm"):
        problem.solve(contexts(problem, batch_size=4))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"num_features": 0}, "num_features"), ({"num_samples": 0}, "num_samples"), ({"l2": 0.0}, "l2")],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ProblemArgumentError, match=argument) as error:
        LogisticRegression(**kwargs)
    assert error.value.argument == argument

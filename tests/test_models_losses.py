"""Losses equal their equations, models and projections behave, and the package layout stays namespaced."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from amorctl.losses import mixed_loss, objective_loss, regression_loss
from amorctl.models import FullyAmortizedMLP, TanhBox, build_model
from amorctl.problems import Problem, make_problem
from amorctl.run.config import load_config


class Linear(Problem):
    """f(y; x) = Σ_i x_i y_i + 1: easy to evaluate by hand; no solver, so losses must not need one."""

    context_dim = solution_dim = 2

    def sample_contexts(self, batch_size, generator, device="cpu"):
        return torch.randn(batch_size, 2, generator=generator).to(device)

    def objective(self, y, x):
        return (x * y).sum(-1) + 1.0


Y_HAT = torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, 3.0]])
Y_STAR = torch.tensor([[0.0, 0.0], [3.0, 4.0], [-1.0, 1.0]])
X = torch.tensor([[2.0, 1.0], [5.0, -5.0], [1.0, 1.0]])


def test_regression_loss_is_eq_2_9():
    # squared distances: 1 + 4 = 5, 9 + 16 = 25, 0 + 4 = 4; batch mean 34 / 3
    assert regression_loss(Y_HAT, Y_STAR).item() == pytest.approx(34 / 3)
    assert regression_loss(Y_STAR, Y_STAR).item() == 0.0


def test_objective_loss_is_eq_2_10():
    # f = (2 + 2 + 1, 0 + 1, -1 + 3 + 1) = (5, 1, 3); batch mean 3
    assert objective_loss(Linear(), Y_HAT, X).item() == pytest.approx(3.0)


def test_mixed_loss_blends_the_two():
    objective, regression = 3.0, 34 / 3
    for weight in (0.0, 0.25, 1.0):
        expected = (1 - weight) * objective + weight * regression
        assert mixed_loss(Linear(), Y_HAT, X, Y_STAR, weight).item() == pytest.approx(expected)


def test_losses_differentiate_into_the_prediction():
    y_hat = Y_HAT.clone().requires_grad_()
    objective_loss(Linear(), y_hat, X).backward()
    assert torch.allclose(y_hat.grad, X / 3)
    y_hat.grad = None
    regression_loss(y_hat, Y_STAR).backward()
    assert torch.allclose(y_hat.grad, 2 * (Y_HAT - Y_STAR) / 3)


def test_tanh_box_maps_into_the_box():
    box = TanhBox(-2.0, 3.0)
    z = torch.linspace(-8, 8, 101)
    y = box(z)
    assert ((y > -2.0) & (y < 3.0)).all()
    assert box(torch.tensor([-1e4, 1e4])).tolist() == [-2.0, 3.0]
    assert box(torch.zeros(1)).item() == pytest.approx(0.5)
    assert (y[1:] > y[:-1]).all(), "monotone"


def test_tanh_box_is_differentiable():
    box = TanhBox(-2.0, 3.0)
    z = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(box, (z,))
    box(z).sum().backward()
    assert torch.allclose(z.grad, 2.5 * (1 - torch.tanh(z.detach()) ** 2))


def test_tanh_box_rejects_an_empty_box():
    with pytest.raises(ValueError, match="low < high"):
        TanhBox(1.0, 1.0)


def test_mlp_shapes_and_projection():
    torch.manual_seed(0)
    model = FullyAmortizedMLP(3, 4, [8, 8], "tanh", TanhBox(-1.0, 1.0))
    y = model(100 * torch.randn(5, 3))
    assert y.shape == (5, 4) and (y.abs() <= 1).all()
    assert [module.out_features for module in model.body if isinstance(module, torch.nn.Linear)] == [8, 8, 4]
    y.sum().backward()
    assert all(parameter.grad is not None for parameter in model.parameters())
    with pytest.raises(ValueError, match="activation"):
        FullyAmortizedMLP(3, 4, [8], "gelu")


def test_build_model_projects_onto_the_problem_box():
    pendulum = load_config(None, ["problem.horizon=4"])
    model = build_model(pendulum.model, make_problem(**pendulum.problem))
    assert isinstance(model.projection, TanhBox)
    quadratic = load_config(None, ["problem={name: quadratic, dim: 3}"])
    assert isinstance(build_model(quadratic.model, make_problem(**quadratic.problem)).projection, torch.nn.Identity)


def test_agents_and_envs_live_under_amorctl():
    import amorctl.agents
    import amorctl.envs

    assert amorctl.agents.DirectAmortization.__module__ == "amorctl.agents.direct"
    assert amorctl.envs.__name__ == "amorctl.envs"


@pytest.mark.parametrize("name", ["agents", "envs"])
def test_generic_top_level_names_are_not_installed(name, tmp_path):
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is not None)"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"a top-level {name!r} package is importable: {result.stderr}"

import math

import pytest
import torch

from amorctl.problems.base import ProblemArgumentError
from amorctl.problems.pendulum_mpc import PendulumMPC


def contexts(problem, batch_size=32, seed=0):
    return problem.sample_contexts(batch_size, torch.Generator().manual_seed(seed))


def rollout_cost(problem, y, x):
    """An independent, scalar re-implementation of the documented cost for one problem."""
    w_angle, w_velocity, w_torque, w_terminal = problem.weights
    error, velocity = float(x[0]), float(x[1])
    target = float(x[2]) if problem.context_dim == 3 else 0.0
    cost = 0.0
    for u in y.tolist():
        accel = -problem.gravity * math.sin(error + target) - problem.damping * velocity + problem.max_torque * u
        velocity += problem.dt * accel
        error += problem.dt * velocity
        cost += problem.dt * (w_angle * error**2 + w_velocity * velocity**2 + w_torque * u**2)
    return cost + w_terminal * (error**2 + velocity**2)


def test_shapes_bounds_and_context_ranges():
    problem = PendulumMPC(horizon=25, target_range=0.3)
    x = contexts(problem, batch_size=512)
    assert problem.context_dim == 3 and problem.solution_dim == 25 and problem.bounds == (-1.0, 1.0)
    assert x.shape == (512, 3) and x.dtype == torch.float32
    limits = torch.tensor([problem.angle_range, problem.velocity_range, problem.target_range])
    assert (x.abs() <= limits).all()
    assert (x.abs().amax(0) > 0.9 * limits).all(), "p(x) should span its whole box"
    assert PendulumMPC().context_dim == 2


def test_contexts_are_reproducible():
    problem = PendulumMPC()
    assert torch.equal(contexts(problem, seed=1), contexts(problem, seed=1))
    assert not torch.equal(contexts(problem, seed=1), contexts(problem, seed=2))


@pytest.mark.parametrize("target_range", [0.0, 0.4])
def test_objective_matches_scalar_rollout(target_range):
    problem = PendulumMPC(horizon=12, target_range=target_range)
    x = contexts(problem, batch_size=4).double()
    y = torch.rand(4, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    batched = problem.objective(y, x)
    for i in range(4):
        assert batched[i].item() == pytest.approx(rollout_cost(problem, y[i], x[i]), rel=1e-10)


def test_solver_matches_closed_form_linear_quadratic_case():
    # Without gravity and damping the rollout is linear in y, so f is a convex quadratic whose
    # minimiser is a least-squares solution; small initial states keep it inside the box.
    problem = PendulumMPC(horizon=15, gravity=0.0, damping=0.0, angle_range=0.2, velocity_range=0.2)
    x = contexts(problem, batch_size=8).double()
    zero = torch.zeros(8, 15, dtype=torch.float64)
    offset = problem.residuals(zero, x)
    jacobian = torch.func.vmap(torch.func.jacfwd(lambda y, xx: problem.residuals(y[None], xx[None])[0]))(zero, x)
    expected = torch.linalg.lstsq(jacobian, -offset[..., None]).solution[..., 0]
    assert expected.abs().max() < 1, "test setup: the box must not bind"
    # the solver stops at ‖∇f‖ ≤ 1e-8; the smallest curvature here (~0.03) turns that into ≤ ~3e-7 in y
    torch.testing.assert_close(problem.solve(x), expected, atol=1e-6, rtol=0)


def test_solver_reaches_a_stationary_point_of_the_box_problem():
    problem = PendulumMPC()
    x = contexts(problem, batch_size=64).double()
    y_star = problem.solve(x)
    assert ((y_star >= -1) & (y_star <= 1)).all()
    assert (y_star.abs() == 1).float().mean() > 0.1, "the default torque limit should bind for some torques"
    gradient = problem.gradient(y_star, x)
    projected = (y_star - (y_star - gradient).clamp(-1, 1)).norm(dim=1)
    assert projected.max() <= 1e-6
    f_star = problem.objective(y_star, x)
    noise = 0.05 * torch.randn(16, *y_star.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    perturbed = (y_star + noise).clamp(-1, 1)
    assert (problem.objective(perturbed.flatten(0, 1), x.repeat(16, 1)).view(16, -1) >= f_star - 1e-12).all()


def test_solver_beats_a_long_first_order_run():
    problem = PendulumMPC()
    x = contexts(problem, batch_size=32).double()
    f_star = problem.objective(problem.solve(x), x)
    z = torch.zeros(32, problem.horizon, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=0.05)
    for _ in range(500):
        optimizer.zero_grad()
        problem.objective(torch.tanh(z), x).sum().backward()
        optimizer.step()
    f_adam = problem.objective(torch.tanh(z), x).detach()
    assert (f_star <= f_adam + 1e-9).all()


def test_returns_the_dtype_of_the_contexts():
    problem = PendulumMPC(horizon=5)
    x = contexts(problem, batch_size=3)
    assert problem.solve(x).dtype == torch.float32
    assert problem.objective(problem.solve(x), x).shape == (3,)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"horizon": 0}, "horizon"),
        ({"dt": 0.0}, "dt"),
        ({"angle_range": 4.0}, "angle_range"),
        ({"torque_weight": -1.0}, "torque_weight"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ProblemArgumentError) as error:
        PendulumMPC(**kwargs)
    assert error.value.argument == argument

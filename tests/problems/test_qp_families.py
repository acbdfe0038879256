"""The QP families (the OSQP benchmark classes) against the osqp package and against their own formulations."""

import math

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.problems import ProblemArgumentError
from amorctl.problems.qp import QP_FAMILIES, SMALL_SIZES, QPBatch, make_qp_family, reference_solutions
from amorctl.problems.qp.families import discrete_riccati


def draw(name, batch_size=6, seed=0, **kwargs):
    family = make_qp_family(name, **(SMALL_SIZES[name] | kwargs))
    return family, family.sample(batch_size, torch.Generator().manual_seed(seed))


def test_every_class_is_registered():
    assert set(QP_FAMILIES) == set(SMALL_SIZES)


@pytest.mark.parametrize("name", sorted(SMALL_SIZES))
def test_batch_is_a_convex_qp_of_the_announced_size(name):
    family, qp = draw(name)
    N, n, m = 6, family.num_variables, family.num_constraints
    assert (qp.num_problems, qp.num_variables, qp.num_constraints) == (N, n, m)
    assert qp.dtype == torch.float64
    assert torch.equal(qp.P, qp.P.mT)
    assert torch.linalg.eigvalsh(qp.P).min() > -1e-9
    assert bool((qp.lower <= qp.upper).all()) and not bool(torch.isnan(qp.A).any())
    same = family.sample(N, torch.Generator().manual_seed(0))
    other = family.sample(N, torch.Generator().manual_seed(1))
    assert torch.equal(same.A, qp.A) and torch.equal(same.q, qp.q) and torch.equal(same.lower, qp.lower)
    assert not (torch.equal(other.A, qp.A) and torch.equal(other.q, qp.q) and torch.equal(other.lower, qp.lower))
    as_float = family.sample(2, torch.Generator(TEST_DEVICE).manual_seed(0), device=TEST_DEVICE, dtype=torch.float32)
    assert as_float.dtype == torch.float32 and as_float.A.shape == (2, m, n)


@pytest.mark.parametrize("name", sorted(SMALL_SIZES))
def test_osqp_solves_every_drawn_problem_to_the_reference_tolerance(name):
    _, qp = draw(name, batch_size=8, seed=3)
    reference = reference_solutions(qp)
    primal, dual = qp.kkt_residuals(reference.x, reference.y)
    assert reference.status == ["solved"] * 8
    assert primal.max() < 1e-7 and dual.max() < 1e-7
    assert qp.complementarity(reference.x, reference.y).max() < 1e-7


def test_equality_qp_reference_solves_the_kkt_system():
    _, qp = draw("eq_qp")
    n, m = qp.num_variables, qp.num_constraints
    kkt = torch.cat([torch.cat([qp.P, qp.A.mT], -1), torch.cat([qp.A, torch.zeros(6, m, m, dtype=qp.dtype)], -1)], 1)
    rhs = torch.cat([-qp.q, qp.lower], -1).unsqueeze(-1)
    x = (torch.linalg.pinv(kkt) @ rhs).squeeze(-1)[:, :n]
    assert torch.allclose(reference_solutions(qp).x, x, atol=1e-6)


def test_lasso_reference_meets_the_lasso_optimality_conditions():
    family, qp = draw("lasso")
    n, m = family.features, family.data
    data, b, lam = qp.A[:, :m, :n], qp.lower[:, :m], qp.q[:, -1:]
    x = reference_solutions(qp).x[:, :n]
    gradient = 2 * (data.mT @ (data @ x.unsqueeze(-1) - b.unsqueeze(-1))).squeeze(-1)  # of ‖Ãx − b‖²
    active = x.abs() > 1e-7
    assert active.any() and (~active).any()
    assert torch.allclose(gradient[active], -(lam.expand_as(x) * x.sign())[active], atol=1e-5)
    assert bool((gradient[~active].abs() <= lam.expand_as(x)[~active] + 1e-5).all())


def test_huber_and_svm_optima_are_their_losses():
    family, qp = draw("huber")
    n, m = family.features, family.data
    x = reference_solutions(qp)
    residual = (qp.A[:, :m, :n] @ x.x[:, :n].unsqueeze(-1)).squeeze(-1) - qp.lower[:, :m]
    huber = torch.where(residual.abs() <= 1, 0.5 * residual**2, residual.abs() - 0.5).sum(-1)
    assert torch.allclose(qp.objective(x.x), huber, rtol=1e-6, atol=1e-7)

    family, qp = draw("svm")
    n, m = family.features, family.data
    w = reference_solutions(qp).x[:, :n]
    margins = (qp.A[:, :m, :n] @ w.unsqueeze(-1)).squeeze(-1) + 1
    hinge = 0.5 * (w**2).sum(-1) + 0.5 * family.gamma * margins.clamp(min=0).sum(-1)
    assert torch.allclose(qp.objective(reference_solutions(qp).x), hinge, rtol=1e-6, atol=1e-7)


def test_control_terminal_cost_solves_the_riccati_equation():
    generator = torch.Generator().manual_seed(0)
    A = torch.eye(3, dtype=torch.float64) * 0.9 + 0.05 * torch.randn(4, 3, 3, generator=generator, dtype=torch.float64)
    B = torch.randn(4, 3, 1, generator=generator, dtype=torch.float64)
    Q, R = torch.eye(3, dtype=torch.float64).expand(4, 3, 3), 0.1 * torch.eye(1, dtype=torch.float64).expand(4, 1, 1)
    X = discrete_riccati(A, B, Q, R)
    gain = torch.linalg.solve(R + B.mT @ X @ B, B.mT @ X @ A)
    assert torch.allclose(X, Q + A.mT @ X @ A - A.mT @ X @ B @ gain, atol=1e-9)
    family, qp = draw("control")
    nx, T = family.states, family.horizon
    x_init = -qp.lower[:, :nx]
    x_max = qp.upper[:, (T + 1) * nx : (T + 2) * nx]
    assert bool((x_init.abs() <= 0.5 * x_max + 1e-12).all())
    assert torch.allclose(reference_solutions(qp).x[:, :nx], x_init, atol=1e-7)


def test_infinite_bounds_are_written_as_inf():
    _, qp = draw("svm")
    assert bool(torch.isinf(qp.lower).any()) and bool(torch.isinf(qp.upper).any())
    assert math.isinf(float(qp.lower.min()))


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("random_qp", {"n": 0}, "n"),
        ("random_qp", {"density": 0.0}, "density"),
        ("eq_qp", {"n": 1}, "n"),
        ("svm", {"data": 7}, "data"),
        ("portfolio", {"risk_aversion": -1.0}, "risk_aversion"),
        ("control", {"horizon": 0}, "horizon"),
    ],
)
def test_bad_sizes_name_the_argument(name, kwargs, argument):
    with pytest.raises(ProblemArgumentError) as error:
        make_qp_family(name, **kwargs)
    assert error.value.argument == argument


def test_batch_checks_shapes_and_indexes():
    _, qp = draw("portfolio")
    assert qp[2].num_problems == 1 and torch.equal(qp[2].A[0], qp.A[2])
    assert qp[torch.tensor([0, 3])].num_problems == 2
    with pytest.raises(ValueError, match=r"QPBatch\.A"):
        QPBatch(qp.P, qp.q, qp.A[:, :, :-1], qp.lower, qp.upper)

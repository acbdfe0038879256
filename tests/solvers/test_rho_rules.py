"""The hand-written active-set ρ rule: two levels by constraint activity, and still OSQP's solution."""

import pytest
import torch

from amorctl.problems.qp import make_qp_family
from amorctl.solvers import ActiveSetRho, ADMMSettings, BatchedADMM, OSQPAdaptiveRho, Status

SETTINGS = ADMMSettings(eps_abs=1e-7, eps_rel=1e-7, check_termination=5, max_iter=4000)


def test_rows_at_a_bound_get_the_high_rho_and_the_others_the_low():
    qp = make_qp_family("random_qp", n=8).sample(3, torch.Generator().manual_seed(0))
    solver = BatchedADMM(qp, SETTINGS)
    rule = ActiveSetRho(high=5.0, low=0.2, interval=10)
    rule.start(solver)  # cold start z = 0, strictly inside every Random QP row's [l, u]
    assert ((qp.lower < 0) & (qp.upper > 0)).all() and (solver.rho == 0.2).all()
    solver.iterate(30)
    rule.update(solver, solver.residuals())
    slack = torch.minimum(solver.z - qp.lower, qp.upper - solver.z)
    active = slack <= 1e-6 * solver.z.abs().amax(-1, keepdim=True).clamp_min(1.0)
    assert active.any() and (~active).any()
    assert torch.equal(solver.rho == 5.0, active) and torch.equal(solver.rho != 5.0, solver.rho == 0.2)


def test_the_rule_reaches_the_adaptive_rules_solution():
    qp = make_qp_family("random_qp", n=8).sample(4, torch.Generator().manual_seed(3))
    rule = ActiveSetRho(interval=25)
    solver = BatchedADMM(qp, SETTINGS)
    rule.start(solver)
    solver.solve(rule)
    reference = BatchedADMM(qp, SETTINGS).solve(OSQPAdaptiveRho())
    solved = (solver.status == Status.SOLVED) & (reference.status == Status.SOLVED)
    assert solved.sum() >= 3
    assert torch.allclose(solver.x[solved], reference.x[solved], atol=1e-4)


@pytest.mark.parametrize("kwargs", [{"high": 0.1, "low": 1.0}, {"low": 0.0}, {"interval": 0}, {"tolerance": 0.0}])
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="ActiveSetRho"):
        ActiveSetRho(**kwargs)

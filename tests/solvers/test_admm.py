"""The batched ADMM solver against the osqp package: same iterates, same iteration counts, same answers."""

import math

import pytest
import torch

from amorctl.problems.qp import SMALL_SIZES, QPBatch, make_qp_family, osqp_solve, reference_solutions
from amorctl.solvers import (
    ADMMSettings,
    BatchedADMM,
    ConstraintType,
    FixedRho,
    OSQPAdaptiveRho,
    Status,
    osqp_rho_estimate,
    rho_vector,
)

EPS = 1e-6
MATCHED = {
    "scaling": 0,
    "polishing": 0,
    "check_dualgap": 0,
    "adaptive_rho_interval": 50,
    "eps_abs": EPS,
    "eps_rel": EPS,
}
"""osqp settings under which its iteration is the batched solver's: no Ruiz scaling, no polish, no duality-gap
test, adaptive ρ every 50 iterations (osqp's own default without profiling, made explicit)."""


BACKENDS = ("numba", "torch")
"""Both implementations of the iteration run every test that solves (``ADMMSettings.backend``)."""


def draw(name, batch_size=8, seed=0):
    return make_qp_family(name, **SMALL_SIZES[name]).sample(batch_size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SMALL_SIZES))
def test_adaptive_rule_matches_osqp_iterations_and_solutions(name, backend):
    qp = draw(name)
    solver = BatchedADMM(qp, ADMMSettings(eps_abs=EPS, eps_rel=EPS, backend=backend)).solve(OSQPAdaptiveRho())
    osqp = osqp_solve(qp, **MATCHED)
    reference = reference_solutions(qp)
    solved = solver.status == Status.SOLVED
    assert int(solved.sum()) >= 7
    # the same iteration: identical counts on (almost) every problem (round-off differs: osqp factors the
    # sparse (n + m) KKT system), the same answers to the tolerance's scale where both solved
    assert int((solver.iterations == osqp.iterations).sum()) >= 7
    both = solved & torch.tensor([s == "solved" for s in osqp.status])
    assert torch.allclose(solver.x[both], osqp.x[both], atol=100 * EPS)
    # within tolerance of the tight reference: the objective and the KKT residuals at the tolerance's scale
    f, f_star = qp.objective(solver.x)[solved], qp.objective(reference.x)[solved]
    assert bool(((f - f_star).abs() <= 1e-4 * (1 + f_star.abs())).all())
    primal, _ = qp.kkt_residuals(solver.x, solver.y)
    scale = 1 + qp.A.abs().amax((-1, -2)) * (1 + solver.x.abs().amax(-1))
    assert bool((primal[solved] <= 10 * EPS * scale[solved]).all())
    residuals = solver.residuals()
    assert (residuals.primal == 0).all()  # every problem frozen: nothing measured


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_rho_factors_once_and_adaptive_refactors_only_on_change(backend):
    qp = draw("portfolio")
    fixed = BatchedADMM(qp, ADMMSettings(eps_abs=EPS, eps_rel=EPS, max_iter=20000, backend=backend)).solve(FixedRho())
    assert (fixed.factorizations == 1).all() and (fixed.status == Status.SOLVED).all()
    osqp_fixed = osqp_solve(qp, **(MATCHED | {"adaptive_rho": 0, "max_iter": 20000}))
    assert int((fixed.iterations == osqp_fixed.iterations).sum()) >= 7
    assert torch.allclose(fixed.x, reference_solutions(qp).x, atol=1e-4)
    adaptive = BatchedADMM(qp, ADMMSettings(eps_abs=EPS, eps_rel=EPS, backend=backend)).solve(OSQPAdaptiveRho())
    assert (adaptive.factorizations >= 2).any()
    assert adaptive.iterations.double().mean() < fixed.iterations.double().mean()

    solver = BatchedADMM(qp, ADMMSettings(backend=backend))
    solver.set_rho(solver.rho.clone())
    assert (solver.factorizations == 1).all()
    changed = solver.rho.clone()
    changed[3, 0] *= 2
    solver.set_rho(changed)
    assert solver.factorizations.tolist() == [1, 1, 1, 2, 1, 1, 1, 1]
    assert math.isnan(float(solver.rho_scalar[3])) and not torch.isnan(solver.rho_scalar[:3]).any()


def test_rho_vector_follows_osqp_constraint_types():
    inf = math.inf
    lower = torch.tensor([[-inf, 1.0, -1.0, 0.0]], dtype=torch.float64)
    upper = torch.tensor([[inf, 1.0, 1.0, inf]], dtype=torch.float64)
    qp = QPBatch(
        torch.eye(2, dtype=torch.float64)[None],
        torch.zeros(1, 2, dtype=torch.float64),
        torch.ones(1, 4, 2, dtype=torch.float64),
        lower,
        upper,
    )
    solver = BatchedADMM(qp, ADMMSettings(rho=0.2))
    assert solver.types.tolist() == [
        [ConstraintType.LOOSE, ConstraintType.EQUALITY, ConstraintType.INEQUALITY, ConstraintType.INEQUALITY]
    ]
    assert torch.allclose(solver.rho, torch.tensor([[1e-6, 200.0, 0.2, 0.2]], dtype=torch.float64))
    assert torch.allclose(rho_vector(torch.tensor([1e9]), solver.types), torch.tensor([[1e-6, 1e9, 1e6, 1e6]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_solved_problems_freeze_while_the_others_run(backend):
    qp = draw("lasso")
    solver = BatchedADMM(qp, ADMMSettings(eps_abs=EPS, eps_rel=EPS, backend=backend)).solve(OSQPAdaptiveRho())
    assert len(set(solver.iterations.tolist())) > 1
    x, iterations = solver.x.clone(), solver.iterations.clone()
    solver.iterate(30)
    assert torch.equal(solver.x, x) and torch.equal(solver.iterations, iterations)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rho_estimate_is_the_issue_formula(backend):
    qp = draw("lasso", batch_size=2)
    solver = BatchedADMM(qp, ADMMSettings(backend=backend))
    solver.iterate(10)
    r = solver.residuals()
    expected = 0.1 * torch.sqrt((r.primal / r.primal_scale) / (r.dual / r.dual_scale))
    assert torch.allclose(osqp_rho_estimate(solver.rho_scalar, r), expected.clamp(1e-6, 1e6), rtol=1e-6)


def tiny(*data):
    as_batch = [torch.tensor(v, dtype=torch.float64).unsqueeze(0) for v in data]
    return QPBatch(*as_batch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasibility_certificates_agree_with_osqp(backend):
    inf = math.inf
    # x ≥ 1 and x ≤ 0: primal infeasible
    primal = tiny([[1.0]], [0.0], [[1.0], [1.0]], [1.0, -inf], [inf, 0.0])
    # min −x s.t. x ≥ 0 with P = 0: unbounded below, dual infeasible
    dual = tiny([[0.0]], [-1.0], [[1.0]], [0.0], [inf])
    for qp, status, name in (
        (primal, Status.PRIMAL_INFEASIBLE, "primal infeasible"),
        (dual, Status.DUAL_INFEASIBLE, "dual infeasible"),
    ):
        solver = BatchedADMM(qp, ADMMSettings(backend=backend)).solve(OSQPAdaptiveRho())
        assert solver.status.tolist() == [status]
        assert osqp_solve(qp, **MATCHED).status == [name]
        settings = ADMMSettings(detect_infeasibility=False, max_iter=100, backend=backend)
        off = BatchedADMM(qp, settings).solve(OSQPAdaptiveRho())
        assert off.status.tolist() == [Status.MAX_ITER_REACHED] and off.iterations.tolist() == [100]


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_every_iteration_and_warm_start(backend):
    qp = draw("control", batch_size=4)
    settings = ADMMSettings(eps_abs=EPS, eps_rel=EPS, check_termination=1, backend=backend)
    solver = BatchedADMM(qp, settings).solve(OSQPAdaptiveRho())
    osqp = osqp_solve(qp, **(MATCHED | {"check_termination": 1}))
    assert solver.iterations.tolist() == osqp.iterations.tolist()
    warm = BatchedADMM(qp, settings)
    warm.warm_start(x=solver.x, y=solver.y)
    warm.solve(OSQPAdaptiveRho())
    assert (warm.status == Status.SOLVED).all() and (warm.iterations < solver.iterations).all()


@pytest.mark.parametrize(
    "bad", [{"rho": 0.0}, {"alpha": 2.0}, {"max_iter": 0}, {"check_termination": 0}, {"threads": 0}, {"backend": "gpu"}]
)
def test_settings_refuse_out_of_range_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ADMMSettings(**bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_solve_refinement_and_in_float32_the_answers_stay_within_tolerance(backend):
    qp = draw("huber")
    f_star = qp.objective(reference_solutions(qp).x)
    for dtype, refine in ((torch.float64, False), (torch.float32, True), (torch.float32, False)):
        settings = ADMMSettings(refine_solve=refine, backend=backend)
        solver = BatchedADMM(qp.to(dtype=dtype), settings).solve(OSQPAdaptiveRho())
        solved = solver.status == Status.SOLVED
        assert solver.x.dtype == dtype
        # float32 without refinement is the fragile corner (RESULTS: Huber fails on a third of 1024 problems):
        # most are solved, and those within tolerance; every other combination solves all of them
        assert int(solved.sum()) >= (6 if dtype == torch.float32 and not refine else 8)
        f = qp.objective(solver.x.double())
        assert bool(((f - f_star).abs() <= 2e-2 * (1 + f_star.abs()))[solved].all())


class StepByStep(OSQPAdaptiveRho):
    """OSQP's rule through the generic loop of :meth:`BatchedADMM.solve` (iterate, check, update from Python), which
    the numba backend otherwise replaces by one compiled call."""


@pytest.mark.parametrize("name", sorted(SMALL_SIZES))
def test_numba_and_torch_backends_and_the_fused_and_stepwise_loops_agree(name):
    qp = draw(name)
    settings = {"eps_abs": EPS, "eps_rel": EPS}
    fused = BatchedADMM(qp, ADMMSettings(backend="numba", **settings)).solve(OSQPAdaptiveRho())
    stepwise = BatchedADMM(qp, ADMMSettings(backend="numba", **settings)).solve(StepByStep())
    tensors = BatchedADMM(qp, ADMMSettings(backend="torch", **settings)).solve(OSQPAdaptiveRho())
    for other in (stepwise, tensors):
        assert torch.equal(fused.status, other.status)
        # same iteration counts on (almost) every problem: round-off differs between the two implementations
        assert int((fused.iterations == other.iterations).sum()) >= 7
        same = fused.iterations == other.iterations
        assert torch.allclose(fused.x[same], other.x[same], rtol=1e-6, atol=1e-9)
    # the fused loop and the step API run the same kernels per problem; only the ρ estimate is computed apart
    # (compiled with fast-math reciprocals there, by torch here), so the iterates agree to round-off
    assert torch.equal(fused.iterations, stepwise.iterations)
    assert torch.equal(fused.factorizations, stepwise.factorizations)
    solved = fused.status == Status.SOLVED  # (one Random QP runs its 4000 iterations unsolved; round-off grows)
    assert torch.allclose(fused.x[solved], stepwise.x[solved], rtol=1e-7, atol=1e-8)
    assert torch.allclose(fused.rho_scalar[solved], stepwise.rho_scalar[solved], rtol=1e-4)


def test_threads_spread_problems_without_changing_results():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba sees one core (NUMBA_NUM_THREADS = 1): nothing to spread over")
    qp = draw("random_qp", batch_size=16)
    one, two = (
        BatchedADMM(qp, ADMMSettings(threads=threads, eps_abs=EPS, eps_rel=EPS)).solve(OSQPAdaptiveRho())
        for threads in (1, 2)
    )
    assert torch.equal(one.x, two.x) and torch.equal(one.iterations, two.iterations)
    with pytest.raises(ValueError, match="threads"):
        BatchedADMM(qp, ADMMSettings(threads=numba.config.NUMBA_NUM_THREADS + 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_replaced_problems_start_afresh(backend):
    qp, new = draw("svm", batch_size=4), draw("svm", batch_size=2, seed=1)
    settings = ADMMSettings(eps_abs=EPS, eps_rel=EPS, backend=backend)
    solver = BatchedADMM(qp, settings).solve(OSQPAdaptiveRho())
    which = torch.tensor([False, True, False, True])
    solver.replace(which, new)
    assert solver.running.tolist() == [False, True, False, True] and solver.iterations[which].eq(0).all()
    solver.solve(OSQPAdaptiveRho())
    fresh = BatchedADMM(new, settings).solve(OSQPAdaptiveRho())
    assert solver.iterations[which].tolist() == fresh.iterations.tolist()
    assert torch.allclose(solver.x[which], fresh.x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_matrix_that_is_not_positive_definite_is_refused(backend):
    indefinite = tiny([[-1.0]], [0.0], [[1.0]], [0.0], [1.0])
    with pytest.raises(torch.linalg.LinAlgError):
        BatchedADMM(indefinite, ADMMSettings(backend=backend))


def test_the_numba_backend_refuses_a_gpu_batch():
    from amorctl.solvers.admm import resolve_backend

    assert resolve_backend("auto", torch.device("cpu")) == "numba"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="numba backend runs on the CPU"):
        resolve_backend("numba", torch.device("cuda"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nan_in_the_data_is_never_read_as_solved(backend):
    qp = draw("lasso", batch_size=4)
    qp.q[0, 0] = math.nan
    solver = BatchedADMM(qp, ADMMSettings(backend=backend, max_iter=200)).solve(OSQPAdaptiveRho())
    assert solver.status[0] == Status.MAX_ITER_REACHED and solver.iterations[0] == 200
    assert (solver.status[1:] == Status.SOLVED).all()
    assert math.isnan(float(BatchedADMM(qp, ADMMSettings(backend=backend)).residuals().dual[0]))


def test_replace_refuses_problems_of_another_size():
    solver = BatchedADMM(draw("lasso", batch_size=2))
    other = make_qp_family("lasso", data=12).sample(1, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"\(n, m\) = \(22, 22\), the solver's \(20, 20\)"):
        solver.replace(torch.tensor([True, False]), other)

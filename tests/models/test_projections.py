"""The differentiable projections of Definition 4 (eqs. 2.19–2.24): feasible, exact where Euclidean, differentiable."""

from __future__ import annotations

import pytest
import torch

from amorctl.models import (
    PROJECTIONS,
    OrthantReLU,
    OrthantSoftplus,
    SecondOrderCone,
    SigmoidBox,
    SoftmaxSimplex,
    Sparsemax,
    Sphere,
    TanhBox,
    build_model,
    make_projection,
)
from amorctl.problems import make_problem
from amorctl.registry import UnknownNameError
from amorctl.run.config import load_config

SCALES = (1e-3, 1.0, 10.0, 1e4)


def inputs(*shape: int, scale: float = 1.0, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------------- references


def simplex_projection_by_bisection(z: torch.Tensor, iterations: int = 200) -> torch.Tensor:
    """argmin_{y ∈ Δ} ‖z − y‖² in float64: bisection on τ with Σ max(z − τ, 0) = 1 (decreasing in τ)."""
    z = z.double()
    low, high = z.min(-1, keepdim=True).values - 1, z.max(-1, keepdim=True).values
    for _ in range(iterations):
        middle = (low + high) / 2
        too_much = torch.clamp(z - middle, min=0).sum(-1, keepdim=True) > 1
        low, high = torch.where(too_much, middle, low), torch.where(too_much, high, middle)
    return torch.clamp(z - (low + high) / 2, min=0)


def in_cone(p: torch.Tensor, tol: float) -> torch.Tensor:
    return p[..., :-1].norm(dim=-1) <= p[..., -1] + tol


# ------------------------------------------------------------------------------------------ feasibility


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_lie_in_their_domain(scale, dtype):
    z = inputs(64, 7, scale=scale, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12

    assert (OrthantReLU()(z) >= 0).all()
    assert (OrthantSoftplus()(z) >= 0).all() and torch.isfinite(OrthantSoftplus()(z)).all()

    for box in (TanhBox(-2.0, 3.0), SigmoidBox(-2.0, 3.0), SigmoidBox(temperature=0.1)):
        y = box(z)
        low, high = (-2.0, 3.0) if isinstance(box, TanhBox) or box.low == -2.0 else (0.0, 1.0)
        assert ((y >= low) & (y <= high)).all()

    for simplex in (SoftmaxSimplex(), SoftmaxSimplex(temperature=0.01), Sparsemax()):
        y = simplex(z)
        assert (y >= 0).all() and torch.allclose(y.sum(-1), torch.ones(64, dtype=dtype), atol=tol * 10)

    y = Sphere(radius=2.5)(z)
    assert torch.allclose(y.norm(dim=-1), torch.full((64,), 2.5, dtype=dtype), rtol=tol * 10)

    assert in_cone(SecondOrderCone()(z), tol * scale * 10).all()


def test_projections_broadcast_over_leading_dimensions():
    z = inputs(3, 5, 4)
    for name in PROJECTIONS:
        projection = make_projection(name, low=-1.0, high=1.0) if name in ("tanh", "sigmoid") else make_projection(name)
        y = projection(z)
        assert y.shape == z.shape
        assert torch.allclose(y.reshape(15, 4), projection(z.reshape(15, 4)))


# ----------------------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("scale", SCALES)
def test_sparsemax_is_the_euclidean_projection_onto_the_simplex(scale):
    z = inputs(200, 9, scale=scale, seed=1)
    expected = simplex_projection_by_bisection(z)
    assert torch.allclose(Sparsemax()(z), expected, atol=1e-12 * max(scale, 1.0))
    # float32 agrees to its precision, shifted inputs included (sparsemax(z + c) = sparsemax(z))
    z32 = z.float() + 1e3
    assert torch.allclose(Sparsemax()(z32).double(), expected, atol=1e-4)


def test_sparsemax_has_exact_zeros_and_known_values():
    assert Sparsemax()(torch.tensor([3.0, 1.0, -2.0])).tolist() == [1.0, 0.0, 0.0]
    assert Sparsemax()(torch.tensor([0.5, 0.25, -1.0])).tolist() == [0.625, 0.375, 0.0]
    assert Sparsemax()(torch.zeros(4)).tolist() == [0.25] * 4
    y = Sparsemax()(inputs(100, 20, scale=3.0))
    assert (y == 0).any(-1).all(), "a spread-out input leaves entries at exactly zero"
    assert (SoftmaxSimplex()(inputs(100, 20, scale=3.0)) > 0).all(), "softmax stays in the interior"


def test_relu_is_the_euclidean_projection_onto_the_orthant():
    z = inputs(50, 6)
    assert torch.equal(OrthantReLU()(z), torch.clamp(z, min=0))


def test_sphere_is_the_nearest_point_on_the_sphere():
    z = inputs(50, 6, scale=3.0)
    y = Sphere(radius=2.0)(z)
    candidates = Sphere(radius=2.0)(inputs(5000, 6, seed=2))
    brute = (z[:, None, :] - candidates[None]).norm(dim=-1).min(dim=1).values
    assert ((z - y).norm(dim=-1) <= brute + 1e-12).all()
    assert torch.allclose(y, 2.0 * z / z.norm(dim=-1, keepdim=True))
    assert torch.isfinite(Sphere()(torch.zeros(2, 3))).all()


def test_second_order_cone_three_cases():
    soc = SecondOrderCone()
    inside = torch.tensor([3.0, 4.0, 6.0], dtype=torch.float64)  # ‖u‖ = 5 ≤ t = 6
    assert torch.equal(soc(inside), inside)
    polar = torch.tensor([3.0, 4.0, -7.0], dtype=torch.float64)  # ‖u‖ = 5 ≤ −t = 7
    assert torch.equal(soc(polar), torch.zeros(3, dtype=torch.float64))
    outside = torch.tensor([3.0, 4.0, 1.0], dtype=torch.float64)  # |t| < ‖u‖: α = (5 + 1)/2 = 3
    assert torch.allclose(soc(outside), torch.tensor([3 * 3 / 5, 3 * 4 / 5, 3.0], dtype=torch.float64))
    assert torch.equal(soc(torch.zeros(3)), torch.zeros(3))
    assert torch.equal(soc(torch.tensor([0.0, 0.0, -2.0])), torch.zeros(3))


@pytest.mark.parametrize("scale", SCALES)
def test_second_order_cone_satisfies_the_moreau_optimality_conditions(scale):
    # p = π_K(x) for the self-dual cone K iff p ∈ K, p − x ∈ K and ⟨p, p − x⟩ = 0 (KKT / Moreau decomposition)
    x = inputs(500, 5, scale=scale, seed=3)
    p = SecondOrderCone()(x)
    tol = 1e-10 * scale * scale + 1e-12
    assert in_cone(p, 1e-12 * scale).all() and in_cone(p - x, 1e-12 * scale).all()
    assert ((p * (p - x)).sum(-1).abs() <= tol).all()
    cases = x[:, :-1].norm(dim=-1), x[:, -1]
    assert ((cases[0] <= cases[1]).any() and (cases[0] <= -cases[1]).any() and (cases[0] > cases[1].abs()).any())


def test_second_order_cone_beats_every_sampled_feasible_point():
    x = inputs(40, 4, seed=4)
    p = SecondOrderCone()(x)
    candidates = SecondOrderCone()(inputs(20000, 4, scale=2.0, seed=5))  # feasible points spread over K
    brute = (x[:, None, :] - candidates[None]).norm(dim=-1).min(dim=1).values
    assert ((x - p).norm(dim=-1) <= brute + 1e-12).all()


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_euclidean_projections_are_idempotent_and_the_others_are_not(name):
    projection = make_projection(name, low=-1.0, high=1.0) if name in ("tanh", "sigmoid") else make_projection(name)
    once = projection(inputs(100, 6, scale=3.0, seed=6))
    twice = projection(once)
    assert torch.allclose(twice, once, atol=1e-12) == projection.euclidean


def test_entropy_regularized_maps_have_their_closed_forms():
    z = inputs(10, 4)
    assert torch.allclose(SigmoidBox(temperature=0.5)(z), 1 / (1 + torch.exp(-2 * z)))
    assert torch.allclose(SigmoidBox(-2.0, 3.0, temperature=0.5)(z), TanhBox(-2.0, 3.0)(z)), "tanh = sigmoid at τ = ½"
    assert torch.allclose(SoftmaxSimplex(temperature=2.0)(z), torch.exp(z / 2) / torch.exp(z / 2).sum(-1, keepdim=True))
    # stationarity of eq. (2.20): x = τ (log y − log(1 − y)); of eq. (2.21): x/τ − log y is constant across entries
    y = SigmoidBox(temperature=0.5)(z)
    assert torch.allclose(0.5 * (torch.log(y) - torch.log1p(-y)), z)
    y = SoftmaxSimplex(temperature=2.0)(z)
    gap = z / 2 - torch.log(y)
    assert torch.allclose(gap, gap[:, :1].expand_as(gap))


# ------------------------------------------------------------------------------------------- gradients


def gradcheck_inputs(name: str) -> torch.Tensor:
    z = inputs(4, 5, seed=7)
    if name == "relu":
        z = z + 0.2 * torch.sign(z)  # keep away from the kink at 0
    if name == "second_order_cone":  # one row per case, none on a boundary ‖u‖ = |t|
        norms = z[:, :-1].norm(dim=-1)
        z[:, -1] = torch.stack([norms[0] + 1, -norms[1] - 1, 0.3 * norms[2], -0.5 * norms[3]])
    return z.requires_grad_()


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_gradcheck(name):
    projection = make_projection(name, low=-2.0, high=3.0) if name in ("tanh", "sigmoid") else make_projection(name)
    assert torch.autograd.gradcheck(projection, (gradcheck_inputs(name),))


def test_sparsemax_backward_is_the_closed_form_jacobian():
    z = torch.tensor([[0.9, 0.5, -1.0, 0.7]], dtype=torch.float64, requires_grad=True)
    y = Sparsemax()(z)
    support = (y > 0).double()
    expected = torch.diag(support[0]) - support.T @ support / support.sum()
    jacobian = torch.autograd.functional.jacobian(Sparsemax(), z.detach())[0, :, 0, :]
    assert torch.allclose(jacobian, expected)


def test_sparsemax_gradient_flows_only_through_the_support():
    z = torch.tensor([2.0, 1.5, -3.0], requires_grad=True)
    (Sparsemax()(z) * torch.tensor([1.0, 2.0, 5.0])).sum().backward()
    assert z.grad[2] == 0 and torch.allclose(z.grad[:2], torch.tensor([-0.5, 0.5]))


# ------------------------------------------------------------------------------------ registry and config


def test_registry_names_every_projection_and_explains_typos():
    assert {"relu", "softplus", "tanh", "sigmoid", "softmax", "sparsemax", "sphere", "second_order_cone"} <= set(
        PROJECTIONS
    )
    assert isinstance(make_projection("sphere", radius=2.0), Sphere)
    with pytest.raises(UnknownNameError, match="did you mean 'sparsemax'"):
        make_projection("sparsmax")
    bad = ((SigmoidBox, {"low": 1.0, "high": 1.0}), (Sphere, {"radius": 0.0}), (SoftmaxSimplex, {"temperature": 0}))
    for build, keys in bad:
        with pytest.raises(ValueError):
            build(**keys)
    with pytest.raises(ValueError, match="last dimension"):
        SecondOrderCone()(torch.ones(3, 1))
    with pytest.raises(ValueError, match="last dimension"):
        Sparsemax()(torch.tensor(1.0))


def test_model_projection_sigmoid_ends_in_the_problem_box():
    config = load_config(None, ["problem.horizon=4", "model.projection=sigmoid", "model.hidden_sizes=[8]"])
    problem = make_problem(**config.problem)
    model = build_model(config.model, problem)
    assert isinstance(model.projection, SigmoidBox)
    assert (model.projection.low, model.projection.high) == tuple(problem.bounds)
    y = model(100 * torch.randn(16, problem.context_dim))
    assert ((y >= problem.bounds[0]) & (y <= problem.bounds[1])).all()

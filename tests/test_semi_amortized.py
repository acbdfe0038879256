"""Semi-amortized models (issue 7): unrolled gradient descent, eq. 2.12's iterate weights, and the
gradient estimators through the unroll checked against exact derivatives on the quadratic family."""

from __future__ import annotations

import json

import pytest
import torch

from amorctl.gradients import FirstOrder, Truncated, UnrollEstimator
from amorctl.losses import iterate_weighted_loss, iterate_weights, objective_loss
from amorctl.models import UnrolledGradientDescent, build_model, is_semi_amortized, model_iterates
from amorctl.optimizers import run_optimizer
from amorctl.problems import Lasso, PendulumMPC, Quadratic
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.cli import train_main

SEMI = ["model.kind=unrolled_gd", "model.steps=3"]


def contexts(problem, batch=4, seed=0, dtype=torch.float32):
    return problem.sample_contexts(batch, torch.Generator().manual_seed(seed)).to(dtype)


# ------------------------------------------------------------------------------------ the model
def test_unrolled_gd_maps_contexts_to_solutions_and_exposes_its_iterates():
    problem = Quadratic(dim=3, cond_max=10.0)
    model = build_model({"kind": "unrolled_gd", "steps": 4, "hidden_sizes": [8]}, problem)
    x = contexts(problem)
    iterates = model.iterates(x)
    assert is_semi_amortized(model) and len(iterates) == 5
    assert all(y.shape == (4, 3) for y in iterates)
    assert torch.equal(model(x), iterates[-1])
    assert torch.equal(iterates[0], model.initial(x))
    assert len(model_iterates(model, x)) == 5

    model.inference_steps = 7
    model.eval()
    assert len(model.iterates(x)) == 8, "evaluation runs inference_steps"
    model.train()
    assert len(model.iterates(x)) == 5, "training runs K"


def test_fully_amortized_models_have_one_iterate():
    problem = Quadratic(dim=3, cond_max=10.0)
    mlp = build_model({"kind": "mlp", "hidden_sizes": [8]}, problem)
    (only,) = model_iterates(mlp, contexts(problem))
    assert only.shape == (4, 3) and not is_semi_amortized(mlp)


@pytest.mark.parametrize("per_coordinate", [False, True])
def test_step_sizes_are_log_parameterised_and_repeat_past_k(per_coordinate):
    problem = Quadratic(dim=3, cond_max=10.0)
    model = build_model({"kind": "unrolled_gd", "steps": 2, "init": "constant", "step_size": 0.05,
                         "per_coordinate": per_coordinate}, problem)
    assert model.log_step_sizes.shape == (2, 3 if per_coordinate else 1)
    assert torch.allclose(model.step_sizes(), torch.full_like(model.log_step_sizes, 0.05))
    with torch.no_grad():
        model.log_step_sizes[-1].fill_(-30.0)  # any real parameter is a positive step size
    assert bool((model.step_sizes() > 0).all())
    longer = model.step_sizes(5)
    assert longer.shape[0] == 5 and torch.equal(longer[2:], longer[1:2].expand(3, -1))


def test_a_constant_init_step_is_gradient_descent_from_theta():
    problem = Quadratic(dim=3, cond_max=10.0)
    model = build_model({"kind": "unrolled_gd", "steps": 3, "init": "constant", "step_size": 0.05}, problem)
    with torch.no_grad():
        model.initial_constant.copy_(torch.tensor([0.3, -0.2, 0.1]))
    x = contexts(problem)
    y0 = model.initial_constant.detach().expand(4, -1)
    reference = run_optimizer("gd", problem, x, y0, 3, step_size=0.05)
    assert torch.allclose(model(x), reference.solution, atol=1e-6)


def test_lasso_steps_are_proximal_gradient_steps():
    problem = Lasso(signal_dim=6, code_dim=10, sparsity=2)
    model = build_model({"kind": "unrolled_gd", "steps": 3, "init": "constant"}, problem)
    assert model.step_rule.__name__ == "proximal_gradient_step"
    x = contexts(problem)
    y = model(x)
    reference = run_optimizer("ista", problem, x, torch.zeros(4, 10), 3, step_size=1.0 / problem.lipschitz)
    assert torch.allclose(y, reference.solution, atol=1e-6)
    assert bool((y == 0).any()), "the soft threshold makes exact zeros"


def test_box_families_take_projected_steps():
    problem = PendulumMPC(horizon=5)
    model = build_model({"kind": "unrolled_gd", "steps": 2, "init": "constant", "step_size": 100.0}, problem)
    assert model.step_rule.__name__ == "projected_gradient_step"
    x = contexts(problem)
    low, high = problem.bounds
    y0 = model.initial_iterate(x)
    for y in model.iterates(x):
        assert bool(((y >= low) & (y <= high)).all())
    expected = (y0 - 100.0 * problem.gradient(y0, x)).clamp(low, high)
    assert torch.allclose(model.iterates(x)[1], expected, atol=1e-6)
    assert bool(((expected == low) | (expected == high)).any()), "the large step reaches the box's faces"


# ------------------------------------------------------------------------------ the estimators
def quadratic_unroll(estimator: UnrollEstimator, steps: int = 3):
    """A float64 MAML-style unroll on a 3-d quadratic with distinct per-step sizes, and its loss."""
    torch.manual_seed(0)
    problem = Quadratic(dim=3, cond_max=10.0)
    model = UnrolledGradientDescent(problem, steps, None, step_size=0.1).double()
    with torch.no_grad():
        model.initial_constant.copy_(torch.tensor([0.5, -1.0, 0.25]))
        model.log_step_sizes.copy_(torch.log(torch.tensor([[0.08], [0.12], [0.05], [0.1]][:steps])))
    model.estimator = estimator
    x = contexts(problem, batch=5, dtype=torch.float64)
    return problem, model, x, lambda: objective_loss(problem, model(x), x)


def gradients(model, loss):
    model.zero_grad(set_to_none=True)
    loss().backward()
    return {name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for name, p in model.named_parameters()}


def finite_differences(model, loss, eps=1e-6):
    out = {}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            grad = torch.zeros_like(parameter)
            for index in range(parameter.numel()):
                flat = parameter.view(-1)
                original = flat[index].item()
                flat[index] = original + eps
                up = loss().item()
                flat[index] = original - eps
                down = loss().item()
                flat[index] = original
                grad.view(-1)[index] = (up - down) / (2 * eps)
            out[name] = grad
    return out


def test_bptt_matches_finite_differences_and_the_closed_form():
    problem, model, x, loss = quadratic_unroll(UnrollEstimator())
    exact = gradients(model, loss)
    numeric = finite_differences(model, loss)
    for name in exact:
        assert torch.allclose(exact[name], numeric[name], rtol=1e-6, atol=1e-9), name

    # Closed form for θ: ŷᴷ = Π(I − αₜA)θ + c, so ∇θ E f(ŷᴷ) = E Πₜ(I − αₜA)ᵀ ∇f(ŷᴷ) (A symmetric).
    a = problem.matrix(x)
    identity = torch.eye(3, dtype=torch.float64)
    jacobian = identity.expand(5, 3, 3)
    for alpha in model.step_sizes().detach().squeeze(-1):
        jacobian = (identity - alpha * a) @ jacobian
    with torch.no_grad():
        gradient_at_end = problem.gradient(model(x), x)
    closed = (jacobian.mT @ gradient_at_end.unsqueeze(-1)).squeeze(-1).mean(0)
    assert torch.allclose(exact["initial_constant"], closed, rtol=1e-10, atol=1e-12)


def test_first_order_drops_the_second_order_terms():
    """First-order MAML: ∇θ ≈ E ∇f(ŷᴷ) (Dθ ŷᴷ ≈ I), which is not the exact Πₜ(I − αₜA)ᵀ∇f(ŷᴷ) of bptt."""
    problem, model, x, loss = quadratic_unroll(FirstOrder())
    first = gradients(model, loss)
    _, exact_model, _, exact_loss = quadratic_unroll(UnrollEstimator())
    exact = gradients(exact_model, exact_loss)
    with torch.no_grad():
        gradient_at_end = problem.gradient(model(x), x)
    assert torch.allclose(first["initial_constant"], gradient_at_end.mean(0), rtol=1e-12)
    assert not torch.allclose(first["initial_constant"], exact["initial_constant"], rtol=1e-3)
    # The last step size sees the same one-step derivative either way; earlier ones lose the curvature.
    assert torch.allclose(first["log_step_sizes"][-1], exact["log_step_sizes"][-1], rtol=1e-10)
    assert not torch.allclose(first["log_step_sizes"][0], exact["log_step_sizes"][0], rtol=1e-3)


def test_truncation_backpropagates_through_the_last_h_steps_only():
    _, exact_model, _, exact_loss = quadratic_unroll(UnrollEstimator())
    exact = gradients(exact_model, exact_loss)
    _, model, _, loss = quadratic_unroll(Truncated(horizon=1))
    one = gradients(model, loss)
    assert torch.count_nonzero(one["initial_constant"]) == 0, "ŷ⁰ is cut off the loss when H < K"
    assert torch.count_nonzero(one["log_step_sizes"][:2]) == 0
    assert torch.allclose(one["log_step_sizes"][2], exact["log_step_sizes"][2], rtol=1e-10)

    _, model, _, loss = quadratic_unroll(Truncated(horizon=2))
    two = gradients(model, loss)
    assert torch.allclose(two["log_step_sizes"][1:], exact["log_step_sizes"][1:], rtol=1e-10)
    assert torch.count_nonzero(two["log_step_sizes"][0]) == 0

    _, model, _, loss = quadratic_unroll(Truncated(horizon=3))
    full = gradients(model, loss)
    for name in exact:
        assert torch.allclose(full[name], exact[name], rtol=1e-12), f"H = K is bptt ({name})"


def test_truncated_refuses_a_horizon_longer_than_the_unroll():
    model = UnrolledGradientDescent(Quadratic(dim=3), 3, None, step_size=0.1)
    with pytest.raises(ValueError, match="horizon"):
        Truncated(horizon=4).check(model)


# ----------------------------------------------------------------------------- eq. 2.12 weights
@pytest.mark.parametrize("schedule", ["last", "uniform", "linear", "geometric"])
def test_iterate_weights_are_normalised(schedule):
    weights = iterate_weights(schedule, 5, ratio=0.5)
    assert weights.shape == (5,) and bool((weights >= 0).all())
    assert weights.sum().item() == pytest.approx(1.0)


def test_iterate_weight_shapes():
    assert iterate_weights("last", 4).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert torch.allclose(iterate_weights("uniform", 4), torch.full((4,), 0.25))
    assert torch.allclose(iterate_weights("linear", 3), torch.tensor([1.0, 2.0, 3.0]) / 6)
    assert torch.allclose(iterate_weights("geometric", 3, ratio=0.5), torch.tensor([1.0, 2.0, 4.0]) / 7)
    assert iterate_weights("last", 1).tolist() == [1.0]


def test_last_is_the_plain_loss_and_uniform_averages():
    problem = Quadratic(dim=3, cond_max=10.0)
    model = build_model({"kind": "unrolled_gd", "steps": 3, "hidden_sizes": [8]}, problem)
    x = contexts(problem)
    iterates = model.iterates(x)
    loss = lambda y: objective_loss(problem, y, x)  # noqa: E731
    assert torch.equal(iterate_weighted_loss(loss, iterates, iterate_weights("last", 4)), loss(model(x)))
    mean = torch.stack([loss(y) for y in iterates]).mean()
    assert torch.allclose(iterate_weighted_loss(loss, iterates, iterate_weights("uniform", 4)), mean)


# -------------------------------------------------------------------------------- runs and CLI
def test_an_unrolled_run_trains_and_reports_its_steps(tiny_args, find_runs, capsys):
    args = tiny_args(*SEMI, "loss.iterate_weights=geometric", "gradient.estimator=first_order", "eval.steps=5")
    assert train_main(["--no-progress", *args]) == 0
    (run,) = find_runs()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["model_steps"] == 5 and metrics["model_train_steps"] == 3
    assert metrics["relative_gap_mean"] >= 0
    assert "log_step_sizes" in load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]["model"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ([*SEMI, "gradient.estimator=truncated", "gradient.horizon=4"], "gradient.horizon"),
        ([*SEMI, "gradient.estimator=truncated", "gradient.horizn=1"], "gradient.horizn"),
        ([*SEMI, "gradient.estimator=adjoint"], "gradient.estimator"),
        ([*SEMI, "gradient.horizon=1"], "gradient.horizon"),
        ([*SEMI, "model.stepz=3"], "model.stepz"),
        ([*SEMI, "model.steps=0"], "model.steps"),
        ([*SEMI, "model.init=zeros"], "model.init"),
        ([*SEMI, "loss.iterate_weights=cubic"], "loss.iterate_weights"),
        ([*SEMI, "loss.geometric_ratio=0"], "loss.geometric_ratio"),
        (["loss.iterate_weights=uniform"], "loss.iterate_weights"),
        (["gradient.estimator=first_order"], "gradient.estimator"),
        (["eval.steps=4"], "eval.steps"),
    ],
)
def test_bad_semi_amortized_settings_exit_2_before_writing_anything(overrides, key, tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args(*overrides)]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists()


def test_an_unrolled_run_resumes_exactly(tiny_args, find_runs, capsys, interrupt):
    overrides = tiny_args(*SEMI, "loss.iterate_weights=linear", "train.steps=8", "train.checkpoint_every=4")
    assert train_main(["--no-progress", *overrides]) == 0
    (run,) = find_runs()
    interrupted = interrupt(run, 8)

    assert train_main(["--no-progress", "--resume", str(interrupted), "eval.steps=6"]) == 0
    capsys.readouterr()
    straight = load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]
    resumed = load_checkpoint(latest_checkpoint(interrupted / "checkpoints"))["learner"]
    for name, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    metrics = json.loads((interrupted / "eval" / "metrics.json").read_text())
    assert metrics["model_steps"] == 6 and metrics["model_train_steps"] == 3


def test_a_loaded_run_infers_with_the_steps_it_is_given(tiny_args, find_runs, capsys):
    import amorctl

    assert train_main(["--no-progress", *tiny_args(*SEMI)]) == 0
    capsys.readouterr()
    (run,) = find_runs()
    x = contexts(Quadratic(dim=3, cond_max=10.0))
    default, longer = amorctl.load_run(run), amorctl.load_run(run, overrides=["eval.steps=7"])
    assert default.learner.model.inference_steps == 3 and longer.learner.model.inference_steps == 7
    with torch.no_grad():
        assert torch.equal(longer.policy(x), longer.learner.model.iterates(x, 7)[-1])
        assert torch.equal(default.policy(x), longer.learner.model.iterates(x, 3)[-1])


@pytest.mark.parametrize("loss", ["regression", "mixed"])
def test_unrolled_runs_train_on_the_regression_and_mixed_losses(loss, tiny_args, find_runs, capsys):
    assert train_main(["--no-progress", *tiny_args(*SEMI, f"loss.kind={loss}", "loss.iterate_weights=linear")]) == 0
    capsys.readouterr()
    (run,) = find_runs()
    assert json.loads((run / "eval" / "metrics.json").read_text())["model_steps"] == 3


def test_a_short_unrolled_run_beats_the_same_mlp_alone(tiny_args, find_runs, capsys):
    """A few hundred steps on a 3-d quadratic: 5 learned gradient steps close far more of the gap."""
    common = ["train.steps=150", "train.lr=1e-2", "train.batch_size=64", "eval.num_contexts=64",
              "train.eval_every=150", "train.checkpoint_every=150"]
    assert train_main(["--no-progress", *tiny_args("name=mlp", *common)]) == 0
    assert train_main(["--no-progress", *tiny_args("name=semi", *common, "model.kind=unrolled_gd",
                                                    "model.steps=5", "model.step_size=0.15")]) == 0
    capsys.readouterr()
    (mlp,), (semi,) = find_runs("mlp"), find_runs("semi")
    gap = lambda run: json.loads((run / "eval" / "metrics.json").read_text())["relative_gap_mean"]  # noqa: E731
    assert gap(semi) < 0.2 * gap(mlp), (gap(semi), gap(mlp))

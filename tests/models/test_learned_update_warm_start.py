"""The learned update (eq. 2.2, a coordinatewise recurrent cell) and the warm-start baseline (seed §2.1.2)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from amorctl.gradients import FirstOrder, Truncated
from amorctl.models import LearnedUpdate, WarmStart, build_model, is_semi_amortized, log_sign_features
from amorctl.optimizers import run_optimizer
from amorctl.problems import Lasso, LogisticRegression, PendulumMPC, Problem, Quadratic
from amorctl.run.cli import train_main


class Separable(Problem):
    """f(y; x) = Σᵢ ½(yᵢ − xᵢ)² + ¼yᵢ⁴: every coordinate its own problem, the same for each (coordinate-symmetric)."""

    def __init__(self, dim: int):
        self.context_dim = self.solution_dim = dim

    def sample_contexts(self, batch_size, generator, device="cpu"):
        return torch.randn(batch_size, self.context_dim, generator=generator).to(device)

    def objective(self, y, x):
        return (0.5 * (y - x).square() + 0.25 * y.pow(4)).sum(-1)


def contexts(problem, batch=4, seed=0):
    return problem.sample_contexts(batch, torch.Generator().manual_seed(seed))


def learned(problem, **keys):
    torch.manual_seed(0)
    return build_model({"kind": "learned_update", "init": "constant", "cell_size": 8, **keys}, problem)


# ------------------------------------------------------------------------------- learned_update
def test_log_sign_preprocessing():
    g = torch.tensor([1.0, -1e-2, 1e-6, -1e-6, 0.0])
    features = log_sign_features(g)
    assert features.shape == (5, 2)
    assert torch.allclose(features[:2], torch.tensor([[0.0, 1.0], [math.log(1e-2) / 10, -1.0]]))
    assert torch.allclose(features[2:], torch.tensor([[-1.0, 1e-6 * math.exp(10)], [-1.0, -1e-6 * math.exp(10)],
                                                      [-1.0, 0.0]]))


@pytest.mark.parametrize(("cell", "iterate_input"), [("lstm", False), ("gru", True)])
def test_learned_update_shapes_and_iterates(cell, iterate_input):
    problem = LogisticRegression(num_features=4, num_samples=8)
    model = build_model({"kind": "learned_update", "steps": 3, "cell": cell, "iterate_input": iterate_input,
                         "cell_size": 8, "cell_layers": 2, "hidden_sizes": [16]}, problem)
    x = contexts(problem)
    iterates = model.iterates(x)
    assert is_semi_amortized(model) and len(iterates) == 4 and all(y.shape == (4, 4) for y in iterates)
    assert torch.equal(iterates[0], model.initial(x)) and torch.equal(model(x), iterates[-1])
    model.inference_steps = 6
    model.eval()
    assert len(model.iterates(x)) == 7
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), "every parameter learns"


def test_the_cell_is_shared_across_coordinates_and_dimensions():
    small, large = learned(Separable(3), steps=4), learned(Separable(7), steps=4)
    shared = {k: v for k, v in small.state_dict().items() if k != "initial_constant"}
    assert all(large.state_dict()[k].shape == v.shape for k, v in shared.items()), "no parameter depends on n"
    large.load_state_dict({**shared, "initial_constant": torch.zeros(7)})
    x = contexts(Separable(7))
    with torch.no_grad():
        # coordinates do not interact in a separable problem: the first three follow the 3-d model exactly
        assert torch.allclose(large(x)[:, :3], small(x[:, :3]), atol=1e-6)


def test_learned_update_is_permutation_equivariant_on_a_coordinate_symmetric_problem():
    model = learned(Separable(6), steps=5)
    x, permutation = contexts(Separable(6)), torch.randperm(6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model(x[:, permutation]), model(x)[:, permutation], atol=1e-6)
        assert not torch.allclose(model(x), model(x[:, permutation]))


@pytest.mark.parametrize("output", ["update", "step_size"])
def test_learned_update_step_is_the_scaled_cell_output(output):
    problem = Separable(3)
    model = learned(problem, steps=1, output_scale=0.5, output=output)
    x = contexts(problem)
    y0 = model.initial_iterate(x)
    gradient = problem.gradient(y0, x)
    features = log_sign_features(gradient).reshape(-1, 2)
    cell_output, _ = model.cell_step(features, model.initial_state(features.shape[0], y0))
    cell_output = cell_output.view(4, 3)
    expected = y0 - 0.5 * cell_output.exp() * gradient if output == "step_size" else y0 + 0.5 * cell_output
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_estimators_of_the_learned_update():
    problem = Separable(3)
    x = contexts(problem)

    def gradient(estimator):
        model = learned(problem, steps=3)
        model.estimator = estimator
        model(x).square().sum().backward()
        return model.initial_constant.grad, model.head.weight.grad

    bptt, first_order, truncated = gradient(learned(problem).estimator), gradient(FirstOrder()), gradient(
        Truncated(horizon=1))
    assert not torch.allclose(bptt[0], first_order[0]), "first order drops the terms through ∇f"
    assert truncated[0] is None, "a 1-step truncation never reaches the start"
    assert truncated[1].abs().sum() > 0


def test_learned_update_stays_in_a_box_and_refuses_composite_families():
    problem = PendulumMPC(horizon=3)
    model = learned(problem, steps=3, output_scale=50.0)
    y = model(contexts(problem))
    low, high = problem.bounds
    assert bool(((y >= low) & (y <= high)).all())
    with pytest.raises(ValueError, match="composite"):
        build_model({"kind": "learned_update"}, Lasso(signal_dim=6, code_dim=8, sparsity=2))


# ----------------------------------------------------------------------------------- warm_start
def test_warm_start_trains_its_mlp_and_runs_the_solver_at_inference():
    problem = LogisticRegression(num_features=4, num_samples=8)
    model = build_model({"kind": "warm_start", "steps": 5, "step_size": 2.0, "hidden_sizes": [16]}, problem)
    assert isinstance(model, WarmStart) and is_semi_amortized(model)
    x = contexts(problem)
    assert torch.equal(model(x), model.initial(x)) and len(model.iterates(x)) == 1, "training: the MLP alone"
    model.eval()
    iterates = model.iterates(x)
    solver = run_optimizer("gd", problem, x, model.initial(x).detach(), 5, step_size=2.0)
    assert len(iterates) == 6 and torch.allclose(model(x), solver.solution, atol=1e-6)
    values = torch.stack([problem.objective(y, x) for y in iterates])
    assert torch.allclose(values, solver.objective_values, atol=1e-5)
    assert not model(x).requires_grad, "nothing is trained through the solver steps"


def test_warm_start_steps_are_ista_on_the_lasso_with_step_one_over_l():
    problem = Lasso(signal_dim=6, code_dim=8, sparsity=2)
    model = build_model({"kind": "warm_start", "steps": 4, "hidden_sizes": [16]}, problem).eval()
    assert model.step_size == pytest.approx(1.0 / problem.lipschitz)
    x = contexts(problem)
    solver = run_optimizer("ista", problem, x, model.initial(x).detach(), 4, step_size=1.0 / problem.lipschitz)
    assert torch.allclose(model(x), solver.solution, atol=1e-6)


def test_warm_start_needs_a_step_size_without_a_lipschitz_constant():
    with pytest.raises(ValueError, match=r"model\.step_size"):
        build_model({"kind": "warm_start"}, Quadratic(dim=3))


# -------------------------------------------------------------------------------- runs and CLI
def test_learned_update_and_warm_start_train_through_the_run(tiny_args, find_runs, capsys):
    common = ["train.steps=60", "train.lr=1e-2", "train.batch_size=32", "eval.num_contexts=32",
              "train.eval_every=60", "train.checkpoint_every=60"]
    runs = {
        "mlp": [],
        "learned": ["model.kind=learned_update", "model.steps=3", "model.cell_size=8", "gradient.estimator=truncated",
                    "gradient.horizon=2", "eval.steps=4"],
        "warm": ["model.kind=warm_start", "model.steps=3", "model.step_size=0.1", "eval.steps=5"],
    }
    for name, overrides in runs.items():
        assert train_main(["--no-progress", *tiny_args(f"name={name}", *common, *overrides)]) == 0
    capsys.readouterr()
    metrics = {name: json.loads((find_runs(name)[0] / "eval" / "metrics.json").read_text()) for name in runs}
    assert metrics["learned"]["model_steps"] == 4 and metrics["learned"]["model_train_steps"] == 3
    assert metrics["warm"]["model_steps"] == 5
    # the warm start trains exactly the MLP run's MLP; 5 gradient steps with α = 0.1 ≤ 1/L only lower its gap
    assert metrics["warm"]["relative_gap_mean"] < metrics["mlp"]["relative_gap_mean"]


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.kind=warm_start", "model.step_size=0.1", "loss.iterate_weights=uniform"], "loss.iterate_weights"),
        (["model.kind=warm_start", "model.step_size=0.1", "gradient.estimator=first_order"], "gradient.estimator"),
        (["model.kind=warm_start"], "model.step_size"),
        (["model.kind=warm_start", "model.step_size=0.1", "model.init=constant"], "model.init"),
        (["model.kind=learned_update", "model.cell=rnn"], "model.cell"),
        (["model.kind=learned_update", "model.output_scale=0"], "model.output_scale"),
        (["model.kind=learned_update", "problem={name: lasso, signal_dim: 6, code_dim: 8, sparsity: 2}"], "model.kind"),
    ],
)
def test_bad_settings_exit_2_before_writing_anything(overrides, key, tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args(*overrides)]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists()


def test_learned_update_parameters_do_not_grow_with_k():
    problem = Separable(4)
    assert sum(p.numel() for p in learned(problem, steps=2).parameters()) == sum(
        p.numel() for p in learned(problem, steps=20).parameters())
    assert isinstance(learned(problem), LearnedUpdate)

"""The permutation-invariant Deep Sets model (``model.kind: set``) and the data-set layouts it reads."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from device_under_test import TEST_DEVICE

from amorctl.models import DeepSet, build_model
from amorctl.models.set import quadratic_features
from amorctl.problems import DataSetLayout, LogisticRegression, Problem, Quadratic
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.cli import train_main

ROOT = Path(__file__).resolve().parents[2]


class RobustRegression(Problem):
    """A user's family whose context is a data set plus one global number, as a new user would write it.

    f(y; x) = (1/m) Σ_i huber_δ(a_iᵀy − b_i) + ½·10⁻³‖y‖², the context x = (a_1, b_1, ..., a_m, b_m, δ):
    the pairs interleaved (one per-sample field of width d + 1) and the Huber threshold δ of the whole set.
    """

    def __init__(self, num_features: int = 3, num_samples: int = 12):
        self.num_features, self.num_samples = num_features, num_samples
        self.solution_dim = num_features
        self.context_dim = num_samples * (num_features + 1) + 1
        self.data_set_layout = DataSetLayout(num_samples, fields=(num_features + 1,), global_dim=1)

    def sample_contexts(self, batch_size, generator, device="cpu"):
        m, d = self.num_samples, self.num_features
        a = torch.randn(batch_size, m, d, generator=generator)
        w = torch.randn(batch_size, d, 1, generator=generator)
        outliers = 5.0 * (torch.rand(batch_size, m, 1, generator=generator) < 0.2)
        b = a @ w + 0.1 * torch.randn(batch_size, m, 1, generator=generator) + outliers
        delta = 0.5 + torch.rand(batch_size, 1, generator=generator)
        return torch.cat([torch.cat([a, b], -1).flatten(1), delta], -1).to(device)

    def objective(self, y, x):
        samples, delta = self.data_set_layout.split(x)
        a, b = samples[..., :-1], samples[..., -1]
        residuals = (a @ y.unsqueeze(-1)).squeeze(-1) - b
        huber = F.huber_loss(residuals / delta, torch.zeros_like(residuals), reduction="none", delta=1.0) * delta**2
        return huber.mean(-1) + 5e-4 * y.square().sum(-1)


def contexts(problem, batch=6, seed=0):
    return problem.sample_contexts(batch, torch.Generator().manual_seed(seed))


def permute_samples(problem, x, permutation):
    """``x`` with its samples reordered by ``permutation``, through the family's own layout."""
    layout = problem.data_set_layout
    samples, global_part = layout.split(x)
    samples = samples[:, permutation]
    blocks, start = [], 0
    for width in layout.fields:
        blocks.append(samples[..., start:start + width].flatten(1))
        start += width
    return torch.cat([*blocks, global_part], dim=-1)


# ---------------------------------------------------------------------------------------- layouts
def test_logistic_regression_declares_features_then_labels():
    problem = LogisticRegression(num_features=4, num_samples=7)
    layout = problem.data_set_layout
    assert layout == DataSetLayout(7, fields=(4, 1)) and layout.context_dim == problem.context_dim
    x = contexts(problem)
    samples, global_part = layout.split(x)
    features, signs = problem.decode(x)
    assert samples.shape == (6, 7, 5) and global_part.shape == (6, 0)
    assert torch.equal(samples[..., :4], features) and torch.equal(2 * samples[..., 4] - 1, signs)


def test_a_layout_splits_interleaved_samples_and_a_global_part():
    layout = DataSetLayout(2, fields=(3,), global_dim=1)
    x = torch.arange(7.0).unsqueeze(0)
    samples, global_part = layout.split(x)
    assert samples.tolist() == [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]] and global_part.tolist() == [[6.0]]
    with pytest.raises(ValueError, match="context_dim 7"):
        layout.split(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="DataSetLayout"):
        DataSetLayout(0, fields=(3,))


def test_families_that_are_not_data_sets_declare_no_layout():
    assert Quadratic(dim=3).data_set_layout is None


def test_permuting_the_samples_leaves_the_objective_unchanged():
    """The property the set model builds in: f depends on the set, not on the order of its samples."""
    for problem in (LogisticRegression(num_features=3, num_samples=9), RobustRegression()):
        x, y = contexts(problem), torch.randn(6, problem.solution_dim)
        shuffled = permute_samples(problem, x, torch.randperm(problem.data_set_layout.num_samples))
        assert not torch.equal(shuffled, x)
        assert torch.allclose(problem.objective(y, shuffled), problem.objective(y, x), atol=1e-6)


# ------------------------------------------------------------------------------------------ model
@pytest.mark.parametrize("pooling", ["mean", "sum", "attention"])
@pytest.mark.parametrize("sample_features", ["raw", "quadratic"])
@pytest.mark.parametrize("rounds", [1, 3])
@pytest.mark.parametrize("family", [LogisticRegression, RobustRegression])
def test_the_set_model_is_invariant_to_the_order_of_the_samples(pooling, sample_features, rounds, family):
    torch.manual_seed(0)
    problem = family()
    model = build_model({"kind": "set", "pooling": pooling, "sample_features": sample_features, "rounds": rounds,
                         "encoder_sizes": [16, 8], "decoder_sizes": [16], "heads": 2, "queries": 2}, problem)
    assert len(model.rounds) == rounds
    x = contexts(problem)
    y = model(x)
    assert isinstance(model, DeepSet) and y.shape == (6, problem.solution_dim)
    for seed in range(3):
        permutation = torch.randperm(problem.data_set_layout.num_samples, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(model(permute_samples(problem, x, permutation)), y, atol=1e-5)
    # ... but not to a change of one sample, nor (with a global part) of the global part
    changed = x.clone()
    changed[0, 0] += 1.0
    assert not torch.allclose(model(changed)[0], y[0], atol=1e-5)
    if problem.data_set_layout.global_dim:
        changed = x.clone()
        changed[0, -1] += 1.0
        assert not torch.allclose(model(changed)[0], y[0], atol=1e-5)


def test_in_evaluation_each_prediction_is_the_contexts_own():
    """The pooled code is standardized over the batch in training only; evaluation uses running statistics."""
    torch.manual_seed(0)
    problem = LogisticRegression(num_features=3, num_samples=9)
    model = build_model({"kind": "set", "encoder_sizes": [16], "decoder_sizes": [16], "rounds": 2}, problem)
    x = contexts(problem)
    for _ in range(3):
        model(x)  # moves the running statistics
    assert model(x[:1]).shape == (1, 3), "a batch of one context trains too"
    model.eval()
    assert torch.allclose(model(x)[:2], model(x[:2]), atol=1e-6)
    assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-6)


def test_the_set_model_is_not_invariant_to_shuffling_the_flat_context():
    """Invariance comes from the layout: moving a label to another sample changes the prediction."""
    torch.manual_seed(0)
    problem = LogisticRegression(num_features=3, num_samples=9)
    model = build_model({"kind": "set", "encoder_sizes": [16], "decoder_sizes": [16]}, problem)
    x = contexts(problem)
    x[:, -9:] = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0, 0])
    moved = x.clone()
    moved[:, -9:] = torch.tensor([0.0, 1.0, 0, 0, 0, 0, 0, 0, 0])
    assert not torch.allclose(model(moved), model(x), atol=1e-4)


def test_quadratic_features_append_the_pairwise_products():
    s = torch.tensor([[2.0, 3.0]])
    assert quadratic_features(s).tolist() == [[2.0, 3.0, 4.0, 6.0, 9.0]]


def test_the_set_model_ends_in_the_box_projection_of_a_boxed_family():
    class BoxedRobustRegression(RobustRegression):
        bounds = (-0.5, 0.5)

    problem = BoxedRobustRegression()
    model = build_model({"kind": "set", "encoder_sizes": [8], "decoder_sizes": [8]}, problem)
    with torch.no_grad():
        model.head.bias.fill_(100.0)
    y = model(contexts(problem))
    assert bool((y <= 0.5).all()) and bool((y >= -0.5).all())


SET = "model={kind: set, encoder_sizes: [16], decoder_sizes: [16]}"
"""A whole ``model`` section: the tiny run's (and the default config's) mlp keys do not apply to a set model."""
LOGISTIC = "problem={name: logistic_regression, num_samples: 8}"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ([SET], "model.kind"),  # the tiny run's family, a quadratic, is no data set
        ([SET, LOGISTIC, "model.pooling=max"], "model.pooling"),
        ([SET, LOGISTIC, "model.encoder_sizes=[0]"], "model.encoder_sizes"),
        ([SET, LOGISTIC, "model.encoder_sizes=[]"], "model.encoder_sizes"),
        ([SET, LOGISTIC, "model.pooling=attention", "model.heads=3"], "model.heads"),
        ([SET, LOGISTIC, "model.sample_features=cubic"], "model.sample_features"),
        ([SET, LOGISTIC, "model.projection=tanh"], "model.projection"),
        ([SET, LOGISTIC, "model.hidden_sizes=[8]"], "model.hidden_sizes"),
        ([SET, LOGISTIC, "model.rounds=0"], "model.rounds"),
    ],
)
def test_bad_set_settings_exit_2_with_one_sentence(overrides, key, tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args(*overrides)]) == 2
    err = capsys.readouterr().err.strip()
    assert key in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists()


# ------------------------------------------------------------------------------------------- runs
def test_the_shipped_config_trains_through_scripts_train(runs_dir, tmp_path):
    """``scripts/train.py --config configs/amortize_logistic_regression_set.yaml``, shrunk to 100 small steps."""
    tiny = ["train.steps=100", "train.batch_size=32", "train.eval_every=100", "train.checkpoint_every=100",
            "model.encoder_sizes=[16]", "model.decoder_sizes=[16]", "problem.num_samples=8", "eval.num_contexts=64",
            "eval.timing_repeats=1", "train.lr=1e-2", f"device={TEST_DEVICE}", f"runs_dir={runs_dir}"]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--no-progress", "--config",
                           str(ROOT / "configs" / "amortize_logistic_regression_set.yaml"), *tiny],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    (run,) = sorted((runs_dir / "amortize_logistic_regression_set").iterdir())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    zero = LogisticRegression(num_samples=8)  # the relative gap of y = 0, f(0) = log 2, on the same held-out set
    x = zero.sample_contexts(64, torch.Generator(TEST_DEVICE).manual_seed(12345), TEST_DEVICE)
    optimal = zero.objective(zero.solve(x), x)
    gap_of_zero = ((math.log(2.0) - optimal) / optimal).mean().item()
    assert 0 <= metrics["relative_gap_mean"] < gap_of_zero, "100 steps already beat predicting y = 0"


def test_a_set_run_trains_on_a_users_data_set_family(tiny_args, find_runs, register, capsys):
    register("robust_regression_for_test", RobustRegression)
    overrides = [SET, "problem={name: robust_regression_for_test}", "model.pooling=attention", "model.heads=2"]
    assert train_main(["--no-progress", *tiny_args(*overrides)]) == 0
    capsys.readouterr()
    (run,) = find_runs()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["objective_mean"] > 0  # no reference solver: the run reports f(ŷ) only


def test_a_set_run_resumes_exactly(tiny_args, find_runs, capsys, interrupt):
    """The standardization's running statistics are part of the checkpoint, so a resume continues bit for bit."""
    overrides = tiny_args(SET, LOGISTIC, "model.rounds=2", "train.steps=8", "train.checkpoint_every=4")
    assert train_main(["--no-progress", *overrides]) == 0
    (run,) = find_runs()
    interrupted = interrupt(run, 8)
    assert train_main(["--no-progress", "--resume", str(interrupted)]) == 0
    capsys.readouterr()
    straight = load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]["model"]
    resumed = load_checkpoint(latest_checkpoint(interrupted / "checkpoints"))["learner"]["model"]
    assert any("running_mean" in name for name in straight)
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name
    metrics = [json.loads((r / "eval" / "metrics.json").read_text()) for r in (run, interrupted)]
    assert metrics[0]["relative_gap_mean"] == metrics[1]["relative_gap_mean"]

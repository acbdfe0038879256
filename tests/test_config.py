"""Configs are validated at the door: every bad input is one ConfigError sentence naming its dotted key."""

from __future__ import annotations

import pytest
import torch

from amorctl.agents import DirectConfig
from amorctl.problems import Problem, Quadratic
from amorctl.run.cli import DEFAULT_CONFIG
from amorctl.run.config import load_config, to_yaml
from amorctl.run.errors import ConfigError


class NoSolver(Problem):
    """A family with an objective and contexts but no reference solver."""

    def __init__(self, *, dim: int = 2):
        self.context_dim = self.solution_dim = dim

    def sample_contexts(self, batch_size, generator, device="cpu"):
        return torch.randn(batch_size, self.context_dim, generator=generator).to(device)

    def objective(self, y, x):
        return (y - x).square().sum(-1)


def config_error(overrides: list[str], path=None) -> str:
    """The message of the ConfigError that loading raises; fails the test if none is raised."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "\n" not in message and message, "a config error is one sentence"
    return message


def test_defaults_and_default_yaml_are_valid():
    config = load_config(None)
    assert isinstance(config, DirectConfig)
    assert {"name": "pendulum_mpc"}.items() <= config.problem.items()
    shipped = load_config(DEFAULT_CONFIG)
    assert shipped.problem["name"] == "pendulum_mpc" and shipped.problem["horizon"] == 30


def test_overrides_are_parsed_as_yaml_and_coerced():
    config = load_config(None, ["train.lr=1e-2", "train.steps=7", "model.hidden_sizes=[8, 4]", "train.grad_clip=null"])
    assert config.train.lr == pytest.approx(0.01) and isinstance(config.train.lr, float)
    assert config.train.steps == 7
    assert config.model["hidden_sizes"] == [8, 4]
    assert config.train.grad_clip is None


def test_partial_problem_override_keeps_the_default_family():
    config = load_config(None, ["problem.horizon=5"])
    assert {"name": "pendulum_mpc", "horizon": 5}.items() <= config.problem.items()


def test_problem_kwargs_are_coerced_to_the_constructor_types():
    config = load_config(None, ["problem={name: quadratic, dim: 4, cond_max: 20}"])
    assert {"name": "quadratic", "dim": 4, "cond_max": 20.0}.items() <= config.problem.items()
    assert isinstance(config.problem["cond_max"], float)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["foo=1"], "foo"),
        (["train.stepz=3"], "train.stepz"),
        (["train.steps=abc"], "train.steps"),
        (["train.steps=1.5"], "train.steps"),
        (["train.lr=fast"], "train.lr"),
        (["model.hidden_sizes=abc"], "model.hidden_sizes"),
        (["model.activation=gelu"], "model.activation"),
        (["train.steps=0"], "train.steps"),
        (["train.lr=-1"], "train.lr"),
        (["train.grad_clip=0"], "train.grad_clip"),
        (["loss.regression_weight=2"], "loss.regression_weight"),
        (["loss.kind=hinge"], "loss.kind"),
        (["model.hidden_sizes=[16, 0]"], "model.hidden_sizes.1"),
        (["eval.num_contexts=0"], "eval.num_contexts"),
        (["train=3"], "train"),
        (["agent=ppo"], "agent"),
        (["problem.name=nope"], "problem.name"),
        (["problem.dimm=3"], "problem.dimm"),
        (["problem={name: quadratic, dimm: 3}"], "problem.dimm"),
        (["problem.horizon=0"], "problem.horizon"),
        (["problem={name: quadratic, dim: 1}"], "problem.dim"),
        (["problem={name: quadratic, cond_min: 10, cond_max: 2}"], "problem.cond_max"),
        (["problem={name: quadratic, dim: abc}"], "problem.dim"),
        (["problem.horizon=2.5"], "problem.horizon"),
        (["problem.max_torque=strong"], "problem.max_torque"),
        (["problem={name: quadratic, encoding: sparse}"], "problem.encoding"),
        (["model.projection=tanh", "problem={name: quadratic}"], "model.projection"),
    ],
)
def test_bad_values_name_their_dotted_key(overrides, key):
    message = config_error(overrides)
    assert f"'{key}'" in message or f"{key}=" in message, message


def test_regression_needs_a_family_with_a_solver(register):
    register("no_solver", NoSolver)
    assert {"name": "no_solver"}.items() <= load_config(None, ["problem.name=no_solver"]).problem.items()
    for kind in ("regression", "mixed"):
        message = config_error(["problem.name=no_solver", f"loss.kind={kind}"])
        assert "loss.kind" in message and "no_solver" in message


def test_user_family_kwargs_are_validated(register):
    register("no_solver", NoSolver)
    problem = load_config(None, ["problem={name: no_solver, dim: 5}"]).problem
    assert {"name": "no_solver", "dim": 5}.items() <= problem.items()
    assert "problem.dim" in config_error(["problem={name: no_solver, dim: five}"])
    assert "problem.size" in config_error(["problem={name: no_solver, size: 5}"])


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.yaml"
    message = config_error([], path)
    assert str(path) in message and "does not exist" in message


def test_invalid_yaml_file_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  steps: 3\n  lr: [1,\n")
    message = config_error([], path)
    assert str(path) in message and "line" in message


def test_yaml_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert "mapping" in config_error([], path)


def test_yaml_file_keys_are_validated(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("train:\n  stepz: 3\n")
    assert "'train.stepz'" in config_error([], path)


@pytest.mark.parametrize("override", ["train.steps", "=3", "train..steps=3", ".steps=3"])
def test_malformed_override(override):
    message = config_error([override])
    assert repr(override) in message and "dotted.key=value" in message


def test_override_into_a_value_is_not_a_section():
    assert "'train.steps'" in config_error(["train.steps=3", "train.steps.inner=4"])


def test_cuda_without_a_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = config_error(["device=cuda"])
    assert "'device'" in message and "CUDA" in message


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config(None, ["problem={name: quadratic, dim: 4}", "train.steps=9", "model.hidden_sizes=[8]"])
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(config))
    assert load_config(path) == config


def test_quadratic_keys_follow_the_constructor():
    """The schema of a family is its constructor's signature, so every keyword is a config key."""
    config = load_config(None, ["problem={name: quadratic, dim: 3, cond_min: 2, cond_max: 4, encoding: full, seed: 1}"])
    Quadratic(**{key: value for key, value in config.problem.items() if key != "name"})

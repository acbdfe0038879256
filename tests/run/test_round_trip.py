"""Every accepted config round-trips: ``to_yaml`` → ``load_config`` and ``RunDir`` give back the same values.

A run's ``config.yaml`` must hold exactly the values in effect, so that ``--resume`` and ``evaluate.py``
continue the run that was trained (issue 11, finding 3: ``divergence_threshold=.inf`` was saved as ``null``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from device_under_test import TEST_DEVICE

from amorctl.envs.kinds import make_env
from amorctl.run.config import config_dict, load_config, parse_yaml, to_yaml
from amorctl.run.errors import ConfigError
from amorctl.run.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml"))
OPT_QUADRATIC = ROOT / "configs" / "td3_opt_quadratic.yaml"
PENDULUM = ROOT / "configs" / "td3_pendulum.yaml"
SMALL_ITERATE = ["env.num_envs=2", "env.problem.dim=3", "td3.buffer_size=1000"]

EDGES: dict[str, tuple[Path | None, list[str]]] = {
    "lr-1e-30": (None, ["train.lr=1e-30"]),
    "long-name": (None, ["name=" + "n" * 200]),
    "dotted-name": (None, ["name=a.b-c_d"]),
    "wall-seconds-half": (None, ["train.max_wall_seconds=0.5"]),
    "largest-seeds": (None, [f"seed={2**32 - 1}", f"eval.seed={2**32 - 1}"]),
    "problem-seed-2**63-1": (None, ["problem={name: quadratic, dim: 3, seed: 9223372036854775807}"]),
    "lasso-orthogonal": (None, ["problem={name: lasso, signal_dim: 4, code_dim: 4, dictionary_type: orthogonal}"]),
    "grad-clip-and-weight-decay": (None, ["train.grad_clip=1e-12", "train.weight_decay=1e30", "train.optimizer=sgd"]),
    "mixed-loss": (None, ["loss.kind=mixed", "loss.regression_weight=1", "problem={name: quadratic, dim: 2}"]),
    "one-unit-model": (None, ["model.hidden_sizes=[1]", "model.activation=tanh", "model.projection=none"]),
    "no-hidden-layer": (None, ["model.hidden_sizes=[]"]),
    "divergence-inf": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.iterate.divergence_threshold=.inf"]),
    "divergence-tiny": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.iterate.divergence_threshold=1e-300"]),
    "step-size-range-tuple": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.iterate.step_size_range=[1e-30, 1e30]"]),
    "step-size-range-equal": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.iterate.step_size_range=[0.5, 0.5]"]),
    "iterate-update-mode": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.iterate={action: update, action_scale: 1e-9, "
                                            "divergence_penalty: 0, omit_blocks: [], history: 0, init_scale: 0}"]),
    "target-return-low": (OPT_QUADRATIC, [*SMALL_ITERATE, "train.target_return=-1e9"]),
    "lasso-iterate": (OPT_QUADRATIC, [*SMALL_ITERATE, "env.problem={name: lasso, signal_dim: 3, code_dim: 5}"]),
    "gym-target-return": (PENDULUM, ["train.target_return=-1e9", "td3.gamma=0", "td3.tau=1",
                                     "train.max_wall_seconds=0.5"]),
    "gym-episode-steps": (PENDULUM, ["env.max_episode_steps=5", "env.vectorization=sync", "td3.learning_starts=0",
                                    "td3.gradient_steps=0", "td3.target_policy_noise=0", "td3.learning_rate=1e-30"]),
}


def plain(value: Any) -> Any:
    """Tuples as lists (YAML has only sequences), recursively."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def check_round_trip(config, tmp_path: Path) -> None:
    text = to_yaml(config)
    assert plain(parse_yaml(text)) == plain(config_dict(config)), "config.yaml must hold the values in effect"
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    again = load_config(path)
    assert again == config
    assert again.model_dump() == config.model_dump()
    assert to_yaml(again) == text

    run = RunDir.create(config)
    assert run.root.is_relative_to(Path(config.runs_dir))
    reopened = RunDir.open(run.root).load_config()
    assert reopened == config
    assert reopened.model_dump() == config.model_dump()


NEEDS_A_TEACHER = {"bc_halfcheetah_distill"}
"""Shipped configs that name a trained run on the command line (``expert.path=RUN``): refused until then."""


@pytest.fixture(scope="module")
def halfcheetah_teacher(tmp_path_factory) -> Path:
    """A TD3 run on HalfCheetah-v5 of a few transitions: enough to be an expert."""
    from amorctl.run.cli import train_main

    runs = tmp_path_factory.mktemp("teacher")
    assert train_main(["--no-progress", "--config", str(ROOT / "configs" / "td3_halfcheetah.yaml"),
                       f"device={TEST_DEVICE}", f"runs_dir={runs}", "td3.hidden_sizes=[8]", "td3.buffer_size=64",
                       "td3.learning_starts=8",
                       "train.total_steps=16", "train.log_every=8", "train.eval_every=16", "train.eval_episodes=1",
                       "train.eval_envs=1", "train.checkpoint_every=16", "env.max_episode_steps=4"]) == 0
    (run,) = (runs / "td3_halfcheetah").iterdir()
    return run


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_every_shipped_config_round_trips(path, tmp_path, request):
    extra = [f"expert.path={request.getfixturevalue('halfcheetah_teacher')}"] if path.stem in NEEDS_A_TEACHER else []
    config = load_config(path, [f"device={TEST_DEVICE}", f"runs_dir={tmp_path / 'runs'}", *extra])
    check_round_trip(config, tmp_path)


@pytest.mark.parametrize("name", sorted(NEEDS_A_TEACHER))
def test_a_shipped_config_without_its_teacher_asks_for_expert_path(name, tmp_path):
    with pytest.raises(ConfigError, match=r"expert\.path"):
        load_config(ROOT / "configs" / f"{name}.yaml", [f"device={TEST_DEVICE}", f"runs_dir={tmp_path / 'runs'}"])


@pytest.mark.parametrize(("path", "overrides"), [pytest.param(p, o, id=i) for i, (p, o) in EDGES.items()])
def test_edge_values_round_trip(path, overrides, tmp_path):
    config = load_config(path, [f"device={TEST_DEVICE}", f"runs_dir={tmp_path / 'runs'}", *overrides])
    check_round_trip(config, tmp_path)


def test_an_infinite_divergence_threshold_is_in_effect_after_the_round_trip(tmp_path):
    config = load_config(OPT_QUADRATIC, [f"device={TEST_DEVICE}", f"runs_dir={tmp_path}", *SMALL_ITERATE,
                                         "env.iterate.divergence_threshold=.inf"])
    assert ".inf" in to_yaml(config)
    reopened = RunDir.open(RunDir.create(config).root).load_config()
    with make_env(reopened.env, 1, TEST_DEVICE) as env:
        assert env.divergence_threshold == math.inf

"""Search-space files: parsing, and every refusal before a trial runs (one sentence naming the key, exit 2)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from amorctl.run.errors import ConfigError
from amorctl.sweep.cli import sweep_main
from amorctl.sweep.space import load_space

ROOT = Path(__file__).resolve().parents[2]


def test_parses_every_distribution(tiny_raw, write_space, gap_space):
    gap_space["pruner"] = {"kind": "successive_halving", "reduction_factor": 3}
    gap_space["params"]["train.weight_decay"] = {"type": "uniform", "low": 0.0, "high": 0.1}
    space = load_space(write_space(gap_space), tiny_raw())
    kinds = {p.key: p.kind for p in space.params}
    assert kinds == {
        "train.lr": "log_uniform",
        "model.hidden_sizes": "categorical",
        "train.batch_size": "int",
        "train.weight_decay": "uniform",
    }
    batch = next(p for p in space.params if p.key == "train.batch_size")
    assert (batch.low, batch.high, batch.step) == (8, 32, 8)
    assert space.objective.curve_metric == "objective_gap" and space.objective.direction == "minimize"
    assert space.pruner.kind == "successive_halving" and space.pruner.settings == {"reduction_factor": 3}
    raw = space.apply(tiny_raw(), {"train.lr": 0.5, "model.hidden_sizes": [8]})
    assert raw["train"]["lr"] == 0.5 and raw["model"]["hidden_sizes"] == [8]


def test_suggest_through_optuna(tiny_raw, write_space, gap_space):
    optuna = pytest.importorskip("optuna", reason="the sweep extra (pip install -e '.[sweep]') is not installed")
    space = load_space(write_space(gap_space), tiny_raw())
    study = optuna.create_study()
    for _ in range(6):
        trial = study.ask()
        values = {p.key: p.suggest(trial) for p in space.params}
        assert 1e-3 <= values["train.lr"] <= 1e-1
        assert values["train.batch_size"] in (8, 16, 24, 32)
        assert values["model.hidden_sizes"] in ([8], [16, 16])  # a list choice travels as its index
        hidden = next(p for p in space.params if p.key == "model.hidden_sizes")
        assert hidden.value_of(trial.params["model.hidden_sizes"]) == values["model.hidden_sizes"]
        study.tell(trial, 0.0)


SHIPPED = [
    ("td3_pendulum", "td3_pendulum"),
    ("td3_halfcheetah", "td3_halfcheetah"),
    ("td3_opt_quadratic", "td3_opt_quadratic"),
    ("amortize_pendulum_mpc_objective", "amortize_pendulum_mpc_objective"),
]


@pytest.mark.parametrize(("config", "space"), SHIPPED)
def test_shipped_spaces_validate(config, space):
    from amorctl.run.config import read_yaml

    loaded = load_space(ROOT / "configs" / "spaces" / f"{space}.yaml", read_yaml(ROOT / "configs" / f"{config}.yaml"))
    assert len(loaded.params) >= 4


# (id, change to the space, a piece the message must hold)
REFUSED = [
    (
        "unknown-key",
        lambda s: s["params"].update({"train.lrr": {"type": "uniform", "low": 0, "high": 1}}),
        "param 'train.lrr' is not a setting of the config (section 'train'); did you mean 'lr'?",
    ),
    (
        "unknown-section",
        lambda s: s["params"].update({"optim.lr": {"type": "uniform", "low": 0, "high": 1}}),
        "param 'optim.lr' is not a setting",
    ),
    (
        "section-not-setting",
        lambda s: s["params"].update({"train": {"type": "categorical", "choices": [1]}}),
        "param 'train' is a config section",
    ),
    (
        "low-not-below-high",
        lambda s: s["params"]["train.lr"].update(low=0.1, high=0.01),
        "param 'train.lr' has low 0.1 not below high 0.01",
    ),
    (
        "log-nonpositive",
        lambda s: s["params"]["train.lr"].update(low=0.0),
        "param 'train.lr' is log-scaled, so its low must be positive",
    ),
    (
        "int-step",
        lambda s: s["params"]["train.batch_size"].update(step=5),
        "param 'train.batch_size' has high 32 not reachable from low 8 in steps of 5",
    ),
    (
        "int-float-bound",
        lambda s: s["params"]["train.batch_size"].update(low=8.5),
        "param 'train.batch_size' needs 'low' as an integer",
    ),
    (
        "empty-choices",
        lambda s: s["params"]["model.hidden_sizes"].update(choices=[]),
        "param 'model.hidden_sizes' needs a non-empty list of 'choices'",
    ),
    (
        "unknown-type",
        lambda s: s["params"]["train.lr"].update(type="loguniform"),
        "param 'train.lr' has type 'loguniform'",
    ),
    ("extra-key", lambda s: s["params"]["train.lr"].update(step=2), "param 'train.lr' (log_uniform) takes no 'step'"),
    (
        "config-refuses-low",
        lambda s: s["params"].update({"train.steps": {"type": "int", "low": -5, "high": 10}}),
        "param 'train.steps' cannot take its low -5: config key 'train.steps' must be greater than 0",
    ),
    (
        "config-refuses-choice",
        lambda s: s["params"].update({"model.activation": {"type": "categorical", "choices": ["relu", "swish"]}}),
        "param 'model.activation' cannot take its choice 'swish'",
    ),
    ("no-params", lambda s: s.pop("params"), "lacks its 'params' section"),
    ("unknown-top", lambda s: s.update(prams={}), "key 'prams' is not a known setting; did you mean 'params'?"),
    ("bad-direction", lambda s: s["objective"].update(direction="max"), "'objective.direction' must be maximize or"),
    ("bad-summary", lambda s: s["objective"].update(summary="area"), "'objective.summary' must be one of final, auc"),
    ("bad-pruner", lambda s: s.update(pruner={"kind": "hyperband"}), "'pruner.kind' must be one of"),
    (
        "pruner-setting",
        lambda s: s.update(pruner={"kind": "median", "warmup_steps": -1}),
        "'pruner.warmup_steps' must be an integer of at least 0",
    ),
]


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_refused_spaces(tiny_raw, write_space, gap_space, change, message):
    space = copy.deepcopy(gap_space)
    change(space)
    with pytest.raises(ConfigError) as error:
        load_space(write_space(space), tiny_raw())
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_refuses_before_any_trial(tmp_path, tiny_args, write_space, gap_space, capsys):
    gap_space["params"]["train.lrr"] = {"type": "uniform", "low": 0.0, "high": 1.0}
    out = tmp_path / "sweep"
    status = sweep_main(["--space", str(write_space(gap_space)), "--trials", "2", "--out", str(out), *tiny_args()])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'train.lrr'" in err and len(err.splitlines()) == 1
    assert not out.exists()  # no study, no trial


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("params: [1, 2\n", "is not valid YAML at line 2"),
        ("- 1\n", "mapping"),
    ],
    ids=["missing", "empty", "bad-yaml", "a-list"],
)
def test_a_broken_space_file_is_named_as_the_search_space(tmp_path, tiny_raw, text, message):
    path = tmp_path / "space.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_space(path, tiny_raw())
    assert str(error.value).startswith(f"search space {str(path)!r} ") and message in str(error.value)
    assert "--config" not in str(error.value)

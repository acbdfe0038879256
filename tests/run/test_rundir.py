"""A run folder is created only where it belongs, and a damaged config.yaml is refused in one sentence."""

from __future__ import annotations

import errno
import os
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from device_under_test import TEST_DEVICE

from amorctl.run import rundir
from amorctl.run.cli import evaluate_main, train_main
from amorctl.run.errors import CheckpointError, ConfigError
from amorctl.run.rundir import RunDir


def one_sentence(stderr: str) -> str:
    """The single ``error: ...`` line on stderr (no traceback, no second line)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_a_runs_dir_where_no_folder_can_be_made_exits_2(where, tmp_path, tiny_args, capsys):
    regular = tmp_path / "file"
    regular.write_text("not a folder")
    runs_dir = regular / "runs" if where == "under_a_file" else regular
    assert train_main(["--no-progress", *tiny_args(f"runs_dir={runs_dir}")]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "'runs_dir'" in message and str(runs_dir) in message
    assert regular.read_text() == "not a folder"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_dir_exits_2(tmp_path, tiny_args, capsys):
    runs_dir = tmp_path / "read_only"
    runs_dir.mkdir(mode=0o500)
    try:
        assert train_main(["--no-progress", *tiny_args(f"runs_dir={runs_dir}")]) == 2
    finally:
        runs_dir.chmod(0o700)
    assert "'runs_dir'" in one_sentence(capsys.readouterr().err)


def test_a_config_that_cannot_be_written_leaves_no_run_folder(tiny_config, runs_dir, monkeypatch):
    def disk_full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rundir, "atomic_write_text", disk_full)
    with pytest.raises(ConfigError, match="'runs_dir'"):
        RunDir.create(tiny_config())
    assert list((runs_dir / "tiny").iterdir()) == []


@pytest.mark.parametrize("name", ["../../escaped", "sub/name", "..", ".", "", "back\\slash", "ESCAPED_ABSOLUTE"])
def test_a_name_that_would_leave_runs_dir_exits_2(name, tmp_path, runs_dir, tiny_args, capsys):
    if name == "ESCAPED_ABSOLUTE":
        name = str(tmp_path / "escaped")
    assert train_main(["--no-progress", *tiny_args(f"name={name}")]) == 2
    assert "'name'" in one_sentence(capsys.readouterr().err)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


class FrozenClock:
    """A stand-in for ``datetime`` whose ``now()`` never moves."""

    @staticmethod
    def now() -> datetime:
        return datetime(2024, 5, 17, 9, 30, 0)


def test_runs_started_in_the_same_second_get_their_own_folders(tiny_config, monkeypatch):
    monkeypatch.setattr(rundir, "datetime", FrozenClock)
    roots = [RunDir.create(tiny_config()).root.name for _ in range(3)]
    assert roots == ["20240517-093000", "20240517-093000-2", "20240517-093000-3"]


DAMAGED = {
    "empty": b"",
    "blank": b"  \n\t\n",
    "list": b"- name: tiny\n- seed: 0\n",
    "scalar": b"just words\n",
    "null": b"null\n",
    "empty_mapping": b"{}\n",
    "invalid_yaml": b"name: [tiny\n",
    "latin1": "name: café\n".encode("latin-1"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_config_yaml_is_refused(damage, tiny_config):
    run = RunDir.create(tiny_config())
    run.config_path.write_bytes(DAMAGED[damage])
    with pytest.raises(CheckpointError, match=r"config\.yaml") as error:
        RunDir.open(run.root)
    assert "\n" not in str(error.value) and str(run.root) in str(error.value)
    with pytest.raises(CheckpointError, match=r"config\.yaml"):
        run.load_config()


@pytest.mark.parametrize("damage", ["empty", "latin1"])
def test_resuming_or_evaluating_a_run_with_a_damaged_config_exits_2(damage, tiny_config, capsys):
    run = RunDir.create(tiny_config())
    run.config_path.write_bytes(DAMAGED[damage])
    assert train_main(["--no-progress", "--resume", str(run.root)]) == 2
    assert "config.yaml" in one_sentence(capsys.readouterr().err)
    assert evaluate_main([str(run.root)]) == 2
    assert "config.yaml" in one_sentence(capsys.readouterr().err)
    assert sorted(path.name for path in run.root.iterdir()) == ["config.yaml"]


def test_a_truncated_config_yaml_is_refused_not_completed_with_defaults(tiny_config):
    run = RunDir.create(tiny_config())
    text = run.config_path.read_text()
    run.config_path.write_text(text[: text.index("  timing_repeats:")])
    with pytest.raises(CheckpointError, match=r"lacks 'eval\.timing_repeats'"):
        run.load_config()


def test_a_saved_config_loads_back_unchanged(tiny_config):
    config = tiny_config("train.steps=9", "seed=3")
    assert RunDir.open(RunDir.create(config).root).load_config() == config


@pytest.mark.parametrize(("config_file", "key"), [("td3_pendulum.yaml", "warm_start"),
                                                   ("dagger_opt_quadratic.yaml", "bc.final_learning_rate"),
                                                   ("td3_opt_quadratic.yaml", "env.iterate.reward_clip"),
                                                   ("default.yaml", "gradient"),
                                                   ("default.yaml", "loss.iterate_weights"),
                                                   ("default.yaml", "loss.geometric_ratio"),
                                                   ("default.yaml", "eval.steps"),
                                                   ("td3_opt_quadratic.yaml", "td3.policy"),
                                                   ("td3_opt_quadratic.yaml", "env.iterate.observation_layout"),
                                                   ("sac_pendulum.yaml", "sac.policy"),
                                                   ("ddpg_pendulum.yaml", "ddpg.policy"),
                                                   ("td3_opt_quadratic_warm_start.yaml", "warm_start.expert.variant"),
                                                   ("dagger_opt_quadratic.yaml", "expert.variant")])
def test_a_run_written_before_a_key_existed_loads_with_the_earlier_value(config_file, key, tmp_path):
    """A key of KEYS_ADDED_LATER may be absent from an older config.yaml (it resolves to the earlier value)."""
    from amorctl.run.config import load_config
    from amorctl.schema import KEYS_ADDED_LATER

    root = Path(__file__).resolve().parents[2] / "configs"
    run = RunDir.create(load_config(root / config_file, [f"runs_dir={tmp_path}", f"device={TEST_DEVICE}"]))
    raw = yaml.safe_load(run.config_path.read_text())
    *sections, leaf = key.split(".")
    holder = raw
    for section in sections:
        holder = holder[section]
    holder.pop(leaf)
    run.config_path.write_text(yaml.safe_dump(raw))
    found = run.load_config().model_dump()
    for section in sections:
        found = found[section]
    assert found[leaf] == KEYS_ADDED_LATER[key]

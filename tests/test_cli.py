"""The train command line: bad input exits 2 with one sentence on stderr and leaves nothing behind."""

from __future__ import annotations

import pytest
import torch

from amorctl.run.checkpoint import list_checkpoints
from amorctl.run.cli import train_main
from amorctl.run.rundir import RunDir


def one_sentence(stderr: str) -> str:
    """The single ``error: ...`` line on stderr (no traceback, no second line)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def tiny_run(tiny_args, find_runs, capsys, *extra: str):
    """Train the tiny run through the command line; returns its folder."""
    assert train_main(["--no-progress", *tiny_args(*extra)]) == 0
    capsys.readouterr()
    (run,) = find_runs()
    return run


def test_a_run_succeeds_and_says_where_it_is(tiny_args, find_runs, capsys):
    assert train_main(["--no-progress", *tiny_args()]) == 0
    out = capsys.readouterr()
    (run,) = find_runs()
    assert f"run directory: {run}" in out.out
    assert str(run / "eval" / "metrics.json") in out.out
    assert "relative_gap_mean" in out.out
    assert out.err == ""


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["foo=1"], "foo"),
        (["train.stepz=3"], "train.stepz"),
        (["train.steps=abc"], "train.steps"),
        (["train.lr=fast"], "train.lr"),
        (["train.steps=0"], "train.steps"),
        (["train.lr=-1"], "train.lr"),
        (["loss.regression_weight=2"], "loss.regression_weight"),
        (["problem.name=nope"], "problem.name"),
        (["problem.dimm=3"], "problem.dimm"),
        (["problem.horizon=0"], "problem.horizon"),
        (["problem.horizon=many"], "problem.horizon"),
        (["train.steps"], "train.steps"),
    ],
)
def test_config_errors_exit_2_before_writing_anything(overrides, key, runs_dir, capsys):
    assert train_main(["--no-progress", f"runs_dir={runs_dir}", *overrides]) == 2
    out = capsys.readouterr()
    assert key in one_sentence(out.err)
    assert "run directory" not in out.out
    assert not runs_dir.exists()


def test_cuda_without_a_device_exits_2(runs_dir, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_main(["--no-progress", f"runs_dir={runs_dir}", "device=cuda"]) == 2
    assert "'device'" in one_sentence(capsys.readouterr().err)
    assert not runs_dir.exists()


def test_missing_config_file_exits_2(tmp_path, runs_dir, capsys):
    missing = tmp_path / "absent.yaml"
    assert train_main(["--config", str(missing), f"runs_dir={runs_dir}"]) == 2
    assert str(missing) in one_sentence(capsys.readouterr().err)
    assert not runs_dir.exists()


def test_config_file_with_unknown_nested_key_exits_2(tmp_path, runs_dir, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text(f"runs_dir: {runs_dir}\ntrain:\n  stepz: 3\n")
    assert train_main(["--config", str(path)]) == 2
    assert "'train.stepz'" in one_sentence(capsys.readouterr().err)
    assert not runs_dir.exists()


def test_resume_of_a_missing_directory_exits_2(tmp_path, capsys):
    missing = tmp_path / "no_such_run"
    assert train_main(["--resume", str(missing)]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert str(missing) in message and "does not exist" in message
    assert not missing.exists()


def test_resume_of_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    assert train_main(["--resume", str(tmp_path)]) == 2
    assert "config.yaml" in one_sentence(capsys.readouterr().err)


def test_resume_with_config_exits_2(tiny_config, capsys):
    run = RunDir.create(tiny_config())
    assert train_main(["--resume", str(run.root), "--config", str(run.config_path)]) == 2
    assert "--resume" in one_sentence(capsys.readouterr().err)


def test_resume_without_a_checkpoint_exits_2(tiny_config, capsys):
    run = RunDir.create(tiny_config())
    assert train_main(["--no-progress", "--resume", str(run.root)]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "no checkpoint" in message and str(run.root) in message
    assert not run.events.exists() and not run.eval.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_resume_from_a_corrupt_checkpoint_exits_2(damage, tiny_args, find_runs, capsys):
    run = tiny_run(tiny_args, find_runs, capsys)
    latest = list_checkpoints(run / "checkpoints")[-1]
    if damage == "garbage":
        latest.write_bytes(b"\x00not a checkpoint\xff" * 64)
    elif damage == "truncated":
        latest.write_bytes(latest.read_bytes()[:200])
    else:
        latest.write_bytes(b"")
    assert train_main(["--no-progress", "--resume", str(run)]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "checkpoint" in message and latest.name in message


def test_resume_refuses_an_override_that_cannot_change_mid_run(tiny_args, find_runs, capsys):
    run = tiny_run(tiny_args, find_runs, capsys)
    saved = (run / "config.yaml").read_text()
    assert train_main(["--no-progress", "--resume", str(run), "model.hidden_sizes=[32]", "train.steps=9"]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "'model.hidden_sizes' cannot change when resuming" in message
    assert (run / "config.yaml").read_text() == saved


def test_resume_with_an_edited_config_yaml_exits_2(tiny_args, find_runs, capsys):
    run = tiny_run(tiny_args, find_runs, capsys)
    edited = (run / "config.yaml").read_text().replace("- 16", "- 32")
    (run / "config.yaml").write_text(edited)
    assert train_main(["--no-progress", "--resume", str(run), "train.steps=9"]) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "checkpoint" in message
    assert (run / "config.yaml").read_text() == edited


def test_resume_with_fewer_steps_than_the_checkpoint_exits_2(tiny_args, find_runs, capsys):
    run = tiny_run(tiny_args, find_runs, capsys)
    assert train_main(["--no-progress", "--resume", str(run), "train.steps=3"]) == 2
    assert "'train.steps'" in one_sentence(capsys.readouterr().err)


def test_resume_with_a_bad_override_exits_2(tiny_args, find_runs, capsys):
    run = tiny_run(tiny_args, find_runs, capsys)
    assert train_main(["--no-progress", "--resume", str(run), "train.steps=abc"]) == 2
    assert "'train.steps'" in one_sentence(capsys.readouterr().err)

"""Checkpoint, config and metrics files survive a write that dies half-way; killed writes leave nothing behind."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from amorctl.run.atomic import atomic_write_text
from amorctl.run.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_latest,
    save_checkpoint,
)
from amorctl.run.errors import CheckpointError
from amorctl.run.rundir import RunDir


def killed_while_syncing(fd: int) -> None:
    """A stand-in for ``os.fsync`` that dies the way a kill or Ctrl-C would, after the data was written."""
    raise KeyboardInterrupt


def temporaries(folder):
    """The ``.tmp-*`` files in ``folder``."""
    return sorted(path.name for path in folder.glob(".tmp-*"))


def test_a_checkpoint_save_dying_mid_write_keeps_the_previous_one(tmp_path, monkeypatch):
    directory = tmp_path / "checkpoints"
    save_checkpoint(directory, 5, {"step": 5, "value": torch.ones(3)}, keep=2)

    def half_a_save(state, file):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_a_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(directory, 10, {"step": 10, "value": torch.zeros(3)}, keep=2)
    monkeypatch.undo()
    assert [path.name for path in list_checkpoints(directory)] == ["step_000000005.pt"]
    assert torch.equal(load_checkpoint(latest_checkpoint(directory))["value"], torch.ones(3))
    assert temporaries(directory) == []


def test_temporaries_left_by_a_kill_are_ignored_and_removed_by_the_next_save(tmp_path):
    directory = tmp_path / "checkpoints"
    first = save_checkpoint(directory, 5, {"step": 5}, keep=2)
    (directory / ".tmp-step_000000010-k1ll3d_.pt").write_bytes(first.read_bytes()[:100])
    (directory / ".tmp-abcd1234.pt").write_bytes(b"")  # the name an older amorctl gave its temporaries
    assert latest_checkpoint(directory) == first
    assert load_checkpoint(first)["step"] == 5
    save_checkpoint(directory, 10, {"step": 10}, keep=2)
    assert temporaries(directory) == []
    assert [path.name for path in list_checkpoints(directory)] == ["step_000000005.pt", "step_000000010.pt"]


def test_resuming_removes_the_temporaries_of_a_killed_save(tmp_path):
    directory = tmp_path / "checkpoints"
    save_checkpoint(directory, 5, {"step": 5}, keep=2)
    orphan = directory / ".tmp-step_000000010-k1ll3d_.pt"
    orphan.write_bytes(b"half")
    restored = []
    path, state = restore_latest(directory, restored.append)
    assert path.name == "step_000000005.pt" and restored == [state] and not orphan.exists()


def test_a_temporary_whose_random_part_looks_like_a_step_is_no_checkpoint(tmp_path):
    directory = tmp_path / "checkpoints"
    first = save_checkpoint(directory, 5, {"step": 5}, keep=2)
    (directory / ".tmp-step_000000010-xstep_99.pt").write_bytes(b"")
    assert list_checkpoints(directory) == [first]


@pytest.mark.parametrize(
    "step",
    [True, False, -1, 2.0, "3", None, pytest.param(torch.tensor(3), id="tensor"), pytest.param([1], id="list")],
)
def test_a_step_that_is_not_a_non_negative_integer_is_refused(step, tmp_path):
    path = tmp_path / "step_000000003.pt"
    torch.save({"step": step, "model": {}}, path)
    with pytest.raises(CheckpointError, match="not a non-negative integer") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_step_zero_is_a_valid_counter(tmp_path):
    assert load_checkpoint(save_checkpoint(tmp_path, 0, {"step": 0}, keep=1))["step"] == 0


def test_a_config_write_dying_before_the_rename_keeps_the_old_config(tiny_config, monkeypatch):
    run = RunDir.create(tiny_config())
    saved = run.config_path.read_text()
    monkeypatch.setattr(os, "fsync", killed_while_syncing)
    with pytest.raises(KeyboardInterrupt):
        run.save_config(tiny_config("train.steps=9"))
    monkeypatch.undo()
    assert run.config_path.read_text() == saved
    assert RunDir.open(run.root).load_config().train.steps == 6
    assert temporaries(run.root) == []


def test_a_metrics_write_dying_before_the_rename_keeps_the_old_metrics(tiny_config, monkeypatch):
    run = RunDir.create(tiny_config())
    run.write_metrics({"step": 6})
    monkeypatch.setattr(os, "fsync", killed_while_syncing)
    with pytest.raises(KeyboardInterrupt):
        run.write_metrics({"step": 9})
    monkeypatch.undo()
    assert json.loads((run.eval / "metrics.json").read_text()) == {"step": 6}
    assert temporaries(run.eval) == []


def test_the_run_writers_remove_what_killed_writes_left(tiny_config):
    run = RunDir.create(tiny_config())
    save_checkpoint(run.checkpoints, 3, {"step": 3}, keep=2)
    run.eval.mkdir()
    orphans = [
        run.root / ".tmp-config-a1b2c3d4.yaml",
        run.checkpoints / ".tmp-step_000000006-a1b2c3d4.pt",
        run.eval / ".tmp-metrics-a1b2c3d4.json",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half")
    unrelated = run.root / ".tmp-notes.txt"  # not a file the run writes
    unrelated.write_text("mine")
    assert sorted(run.remove_temporaries()) == sorted(orphans)
    assert [path for path in orphans if path.exists()] == [] and unrelated.exists()

    for orphan in orphans:
        orphan.write_bytes(b"half")
    run.save_config(tiny_config())
    run.write_metrics({"step": 3})
    save_checkpoint(run.checkpoints, 6, {"step": 6}, keep=2)
    assert [path for path in orphans if path.exists()] == []


def test_atomic_writes_sync_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    save_checkpoint(tmp_path / "checkpoints", 1, {"step": 1}, keep=1)
    assert synced == ["file", "folder", "file", "folder"]
    assert (tmp_path / "config.yaml").read_text() == "a: 1\n"

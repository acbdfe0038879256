"""Checkpoints are atomic, resume is exact on the CPU, and a NaN stops training without losing the last good one."""

from __future__ import annotations

import pytest
import torch
import yaml

from amorctl.agents import parameters_of
from amorctl.models import FullyAmortizedMLP
from amorctl.problems import Quadratic
from amorctl.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from amorctl.run.cli import train_main
from amorctl.run.errors import CheckpointError, NonFiniteError
from amorctl.run.finite import check_finite


class NaNAfter(Quadratic):
    """A quadratic whose objective turns NaN once training has differentiated it more than ``after`` times."""

    def __init__(self, *, dim: int = 3, after: int = 5):
        super().__init__(dim=dim, cond_max=10.0)
        self.after, self.training_calls = after, 0

    def objective(self, y, x):
        value = super().objective(y, x)
        if y.requires_grad:
            self.training_calls += 1
            if self.training_calls > self.after:
                return value * float("nan")
        return value


def final_state(run):
    """The state of the run's latest checkpoint."""
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bit-identical step, parameters and optimizer moments."""
    assert a["step"] == b["step"]
    a, b = a["learner"], b["learner"]
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    moments_a, moments_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert moments_a.keys() == moments_b.keys()
    for index in moments_a:
        for key in moments_a[index]:
            assert torch.equal(moments_a[index][key], moments_b[index][key]), (index, key)
    assert torch.equal(a["context_generator"], b["context_generator"])


def test_save_is_atomic_and_keeps_the_newest(tmp_path):
    directory = tmp_path / "checkpoints"
    for step in (1, 2, 10, 100):
        save_checkpoint(directory, step, {"step": step, "value": torch.tensor([float(step)])}, keep=2)
    assert [path.name for path in list_checkpoints(directory)] == ["step_000000010.pt", "step_000000100.pt"]
    assert sorted(path.name for path in directory.iterdir()) == ["step_000000010.pt", "step_000000100.pt"]
    state = load_checkpoint(latest_checkpoint(directory))
    assert state["step"] == 100 and torch.equal(state["value"], torch.tensor([100.0]))


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "step_000000001.pt")
    foreign = tmp_path / "step_000000002.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="no step counter"):
        load_checkpoint(foreign)
    garbage = tmp_path / "step_000000003.pt"
    garbage.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)


def test_nan_stops_training_with_exit_3_and_keeps_the_last_good_checkpoint(register, tiny_args, find_runs, capsys):
    register("nan_after", NaNAfter)
    argv = ["--no-progress", *tiny_args("problem={name: nan_after, after: 5}", "train.checkpoint_every=2")]
    assert train_main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "loss/train" in err and "step 6" in err
    (run,) = find_runs()
    checkpoints = list_checkpoints(run / "checkpoints")
    assert [path.name for path in checkpoints] == ["step_000000002.pt", "step_000000004.pt"]
    assert checkpoints[-1].name in err
    state = load_checkpoint(checkpoints[-1])
    assert state["step"] == 4
    assert all(torch.isfinite(tensor).all() for tensor in state["learner"]["model"].values())
    assert not (run / "eval" / "metrics.json").exists()


def test_nan_before_any_checkpoint_says_so(register, tiny_args, capsys):
    register("nan_after", NaNAfter)
    assert train_main(["--no-progress", *tiny_args("problem={name: nan_after, after: 0}")]) == 3
    err = capsys.readouterr().err
    assert "step 1" in err and "no checkpoint was written yet" in err


def test_non_finite_parameter_is_named():
    model = FullyAmortizedMLP(2, 2, [4])
    with torch.no_grad():
        model.body[2].bias[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"'body\.2\.bias'.*step 7") as caught:
        check_finite({"loss/train": torch.tensor(1.0), **parameters_of(model)}, 7, None)
    assert caught.value.exit_code == 3


def test_resume_after_interruption_matches_the_uninterrupted_run(tiny_args, find_runs, capsys, interrupt):
    """2N steps straight vs. the same run with its last checkpoint (step 2N) lost and resumed from step N."""
    overrides = tiny_args(
        "train.steps=8", "train.checkpoint_every=4", "train.grad_clip=1.0", "train.lr_schedule=cosine"
    )
    assert train_main(["--no-progress", *overrides]) == 0
    (run,) = find_runs()
    interrupted = interrupt(run, 8)
    assert load_checkpoint(latest_checkpoint(interrupted / "checkpoints"))["step"] == 4

    assert train_main(["--no-progress", "--resume", str(interrupted)]) == 0
    assert f"resuming {interrupted}" in capsys.readouterr().out
    straight, resumed = final_state(run), final_state(interrupted)
    assert resumed["step"] == 8
    assert_same_training_state(straight, resumed)
    assert resumed["learner"]["scheduler"] == straight["learner"]["scheduler"]
    halfway = load_checkpoint(run / "checkpoints" / "step_000000004.pt")
    assert not torch.equal(halfway["learner"]["model"]["body.0.weight"], straight["learner"]["model"]["body.0.weight"])
    assert (interrupted / "eval" / "metrics.json").is_file()


def test_resume_with_more_steps_matches_a_longer_run(tiny_args, find_runs, capsys):
    """Constant learning rate: N steps, then resume with train.steps=2N, equals a fresh 2N-step run."""
    assert train_main(["--no-progress", *tiny_args("name=short", "train.steps=4", "train.lr_schedule=constant")]) == 0
    assert train_main(["--no-progress", *tiny_args("name=long", "train.steps=8", "train.lr_schedule=constant")]) == 0
    (short,), (long,) = find_runs("short"), find_runs("long")
    assert final_state(short)["step"] == 4

    assert train_main(["--no-progress", "--resume", str(short), "train.steps=8"]) == 0
    capsys.readouterr()
    assert_same_training_state(final_state(long), final_state(short))
    saved = yaml.safe_load((short / "config.yaml").read_text())
    assert saved["train"]["steps"] == 8, "config.yaml records the extended run"

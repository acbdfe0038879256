"""TD3 runs through the train command line: run folder, TensorBoard, resume, config errors, NaN stops."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from device_under_test import TEST_DEVICE
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from amorctl.agents.td3 import TD3
from amorctl.run import loop
from amorctl.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from amorctl.run.cli import train_main

PENDULUM = str(Path(__file__).resolve().parent.parent / "configs" / "td3_pendulum.yaml")

TINY_TD3 = [
    "name=tiny_td3",
    f"device={TEST_DEVICE}",
    "env.max_episode_steps=50",
    "td3.hidden_sizes=[16, 16]",
    "td3.batch_size=32",
    "td3.buffer_size=1000",
    "td3.learning_starts=50",
    "train.total_steps=300",
    "train.log_every=50",
    "train.eval_every=150",
    "train.eval_episodes=2",
    "train.eval_envs=2",
    "train.checkpoint_every=150",
    "train.keep_checkpoints=10",
]
"""Overrides of configs/td3_pendulum.yaml for a run of about a second: 300 steps, 250 updates of 16-16 networks."""

SCALARS = [
    "train/episodic_return", "eval/mean_return", "loss/critic", "loss/actor", "train/q_mean", "perf/steps_per_second"
]


def train_tiny(runs_dir: Path, *extra: str, config: str | Path = PENDULUM) -> int:
    return train_main(["--no-progress", "--config", str(config), f"runs_dir={runs_dir}", *TINY_TD3, *extra])


def the_run(runs_dir: Path, name: str = "tiny_td3") -> Path:
    (run,) = sorted((runs_dir / name).iterdir())
    return run


def scalars(run: Path) -> dict[str, list]:
    events = EventAccumulator(str(run / "events"))
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    """One finished tiny Pendulum run, shared by the read-only tests of this module."""
    runs_dir = tmp_path_factory.mktemp("control") / "runs"
    assert train_tiny(runs_dir) == 0
    return the_run(runs_dir)


def test_a_pendulum_run_writes_config_events_checkpoints_and_metrics(pendulum_run):
    assert (pendulum_run / "config.yaml").is_file()
    assert [path.name for path in list_checkpoints(pendulum_run / "checkpoints")] == [
        "step_000000150.pt", "step_000000300.pt"
    ]
    metrics = json.loads((pendulum_run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 300 and metrics["stop_reason"] == "total_steps" and metrics["episodes"] == 2
    assert math.isfinite(metrics["mean_return"]) and metrics["mean_length"] == 50
    assert metrics["seeds"] == [1_000_002, 1_000_003]  # the second evaluation (k = 1) of 2 episodes, seed 0

    logged = scalars(pendulum_run)
    assert set(SCALARS) <= set(logged)
    for tag in SCALARS:
        assert all(math.isfinite(event.value) for event in logged[tag]), tag
    assert [event.step for event in logged["loss/critic"]] == [50, 100, 150, 200, 250, 300]  # updates from step 50
    assert [event.step for event in logged["eval/mean_return"]] == [150, 300]
    assert logged["eval/mean_return"][-1].value == pytest.approx(metrics["mean_return"])


def _resume_pair(tmp_path: Path, *extra: str) -> tuple[Path, Path]:
    """A 200-step run checkpointed every 100, and a copy of it that lost its step-200 checkpoint, resumed."""
    runs_dir = tmp_path / "runs"
    steps = ["train.total_steps=200", "train.checkpoint_every=100", "train.eval_every=100"]
    assert train_tiny(runs_dir, *steps, *extra) == 0
    straight = the_run(runs_dir)
    resumed = tmp_path / "interrupted"
    shutil.copytree(straight, resumed)
    (resumed / "checkpoints" / "step_000000200.pt").unlink()
    shutil.rmtree(resumed / "eval")
    assert train_main(["--no-progress", "--resume", str(resumed)]) == 0
    return straight, resumed


def test_resume_with_the_replay_buffer_equals_the_uninterrupted_run(tmp_path, capsys):
    straight, resumed = _resume_pair(tmp_path, "train.save_replay_buffer=true")
    a, b = (load_checkpoint(latest_checkpoint(run / "checkpoints")) for run in (straight, resumed))
    assert a["step"] == b["step"] == 200
    for network in ("actor", "critic", "actor_target", "critic_target"):
        for name, tensor in a["learner"]["algorithm"][network].items():
            assert torch.equal(tensor, b["learner"]["algorithm"][network][name]), (network, name)
    assert torch.equal(a["learner"]["algorithm"]["generator"], b["learner"]["algorithm"]["generator"])
    metrics = [json.loads((run / "eval" / "metrics.json").read_text()) for run in (straight, resumed)]
    assert metrics[0]["mean_return"] == metrics[1]["mean_return"]


def test_resume_without_the_replay_buffer_continues(tmp_path, capsys):
    """The resumed run refills its empty buffer with learning_starts = 50 transitions before updating again."""
    _, resumed = _resume_pair(tmp_path)
    start = load_checkpoint(resumed / "checkpoints" / "step_000000100.pt")["learner"]["algorithm"]
    last = load_checkpoint(resumed / "checkpoints" / "step_000000200.pt")
    end = last["learner"]["algorithm"]
    assert "replay_buffer" not in end
    assert last["step"] == 200 and end["num_updates"] == start["num_updates"] + 51  # steps 150..200
    assert not torch.equal(start["actor"]["body.0.weight"], end["actor"]["body.0.weight"])
    assert json.loads((resumed / "eval" / "metrics.json").read_text())["step"] == 200


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("env.id=HalfCheetah-v55", ["'env.id'", "HalfCheetah-v5"]),
        ("env.problem.dim=3", ["'env.problem'", "iterate"]),
        ("td3.learning_rat=0.1", ["'td3.learning_rat'"]),
        ("td3.gamma=2", ["'td3.gamma'"]),
    ],
)
def test_config_errors_exit_2_before_writing_anything(override, expected, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    assert train_tiny(runs_dir, override) == 2
    out = capsys.readouterr()
    message = one_sentence(out.err)
    for text in expected:
        assert text in message
    assert not runs_dir.exists()


def test_an_iterate_run_trains_a_learned_optimizer(tmp_path, capsys, monkeypatch):
    runs_dir, config = tmp_path / "runs", tmp_path / "td3_iterate.yaml"
    config.write_text("agent: td3\n")
    monkeypatch.setattr(sys.modules[__name__], "TINY_TD3", [a for a in TINY_TD3 if not a.startswith("env.")])
    iterate = [
        "env.kind=iterate",
        "env.num_envs=4",
        "env.problem={name: quadratic, dim: 3, cond_max: 10}",
        "env.iterate={max_iterations: 10, action: step_size}",
        "train.total_steps=240",
        "train.log_every=40",
        "train.eval_every=120",
        "train.checkpoint_every=120",
    ]
    assert train_tiny(runs_dir, *iterate, config=config) == 0
    run = the_run(runs_dir)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 240 and math.isfinite(metrics["mean_return"])
    assert 1 <= metrics["mean_length"] <= 10
    assert {"loss/critic", "eval/mean_return"} <= set(scalars(run))


def test_a_nan_critic_loss_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    original = TD3.train_step

    def poisoned(self):  # a NaN reward enters the replay buffer after step 160
        if self.num_timesteps > 160:
            self.replay_buffer.reward[self.replay_buffer.size - 1] = float("nan")
        original(self)

    monkeypatch.setattr(TD3, "train_step", poisoned)
    runs_dir = tmp_path / "runs"
    assert train_tiny(runs_dir) == 3
    message = one_sentence(capsys.readouterr().err)
    run = the_run(runs_dir)
    checkpoints = list_checkpoints(run / "checkpoints")
    assert [path.name for path in checkpoints] == ["step_000000150.pt"]
    # caught where it happened: the actor's NaN actions would otherwise stop the window with a traceback
    stopped_at = int(re.search(r"loss/critic became nan at step (\d+);", message).group(1))
    assert 160 < stopped_at <= 200 and checkpoints[0].name in message
    state = load_checkpoint(checkpoints[0])
    for network in ("actor", "critic"):
        assert all(torch.isfinite(tensor).all() for tensor in state["learner"]["algorithm"][network].values())
    assert not (run / "eval" / "metrics.json").exists()
    # the events logged before the stop were flushed, not lost with the writer
    assert [event.step for event in scalars(run)["loss/critic"]] == [50, 100, 150]


def test_a_wall_clock_stop_evaluates_the_final_policy(tmp_path, capsys, monkeypatch):
    """Stopped by max_wall_seconds between evaluations, metrics.json is the final policy's, not an older one's."""
    clock = iter(range(1000))
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))  # 1 s a window
    runs_dir = tmp_path / "runs"
    assert train_tiny(runs_dir, "train.eval_every=100", "train.max_wall_seconds=3") == 0
    run = the_run(runs_dir)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["stop_reason"] == "max_wall_seconds" and metrics["step"] == 150
    assert latest_checkpoint(run / "checkpoints").name == "step_000000150.pt"
    evaluations = scalars(run)["eval/mean_return"]
    assert [event.step for event in evaluations] == [100, 150]
    assert evaluations[-1].value == pytest.approx(metrics["mean_return"])

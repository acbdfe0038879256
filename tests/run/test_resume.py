"""--resume with overrides: applied where the learner can apply them (checked in the restored optimizer),
refused otherwise, and never leaving a run that cannot resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

import amorctl
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.cli import train_main

PENDULUM = str(Path(__file__).resolve().parents[2] / "configs" / "td3_pendulum.yaml")
TINY_TD3 = ["name=tiny_td3", f"device={TEST_DEVICE}", "env.max_episode_steps=50", "td3.hidden_sizes=[16, 16]",
            "td3.batch_size=32", "td3.buffer_size=1000", "td3.learning_starts=50", "train.total_steps=100",
            "train.log_every=50", "train.eval_every=100", "train.eval_episodes=1", "train.eval_envs=1",
            "train.checkpoint_every=50"]


def the_run(runs_dir: Path, name: str) -> Path:
    (run,) = sorted((runs_dir / name).iterdir())
    return run


def latest_state(run: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def test_a_direct_resume_applies_the_new_learning_rate_and_length(tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args("train.lr_schedule=constant")]) == 0
    run = the_run(runs_dir, "tiny")
    groups = latest_state(run)["learner"]["optimizer"]["param_groups"]
    assert all(group["lr"] == pytest.approx(1e-3) for group in groups)

    assert train_main(["--no-progress", "--resume", str(run), "train.steps=9", "train.lr=0.5"]) == 0
    state = latest_state(run)
    assert state["step"] == 9
    assert all(group["lr"] == pytest.approx(0.5) for group in state["learner"]["optimizer"]["param_groups"])
    assert state["config"]["train"]["lr"] == 0.5 and "lr: 0.5" in (run / "config.yaml").read_text()


def test_a_td3_resume_applies_the_new_learning_rate(runs_dir, capsys):
    argv = ["--no-progress", "--config", PENDULUM, f"runs_dir={runs_dir}", *TINY_TD3]
    assert train_main(argv) == 0
    run = the_run(runs_dir, "tiny_td3")
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=150", "td3.learning_rate=0.01"]) == 0
    algorithm = latest_state(run)["learner"]["algorithm"]
    for name in ("actor_optimizer", "critic_optimizer"):
        assert all(group["lr"] == pytest.approx(0.01) for group in algorithm[name]["param_groups"])


def test_a_refused_override_leaves_the_run_resumable(tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args()]) == 0
    run = the_run(runs_dir, "tiny")
    saved = (run / "config.yaml").read_text()
    for override in ("train.optimizer=sgd", "problem.dim=4", "seed=3", "loss.kind=regression", "name=other"):
        assert train_main(["--no-progress", "--resume", str(run), override]) == 2
        message = capsys.readouterr().err.strip()
        assert len(message.splitlines()) == 1 and repr(override.split("=")[0]) in message
        assert (run / "config.yaml").read_text() == saved
    assert train_main(["--no-progress", "--resume", str(run), "train.steps=9"]) == 0
    assert latest_state(run)["step"] == 9


def test_resuming_a_finished_run_keeps_its_metrics(runs_dir, capsys):
    argv = ["--no-progress", "--config", PENDULUM, f"runs_dir={runs_dir}", *TINY_TD3]
    assert train_main(argv) == 0
    run = the_run(runs_dir, "tiny_td3")
    before = (run / "eval" / "metrics.json").read_text()
    assert train_main(["--no-progress", "--resume", str(run)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert (run / "eval" / "metrics.json").read_text() == before
    # with its metrics lost, the final evaluation is the stored one, not a new one on other seeds
    (run / "eval" / "metrics.json").unlink()
    assert train_main(["--no-progress", "--resume", str(run)]) == 0
    again, first = json.loads((run / "eval" / "metrics.json").read_text()), json.loads(before)
    assert (again["mean_return"], again["seeds"]) == (first["mean_return"], first["seeds"])


def test_load_run_gives_a_callable_model_and_policy(tiny_args, runs_dir, capsys):
    assert train_main(["--no-progress", *tiny_args()]) == 0
    direct = amorctl.load_run(the_run(runs_dir, "tiny"))
    assert direct.config.agent == "direct" and direct.step == 6
    # a 3-d quadratic's context: 3 log-eigenvalues and b
    assert direct.policy(torch.zeros(5, 6, device=TEST_DEVICE)).shape == (5, 3)

    assert train_main(["--no-progress", "--config", PENDULUM, f"runs_dir={runs_dir}", *TINY_TD3]) == 0
    control = amorctl.load_run(the_run(runs_dir, "tiny_td3"))
    assert control.config.agent == "td3" and control.step == 100
    actions = control.policy(torch.zeros(4, 3, device=TEST_DEVICE))
    assert actions.shape == (4, 1) and bool((actions.abs() <= 1).all())
    control.learner.close()

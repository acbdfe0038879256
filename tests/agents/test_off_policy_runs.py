"""Every off-policy agent runs through the same loop: train, resume exactly, evaluate, refuse bad keys."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents import DDPG, TD3
from amorctl.envs import GymVectorEnv
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.cli import evaluate_main, train_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
AGENTS = {"sac": "sac_pendulum.yaml", "ddpg": "ddpg_pendulum.yaml", "td3": "td3_pendulum.yaml"}


def tiny(agent: str, runs_dir: Path, *extra: str) -> list[str]:
    return ["--no-progress", "--config", str(CONFIGS / AGENTS[agent]), f"runs_dir={runs_dir}", "name=tiny",
            f"device={TEST_DEVICE}", "env.max_episode_steps=50", f"{agent}.hidden_sizes=[16, 16]",
            f"{agent}.batch_size=32", f"{agent}.buffer_size=1000", f"{agent}.learning_starts=50",
            "train.total_steps=200", "train.log_every=50",
            "train.eval_every=100", "train.eval_episodes=2", "train.eval_envs=2", "train.checkpoint_every=100",
            "train.keep_checkpoints=5", *extra]


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_train_resume_exactly_and_evaluate(agent, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert train_main(tiny(agent, runs, "train.save_replay_buffer=true")) == 0
    (run,) = (runs / "tiny").iterdir()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 200 and math.isfinite(metrics["mean_return"])

    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    (interrupted / "checkpoints" / "step_000000200.pt").unlink()
    shutil.rmtree(interrupted / "eval")
    assert train_main(["--no-progress", "--resume", str(interrupted)]) == 0
    straight = load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]["algorithm"]
    resumed = load_checkpoint(latest_checkpoint(interrupted / "checkpoints"))["learner"]["algorithm"]
    for network in ("actor", "critic"):
        for name, tensor in straight[network].items():
            assert torch.equal(tensor, resumed[network][name]), (network, name)
    again = json.loads((interrupted / "eval" / "metrics.json").read_text())
    assert again["mean_return"] == metrics["mean_return"]

    capsys.readouterr()
    assert evaluate_main([str(run), "--episodes", "2"]) == 0
    assert "return" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "key"), [("sac.ent_coef=-1", "sac.ent_coef"), ("sac.tau=0", "sac.tau"),
                                               ("sac.target_entropy=.nan", "sac.target_entropy"),
                                               ("sac.policy_delay=2", "sac.policy_delay"),
                                               ("ddpg.target_policy_noise=0.2", "ddpg.target_policy_noise")])
def test_bad_keys_are_one_sentence(override, key, tmp_path, capsys):
    agent = override.split(".")[0]
    assert train_main(tiny(agent, tmp_path / "runs", override)) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and f"'{key}'" in message
    assert not (tmp_path / "runs").exists()


def test_ddpg_is_td3_with_one_critic_no_smoothing_and_no_delay():
    agent = DDPG(GymVectorEnv("Pendulum-v1", 2, max_episode_steps=20), learning_starts=40, hidden_sizes=(16,),
                 batch_size=16, buffer_size=1000)
    assert isinstance(agent, TD3) and agent.critic.num_members == 1
    assert (agent.policy_delay, agent.target_policy_noise) == (1, 0.0)
    before = [p.detach().clone() for p in agent.actor.parameters()]
    metrics = agent.collect_and_train(42)  # 21 vectorized steps: one update, at 42 transitions
    assert agent.num_updates == 2 and "losses/actor_loss" in metrics and "losses/qf2_loss" not in metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))

"""BC as a warm start of TD3 / SAC: expert transitions first, the actor cloned, the critics fitted, then RL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents import TD3
from amorctl.envs import IterateEnv
from amorctl.problems import Quadratic
from amorctl.run.cli import evaluate_main, train_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
WARM = ["--no-progress", "--config", str(CONFIGS / "td3_opt_quadratic_warm_start.yaml"), f"device={TEST_DEVICE}",
        "name=warm", "env.num_envs=8", "env.problem.dim=4", "env.iterate.max_iterations=10",
        "td3.hidden_sizes=[32, 32]",
        "td3.learning_starts=400", "td3.gradient_steps=1", "td3.buffer_size=5000", "warm_start.steps=400",
        "warm_start.imitation_steps=1500", "warm_start.critic_steps=50", "train.total_steps=480",
        "train.log_every=400", "train.eval_every=400", "train.eval_episodes=16", "train.eval_envs=16",
        "train.checkpoint_every=400", "train.save_replay_buffer=true", "warm_start.noise=0.05"]


def test_a_warm_started_td3_run_starts_from_the_cloned_expert_and_resumes(tmp_path):
    runs = tmp_path / "runs"
    assert train_main([*WARM, f"runs_dir={runs}"]) == 0
    (run,) = (runs / "warm").iterdir()
    checkpoint = torch.load(run / "checkpoints" / "step_000000400.pt", weights_only=True)
    learner = checkpoint["learner"]
    assert learner["warm_started"] is True
    algorithm = learner["algorithm"]
    for key, value in algorithm["actor"].items():  # the target copies the cloned actor
        torch.testing.assert_close(algorithm["actor_target"][key], value)
    assert algorithm["replay_buffer"]["size"] == 400  # the expert's transitions, no random ones

    from amorctl import load_run

    loaded = load_run(run, run / "checkpoints" / "step_000000400.pt")
    env = IterateEnv(Quadratic(dim=4), 64, max_iterations=10, action="step_size", step_size_range=(0.005, 2.0),
                     reward="log_gap", gap_floor=1e-8, history=0, secant_features=True,
                     omit_blocks=("iterate", "gradient"), tolerance=0.0, device=loaded.device)
    obs, errors = env.reset(seed=7), []
    for _ in range(10):  # the policy right after the warm start acts like the Barzilai–Borwein rule
        action = loaded.policy(obs)
        errors.append((action - env.barzilai_borwein_action(0.01)).abs())
        obs = env.step(action)[0]
    assert torch.cat(errors).mean() < 0.05
    loaded.learner.close()

    scalars = (run / "eval" / "metrics.json").read_text()
    assert json.loads(scalars)["mean_return"] > 0  # TD3's own updates ran after it and kept a working rule
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=560"]) == 0
    resumed = torch.load(sorted((run / "checkpoints").glob("step_*.pt"))[-1], weights_only=True)
    assert resumed["learner"]["warm_started"] is True and resumed["step"] >= 560

    assert evaluate_main([str(run), "--episodes", "2"]) == 0  # the warm start's expert is reported beside TD3
    report = json.loads((run / "eval" / "evaluate.json").read_text())["report"]
    assert "expert" in json.loads(Path(report["json"]).read_text())["optimizers"]
    assert report["expert_best_ratio"] == report["policy_best_mean_gap"] / report["expert_best_mean_gap"]


def test_sac_warm_starts_too(tmp_path):
    config = tmp_path / "sac.yaml"
    text = (CONFIGS / "td3_opt_quadratic_warm_start.yaml").read_text().replace("agent: td3", "agent: sac")
    config.write_text(text.replace("td3:", "sac:").replace("  exploration_noise: 0.1\n", ""))
    argv = [str(config) if arg.endswith("warm_start.yaml") else arg.replace("td3.", "sac.") for arg in WARM]
    assert train_main([*argv, f"runs_dir={tmp_path / 'runs'}", "name=sac", "train.total_steps=400"]) == 0
    (run,) = (tmp_path / "runs" / "sac").iterdir()
    learner = torch.load(run / "checkpoints" / "step_000000400.pt", weights_only=True)["learner"]
    assert learner["warm_started"] is True and learner["algorithm"]["num_updates"] == 50  # the critic steps


def test_critic_only_updates_leave_the_actor_alone():
    env = IterateEnv(Quadratic(dim=3), 4, action="step_size", history=0)
    agent = TD3(env, batch_size=8, buffer_size=64, learning_starts=0, policy_delay=1, hidden_sizes=(8,), seed=0)
    agent.collect_and_train(16, behaviour=lambda obs: torch.zeros(len(obs), 1))
    assert agent.num_updates == 0  # an expert's transitions train nothing
    actor = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    critic = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    agent.train_step(update_actor=False)
    assert all(torch.equal(actor[k], v) for k, v in agent.actor.state_dict().items())
    assert not all(torch.equal(critic[k], v) for k, v in agent.critic.state_dict().items())
    loss = agent.imitation_step()
    assert loss.ndim == 0 and not all(torch.equal(actor[k], v) for k, v in agent.actor.state_dict().items())


@pytest.mark.parametrize(("override", "expected"), [
    ("warm_start.steps=100", "warm_start.steps"),  # below td3.learning_starts=400
    ("warm_start.expert={kind: oracle}", "not a registered expert"),
    ("warm_start.expert={kind: run, path: /nonexistent/run}", "does not exist"),
    ("warm_start.expert=3", "warm_start.expert"),
    ("warm_start.critic_steps=-1", "warm_start.critic_steps"),
    ("warm_start.noise=-0.1", "warm_start.noise"),
    ("warm_start.noise=.inf", "warm_start.noise"),
    ("warm_start.imitation_steps=0", "warm_start.imitation_steps"),
    ("warm_start.typo=1", "warm_start.typo"),
    ("warm_start.expert={kind: mpc}", "pendulum_mpc"),
])
def test_bad_warm_starts_are_one_sentence(override, expected, tmp_path, capsys):
    assert train_main([*WARM, f"runs_dir={tmp_path / 'runs'}", override]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and expected in message, message
    assert not (tmp_path / "runs").exists()


def test_a_resume_may_not_change_the_warm_start(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert train_main([*WARM, f"runs_dir={runs}", "train.total_steps=400"]) == 0
    (run,) = (runs / "warm").iterdir()
    capsys.readouterr()
    assert train_main(["--no-progress", "--resume", str(run), "warm_start.steps=800"]) == 2
    assert "warm_start.steps" in capsys.readouterr().err

"""Behavioural cloning and DAgger: the expert's labels, the β schedule, distillation from a run, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents import BehaviouralCloning
from amorctl.agents.experts import BarzilaiBorweinConfig, make_barzilai_borwein
from amorctl.envs import IterateEnv
from amorctl.problems import Quadratic
from amorctl.run.cli import evaluate_main, train_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DAGGER = ["--no-progress", "--config", str(CONFIGS / "dagger_opt_quadratic.yaml"), f"device={TEST_DEVICE}",
          "name=tiny_bc", "env.num_envs=8", "env.problem.dim=4", "env.iterate.max_iterations=10",
          "bc.hidden_sizes=[32, 32]",
          "bc.round_steps=400", "train.total_steps=1600", "train.log_every=400", "train.eval_every=800",
          "train.eval_episodes=16", "train.eval_envs=16", "train.checkpoint_every=800", "bc.gradient_steps=1",
          "bc.batch_size=256", "bc.final_learning_rate=null"]


def quadratic_env(num_envs: int = 3) -> IterateEnv:
    return IterateEnv(Quadratic(dim=4, cond_max=20.0), num_envs, action="step_size", step_size_range=(1e-3, 2.0),
                      history=0, secant_features=True, device=TEST_DEVICE)


def test_the_barzilai_borwein_expert_labels_sts_over_stz():
    env = quadratic_env()
    expert = make_barzilai_borwein(BarzilaiBorweinConfig(fallback_step=0.05), TEST_DEVICE)
    obs = env.reset(seed=0)
    low, high = math.log(1e-3), math.log(2.0)
    first = expert(env, obs)  # no update yet: the fallback step
    torch.testing.assert_close(first.cpu(), torch.full((3, 1), 2 * (math.log(0.05) - low) / (high - low) - 1))
    y0, g0 = env.iterates, env.problem.gradient(env.iterates, env.contexts)
    obs = env.step(first)[0]
    s = env.iterates - y0
    z = env.problem.gradient(env.iterates, env.contexts) - g0
    alpha = (s * s).sum(-1) / (s * z).sum(-1)
    expected = (2 * (alpha.log() - low) / (high - low) - 1).clamp(-1, 1).unsqueeze(-1)
    torch.testing.assert_close(expert(env, obs), expected, rtol=1e-4, atol=1e-4)


def test_dagger_lets_the_expert_act_with_probability_beta():
    env = quadratic_env(num_envs=4)
    calls = []

    def expert(env, obs):
        calls.append(len(obs))
        return torch.full((len(obs), 1), 0.5, device=obs.device)

    learner = BehaviouralCloning(env, expert, None, hidden_sizes=(8,), batch_size=8, beta_decay=0.5, round_steps=8)
    assert learner.beta == 1.0
    learner.advance(8)
    assert learner.beta == 0.5 and learner.expert_queries == 8 and sum(calls) == 8
    learner.advance(8)
    assert learner.beta == 0.25 and learner.size == 16
    assert torch.equal(learner.action_data[:16].cpu(), torch.full((16, 1), 0.5))  # every visited state is labelled


def test_dagger_on_quadratics_trains_resumes_and_evaluates(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert train_main([*DAGGER, f"runs_dir={runs}", "train.save_replay_buffer=true"]) == 0
    (run,) = (runs / "tiny_bc").iterdir()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["expert_queries"] == 1600
    # the learned step-size rule gets at least 80 % of the expert's log gap reduction after 1600 labels
    assert metrics["mean_return"] >= 0.8 * metrics["expert_mean_return"] > 0
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=2400"]) == 0
    assert json.loads((run / "eval" / "metrics.json").read_text())["expert_queries"] == 2400
    capsys.readouterr()
    assert evaluate_main([str(run), "--episodes", "4"]) == 0
    report = json.loads((run / "eval" / "evaluate.json").read_text())["report"]
    assert report["imitation_problems"] == 16384  # the policy against the expert it imitated
    assert 0 < report["expert_best_mean_gap"] <= report["expert_last_mean_gap"]
    assert report["expert_best_ratio"] == report["policy_best_mean_gap"] / report["expert_best_mean_gap"]
    assert "expert_best_ratio" in capsys.readouterr().out


def test_distillation_of_a_trained_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    teacher = ["--no-progress", "--config", str(CONFIGS / "td3_pendulum.yaml"), f"runs_dir={runs}", "name=teacher",
               f"device={TEST_DEVICE}", "env.max_episode_steps=50", "td3.hidden_sizes=[16, 16]",
               "td3.learning_starts=50", "td3.buffer_size=1000", "train.total_steps=100", "train.eval_every=100",
               "train.eval_episodes=1",
               "train.eval_envs=1", "train.checkpoint_every=100", "train.log_every=50"]
    assert train_main(teacher) == 0
    (teacher_run,) = (runs / "teacher").iterdir()
    config = tmp_path / "bc.yaml"
    config.write_text("agent: bc\n")
    student = ["--no-progress", "--config", str(config), f"runs_dir={runs}", "name=student", f"device={TEST_DEVICE}",
               "env={kind: gym, id: Pendulum-v1, max_episode_steps: 50}", f"expert={{kind: run, path: {teacher_run}}}",
               "bc.hidden_sizes=[8]", "bc.batch_size=32", "train.total_steps=200", "train.eval_every=200",
               "train.log_every=100", "train.eval_episodes=2", "train.eval_envs=2", "train.checkpoint_every=200"]
    assert train_main(student) == 0
    (run,) = (runs / "student").iterdir()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["expert_queries"] == 200 and math.isfinite(metrics["expert_mean_return"])


@pytest.mark.parametrize(("override", "expected"), [
    ("expert={kind: run, path: /nonexistent/run}", "does not exist"),
    ("expert={kind: oracle}", "not a registered expert"),
    ("expert={kind: barzilai_borwein, fallback_step: 0}", "expert.fallback_step"),
    ("bc.beta_decay=0", "bc.beta_decay"),
    ("bc.beta_decay=1.5", "bc.beta_decay"),
    ("bc.final_learning_rate=0", "bc.final_learning_rate"),
    ("bc.final_learning_rate=.nan", "bc.final_learning_rate"),
    ("bc.final_learning_rate=fast", "bc.final_learning_rate"),
    ("bc.total_steps=5", "bc.total_steps"),  # the run's own train.total_steps, not a key
])
def test_bad_experts_and_keys_are_one_sentence(override, expected, tmp_path, capsys):
    assert train_main([*DAGGER, f"runs_dir={tmp_path / 'runs'}", override]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and expected in message
    assert not (tmp_path / "runs").exists()


def test_the_barzilai_borwein_expert_needs_an_iterate_environment(tmp_path, capsys):
    config = tmp_path / "bc.yaml"
    config.write_text("agent: bc\n")
    argv = ["--no-progress", "--config", str(config), f"runs_dir={tmp_path / 'runs'}",
            "env={kind: gym, id: Pendulum-v1}", "expert={kind: barzilai_borwein}"]
    assert train_main(argv) == 2
    assert "iterate environment" in capsys.readouterr().err


def test_the_pendulum_control_task_follows_the_family_and_its_mpc_expert_is_the_first_planned_torque():
    from amorctl.envs import PendulumControlEnv
    from amorctl.problems import PendulumMPC

    problem = PendulumMPC(horizon=6, solver_iterations=100)
    env = PendulumControlEnv(problem, 3, max_episode_steps=2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(3, 1))
    obs = env.reset(seed=1)
    torch.testing.assert_close(env.mpc_action(), problem.solve(obs)[:, :1])
    action = torch.tensor([[0.5], [-1.0], [0.0]])
    error, velocity = problem.step(obs[:, 0], obs[:, 1], torch.zeros(3), action[:, 0])
    obs1, reward, terminated, truncated, info = env.step(action)
    torch.testing.assert_close(obs1, torch.stack([error, velocity], 1))
    torch.testing.assert_close(reward, -problem.stage_cost(error, velocity, action[:, 0]))
    assert not terminated.any() and not truncated.any()
    obs2, _, _, truncated, info = env.step(action)
    assert truncated.all() and torch.equal(info["episode_length"], torch.full((3,), 2))
    assert not torch.equal(obs2, info["final_obs"])  # fresh initial states after the time limit


def test_bc_from_the_mpc_expert_through_the_command_line(tmp_path, capsys):
    argv = ["--no-progress", "--config", str(CONFIGS / "bc_pendulum_mpc.yaml"), f"runs_dir={tmp_path}",
            f"device={TEST_DEVICE}", "env.num_envs=4", "env.max_episode_steps=10", "env.problem={horizon: 5}",
            "bc.hidden_sizes=[16]", "bc.batch_size=32", "train.total_steps=80", "train.log_every=40",
            "train.eval_every=80", "train.eval_episodes=4", "train.eval_envs=4", "train.checkpoint_every=80"]
    assert train_main(argv) == 0
    (run,) = (tmp_path / "bc_pendulum_mpc").iterdir()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["expert_queries"] == 80 and metrics["expert_mean_return"] < 0
    assert train_main([*argv, "expert={kind: mpc}", "env={kind: gym, id: Pendulum-v1}", "name=wrong"]) == 2
    assert "pendulum_mpc control task" in capsys.readouterr().err


@pytest.mark.parametrize(("override", "expected"), [("bc.buffer_size=100000000000000", "bc.buffer_size"),
                                                    ("env.num_envs=100000000000", "env.num_envs"),
                                                    ("bc.hidden_sizes=[1000000000]", "bc.hidden_sizes")])
def test_sizes_that_cannot_fit_are_refused_before_anything_is_built(override, expected, tmp_path, capsys):
    argv = ["--no-progress", "--config", str(CONFIGS / "bc_pendulum_mpc.yaml"), f"runs_dir={tmp_path / 'runs'}",
            f"device={TEST_DEVICE}", override]
    assert train_main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "GiB" in message and expected in message
    assert not (tmp_path / "runs").exists()


def test_the_learning_rate_anneals_linearly_to_its_final_value_over_the_run():
    env = quadratic_env(num_envs=4)
    learner = BehaviouralCloning(env, lambda env, obs: torch.zeros(len(obs), 1, device=obs.device), None,
                                 hidden_sizes=(8,), batch_size=8, learning_rate=1e-3, final_learning_rate=1e-5,
                                 total_steps=16)
    metrics = learner.advance(8)
    assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert float(metrics["train/learning_rate"]) == pytest.approx(0.5 * (1e-3 + 1e-5))
    learner.advance(16)  # past the end it stays at the final value
    assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    learner.load_state_dict(learner.state_dict())  # a restore re-applies the schedule at the next step
    learner.advance(4)
    assert learner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)

"""Per-row behavioural cloning and DAgger: a coordinatewise update rule cloned from Barzilai–Borwein's step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl import load_run
from amorctl.agents import BehaviouralCloning
from amorctl.agents.bc import build_bc
from amorctl.agents.experts import BarzilaiBorweinConfig, make_barzilai_borwein, make_expert
from amorctl.agents.networks import RowwiseActor
from amorctl.envs import IterateEnv
from amorctl.problems import make_problem
from amorctl.run.cli import evaluate_main, train_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ROWWISE = [
    "--no-progress",
    "--config",
    str(CONFIGS / "dagger_opt_quadratic_rowwise.yaml"),
    f"device={TEST_DEVICE}",
    "name=tiny_rows",
    "env.num_envs=8",
    "env.problem.dim=4",
    "env.iterate.max_iterations=8",
    "bc.hidden_sizes=[16]",
    "bc.round_steps=320",
    "train.total_steps=1280",
    "train.log_every=320",
    "train.eval_every=640",
    "train.eval_episodes=8",
    "train.eval_envs=8",
    "train.checkpoint_every=640",
    "bc.gradient_steps=8",
    "bc.batch_size=128",
    "bc.learning_rate=3e-3",
    "bc.final_learning_rate=1e-4",
]
"""A DAgger run of the shipped per-row config on 4-d quadratics, 8 iterations, 1280 labels (a few seconds)."""


def coordinatewise_env(dim: int = 6, num_envs: int = 4) -> IterateEnv:
    return IterateEnv(
        make_problem(name="quadratic", dim=dim),
        num_envs,
        action="update",
        observation_layout="rows",
        update_scaling="gradient",
        action_scale=2.0,
        history=1,
        secant_features=True,
        secant_update=True,
        omit_blocks=("iterate",),
        max_iterations=8,
        device=TEST_DEVICE,
    )


def bb2_expert():
    return make_barzilai_borwein(BarzilaiBorweinConfig(variant="short", fallback_step=0.01), TEST_DEVICE)


def relative_action_error(policy, expert, env: IterateEnv, steps: int = 6) -> float:
    """Mean ‖π(s) − a*(s)‖ / ‖a*(s)‖ over the states of the expert's own episodes."""
    obs, errors = env.reset(seed=123), []
    for _ in range(steps):
        label = expert(env, obs)
        errors.append((policy(obs) - label).norm(dim=-1) / label.norm(dim=-1).clamp_min(1e-6))
        obs = env.step(label)[0]
    return float(torch.cat(errors).mean())


@pytest.mark.parametrize("policy", ["rowwise", "rowwise_odd"])
def test_a_per_row_clone_trains_and_stays_permutation_equivariant(policy):
    env = coordinatewise_env()
    learner = BehaviouralCloning(
        env,
        bb2_expert(),
        None,
        hidden_sizes=(16,),
        policy=policy,
        batch_size=32,
        loss="relative",
        round_steps=16,
        beta_decay=0.5,
    )
    assert isinstance(learner.actor, RowwiseActor) and learner.actor.odd == (policy == "rowwise_odd")
    before = [p.detach().clone() for p in learner.actor.parameters()]
    learner.advance(32)
    assert learner.expert_queries == 32 and learner.beta == 0.25 and torch.isfinite(learner.last_loss)
    changed = [not torch.equal(a, b) for a, b in zip(before, learner.actor.parameters(), strict=True)]
    # every weight trains (the odd policy's output bias cancels in g(x) − g(−x) and gets no gradient)
    assert changed == [True] * (len(changed) - 1) + [policy == "rowwise"]
    # the trained policy acts on the coordinates alike: permuting them permutes the updates
    layout, obs = env.row_layout, env.reset(seed=5)
    split = layout.rows * layout.row_features
    order = torch.randperm(layout.rows, generator=torch.Generator().manual_seed(0))
    rows = obs[:, :split].view(-1, layout.rows, layout.row_features)
    permuted = torch.cat([rows[:, order].flatten(1), obs[:, split:]], dim=-1)
    act = learner.policy()
    torch.testing.assert_close(act(permuted), act(obs)[:, order])
    # and it runs unchanged on another number of coordinates
    assert act(coordinatewise_env(dim=11, num_envs=2).reset(seed=0)).shape == (2, 11)


def test_the_relative_loss_weighs_each_state_by_its_expert_action():
    env = coordinatewise_env(dim=2, num_envs=2)
    learner = BehaviouralCloning(
        env,
        bb2_expert(),
        None,
        hidden_sizes=(4,),
        policy="rowwise",
        batch_size=2,
        loss="relative",
        relative_floor=0.5,
        learning_rate=1e-12,
    )
    obs = env.reset(seed=0)
    labels = torch.tensor([[0.1, 0.0], [0.6, -0.8]], device=learner.device)
    learner._store(obs, labels)
    learner.train_step()
    with torch.no_grad():
        predicted = learner.actor(obs)
    errors = (predicted - labels).square().sum(-1) / (labels.square().sum(-1) + 0.25)
    # the two-state data set is sampled with replacement: the loss is the mean of two of these errors
    candidates = {float(errors[i] + errors[j]) / 2 for i in range(2) for j in range(2)}
    assert min(abs(float(learner.last_loss) - c) for c in candidates) < 1e-5 * max(candidates)


def test_a_per_row_policy_needs_an_environment_with_rows(tmp_path, capsys):
    argv = [
        "--no-progress",
        "--config",
        str(CONFIGS / "dagger_opt_quadratic.yaml"),
        f"runs_dir={tmp_path / 'runs'}",
        f"device={TEST_DEVICE}",
        "bc.policy=rowwise_odd",
    ]
    assert train_main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "'bc.policy'" in message and "row layout" in message
    assert not (tmp_path / "runs").exists()


def test_per_row_dagger_trains_resumes_evaluates_and_clones_the_expert(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert train_main([*ROWWISE, f"runs_dir={runs}", "train.save_replay_buffer=true"]) == 0
    (run,) = (runs / "tiny_rows").iterdir()
    assert json.loads((run / "eval" / "metrics.json").read_text())["expert_queries"] == 1280
    loaded = load_run(run, overrides=[f"device={TEST_DEVICE}"])
    assert isinstance(loaded.learner.actor, RowwiseActor) and loaded.learner.actor.odd
    env = IterateEnv(
        make_problem(**loaded.config.env.problem), 32, device=TEST_DEVICE, **dict(loaded.config.env.iterate)
    )
    untrained = build_bc(loaded.config, TEST_DEVICE, inference=True)
    expert = make_expert(loaded.config.expert, TEST_DEVICE)  # BB2's update with the config's first step
    trained_error = relative_action_error(loaded.policy, expert, env)
    untrained_error = relative_action_error(untrained.policy(), expert, env)
    loaded.learner.close()
    untrained.close()
    # the clone's updates are within 25 % of Barzilai–Borwein's; the untrained network's are not
    assert trained_error < 0.25 < untrained_error
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=1600"]) == 0
    assert json.loads((run / "eval" / "metrics.json").read_text())["expert_queries"] == 1600
    capsys.readouterr()
    assert evaluate_main([str(run), "--episodes", "4"]) == 0
    report = json.loads((run / "eval" / "evaluate.json").read_text())["report"]
    assert report["final_mean_gap"]["bb2"] > 0 and "lbfgs" in report["final_mean_gap"]
    assert report["expert_last_mean_gap"] > 0  # the policy against the BB2 update it imitated

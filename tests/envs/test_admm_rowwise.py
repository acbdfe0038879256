"""The ADMM environment's constraint rows under a per-row (RLQP) policy: one network for any number of rows."""

from __future__ import annotations

import pytest
import torch

from amorctl.agents.networks import build_actor, build_critic
from amorctl.agents.td3 import TD3
from amorctl.envs import ADMMEnv, RowLayout
from amorctl.envs.admm import FEATURES
from amorctl.problems.qp import make_qp_family


def make_env(n: int, num_envs: int = 3, **options) -> ADMMEnv:
    return ADMMEnv(make_qp_family("random_qp", n=n, constraints_per_variable=2), num_envs, **options)


def test_per_constraint_mode_declares_one_row_per_constraint():
    env = make_env(4)
    assert env.row_layout == RowLayout(8, len(FEATURES))
    assert env.row_layout.rows * env.row_layout.row_actions == env.action_dim
    obs = env.reset(seed=0)
    rows = env.row_layout.row_inputs(obs)
    assert rows.shape == (3, 8, 2 * len(FEATURES))
    # row i holds constraint i's features: its log rho is the fourth feature
    assert torch.allclose(rows[..., FEATURES.index("log_rho")], torch.log10(env.solver.rho).float())
    assert make_env(4, action="scalar").row_layout is None


def test_a_rowwise_policy_built_at_m_rows_acts_on_m_prime_rows():
    torch.manual_seed(0)
    small, large = make_env(4), make_env(7)
    actor = build_actor(small, (16,), "rowwise")
    critic = build_critic(small, (16,), 2, "rowwise")
    for env in (small, large):
        obs = env.reset(seed=1)
        action = actor(obs)
        assert action.shape == (3, env.num_constraints) and action.abs().max() <= 1
        assert critic(obs, action).shape == (2, 3, env.num_constraints)  # a value per row
        env.step(action.detach())
    # permuting the constraints permutes the actions (the same network on every row)
    obs = large.reset(seed=2)
    perm = torch.randperm(large.num_constraints)
    permuted = obs.unflatten(-1, (large.num_constraints, len(FEATURES)))[:, perm].flatten(-2)
    assert torch.allclose(actor(permuted), actor(obs)[:, perm], atol=1e-6)


@pytest.mark.parametrize("policy", ["rowwise", "rowwise_set"])
def test_td3_rowwise_trains_on_admm_and_its_policy_runs_on_another_size(policy):
    env = make_env(3, num_envs=2, iterations_per_step=5, max_steps=4, features=["log_slack"], row_mean=False)
    agent = TD3(env, policy=policy, hidden_sizes=(8,), batch_size=8, learning_starts=8, buffer_size=64, seed=0)
    before = [p.clone() for p in agent.actor.parameters()]
    agent.learn(32)
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))
    other = make_env(5, num_envs=2, features=["log_slack"], row_mean=False)
    action = agent.predict(other.reset(seed=0))
    assert action.shape == (2, other.num_constraints)


def test_rowwise_refuses_the_scalar_mode():
    with pytest.raises(ValueError, match="row layout"):
        build_actor(make_env(3, action="scalar"), (8,), "rowwise")

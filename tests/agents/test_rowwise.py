"""Per-row (factored) policies: one actor for every row, a critic per row, any number of rows."""

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents.networks import RowwiseActor, RowwiseCritic, SetCritic, build_actor, build_critic
from amorctl.agents.sac import SAC
from amorctl.agents.td3 import TD3, clipped_double_q_target
from amorctl.envs import IterateEnv, RowLayout
from amorctl.problems import make_problem

LAYOUT = RowLayout(rows=5, row_features=3, shared_features=2)


def coordinatewise_env(dim: int, num_envs: int = 4) -> IterateEnv:
    problem = make_problem(name="quadratic", dim=dim)
    return IterateEnv(
        problem,
        num_envs,
        action="update",
        observation_layout="rows",
        history=1,
        secant_features=True,
        omit_blocks=("iterate",),
        max_iterations=5,
    )


def test_row_inputs_hold_each_row_the_pooled_mean_and_the_shared_features():
    obs = torch.arange(2 * 17, dtype=torch.float32).view(2, 17)  # 5 rows of 3, then 2 shared
    inputs = LAYOUT.row_inputs(obs)
    assert inputs.shape == (2, 5, LAYOUT.input_dim) == (2, 5, 8)
    rows = obs[:, :15].view(2, 5, 3)
    torch.testing.assert_close(inputs[..., :3], rows)
    torch.testing.assert_close(inputs[..., 3:6], rows.mean(1, keepdim=True).expand(2, 5, 3))
    torch.testing.assert_close(inputs[..., 6:], obs[:, None, 15:].expand(2, 5, 2))
    assert LAYOUT.row_inputs(torch.zeros(1, 3 * 9 + 2)).shape == (1, 9, 8)  # R is read from the width
    with pytest.raises(ValueError, match="not R rows of 3"):
        LAYOUT.rows_of(16)


@pytest.mark.parametrize("odd", [False, True])
def test_the_actor_is_row_count_independent_and_permutation_equivariant(odd):
    torch.manual_seed(0)
    actor = build_actor(coordinatewise_env(10), (16, 16), "rowwise_odd" if odd else "rowwise")
    assert isinstance(actor, RowwiseActor) and actor.odd == odd
    small, large = coordinatewise_env(10), coordinatewise_env(23)
    for env in (small, large):
        obs = env.reset(seed=1)
        action = actor(obs)
        assert action.shape == (env.num_envs, env.solution_dim) and action.abs().max() <= 1
    # permuting the rows (coordinates) permutes the actions the same way
    layout, obs = large.row_layout, large.reset(seed=2)
    order = torch.randperm(layout.rows, generator=torch.Generator().manual_seed(0))
    split = layout.rows * layout.row_features
    rows = obs[:, :split].view(-1, layout.rows, layout.row_features)
    permuted = torch.cat([rows[:, order].flatten(1), obs[:, split:]], dim=-1)
    torch.testing.assert_close(actor(permuted), actor(obs)[:, order])
    if odd:  # negating every row's features negates every action; all-zero rows do not move
        flipped = torch.cat([-obs[:, :split], obs[:, split:]], dim=-1)
        torch.testing.assert_close(actor(flipped), -actor(obs))
        still = torch.cat([torch.zeros_like(obs[:, :split]), obs[:, split:]], dim=-1)
        assert (actor(still) == 0).all()


def test_the_critic_has_one_value_per_row_and_passes_a_gradient_check():
    torch.manual_seed(0)
    critic = RowwiseCritic(LAYOUT, (8, 8), num_members=2).double()
    obs, action = torch.randn(3, 17, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64) * 2 - 1
    assert critic(obs, action).shape == (2, 3, 5) and critic(obs, action, member=1).shape == (3, 5)
    assert critic(torch.randn(3, 3 * 8 + 2, dtype=torch.float64), torch.zeros(3, 8, dtype=torch.float64)).shape == (
        2,
        3,
        8,
    )
    # row r's value depends on its own action only
    bumped = action.clone()
    bumped[:, 2] += 0.1
    changed = (critic(obs, bumped) != critic(obs, action)).any(dim=(0, 1))
    assert changed.tolist() == [False, False, True, False, False]
    assert torch.autograd.gradcheck(lambda o, a: critic(o, a), (obs.requires_grad_(), action.requires_grad_()))
    actor = RowwiseActor(
        LAYOUT, build_actor(type("E", (), {"observation_dim": 8, "action_dim": 1})(), (8,)), odd=True
    ).double()
    assert torch.autograd.gradcheck(actor, (obs,))


def test_per_row_targets_share_the_transitions_reward_and_terminal_flag():
    next_q = torch.tensor([[[1.0, 5.0], [2.0, 2.0]], [[3.0, 4.0], [0.0, 7.0]]])  # (E=2, B=2, R=2)
    target = clipped_double_q_target(torch.tensor([1.0, -1.0]), torch.tensor([False, True]), next_q, 0.5)
    torch.testing.assert_close(target, torch.tensor([[1.5, 3.0], [-1.0, -1.0]]))


@pytest.mark.parametrize("algorithm", [TD3, SAC])
def test_an_agent_trained_on_one_dimension_acts_on_another(algorithm):
    env = coordinatewise_env(6)
    agent = algorithm(
        env,
        policy="rowwise" if algorithm is SAC else "rowwise_odd",
        hidden_sizes=(16, 16),
        batch_size=8,
        buffer_size=200,
        learning_starts=16,
        gradient_steps=2,
        seed=0,
    )
    before = [p.detach().clone() for p in agent.actor.parameters()]
    agent.collect_and_train(64)
    metrics = agent.loss_metrics()
    assert all(torch.isfinite(value) for value in metrics.values()) and "losses/actor_loss" in metrics
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.actor.parameters()))
    other = algorithm(coordinatewise_env(15, num_envs=3), policy=agent.policy, hidden_sizes=(16, 16), seed=1)
    other.actor.load_state_dict(agent.actor.state_dict())  # same parameter shapes whatever the dimension
    other.critic.load_state_dict(agent.critic.state_dict())
    obs = other.env.reset(seed=0)
    assert other.predict(obs).shape == (3, 15)
    torch.testing.assert_close(other.predict(obs[:, :]), agent.actor.to(obs.device)(obs))


def test_a_per_row_policy_needs_a_row_layout_and_odd_needs_a_deterministic_actor():
    flat = IterateEnv(make_problem(name="quadratic", dim=4), 1, action="update")
    assert flat.row_layout is None
    with pytest.raises(ValueError, match="declares a row layout"):
        build_actor(flat, (8,), "rowwise")
    with pytest.raises(ValueError, match="declares a row layout"):
        build_critic(flat, (8,), 2, "rowwise")
    with pytest.raises(ValueError, match="deterministic actor"):
        build_actor(coordinatewise_env(4), (8,), "rowwise_odd", gaussian=True)


def test_config_refuses_an_odd_per_row_sac_policy_in_one_sentence():
    from amorctl.run.config import validate_config
    from amorctl.run.errors import ConfigError

    env = {
        "kind": "iterate",
        "problem": {"name": "quadratic", "dim": 3},
        "iterate": {"action": "update", "observation_layout": "rows", "max_iterations": 5},
    }
    config = validate_config(
        {"agent": "sac", "device": TEST_DEVICE.type, "env": env, "sac": {"policy": "rowwise", "hidden_sizes": [8]}}
    )
    assert config.sac["policy"] == "rowwise"
    with pytest.raises(ConfigError, match=r"'sac.policy'.*deterministic actor"):
        validate_config({"agent": "sac", "device": TEST_DEVICE.type, "env": env, "sac": {"policy": "rowwise_odd"}})


def test_the_shipped_coordinatewise_config_trains_and_its_policy_evaluates_at_another_dimension(tmp_path):
    from pathlib import Path

    from amorctl import load_run
    from amorctl.run.cli import train_main

    config = Path(__file__).resolve().parents[2] / "configs" / "td3_opt_quadratic_rowwise.yaml"
    runs = tmp_path / "runs"
    argv = [
        "--no-progress",
        "--config",
        str(config),
        f"device={TEST_DEVICE}",
        f"runs_dir={runs}",
        "env.num_envs=4",
        "env.iterate.max_iterations=5",
        "td3.hidden_sizes=[16]",
        "td3.learning_starts=40",
        "td3.buffer_size=400",
        "warm_start.steps=40",
        "warm_start.imitation_steps=20",
        "warm_start.critic_steps=5",
        "train.total_steps=80",
        "train.log_every=40",
        "train.eval_every=80",
        "train.eval_episodes=4",
        "train.eval_envs=4",
        "train.checkpoint_every=80",
    ]
    assert train_main(argv) == 0
    (run,) = (runs / "td3_opt_quadratic_rowwise").iterdir()
    loaded = load_run(run, overrides=[f"device={TEST_DEVICE}", "env.problem.dim=7"])
    env = IterateEnv(make_problem(name="quadratic", dim=7), 2, device=TEST_DEVICE, **dict(loaded.config.env.iterate))
    assert loaded.policy(env.reset(seed=0)).shape == (2, 7)
    loaded.learner.close()


def test_the_set_critic_values_the_joint_action_for_any_number_of_rows():
    """rowwise_set: one joint value per (s, a), repeated on every row, invariant to permuting the rows, defined
    for any R, and its gradient gives rows in different states different directions."""
    torch.manual_seed(0)
    layout = RowLayout(rows=5, row_features=3, pooled=False)
    critic = SetCritic(layout, hidden_sizes=(16, 16), num_members=2)
    obs, action = torch.randn(4, 15), torch.randn(4, 5)
    q = critic(obs, action)
    assert q.shape == (2, 4, 5) and torch.equal(q, q[..., :1].expand_as(q))
    perm = torch.tensor([3, 0, 4, 1, 2])
    permuted = critic(obs.unflatten(-1, (5, 3))[:, perm].flatten(-2), action[:, perm])
    assert torch.allclose(permuted, q, atol=1e-6)
    assert critic(torch.randn(4, 24), torch.randn(4, 8)).shape == (2, 4, 8)
    grad_action = action.clone().requires_grad_(True)
    critic(obs, grad_action, member=0, frozen=True).mean().backward()
    assert all(p.grad is None for p in critic.parameters())  # frozen: the actor's loss trains no critic weight
    assert grad_action.grad.abs().sum() > 0 and not torch.allclose(grad_action.grad, grad_action.grad[:, :1])

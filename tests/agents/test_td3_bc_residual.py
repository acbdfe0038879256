"""TD3+BC's actor loss, the zero-initialised actor, and the Barzilai–Borwein residual step size of IterateEnv."""

import pytest
import torch

from amorctl.agents import TD3
from amorctl.agents.td3 import td3_bc_actor_loss
from amorctl.envs import IterateEnv
from amorctl.optimizers import run_optimizer
from amorctl.problems import make_problem

SMALL = {"hidden_sizes": (16, 16), "batch_size": 8, "buffer_size": 1000, "learning_starts": 0}


def quadratic_env(num_envs: int = 4, dim: int = 5, **options) -> IterateEnv:
    problem = make_problem(name="quadratic", dim=dim, cond_min=1.0, cond_max=50.0)
    defaults = {
        "max_iterations": 12,
        "action": "step_size",
        "reward": "log_gap",
        "history": 0,
        "secant_features": True,
        "omit_blocks": ("iterate", "gradient"),
        "tolerance": 0.0,
        "step_size_base": "bb2",
        "first_step": 1.0,
        "residual_scale": 0.5,
    }
    return IterateEnv(problem, num_envs, **{**defaults, **options})


def test_td3_bc_loss_equals_the_formula_on_a_hand_made_batch():
    q = torch.tensor([2.0, -4.0, 6.0])
    action = torch.tensor([[0.5], [-0.5], [0.0]])
    reference = torch.tensor([[0.0], [0.5], [1.0]])
    # λ = α / mean|Q| = 2.5 / 4; −λ·mean(Q) = −0.625 · 4/3; mean squared distance = (0.25 + 1 + 1) / 3
    expected = -2.5 / 4.0 * (4.0 / 3.0) + 2.25 / 3.0
    torch.testing.assert_close(td3_bc_actor_loss(q, action, reference, 2.5), torch.tensor(expected))


def test_td3_bc_gradient_mixes_the_critic_and_the_regression_term():
    q = torch.tensor([1.0, 3.0], requires_grad=True)
    action = torch.tensor([[0.2], [0.4]], requires_grad=True)
    td3_bc_actor_loss(q, action, torch.zeros(2, 1), 1.0).backward()
    torch.testing.assert_close(q.grad, torch.full((2,), -0.5 / 2.0))  # λ = 1/2, the mean over 2
    torch.testing.assert_close(action.grad, 2 * action.detach() / 2)


def test_bc_alpha_off_is_plain_td3s_actor_loss_and_on_is_td3_bc():
    env = quadratic_env()
    plain, with_bc = (TD3(env, bc_alpha=alpha, seed=3, **SMALL) for alpha in (None, 2.5))
    plain.collect_and_train(16)
    batch = plain.replay_buffer.sample(8, torch.Generator().manual_seed(0))
    with_bc.load_state_dict(plain.state_dict())
    action = plain.actor(batch.obs)
    q = plain.critic(batch.obs, action, member=0)
    torch.testing.assert_close(plain.actor_loss(batch), -q.mean(), rtol=0, atol=0)
    expected = -2.5 / q.abs().mean() * q.mean() + (action - batch.action).square().sum(-1).mean()
    torch.testing.assert_close(with_bc.actor_loss(batch), expected)
    assert not torch.allclose(with_bc.actor_loss(batch), plain.actor_loss(batch))


def test_zero_init_actor_starts_at_zero_actions():
    env = quadratic_env()
    agent = TD3(env, zero_init_actor=True, seed=0, **SMALL)
    obs = env.reset(seed=0)
    assert torch.equal(agent.predict(obs), torch.zeros(4, 1))
    assert not torch.equal(TD3(env, seed=0, **SMALL).predict(obs), torch.zeros(4, 1))


@pytest.mark.parametrize("base", ["bb1", "bb2"])
def test_residual_mode_at_action_zero_is_barzilai_borwein_exactly(base):
    env = quadratic_env(num_envs=6, step_size_base=base, dim=10)
    env.reset(seed=5)
    x, y0 = env.contexts, env.iterates
    reference = run_optimizer(base, env.problem, x, y0, 11, step_size=1.0)
    for t in range(11):
        _, _, terminated, truncated, _ = env.step(torch.zeros(6, 1))
        assert not (terminated | truncated).any()  # no row restarted: every row is still the reference's problem
        # bit for bit, not approximately
        torch.testing.assert_close(
            env.problem.objective(env.iterates, x), reference.objective_values[t + 1], rtol=0, atol=0
        )
    assert torch.equal(env.iterates, reference.solution)


def test_residual_action_scales_the_base_step():
    env = quadratic_env(num_envs=3, residual_scale=0.5)
    env.reset(seed=1)
    y0, g0 = env.iterates, env.problem.gradient(env.iterates, env.contexts)
    env.step(torch.tensor([[1.0], [0.0], [-1.0]]))
    steps = torch.tensor([[1.0], [0.0], [-1.0]]).mul(0.5).exp()  # first_step 1 · exp(0.5·a)
    torch.testing.assert_close(env.iterates, y0 - steps * g0)


def test_the_barzilai_borwein_expert_is_action_zero_in_residual_mode():
    env = quadratic_env(num_envs=4)
    env.reset(seed=2)
    for _ in range(5):
        assert torch.equal(env.barzilai_borwein_action(1.0, long_step=False), torch.zeros(4, 1))
        env.step(torch.full((4, 1), 0.3))
    long = env.barzilai_borwein_action(1.0, long_step=True)
    assert (long >= 0).all() and (long > 0).any()  # BB1 ≥ BB2: a non-negative residual


def test_residual_options_are_refused_where_they_make_no_sense():
    with pytest.raises(ValueError, match="step_size_base"):
        quadratic_env(action="update")
    with pytest.raises(ValueError, match="residual_scale"):
        quadratic_env(residual_scale=0.0)
    with pytest.raises(ValueError, match="first_step"):
        quadratic_env(first_step=float("inf"))

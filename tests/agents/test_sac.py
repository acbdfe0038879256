import io
import math

import pytest
import torch

from amorctl.agents.networks import SquashedGaussianActor
from amorctl.agents.sac import SAC
from amorctl.envs import GymVectorEnv
from amorctl.eval.rollouts import run_episodes
from amorctl.losses import actor_objective_loss

SMALL = {"hidden_sizes": (32, 32), "batch_size": 32, "buffer_size": 10_000}


def pendulum(num_envs: int = 2, max_episode_steps: int = 20) -> GymVectorEnv:
    return GymVectorEnv("Pendulum-v1", num_envs=num_envs, max_episode_steps=max_episode_steps)


def test_squashed_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(4, 3, (16,))
    obs, noise = torch.randn(64, 4), torch.randn(64, 3) * 2
    action, log_prob = actor.sample(obs, noise)
    features = actor.trunk(obs).double()
    mean = features @ actor.mean.weight.double().T + actor.mean.bias.double()
    log_std = (features @ actor.log_std.weight.double().T + actor.log_std.bias.double()).clamp(-20, 2)
    u = mean + log_std.exp() * noise.double()
    # change of variables in float64: log π(a|s) = log 𝒩(u) − Σ log(1 − tanh²u)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) - torch.log1p(
        -torch.tanh(u).square()).sum(-1)
    torch.testing.assert_close(log_prob.double(), expected, rtol=1e-4, atol=1e-4)
    assert bool((action.abs() < 1).all())
    torch.testing.assert_close(actor(obs), torch.tanh(mean).float())


def test_actor_objective_loss_is_eq_2_10_with_entropy():
    q, log_prob = torch.tensor([1.0, 3.0]), torch.tensor([-0.5, 0.5])
    assert actor_objective_loss(q).item() == -2.0
    assert actor_objective_loss(q, log_prob, 0.2).item() == pytest.approx(-2.0)  # α E[log π] = 0
    assert actor_objective_loss(q, torch.tensor([1.0, 1.0]), 0.5).item() == pytest.approx(-1.5)


def test_sac_updates_every_network_and_tunes_the_temperature():
    agent = SAC(pendulum(), learning_starts=40, seed=0, **SMALL)
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in agent.networks().items()}
    metrics = agent.collect_and_train(100)
    assert agent.num_updates == 31  # 50 vectorized steps of 2 copies, updating from the 20th (40 transitions) on
    for name, net in agent.networks().items():
        assert any(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
    assert metrics["losses/alpha"].item() < 1.0  # α starts at 1 and falls while the entropy is above target
    assert {"losses/qf_loss", "losses/actor_loss", "losses/entropy", "charts/episodic_return"} <= set(metrics)
    fixed = SAC(pendulum(), learning_starts=40, ent_coef=0.3, **SMALL)
    fixed.collect_and_train(60)
    assert fixed.alpha.item() == pytest.approx(0.3) and fixed.alpha_optimizer is None


def test_state_dict_round_trip_continues_identically():
    agent = SAC(pendulum(), learning_starts=60, seed=1, **SMALL)
    agent.collect_and_train(120)
    saved = io.BytesIO()
    torch.save(agent.state_dict(include_replay_buffer=True), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    agent.load_state_dict(state)
    continued = agent.collect_and_train(60)
    restored = SAC(pendulum(), learning_starts=60, seed=99, **SMALL)
    restored.load_state_dict(state)
    restored_continued = restored.collect_and_train(60)
    for name, net in agent.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, restored.networks()[name].state_dict()[key]), f"{name}.{key}"
    assert torch.equal(agent.log_alpha, restored.log_alpha)
    for key in continued:
        assert torch.equal(continued[key], restored_continued[key]), key


def test_a_non_finite_temperature_is_reported():
    agent = SAC(pendulum(), learning_starts=40, **SMALL)
    agent.collect_and_train(60)
    with torch.no_grad():
        agent.log_alpha.fill_(math.inf)
    assert "log_alpha" in agent.finite_quantities()
    assert not bool(torch.isfinite(agent.finite_quantities()["log_alpha"]))


@pytest.mark.slow
def test_sac_solves_pendulum():
    """About 6k transitions and a minute on two CPU cores; a solved Pendulum scores about -150."""
    agent = SAC(GymVectorEnv("Pendulum-v1"), learning_starts=1000, learning_rate=1e-3, hidden_sizes=(64, 64),
                buffer_size=100_000, seed=0)
    agent.learn(6000)
    with GymVectorEnv("Pendulum-v1", num_envs=2) as env:
        result = run_episodes(agent.predict, env, episodes=10, seed=123)
    assert result["mean_return"] > -300

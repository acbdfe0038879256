import copy
import io

import pytest
import torch

from amorctl.agents import TD3, EnsembleCritic, Transitions, clipped_double_q_target, smoothed_target_action
from amorctl.envs import GymVectorEnv
from amorctl.eval.rollouts import run_episodes

SMALL = {"hidden_sizes": (32, 32), "batch_size": 32, "buffer_size": 10_000}


def pendulum(num_envs: int = 2, max_episode_steps: int = 20) -> GymVectorEnv:
    return GymVectorEnv("Pendulum-v1", num_envs=num_envs, max_episode_steps=max_episode_steps)


def test_clipped_double_q_target_on_hand_made_tensors():
    reward = torch.tensor([1.0, 2.0, 3.0])
    terminated = torch.tensor([False, True, False])
    next_q = torch.tensor([[5.0, 1.0, 4.0], [3.0, 2.0, 6.0]])
    target = clipped_double_q_target(reward, terminated, next_q, gamma=0.5)
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.5 * 3.0, 2.0, 3.0 + 0.5 * 4.0]))


def test_smoothed_target_action_clips_noise_then_action():
    action = torch.tensor([[0.0, 0.9, -0.9]])
    noise = torch.tensor([[2.0, 0.3, -0.05]])
    torch.testing.assert_close(smoothed_target_action(action, noise, 0.5), torch.tensor([[0.5, 1.0, -0.95]]))


def test_critic_target_value_bootstraps_through_truncation_only():
    """Time-limit truncations are stored as non-terminal, so their targets bootstrap; terminal ones do not."""
    agent = TD3(pendulum(num_envs=1, max_episode_steps=5), target_policy_noise=0.0, gamma=0.9, **SMALL)
    agent.collect_and_train(10)
    buffer = agent.replay_buffer
    assert not buffer.terminated[:10].any()
    torch.testing.assert_close(buffer.next_obs[3], buffer.obs[4])  # within an episode
    assert not torch.allclose(buffer.next_obs[4], buffer.obs[5])  # the true final observation, not the reset one

    terminated = torch.tensor([False, True, False, True])
    batch = Transitions(buffer.obs[:4], buffer.action[:4], torch.ones(4), buffer.next_obs[:4], terminated)
    next_q = agent.critic_target(batch.next_obs, agent.actor_target(batch.next_obs)).min(dim=0).values
    expected = 1.0 + 0.9 * next_q * torch.tensor([1.0, 0.0, 1.0, 0.0])
    torch.testing.assert_close(agent.critic_target_value(batch), expected)


def test_twin_critics_batched_equal_separate_evaluations():
    torch.manual_seed(0)
    critic = EnsembleCritic(observation_dim=5, action_dim=2, hidden_sizes=(16, 8))
    obs, action = torch.randn(7, 5), torch.randn(7, 2, requires_grad=True)
    q = critic(obs, action)
    assert q.shape == (2, 7)
    for i in range(2):
        x = torch.cat([obs, action], dim=-1)
        for j, layer in enumerate(critic.layers):
            x = x @ layer.weight[i] + layer.bias[i]
            x = torch.relu(x) if j < len(critic.layers) - 1 else x.squeeze(-1)
        torch.testing.assert_close(q[i], x)
        torch.testing.assert_close(critic(obs, action, member=i), x)
    frozen = critic(obs, action, member=0, frozen=True)
    torch.testing.assert_close(frozen, q[0])
    frozen.sum().backward()
    assert action.grad is not None and all(p.grad is None for p in critic.parameters())


def test_learning_smoke():
    agent = TD3(pendulum(), learning_starts=100, seed=0, **SMALL)
    initial = copy.deepcopy(agent.actor.state_dict())
    metrics = agent.collect_and_train(300)
    assert agent.num_timesteps == 300 and agent.num_updates == (300 - 100) // 2 + 1
    for name in ("losses/qf1_loss", "losses/qf2_loss", "losses/qf_loss", "losses/qf1_values", "losses/actor_loss"):
        assert metrics[name].dim() == 0 and torch.isfinite(metrics[name]), name
    assert metrics["charts/episodes"] == 2 * (150 // 20) and metrics["charts/episodic_length"] == 20
    assert all(not torch.equal(p, initial[k]) for k, p in agent.actor.state_dict().items())
    assert not torch.equal(agent.actor_target.body[0].weight, initial["body.0.weight"])

    obs = torch.randn(5, 3)
    action = agent.predict(obs)
    assert action.shape == (5, 1) and action.abs().max() <= 1 and not action.requires_grad
    assert torch.equal(action, agent.actor(obs).detach())
    assert not torch.equal(agent.predict(obs, deterministic=False), action)
    result = run_episodes(agent.predict, pendulum(), episodes=2, seed=0)
    assert len(result["returns"]) == 2 and result["lengths"] == [20, 20]


def test_policy_delay_and_gradient_steps():
    agent = TD3(pendulum(num_envs=1), learning_starts=40, gradient_steps=3, policy_delay=3, **SMALL)
    agent.collect_and_train(39)  # random actions only
    assert agent.num_updates == 0
    actor = copy.deepcopy(agent.actor.state_dict())
    critic = copy.deepcopy(agent.critic.state_dict())
    agent.train_step()
    agent.train_step()
    assert all(torch.equal(p, actor[k]) for k, p in agent.actor.state_dict().items())
    assert not torch.equal(agent.critic.layers[0].weight, critic["layers.0.weight"])
    agent.train_step()
    assert not torch.equal(agent.actor.body[0].weight, actor["body.0.weight"])
    agent.collect_and_train(2)
    assert agent.num_updates == 3 + 2 * 3


def test_state_dict_round_trip_continues_identically():
    agent = TD3(pendulum(), learning_starts=60, seed=1, **SMALL)
    agent.collect_and_train(120)
    saved = io.BytesIO()
    torch.save(agent.state_dict(include_replay_buffer=True), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)

    agent.load_state_dict(state)
    continued = agent.collect_and_train(60)
    restored = TD3(pendulum(), learning_starts=60, seed=99, **SMALL)
    restored.load_state_dict(state)
    restored_continued = restored.collect_and_train(60)

    assert (restored.num_timesteps, restored.num_updates) == (agent.num_timesteps, agent.num_updates) == (180, 61)
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for key, value in getattr(agent, name).state_dict().items():
            assert torch.equal(value, getattr(restored, name).state_dict()[key]), f"{name}.{key}"
    for key in continued:
        assert torch.equal(continued[key], restored_continued[key]), key
    assert torch.equal(agent.replay_buffer.obs[:240], restored.replay_buffer.obs[:240])


def test_a_resume_without_the_replay_buffer_refills_it_before_updating():
    """Without a saved buffer, updates wait for ``learning_starts`` fresh transitions (the restored policy
    acts, with its noise); a resume with the buffer continues updating at once."""
    agent = TD3(pendulum(), learning_starts=60, seed=1, **SMALL)
    agent.collect_and_train(120)
    updates = agent.num_updates
    assert updates == 31  # vectorized steps 30..60 of 2 environments

    restored = TD3(pendulum(), learning_starts=60, seed=2, **SMALL)
    restored.load_state_dict(agent.state_dict())
    restored.collect_and_train(58)  # 29 vectorized steps of 2 environments: 58 transitions, no update
    assert (len(restored.replay_buffer), restored.num_updates) == (58, updates)
    restored.collect_and_train(4)  # the 60th transition is in: updates resume
    assert (len(restored.replay_buffer), restored.num_updates) == (62, updates + 2)

    with_buffer = TD3(pendulum(), learning_starts=60, seed=2, **SMALL)
    with_buffer.load_state_dict(agent.state_dict(include_replay_buffer=True))
    with_buffer.collect_and_train(2)
    assert with_buffer.num_updates == updates + 1


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="gamma must be in"):
        TD3(pendulum(), gamma=1.5)
    with pytest.raises(ValueError, match="buffer_size"):
        TD3(pendulum(num_envs=4), buffer_size=2)


@pytest.mark.slow
def test_td3_solves_pendulum():
    """About 10k transitions and two minutes on two CPU cores; a solved Pendulum scores about -150."""
    agent = TD3(GymVectorEnv("Pendulum-v1"), learning_starts=1000, buffer_size=100_000, seed=0)
    agent.learn(10_000)
    with GymVectorEnv("Pendulum-v1", num_envs=2) as env:
        result = run_episodes(agent.predict, env, episodes=10, seed=123)
    assert result["mean_return"] > -400

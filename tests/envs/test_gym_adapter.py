import importlib
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from amorctl.envs import ActionMap, BatchedEnv, GymVectorEnv, check_env_id, make_gym_env


def zeros(env: BatchedEnv) -> torch.Tensor:
    return torch.zeros(env.num_envs, env.action_dim)


def test_shapes_and_dtypes():
    with GymVectorEnv("Pendulum-v1", num_envs=3, seed=0) as env:
        assert (env.num_envs, env.observation_dim, env.action_dim, env.name) == (3, 3, 1, "Pendulum-v1")
        obs = env.reset()
        assert obs.shape == (3, 3) and obs.dtype == torch.float32
        obs, reward, terminated, truncated, info = env.step(zeros(env))
        assert obs.shape == (3, 3) and obs.dtype == torch.float32
        assert reward.shape == (3,) and reward.dtype == torch.float32
        assert terminated.dtype == truncated.dtype == torch.bool and terminated.shape == truncated.shape == (3,)
        assert torch.equal(info["final_obs"], obs)
        assert info["episode_return"].shape == info["episode_length"].shape == (3,)


@pytest.mark.parametrize(("env_id", "observation_dim", "action_dim"), [("HalfCheetah-v5", 17, 6), ("Hopper-v5", 11, 3)])
def test_mujoco_tasks(env_id, observation_dim, action_dim):
    with GymVectorEnv(env_id, num_envs=2, seed=0) as env:
        assert (env.observation_dim, env.action_dim, env.vectorization) == (observation_dim, action_dim, "sync")
        env.reset()
        obs, reward, *_ = env.step(torch.ones(2, action_dim))
        assert obs.shape == (2, observation_dim) and torch.isfinite(reward).all()


def test_truncation_keeps_the_true_final_observation_and_rescales_actions():
    """Pendulum's torque box is [-2, 2]: action 0.5 must act as torque 1.0; episodes are cut after 5 steps."""
    seed, steps = 7, 5
    env = GymVectorEnv("Pendulum-v1", num_envs=2, max_episode_steps=steps)
    env.reset(seed=seed)
    rewards = []
    for t in range(steps):
        obs, reward, terminated, truncated, info = env.step(torch.full((2, 1), 0.5))
        rewards.append(reward)
        assert truncated.all() == (t == steps - 1) and not terminated.any()
    assert torch.equal(info["episode_length"], torch.tensor([steps, steps]))
    torch.testing.assert_close(info["episode_return"], torch.stack(rewards).sum(0))
    assert (info["final_obs"] != obs).any(dim=1).all()
    for i in range(2):  # the final observation is the one a single environment reaches with torque 1.0
        single = gym.make("Pendulum-v1", max_episode_steps=steps)
        single.reset(seed=seed + i)
        for _ in range(steps):
            expected, *_ = single.step(np.array([1.0], dtype=np.float32))
        np.testing.assert_allclose(info["final_obs"][i].numpy(), expected, rtol=1e-6)
    # the next episode's statistics start from zero
    *_, info = env.step(zeros(env))
    assert torch.equal(info["episode_length"], torch.tensor([1, 1]))
    env.close()


def test_termination_is_not_truncation():
    """InvertedPendulum terminates once the pole leaves |angle| <= 0.2; pushing full force makes it fall."""
    with GymVectorEnv("InvertedPendulum-v5", num_envs=1, seed=0) as env:
        env.reset()
        for _ in range(200):
            obs, _, terminated, truncated, info = env.step(torch.ones(1, 1))
            if terminated.any():
                break
        assert terminated.all() and not truncated.any()
        assert info["final_obs"][0, 1].abs() > 0.2 >= obs[0, 1].abs()
        assert info["episode_length"][0] < 200


def test_async_matches_sync():
    runs = []
    for vectorization in ("sync", "async"):
        with GymVectorEnv("Pendulum-v1", num_envs=2, vectorization=vectorization, max_episode_steps=3) as env:
            trajectory = [env.reset(seed=1)]
            for t in range(4):
                obs, reward, _, _, info = env.step(torch.full((2, 1), 0.1 * t))
                trajectory += [obs, reward, info["final_obs"]]
            runs.append(trajectory)
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (torch.zeros(2, 2), r"Pendulum-v1 expects float actions of shape \(2, 1\) in \[-1, 1\], got shape \(2, 2\)"),
        (torch.zeros(2, 1, dtype=torch.int64), "got dtype torch.int64"),
        (torch.tensor([[0.0], [float("nan")]]), r"got NaN or Inf in rows \[1\]"),
        (torch.tensor([[float("inf")], [0.0]]), r"got NaN or Inf in rows \[0\]"),
        (np.zeros((2, 1), dtype=np.float32), "got a ndarray instead of a torch.Tensor"),
    ],
)
def test_bad_actions_raise_one_clear_sentence(action, message):
    with GymVectorEnv("Pendulum-v1", num_envs=2, seed=0) as env:
        env.reset()
        with pytest.raises(ValueError, match=message):
            env.step(action)


def test_step_before_reset():
    with GymVectorEnv("Pendulum-v1") as env, pytest.raises(RuntimeError, match="reset"):
        env.step(zeros(env))


def test_unknown_env_id_suggests_close_matches():
    message = r"unknown gymnasium environment id 'HalfCheetah-v55'; did you mean .*'HalfCheetah-v5'"
    with pytest.raises(ValueError, match=message):
        GymVectorEnv("HalfCheetah-v55")


def test_non_box_action_space_is_refused():
    with pytest.raises(ValueError, match="CartPole-v1 has action space Discrete"):
        GymVectorEnv("CartPole-v1")


def test_make_gym_env_rescales_like_the_vector_env():
    env = make_gym_env("Pendulum-v1", max_episode_steps=5)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    reference = gym.make("Pendulum-v1")
    env.reset(seed=0)
    reference.reset(seed=0)
    np.testing.assert_allclose(env.step(np.array([0.5], np.float32))[0], reference.step(np.array([1.0], np.float32))[0])


def test_the_action_map_sends_the_unit_box_onto_the_bounds_and_clips():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))
    action_map = ActionMap("Box", space)
    actions = np.array([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0], [0.5, -0.5], [3.0, -7.0]])
    mapped = action_map(actions)
    assert mapped.dtype == np.float32 and mapped.shape == (5, 2)
    np.testing.assert_allclose(mapped, [[-2, 0], [0, 5], [2, 10], [1, 2.5], [2, 0]])
    assert action_map(np.array([0.5, 0.5])).shape == (2,)  # one flat action
    with pytest.raises(ValueError, match="unbounded"):
        ActionMap("Free", gym.spaces.Box(-np.inf, np.inf, (2,)))


def test_the_vector_env_and_the_single_env_take_the_same_actions():
    """Out-of-range actions included: both clip to [-1, 1] before mapping (RescaleAction would not)."""
    actions = [np.array([0.5]), np.array([-0.25]), np.array([3.0]), np.array([-1.0])]
    single = make_gym_env("Pendulum-v1", max_episode_steps=10)
    single.reset(seed=4)
    with GymVectorEnv("Pendulum-v1", max_episode_steps=10) as vector:
        vector.reset(seed=4)
        for action in actions:
            obs, reward, *_ = single.step(action.astype(np.float32))
            vector_obs, vector_reward, *_ = vector.step(torch.as_tensor(action, dtype=torch.float32).reshape(1, 1))
            np.testing.assert_array_equal(vector_obs.numpy()[0], obs)
            assert float(vector_reward[0]) == np.float32(reward)
    single.close()


def test_a_module_qualified_id_is_refused_and_nothing_imported_unless_imported_first(gym_plugin):
    sentence = rf"names module '{gym_plugin.module}', which is not imported: pass --import {gym_plugin.module} "
    for make in (check_env_id, GymVectorEnv, make_gym_env):
        with pytest.raises(ValueError, match=sentence):
            make(gym_plugin.env_id)
    assert gym_plugin.module not in sys.modules and not gym_plugin.marker.exists()


def test_once_imported_a_module_qualified_id_works_and_making_it_imports_nothing_new(gym_plugin):
    importlib.import_module(gym_plugin.module)  # what the CLI's --import does
    before = set(sys.modules)
    check_env_id(gym_plugin.env_id)
    with GymVectorEnv(gym_plugin.env_id, num_envs=2) as env:
        env.reset(seed=0)
        for _ in range(5):
            *_, truncated, _ = env.step(zeros(env))
    assert truncated.all()  # the plugin's 5-step time limit
    make_gym_env(gym_plugin.env_id).close()
    assert set(sys.modules) - before == set()  # gymnasium's import of the module part was a no-op
    assert gym_plugin.marker.read_text() == "imported\n"  # the module ran once, when imported explicitly

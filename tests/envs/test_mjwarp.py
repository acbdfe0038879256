"""MjWarpEnv's BatchedEnv contract: auto-reset with the true final observation, time limit, seeding, actions.

Uses InvertedPendulum (random actions end its episodes within a few steps) and HalfCheetah (never
terminates, so only the time limit ends it), whose kernels the parity tests load in the same process.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from amorctl.envs.kinds import validate_env_section
from amorctl.envs.mjwarp import MjWarpEnv, mj_task
from amorctl.envs.mjwarp_tasks import MJ_TASKS
from amorctl.run.errors import ConfigError


def on_cpu(result: tuple) -> tuple:
    """A step's (obs, reward, terminated, truncated, info) with every tensor on the CPU, to compare with CPU values."""
    *tensors, info = result
    return (*(t.cpu() for t in tensors), {key: value.cpu() for key, value in info.items()})


@pytest.fixture(scope="module")
def pendulum(test_device: torch.device) -> MjWarpEnv:
    with MjWarpEnv("InvertedPendulum-v5", num_envs=8, device=test_device, seed=3) as env:
        yield env


@pytest.mark.parametrize("env_id", list(MJ_TASKS))
def test_dimensions_are_gymnasiums(env_id: str) -> None:
    """Observation and action sizes of every task equal those of gymnasium's v5 environment."""
    reference = gym.make(env_id)
    with MjWarpEnv(env_id, num_envs=2) as env:
        assert env.observation_dim == reference.observation_space.shape[0]
        assert env.action_dim == reference.action_space.shape[0]
        assert env.dt == pytest.approx(reference.unwrapped.dt)
    reference.close()


def test_auto_reset_keeps_the_final_observation(pendulum: MjWarpEnv) -> None:
    obs = pendulum.reset(seed=0).cpu()
    assert obs.dtype == torch.float32 and obs.shape == (8, 4)
    assert obs.abs().max() <= 0.01 + 1e-6  # qpos0 = 0, qvel = 0, plus U(-0.01, 0.01) noise
    generator = torch.Generator().manual_seed(0)
    ended_rows = 0
    lengths = torch.zeros(8, dtype=torch.int64)
    for _ in range(15):
        action = 2 * torch.rand(8, 1, generator=generator) - 1
        obs, reward, terminated, truncated, info = on_cpu(pendulum.step(action))
        lengths += 1
        ended = terminated | truncated
        assert not truncated.any()
        assert torch.equal(reward, (~terminated).float())  # v5: 1 while the pole is up, 0 at the fall
        torch.testing.assert_close(info["final_obs"][~ended], obs[~ended])
        if ended.any():
            ended_rows += int(ended.sum())
            assert (info["final_obs"][ended][:, 1].abs() > 0.2).all()  # the fallen pole, not the reset one
            assert obs[ended].abs().max() <= 0.01 + 1e-6
            assert torch.equal(info["episode_length"][ended], lengths[ended])
            torch.testing.assert_close(info["episode_return"][ended], (lengths[ended] - 1).float())
        lengths[ended] = 0
    assert ended_rows >= 4


def test_time_limit_truncates(test_device: torch.device) -> None:
    with MjWarpEnv("HalfCheetah-v5", num_envs=2, device=test_device, max_episode_steps=3) as env:
        env.reset(seed=0)
        zero = torch.zeros(2, env.action_dim, device=test_device)
        for step in range(1, 4):
            obs, _, terminated, truncated, info = on_cpu(env.step(zero))
            assert not terminated.any()
            assert bool(truncated.all()) == (step == 3)
        assert info["episode_length"].tolist() == [3, 3]
        assert not torch.equal(info["final_obs"], obs)
        assert obs[:, 8:].abs().max() < 0.5  # fresh velocities: 0.1 · N(0, 1)


def test_seeded_resets_repeat(pendulum: MjWarpEnv) -> None:
    first, again = pendulum.reset(seed=5).cpu(), pendulum.reset(seed=5).cpu()
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, pendulum.reset(seed=6).cpu())


def test_actions_are_mapped_onto_the_control_range(pendulum: MjWarpEnv) -> None:
    """InvertedPendulum's ctrlrange is [-3, 3]: a = 0.5 drives ctrl = 1.5; out-of-box actions are clipped."""
    pendulum.reset(seed=0)
    pendulum.step(torch.full((8, 1), 0.5))
    torch.testing.assert_close(pendulum._ctrl.cpu(), torch.full((8, 1), 1.5))
    pendulum.step(torch.full((8, 1), 7.0))
    torch.testing.assert_close(pendulum._ctrl.cpu(), torch.full((8, 1), 3.0))


def test_bad_actions_and_ids_are_refused(pendulum: MjWarpEnv) -> None:
    pendulum.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(8, 1\)"):
        pendulum.step(torch.zeros(8, 2))
    with pytest.raises(ValueError, match="NaN"):
        pendulum.step(torch.full((8, 1), float("nan")))
    with pytest.raises(ValueError, match="did you mean 'Hopper-v5'"):
        mj_task("Hopper-v4")


def test_env_section() -> None:
    section = validate_env_section({"kind": "mjwarp", "id": "Walker2d-v5", "num_envs": 4})
    assert (section.id, section.num_envs, section.max_episode_steps) == ("Walker2d-v5", 4, 1000)
    with pytest.raises(ConfigError, match=r"env\.id.*Humanoid-v5"):
        validate_env_section({"kind": "mjwarp", "id": "Humanoid-v5"})
    with pytest.raises(ConfigError, match=r"env\.max_episode_steps"):
        validate_env_section({"kind": "mjwarp", "max_episode_steps": 0})


def test_world_state_reads_a_world(pendulum: MjWarpEnv) -> None:
    qpos = np.array([[0.1, -0.05]] * 8)
    qvel = np.array([[0.2, 0.3]] * 8)
    obs = pendulum.set_state(torch.as_tensor(qpos), torch.as_tensor(qvel)).cpu()
    torch.testing.assert_close(obs[0], torch.tensor([0.1, -0.05, 0.2, 0.3]))
    got_qpos, got_qvel = pendulum.world_state(3)
    np.testing.assert_allclose(got_qpos, qpos[3], atol=1e-7)
    np.testing.assert_allclose(got_qvel, qvel[3], atol=1e-7)

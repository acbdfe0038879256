"""gymnasium v5's MuJoCo locomotion tasks written as batched torch functions of the simulator state.

Each :class:`MjTask` restates one of gymnasium's ``*_v5.py`` environments with its default arguments
(``gymnasium/envs/mujoco/<task>_v5.py``): the model file it loads, its ``frame_skip``, its observation
layout, its reward terms, its termination rule and its reset noise. The functions read a
:class:`MjView` (torch views of the simulator's arrays, one row per world) and return tensors of
leading size N, so :class:`~amorctl.envs.mjwarp.MjWarpEnv` computes all of them on the device.

Conventions shared by the five tasks (gymnasium's ``MujocoEnv``):

- ``dt = model.opt.timestep * frame_skip``; the forward velocity is ``(x_after - x_before) / dt``.
- the control cost is ``ctrl_cost_weight * Σ ctrl²`` of the action sent to the simulator.
- ``healthy`` is evaluated on the state after the step; ``terminated = not healthy`` (the v5
  default ``terminate_when_unhealthy=True``), and the healthy reward is paid only while healthy.
- reset: ``qpos = qpos0 + U(-s, s)`` and ``qvel = 0 + U(-s, s)`` or ``s · N(0, 1)`` (per task), with
  ``s`` the task's ``reset_noise_scale``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class MjView:
    """Torch views (zero-copy) of the simulator arrays a task reads, one row per world.

    Attributes:
        qpos: (N, nq) joint positions after the step.
        qvel: (N, nv) joint velocities after the step.
        cfrc_ext: (N, nbody, 6) external contact forces (``mj_rnePostConstraint``), zero right after a reset.
        ctrl: (N, nu) the controls the step applied (the environment action).
        x_before: (N,) or (N, 2): the forward position(s) before the step (:attr:`MjTask.forward_position`).
        x_after: same shape, after the step.
        dt: seconds one environment step covers.
    """

    qpos: torch.Tensor
    qvel: torch.Tensor
    cfrc_ext: torch.Tensor
    ctrl: torch.Tensor
    x_before: torch.Tensor
    x_after: torch.Tensor
    dt: float


@dataclass(frozen=True)
class MjTask:
    """One gymnasium v5 MuJoCo task: its model file, frame skip, observation, reward, termination, reset noise.

    Attributes:
        env_id: the gymnasium id it mirrors (``"HalfCheetah-v5"``).
        xml_file: the model file in gymnasium's ``envs/mujoco/assets`` folder.
        frame_skip: simulator steps per environment step.
        reset_noise_scale: ``s`` of the reset noise.
        qvel_noise: ``"uniform"`` (U(-s, s)) or ``"normal"`` (s · N(0, 1)) noise on the initial velocities.
        forward_position: what the forward reward differentiates: ``"qpos0"`` (the root's x coordinate,
            ``qpos[0]``) or ``"torso_xy"`` (Ant: the torso body's x, y position).
        observation: ``view -> (N, observation_dim)``.
        reward: ``view -> (N,)``.
        healthy: ``view -> (N,) bool``; the episode terminates where it is false.
    """

    env_id: str
    xml_file: str
    frame_skip: int
    reset_noise_scale: float
    qvel_noise: Literal["uniform", "normal"]
    forward_position: Literal["qpos0", "torso_xy"]
    observation: Callable[[MjView], torch.Tensor]
    reward: Callable[[MjView], torch.Tensor]
    healthy: Callable[[MjView], torch.Tensor]

    @property
    def xml_path(self) -> str:
        """The model file shipped with the installed gymnasium (the one its v5 environment loads)."""
        import gymnasium.envs.mujoco

        return os.path.join(os.path.dirname(gymnasium.envs.mujoco.__file__), "assets", self.xml_file)


def _control_cost(view: MjView, weight: float) -> torch.Tensor:
    return weight * view.ctrl.square().sum(dim=1)


def _forward_velocity(view: MjView) -> torch.Tensor:
    """(x_after − x_before) / dt; for Ant its x component."""
    velocity = (view.x_after - view.x_before) / view.dt
    return velocity if velocity.dim() == 1 else velocity[:, 0]


def _always_healthy(view: MjView) -> torch.Tensor:
    return torch.ones(view.qpos.shape[0], dtype=torch.bool, device=view.qpos.device)


def _within(value: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``low < value < high`` (gymnasium's strict ranges for Hopper and Walker2d)."""
    return (value > low) & (value < high)


# HalfCheetah-v5: obs = (qpos[1:], qvel), reward = v_x − 0.1 Σ a², never terminates.
def _cheetah_observation(view: MjView) -> torch.Tensor:
    return torch.cat([view.qpos[:, 1:], view.qvel], dim=1)


def _cheetah_reward(view: MjView) -> torch.Tensor:
    return _forward_velocity(view) - _control_cost(view, 0.1)


# Hopper-v5 and Walker2d-v5: obs = (qpos[1:], clip(qvel, ±10)), reward = v_x + healthy − 1e-3 Σ a².
def _planar_walker_observation(view: MjView) -> torch.Tensor:
    return torch.cat([view.qpos[:, 1:], view.qvel.clamp(-10.0, 10.0)], dim=1)


def _hopper_healthy(view: MjView) -> torch.Tensor:
    """z ∈ (0.7, ∞), torso angle ∈ (−0.2, 0.2) and every entry of (qpos, qvel)[2:] ∈ (−100, 100)."""
    state = torch.cat([view.qpos[:, 2:], view.qvel], dim=1)
    return _within(state, -100.0, 100.0).all(dim=1) & (view.qpos[:, 1] > 0.7) & _within(view.qpos[:, 2], -0.2, 0.2)


def _walker_healthy(view: MjView) -> torch.Tensor:
    """z ∈ (0.8, 2.0) and torso angle ∈ (−1, 1)."""
    return _within(view.qpos[:, 1], 0.8, 2.0) & _within(view.qpos[:, 2], -1.0, 1.0)


def _hopper_reward(view: MjView) -> torch.Tensor:
    return _forward_velocity(view) + _hopper_healthy(view).float() - _control_cost(view, 1e-3)


def _walker_reward(view: MjView) -> torch.Tensor:
    return _forward_velocity(view) + _walker_healthy(view).float() - _control_cost(view, 1e-3)


# Ant-v5: obs = (qpos[2:], qvel, clip(cfrc_ext[1:], ±1)), reward = v_x + healthy − 0.5 Σ a² − 5e-4 Σ clip(cfrc_ext)².
def _ant_contact_forces(view: MjView) -> torch.Tensor:
    return view.cfrc_ext.clamp(-1.0, 1.0)


def _ant_observation(view: MjView) -> torch.Tensor:
    forces = _ant_contact_forces(view)[:, 1:].flatten(start_dim=1)
    return torch.cat([view.qpos[:, 2:], view.qvel, forces], dim=1)


def _ant_healthy(view: MjView) -> torch.Tensor:
    """A finite state with the torso height z ∈ [0.2, 1.0] (inclusive, as in gymnasium)."""
    finite = torch.isfinite(view.qpos).all(dim=1) & torch.isfinite(view.qvel).all(dim=1)
    z = view.qpos[:, 2]
    return finite & (z >= 0.2) & (z <= 1.0)


def _ant_reward(view: MjView) -> torch.Tensor:
    contact_cost = 5e-4 * _ant_contact_forces(view).square().flatten(start_dim=1).sum(dim=1)
    return _forward_velocity(view) + _ant_healthy(view).float() - _control_cost(view, 0.5) - contact_cost


# InvertedPendulum-v5: obs = (qpos, qvel), reward = 1 while |pole angle| ≤ 0.2 and the state is finite.
def _pendulum_observation(view: MjView) -> torch.Tensor:
    return torch.cat([view.qpos, view.qvel], dim=1)


def _pendulum_healthy(view: MjView) -> torch.Tensor:
    obs = _pendulum_observation(view)
    return torch.isfinite(obs).all(dim=1) & (obs[:, 1].abs() <= 0.2)


def _pendulum_reward(view: MjView) -> torch.Tensor:
    return _pendulum_healthy(view).float()


MJ_TASKS: dict[str, MjTask] = {
    task.env_id: task
    for task in (
        MjTask("HalfCheetah-v5", "half_cheetah.xml", 5, 0.1, "normal", "qpos0",
               _cheetah_observation, _cheetah_reward, _always_healthy),
        MjTask("Hopper-v5", "hopper.xml", 4, 5e-3, "uniform", "qpos0",
               _planar_walker_observation, _hopper_reward, _hopper_healthy),
        MjTask("Walker2d-v5", "walker2d_v5.xml", 4, 5e-3, "uniform", "qpos0",
               _planar_walker_observation, _walker_reward, _walker_healthy),
        MjTask("Ant-v5", "ant.xml", 5, 0.1, "normal", "torso_xy",
               _ant_observation, _ant_reward, _ant_healthy),
        MjTask("InvertedPendulum-v5", "inverted_pendulum.xml", 2, 0.01, "uniform", "qpos0",
               _pendulum_observation, _pendulum_reward, _pendulum_healthy),
    )
}  # fmt: skip
"""The tasks :class:`~amorctl.envs.mjwarp.MjWarpEnv` offers, by gymnasium id."""

"""gymnasium v5's MuJoCo tasks as N worlds of one MuJoCo Warp model, stepped on the env's device.

:class:`MjWarpEnv` is a :class:`~amorctl.envs.base.BatchedEnv` over ``mujoco_warp`` (MJWarp, the
GPU port of MuJoCo maintained with MuJoCo itself): all N copies live in one ``mujoco_warp.Data``
with N worlds, and the observations, rewards and flags are computed by torch from zero-copy views of
its arrays (``warp.to_torch``), so nothing crosses to the host on the step path. The tasks
(HalfCheetah, Hopper, Walker2d, Ant, InvertedPendulum) load gymnasium's own v5 model files and
follow its observation layouts, reward terms, termination rules, reset noise and frame skip
(:mod:`amorctl.envs.mjwarp_tasks`); episodes are cut after ``max_episode_steps`` (1000, gymnasium's
time limit for all five).

Physics is float32 (gymnasium's MuJoCo is float64) and MJWarp's constraint solver is not MuJoCo's
line for line, so trajectories agree with gymnasium's to a measured tolerance, not bit for bit
(``tests/envs/test_mjwarp_parity.py`` states it).

Warp compiles its kernels the first time a model is stepped on a device and caches the binaries in
its kernel cache (``warp.config.kernel_cache_dir``, by default ``~/.cache/warp/<warp version>``;
the ``WARP_CACHE_PATH`` environment variable moves it), so later processes load them in seconds.
On CUDA the ``frame_skip`` simulator steps of one environment step are captured once into a CUDA
graph and replayed; on the CPU they are launched one kernel at a time (slow: a development and test
path). Needs the ``mjwarp`` extra (``pip install -e ".[mjwarp]"``).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs.base import BatchedEnv, StepResult
from amorctl.envs.gym_adapter import ActionMap
from amorctl.envs.mjwarp_tasks import MJ_TASKS, MjTask, MjView

DEFAULT_MAX_EPISODE_STEPS = 1000
"""gymnasium's time limit for the five v5 tasks."""

TORSO_BODY = 1
"""Ant's main body (gymnasium's ``main_body=1``), whose x, y position the forward reward differentiates."""


def mj_task(env_id: str) -> MjTask:
    """The :class:`MjTask` for a gymnasium id, or ``ValueError`` naming the ids on offer."""
    if env_id in MJ_TASKS:
        return MJ_TASKS[env_id]
    matches = difflib.get_close_matches(env_id, list(MJ_TASKS), n=1)
    hint = f"did you mean {matches[0]!r}? " if matches else ""
    raise ValueError(f"MjWarpEnv has no task {env_id!r}; {hint}the tasks are {', '.join(MJ_TASKS)}")


def import_mujoco_warp() -> tuple[Any, Any]:
    """``(warp, mujoco_warp)``, or ``RuntimeError`` saying which extra installs them."""
    try:
        import mujoco_warp
        import warp
    except ImportError as error:
        raise RuntimeError(
            f"env.kind 'mjwarp' needs MuJoCo Warp ({error.name} is not installed): pip install -e '.[mjwarp]'"
        ) from None
    warp.config.quiet = True  # no banner and
    warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)  # no line per loaded module in logs
    return warp, mujoco_warp


class MjWarpEnv(BatchedEnv):
    """N worlds of a gymnasium v5 MuJoCo task in one MuJoCo Warp model (see the module docstring).

    Per :meth:`step`: the actions in [-1, 1] are mapped onto the actuators' ``ctrlrange`` by
    :class:`~amorctl.envs.ActionMap` (the map every other environment uses) and written into the
    worlds' controls; the simulator advances ``frame_skip`` steps and computes the contact forces
    (``rne_postconstraint``, as gymnasium's ``MujocoEnv`` does after ``mj_step``); the task's
    observation, reward and health are evaluated; then every world whose episode ended is reset in
    place (``mujoco_warp.reset_data`` on those worlds, then the task's reset noise), with masks rather
    than a host-side ``if``, so the step never waits for the device.

    Seeding: :meth:`reset` with a seed draws world i's initial noise from a generator seeded with
    ``seed + i`` (so, as for gymnasium's vector environments, episode k of an evaluation is the same
    whatever N); the automatic resets that follow draw from one ``torch.Generator`` on the env's device
    seeded with ``seed`` (gymnasium's noise itself is not reproduced: its numpy streams differ).

    Args:
        env_id: ``"HalfCheetah-v5"``, ``"Hopper-v5"``, ``"Walker2d-v5"``, ``"Ant-v5"`` or ``"InvertedPendulum-v5"``.
        num_envs: N, the number of worlds.
        device: a torch device; ``"cuda"`` runs the worlds on the current CUDA device.
        seed: seeds the first :meth:`reset` when it is called without a seed.
        max_episode_steps: the time limit (``truncated`` from then on).
        nconmax: contacts allocated per world (MJWarp's own heuristic when ``None``).
        njmax: constraint rows allocated per world (MJWarp's own heuristic when ``None``).
        cuda_graph: replay the simulator steps as one captured CUDA graph (CUDA only; ignored on the CPU).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
        nconmax: int | None = None,
        njmax: int | None = None,
        cuda_graph: bool = True,
    ):
        import mujoco

        self.task = mj_task(env_id)
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be at least 1, got {max_episode_steps}")
        self._wp, self._mjw = import_mujoco_warp()
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"MjWarpEnv runs on 'cpu' or 'cuda', got device {device}")
        self.name, self.num_envs, self.device = env_id, num_envs, device
        self.max_episode_steps = max_episode_steps
        self._nconmax, self._njmax = nconmax, njmax
        self.mj_model = mujoco.MjModel.from_xml_path(self.task.xml_path)
        self.dt = float(self.mj_model.opt.timestep) * self.task.frame_skip
        self._warp_device = self._wp.get_device(str(device))
        with self._wp.ScopedDevice(self._warp_device):
            self.model = self._mjw.put_model(self.mj_model)
            self.data = self._mjw.put_data(
                self.mj_model, mujoco.MjData(self.mj_model), nworld=num_envs, nconmax=nconmax, njmax=njmax
            )
        to_torch = self._wp.to_torch
        self._qpos, self._qvel = to_torch(self.data.qpos), to_torch(self.data.qvel)
        self._ctrl, self._xpos = to_torch(self.data.ctrl), to_torch(self.data.xpos)
        self._cfrc_ext = to_torch(self.data.cfrc_ext)

        ctrlrange = self.mj_model.actuator_ctrlrange.astype(np.float32)
        action_map = ActionMap(env_id, gym.spaces.Box(ctrlrange[:, 0], ctrlrange[:, 1], dtype=np.float32))
        self._action_center = torch.as_tensor(action_map.center, dtype=torch.float32, device=device)
        self._action_half_width = torch.as_tensor(action_map.half_width, dtype=torch.float32, device=device)
        self.action_dim = int(self.mj_model.nu)

        self._generator = torch.Generator(device=device)
        self._seed = seed
        self._x_before = torch.zeros(self._forward_position().shape, device=device)
        self._episode_return = torch.zeros(num_envs, dtype=torch.float32, device=device)
        self._episode_length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self._all_worlds = torch.ones(num_envs, dtype=torch.bool, device=device)
        self.observation_dim = int(self._observe().shape[1])
        self._use_graph = cuda_graph and device.type == "cuda"
        self._graph = None
        self._needs_reset = True

    # -- the BatchedEnv interface ---------------------------------------------------------------

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        if seed is None:
            if self._needs_reset:
                self._generator.seed()
            self._reset_worlds(self._all_worlds)
        else:
            self._reset_worlds(self._all_worlds, noise=False)
            for world in range(self.num_envs):  # world i from seed + i, so episode k is the same whatever N
                self._add_reset_noise(world, self._generator.manual_seed(seed + world))
            self._generator.manual_seed(seed)
        self._episode_return.zero_()
        self._episode_length.zero_()
        self._needs_reset = False
        return self._observe()

    def step(self, action: torch.Tensor) -> StepResult:
        if self._needs_reset:
            raise RuntimeError(f"{self.name}: call reset() before the first step()")
        self.validate_action(action)
        ctrl = self._action_center + self._action_half_width * action.detach().to(self.device, torch.float32).clamp(
            -1.0, 1.0
        )
        self._ctrl.copy_(ctrl)
        self._simulate()
        view = self._view(ctrl, x_after=self._forward_position())
        final_obs = self.task.observation(view)
        reward = self.task.reward(view).float()
        terminated = ~self.task.healthy(view)

        self._episode_return += reward
        self._episode_length += 1
        truncated = self._episode_length >= self.max_episode_steps
        ended = terminated | truncated
        info = {
            "final_obs": final_obs,
            "episode_return": self._episode_return.clone(),
            "episode_length": self._episode_length.clone(),
        }
        self._episode_return.masked_fill_(ended, 0.0)
        self._episode_length.masked_fill_(ended, 0)
        self._x_before = view.x_after.clone()
        self._reset_worlds(ended)
        return self._observe(), reward, terminated, truncated, info

    # -- state access (tests, video) ------------------------------------------------------------

    def set_state(
        self, qpos: torch.Tensor, qvel: torch.Tensor, forward_position: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Put every world in the given joint state as a fresh episode (as gymnasium's ``set_state``
        after ``mj_resetData`` does); returns the observations.

        Args:
            qpos: (N, nq) joint positions.
            qvel: (N, nv) joint velocities.
            forward_position: what the next step's forward reward starts from, (N,) or (N, 2) for Ant;
                by default read from ``qpos`` as after a reset. In the middle of a gymnasium episode, Ant's
                torso position is the one of the last simulator substep's kinematics (one timestep
                behind ``qpos``): pass ``data.body(1).xpos[:2]`` to reproduce its next reward.
        """
        self._reset_worlds(self._all_worlds, noise=False)
        self._qpos.copy_(torch.as_tensor(qpos, dtype=torch.float32))
        self._qvel.copy_(torch.as_tensor(qvel, dtype=torch.float32))
        self._x_before = self._reset_forward_position()
        if forward_position is not None:
            self._x_before.copy_(torch.as_tensor(forward_position, dtype=torch.float32).view_as(self._x_before))
        self._episode_return.zero_()
        self._episode_length.zero_()
        self._needs_reset = False
        return self._observe()

    def world_state(self, world: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos, qvel)`` of one world as float64 numpy arrays (a host copy: for rendering and tests)."""
        return self._qpos[world].double().cpu().numpy(), self._qvel[world].double().cpu().numpy()

    # -- internals ------------------------------------------------------------------------------

    def _view(self, ctrl: torch.Tensor, x_after: torch.Tensor) -> MjView:
        return MjView(self._qpos, self._qvel, self._cfrc_ext, ctrl, self._x_before, x_after, self.dt)

    def _observe(self) -> torch.Tensor:
        view = self._view(self._ctrl, self._x_before)
        return self.task.observation(view).float()

    def _forward_position(self) -> torch.Tensor:
        """What the forward reward differentiates, as the simulator holds it now (Ant: the torso's x, y)."""
        if self.task.forward_position == "torso_xy":
            return self._xpos[:, TORSO_BODY, :2]
        return self._qpos[:, 0]

    def _reset_forward_position(self) -> torch.Tensor:
        """The forward position right after a reset; Ant's torso hangs from a free joint, so x, y = qpos[:2]."""
        if self.task.forward_position == "torso_xy":
            return self._qpos[:, :2].clone()
        return self._qpos[:, 0].clone()

    def _reset_worlds(self, mask: torch.Tensor, noise: bool = True) -> None:
        """Reset the worlds where ``mask`` holds (``mj_resetData``, then qpos0 + noise), on the device."""
        with self._on_warp_stream():
            self._mjw.reset_data(self.model, self.data, reset=self._wp.from_torch(mask))
        if noise:
            self._add_reset_noise(mask.unsqueeze(1), self._generator)
        rows = mask.view(-1, *([1] * (self._x_before.dim() - 1)))
        self._x_before = torch.where(rows, self._reset_forward_position(), self._x_before)

    def _add_reset_noise(self, rows: torch.Tensor | int, generator: torch.Generator) -> None:
        """The task's reset noise on qpos and qvel: in the rows where the (N, 1) mask ``rows`` holds, or in one row."""
        scale = self.task.reset_noise_scale
        qpos, qvel = (
            (self._qpos, self._qvel) if isinstance(rows, torch.Tensor) else (self._qpos[rows], self._qvel[rows])
        )
        qpos_noise = _uniform(qpos.shape, scale, generator)
        if self.task.qvel_noise == "uniform":
            qvel_noise = _uniform(qvel.shape, scale, generator)
        else:
            qvel_noise = scale * torch.randn(qvel.shape, generator=generator, device=self.device)
        if isinstance(rows, torch.Tensor):
            qpos_noise, qvel_noise = qpos_noise * rows, qvel_noise * rows
        qpos.add_(qpos_noise)
        qvel.add_(qvel_noise)

    def _simulate(self) -> None:
        """``frame_skip`` simulator steps, then the contact forces (``cfrc_ext``) of the final state."""
        with self._on_warp_stream():
            if not self._use_graph:
                self._substeps()
                return
            if self._graph is None:
                # Kernels are built on their first launch, which a capture cannot hold: launch them once on a
                # one-world scratch copy (same model and allocations), then capture on the worlds themselves.
                self._substeps(self._scratch_data())
                with self._wp.ScopedCapture(device=self._warp_device) as capture:
                    self._substeps()
                self._graph = capture.graph
            self._wp.capture_launch(self._graph)

    def _substeps(self, data: Any = None) -> None:
        data = self.data if data is None else data
        for _ in range(self.task.frame_skip):
            self._mjw.step(self.model, data)
        self._mjw.rne_postconstraint(self.model, data)

    def _scratch_data(self) -> Any:
        """One world with this env's per-world contact and constraint allocations (for warming kernels up)."""
        import mujoco

        return self._mjw.put_data(
            self.mj_model, mujoco.MjData(self.mj_model), nworld=1, nconmax=self._nconmax, njmax=self._njmax
        )

    @contextlib.contextmanager
    def _on_warp_stream(self) -> Iterator[None]:
        """Order Warp's launches after torch's pending work and torch's later work after them (CUDA streams)."""
        with self._wp.ScopedDevice(self._warp_device):
            if self.device.type != "cuda":
                yield
                return
            torch_stream = self._wp.stream_from_torch(torch.cuda.current_stream(self.device))
            warp_stream = self._wp.get_stream(self._warp_device)
            warp_stream.wait_stream(torch_stream)
            yield
            torch_stream.wait_stream(warp_stream)


def compile_kernels(device: torch.device | str = "cpu", env_ids: tuple[str, ...] = tuple(MJ_TASKS)) -> None:
    """Compile every task's Warp kernels on ``device`` into Warp's kernel cache (or load them from it): one
    world, one reset and one step each. Later processes then load the binaries in seconds; ``.ci/run``
    calls this once before the tests, so that a cold cache is paid outside the test suite."""
    for env_id in env_ids:
        with MjWarpEnv(env_id, num_envs=1, device=device, seed=0) as env:
            env.reset()
            env.step(torch.zeros(1, env.action_dim, device=env.device))


def _uniform(shape: torch.Size, scale: float, generator: torch.Generator) -> torch.Tensor:
    """U(-scale, scale) samples on the generator's device."""
    return (2 * torch.rand(shape, generator=generator, device=generator.device) - 1) * scale

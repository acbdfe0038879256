"""Throughput of :class:`~amorctl.envs.MjWarpEnv` against N, next to gymnasium's vector environments.

``scripts/benchmark.py mjwarp-throughput`` calls :func:`mjwarp_throughput`. Every row steps N copies of
one task with uniform random actions in [-1, 1] drawn before the clock starts (on the env's device),
``steps`` vectorized steps per repeat, and reports N × steps / seconds (the median of ``repeats``).
Resets are included: MjWarpEnv resets the worlds whose episode ended inside every step, with masks
(its cost is paid every step whether or not a world ended), and gymnasium's vector environments reset
finished copies in the step as well (``SAME_STEP`` autoreset). Before the timed repeats, one untimed
step compiles or loads Warp's kernels (and on CUDA captures the step's graph). On CUDA the clock stops
after ``torch.cuda.synchronize()``.

gymnasium's reference is ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="sync")``: one
float64 MuJoCo per copy, stepped one after another on one CPU core.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Sequence

import numpy as np
import torch

from amorctl.benchmarking.common import command_line, cpu_name, log, machine_info, markdown_table, median

SEED = 0


def _device_name(device: torch.device) -> str:
    """The card (CUDA) or the CPU model, as the table names the device."""
    return f"CUDA: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else f"CPU: {cpu_name()}"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mjwarp_rate(env_id: str, num_envs: int, device: torch.device, steps: int, repeats: int) -> float:
    """Env steps per second of MjWarpEnv (median over ``repeats``), after one untimed warm-up step."""
    from amorctl.envs.mjwarp import MjWarpEnv

    with MjWarpEnv(env_id, num_envs, device) as env:
        generator = torch.Generator(device=device).manual_seed(SEED)
        actions = 2 * torch.rand(steps, num_envs, env.action_dim, generator=generator, device=device) - 1
        env.reset(seed=SEED)
        env.step(actions[0])
        _synchronize(device)

        def run() -> float:
            start = time.perf_counter()
            for action in actions:
                env.step(action)
            _synchronize(device)
            return time.perf_counter() - start

        return num_envs * steps / median([run() for _ in range(repeats)])


def _gymnasium_rate(env_id: str, num_envs: int, steps: int, repeats: int) -> float:
    """Env steps per second of gymnasium's SyncVectorEnv (median over ``repeats``)."""
    import gymnasium as gym

    env = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    try:
        env.action_space.seed(SEED)
        actions = [env.action_space.sample() for _ in range(steps)]
        env.reset(seed=SEED)

        def run() -> float:
            start = time.perf_counter()
            for action in actions:
                env.step(action)
            return time.perf_counter() - start

        return num_envs * steps / median([run() for _ in range(repeats)])
    finally:
        env.close()


def mjwarp_throughput(
    env_id: str,
    num_envs: Sequence[int],
    steps: int,
    repeats: int,
    devices: Sequence[str],
    gym_num_envs: Sequence[int],
) -> str:
    """A Markdown table of environment steps per second: MjWarpEnv on each device against N, then
    gymnasium's SyncVectorEnv for ``gym_num_envs``; a last column relates each row to gymnasium's best rate."""
    if min(steps, repeats, *num_envs, *gym_num_envs, 1) < 1:
        raise ValueError(
            f"steps, repeats and every N must be positive, got {steps}, {repeats}, {num_envs}, {gym_num_envs}"
        )
    rows = []
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        for n in num_envs:
            log(f"MjWarpEnv {env_id} N={n} on {device}")
            rows.append([f"MjWarpEnv ({_device_name(device)})", n, _mjwarp_rate(env_id, n, device, steps, repeats)])
    for n in gym_num_envs:
        log(f"gymnasium SyncVectorEnv {env_id} N={n}")
        rows.append(
            [
                f"gymnasium SyncVectorEnv ({_device_name(torch.device('cpu'))})",
                n,
                _gymnasium_rate(env_id, n, max(steps, 100), repeats),
            ]
        )
    reference = max((row[2] for row in rows if row[0].startswith("gymnasium")), default=np.nan)
    header = ["environment", "N", "env steps / s", "× gymnasium (best N)"]
    table = markdown_table(header, [[*row, row[2] / reference] for row in rows])
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("mujoco-warp", "warp-lang"))
    return (
        f"{env_id}, random actions, resets included\n\n{table}\n\n"
        f"Command: `{command_line()}`  \nMachine: {machine_info()}; {versions}"
    )

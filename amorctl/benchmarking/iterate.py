"""Throughput of the optimizer-as-MDP environment: natively batched against gymnasium's sync vectorization.

``scripts/benchmark.py iterate-throughput`` calls :func:`iterate_throughput`. Both forms run the same
family with the same :class:`~amorctl.envs.IterateEnv` options, those of the registered id
(:func:`~amorctl.envs.iterate_gym.registered_kwargs`; before 2026-11-30 the ids and this benchmark used
IterateEnv's own defaults), N copies, uniformly random
actions drawn before the clock starts, and auto-resets of finished episodes included; a reset before
each timed repeat is not timed. The batched form is :class:`~amorctl.envs.IterateEnv` with N rows; the
reference is ``gymnasium.make_vec(id, num_envs=N, vectorization_mode="sync")`` over the registered
single-instance :class:`~amorctl.envs.IterateGymEnv`, i.e. N Python-level environment steps per
vectorized step. The reference's N may be set lower (``sync_num_envs``): its rate per environment step
barely depends on N, and at N = 65,536 its 50 steps would take hours.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from amorctl.benchmarking.common import markdown_table, median

SEED = 0


def iterate_throughput(
    num_envs: int, family: str, steps: int, repeats: int, device: str = "cpu", sync_num_envs: int | None = None
) -> str:
    """A Markdown table of environment steps per second (N × vectorized steps / seconds, median of ``repeats``).

    Rows: the batched ``IterateEnv`` and gymnasium's ``SyncVectorEnv`` of the single-instance form,
    for ``family`` (a registered family name such as ``"quadratic"``) with ``num_envs`` copies and
    ``steps`` vectorized steps per repeat; a last column gives each row's speed relative to the
    sync reference. ``device`` is where the batched form runs (on CUDA its clock stops after a
    synchronisation); the sync reference always runs on the CPU, with ``sync_num_envs`` copies
    (``num_envs`` when None; its rows name its N).
    """
    import gymnasium as gym

    from amorctl.envs import ITERATE_ENV_IDS, IterateEnv, register_iterate_envs
    from amorctl.envs.iterate_gym import registered_kwargs
    from amorctl.problems import make_problem

    sync_num_envs = num_envs if sync_num_envs is None else sync_num_envs
    if min(num_envs, sync_num_envs, steps, repeats) < 1:
        raise ValueError(
            f"num_envs, sync_num_envs, steps and repeats must be positive, got {num_envs}, "
            f"{sync_num_envs}, {steps} and {repeats}"
        )
    ids = {name: env_id for env_id, name in ITERATE_ENV_IDS.items()}
    if family not in ids:
        raise ValueError(f"unknown family {family!r}; expected one of: {', '.join(sorted(ids))}")
    register_iterate_envs()

    options = registered_kwargs(family)
    batched = IterateEnv(make_problem(options.pop("problem")), num_envs, device=device, **options)
    generator = torch.Generator().manual_seed(SEED)
    actions = torch.rand(steps, max(num_envs, sync_num_envs), batched.action_dim, generator=generator) * 2 - 1
    device_actions = actions[:, :num_envs].to(batched.device)

    def run_batched() -> float:
        batched.reset(seed=SEED)
        start = time.perf_counter()
        for action in device_actions:
            batched.step(action)
        if batched.device.type == "cuda":
            torch.cuda.synchronize(batched.device)
        return time.perf_counter() - start

    sync = gym.make_vec(ids[family], num_envs=sync_num_envs, vectorization_mode="sync")
    sync_actions = actions[:, :sync_num_envs].numpy().astype(np.float32)

    def run_sync() -> float:
        sync.reset(seed=SEED)
        start = time.perf_counter()
        for action in sync_actions:
            sync.step(action)
        return time.perf_counter() - start

    try:
        batched_rate = num_envs * steps / median([run_batched() for _ in range(repeats)])
        sync_rate = sync_num_envs * steps / median([run_sync() for _ in range(repeats)])
    finally:
        sync.close()
    header = ["environment", "family", "N", "env steps / s", "× sync"]
    rows = [
        [f"IterateEnv (batched, {batched.device})", family, num_envs, batched_rate, batched_rate / sync_rate],
        ["gymnasium SyncVectorEnv of IterateGymEnv", family, sync_num_envs, sync_rate, 1.0],
    ]
    return markdown_table(header, rows)

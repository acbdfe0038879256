"""Are the registered ``amorctl/*`` gymnasium ids learnable by a stock client? stable-baselines3 with its defaults.

``scripts/benchmark.py gym-ids-sb3`` calls :func:`gym_ids_sb3`. For every id of
:data:`~amorctl.envs.ITERATE_ENV_IDS` and every algorithm (SAC, TD3, PPO) it trains
stable-baselines3's ``ALGO("MlpPolicy", gymnasium.make(id), seed=seed)`` — every hyper-parameter at
its default — for ``steps`` environment steps, then plays ``episodes`` evaluation episodes with the
deterministic policy, and the same episodes (``reset(seed=EVAL_SEED + k)``) with two reference
policies: uniformly random actions (drawn from a generator seeded per episode) and the zero action
(the geometric middle of the family's step range in the registered ``step_size`` mode). The bar
(issue 12 item 4): the trained policy's mean return is above both references for every id and
algorithm. Each run is one spawned, one-thread process, ``workers`` at a time.
"""

from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, one_thread

ALGORITHMS = ("SAC", "TD3", "PPO")
EVAL_SEED = 5_000_000
"""Evaluation episode k of every policy starts from ``reset(seed=EVAL_SEED + k)`` (apart from training's seeds)."""


@dataclass
class CellResult:
    """One trained run and its references on the same evaluation episodes."""

    env_id: str
    algorithm: str
    seed: int
    steps: int
    train_seconds: float
    trained_return: float
    trained_std: float
    random_return: float
    zero_return: float

    @property
    def beats_both(self) -> bool:
        return self.trained_return > max(self.random_return, self.zero_return)


def episode_returns(env_id: str, act, episodes: int, env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Returns of ``episodes`` episodes of ``gymnasium.make(env_id)``; ``act(obs, k)`` picks episode k's actions."""
    import gymnasium as gym

    env = gym.make(env_id, **(env_kwargs or {}))
    returns = np.zeros(episodes)
    for k in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + k)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, k))
            returns[k] += reward
            done = terminated or truncated
    env.close()
    return returns


def reference_returns(env_id: str, episodes: int, env_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """Mean returns of the random policy (uniform in the box) and of the zero action on the evaluation episodes."""
    generators: dict[int, np.random.Generator] = {}

    def random_action(obs: np.ndarray, k: int) -> np.ndarray:
        generator = generators.setdefault(k, np.random.default_rng(EVAL_SEED + k))
        return generator.uniform(-1.0, 1.0, size=1).astype(np.float32)

    zero = np.zeros(1, dtype=np.float32)
    return {
        "random": float(episode_returns(env_id, random_action, episodes, env_kwargs).mean()),
        "zero": float(episode_returns(env_id, lambda obs, k: zero, episodes, env_kwargs).mean()),
    }


def train_and_evaluate(env_id: str, algorithm: str, seed: int, steps: int, episodes: int,
                       env_kwargs: dict[str, Any] | None = None) -> CellResult:
    """Train stable-baselines3's ``algorithm`` with its default hyper-parameters on ``env_id``, then evaluate."""
    one_thread()
    import gymnasium as gym
    import stable_baselines3

    from amorctl.envs import register_iterate_envs

    register_iterate_envs()
    env = gym.make(env_id, **(env_kwargs or {}))
    model = getattr(stable_baselines3, algorithm)("MlpPolicy", env, seed=seed, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    train_seconds = time.perf_counter() - start
    trained = episode_returns(env_id, lambda obs, k: model.predict(obs, deterministic=True)[0], episodes, env_kwargs)
    references = reference_returns(env_id, episodes, env_kwargs)
    result = CellResult(env_id, algorithm, seed, steps, train_seconds, float(trained.mean()), float(trained.std()),
                        references["random"], references["zero"])
    log(f"{env_id} {algorithm} seed {seed}: {result.trained_return:.2f} (random {result.random_return:.2f}, "
        f"zero {result.zero_return:.2f}), {train_seconds:.0f} s")
    return result


def _load_average() -> str:
    import os

    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def _run(job: tuple) -> CellResult:
    return train_and_evaluate(*job)


def gym_ids_sb3(steps: int = 20_000, episodes: int = 50, seed: int = 0, workers: int = 2,
                algorithms: tuple[str, ...] = ALGORITHMS, env_ids: tuple[str, ...] | None = None,
                out: str = "benchmarks") -> str:
    """Run every (id, algorithm) cell, write ``gym_ids_sb3.csv`` / ``.json`` under ``out``; a Markdown report."""
    from amorctl.envs import ITERATE_ENV_IDS

    env_ids = tuple(env_ids or ITERATE_ENV_IDS)
    for name in algorithms:
        if name not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {name!r}; expected some of {', '.join(ALGORITHMS)}")
    jobs = [(env_id, name, seed, steps, episodes) for env_id in env_ids for name in algorithms]
    # The slow SAC/TD3 runs first, so that the pool ends with the short PPO runs.
    jobs.sort(key=lambda job: job[1] == "PPO")
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_run, jobs))
    results.sort(key=lambda r: (env_ids.index(r.env_id), algorithms.index(r.algorithm)))

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(r), "beats_both": r.beats_both} for r in results]
    with (folder / "gym_ids_sb3.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "gym_ids_sb3.json").write_text(json.dumps(rows, indent=2) + "\n")

    header = ["id", "algorithm", "trained return", "± std", "random", "zero action", "above both", "train s"]
    table = markdown_table(header, [
        [r.env_id, r.algorithm, r.trained_return, r.trained_std, r.random_return, r.zero_return,
         "yes" if r.beats_both else "**no**", r.train_seconds] for r in results
    ])
    met = sum(r.beats_both for r in results)
    return "\n".join([
        f"### stable-baselines3 defaults on the registered ids ({steps:,} steps, seed {seed}, {episodes} evaluation "
        "episodes, deterministic policy)",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}; load average {_load_average()}",
        "",
        table,
        "",
        f"Above both the random policy and the zero action: {met}/{len(results)} cells.",
    ])

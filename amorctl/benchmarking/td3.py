"""TD3 of amorctl against stable-baselines3's TD3: throughput, time to solve, and a wall-clock budget.

The only module of amorctl that imports stable-baselines3. Every measured process (the benchmark's
own, and each worker that trains concurrently) runs torch with one thread, so both implementations
get the same compute.

Evaluation protocol, shared by both sides of every learning comparison: every ``train.eval_every``
environment steps of the amorctl config, ``train.eval_episodes`` deterministic episodes on
``train.eval_envs`` copies of :class:`~amorctl.envs.GymVectorEnv`, the i-th evaluation seeded as training's
(:func:`amorctl.eval.seeds.periodic_eval_seed`) and played by :func:`amorctl.eval.rollouts.run_episodes`,
which stable-baselines3's policy goes through too; the threshold applies to the mean return. The clock
counts training only: evaluation time is excluded on both sides. amorctl trains through the one run loop
(:func:`amorctl.run.loop.train`, in a temporary run folder), whose periodic evaluations, early stops
(``train.target_return``, ``train.max_wall_seconds``) and training clock the harness records through
the loop's ``observer``; stable-baselines3 trains on
:func:`amorctl.envs.gym_adapter.make_gym_env` (actions mapped from [-1, 1] by the same
:class:`~amorctl.envs.ActionMap` as amorctl's environments), with the RL Zoo's hyper-parameters.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amorctl.benchmarking.common import command_line, machine_info, markdown_table, median

ENV_ID = "HalfCheetah-v5"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TASKS: dict[str, dict[str, Any]] = {
    "pendulum": {"config": "td3_pendulum.yaml", "threshold": -200.0, "max_steps": 60_000, "max_seconds": 900.0},
    "inverted_pendulum": {
        "config": "td3_inverted_pendulum.yaml", "threshold": 950.0, "max_steps": 100_000, "max_seconds": 1200.0,
    },
    "halfcheetah": {"config": "td3_halfcheetah.yaml", "threshold": None, "max_steps": 10_000_000, "max_seconds": None},
}

# RL Zoo (DLR-RM/rl-baselines3-zoo, hyperparams/td3.yml). Pendulum: the "Pendulum-v1" entry. MuJoCo: the
# "HalfCheetah-v4: &mujoco-defaults" entry, which the zoo also applies to its other MuJoCo tasks; the zoo
# has no InvertedPendulum entry for TD3, so InvertedPendulum-v5 gets the MuJoCo defaults as well.
ZOO_MUJOCO_DEFAULTS: dict[str, Any] = {
    "learning_starts": 10_000, "noise_std": 0.1, "train_freq": 1, "gradient_steps": 1,
    "learning_rate": 1e-3, "batch_size": 256, "net_arch": [400, 300],
}
ZOO: dict[str, dict[str, Any]] = {
    # As in the zoo's trained sb3/td3-Pendulum-v1 model card: one gradient step per env step, made at episode ends.
    "pendulum": {
        "entry": "Pendulum-v1", "gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "noise_std": 0.1,
        "gradient_steps": -1, "train_freq": (1, "episode"), "learning_rate": 1e-3, "net_arch": [400, 300],
    },
    "inverted_pendulum": {"entry": "HalfCheetah-v4 (&mujoco-defaults)", **ZOO_MUJOCO_DEFAULTS},
    "halfcheetah": {"entry": "HalfCheetah-v4 (&mujoco-defaults)", **ZOO_MUJOCO_DEFAULTS},
}


def _one_thread() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ====================================================================================== throughput
def _amorctl_throughput(learning_starts: int, steps: int, update_steps: int, seed: int) -> dict[str, float]:
    from amorctl.agents.td3 import TD3
    from amorctl.envs import GymVectorEnv

    env = GymVectorEnv(ENV_ID, 1, "cpu", "sync")
    agent = TD3(
        env, learning_rate=3e-4, batch_size=256, policy_delay=2, hidden_sizes=(256, 256), gradient_steps=1,
        learning_starts=learning_starts, buffer_size=learning_starts + steps + 1, seed=seed, device="cpu",
    )
    agent.collect_and_train(learning_starts)
    start = time.perf_counter()
    agent.collect_and_train(steps)
    env_steps_per_second = steps / (time.perf_counter() - start)
    update_steps += update_steps % agent.policy_delay  # whole policy_delay cycles
    start = time.perf_counter()
    for _ in range(update_steps):
        agent.train_step()
    update_seconds = (time.perf_counter() - start) / update_steps
    env.close()
    return {"steps_per_second": env_steps_per_second, "update_seconds": update_seconds}


def _sb3_throughput(learning_starts: int, steps: int, update_steps: int, seed: int) -> dict[str, float]:
    import gymnasium as gym
    from stable_baselines3 import TD3 as SB3TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    class StartClock(BaseCallback):
        start: float | None = None

        def _on_step(self) -> bool:
            if self.start is None and self.num_timesteps >= learning_starts:
                self.start = time.perf_counter()
            return True

    env = gym.make(ENV_ID)
    action_dim = env.action_space.shape[0]
    model = SB3TD3(
        "MlpPolicy", env, learning_rate=3e-4, batch_size=256, policy_delay=2, train_freq=1, gradient_steps=1,
        learning_starts=learning_starts, buffer_size=learning_starts + steps + 1,
        action_noise=NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim)),
        policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu",
    )
    clock = StartClock()
    model.learn(total_timesteps=learning_starts + steps, callback=clock)
    env_steps_per_second = steps / (time.perf_counter() - clock.start)
    update_steps += update_steps % model.policy_delay
    start = time.perf_counter()
    model.train(gradient_steps=update_steps, batch_size=256)
    update_seconds = (time.perf_counter() - start) / update_steps
    env.close()
    return {"steps_per_second": env_steps_per_second, "update_seconds": update_seconds}


def _bare_env_step(steps: int, seed: int) -> float:
    """Seconds per gymnasium HalfCheetah-v5 step with uniform random actions (episode resets included)."""
    import gymnasium as gym

    env = gym.make(ENV_ID)
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    seconds = (time.perf_counter() - start) / steps
    env.close()
    return seconds


def td3_throughput(repeats: int = 3, steps: int = 3000, learning_starts: int = 1000, update_steps: int = 1000,
                   env_steps: int = 20_000) -> str:
    """Section 1: environment steps per second after ``learning_starts`` (identical settings), the bare
    update and the bare environment step, alternating amorctl and stable-baselines3 ``repeats`` times."""
    _one_thread()
    runs: dict[str, list[dict[str, float]]] = {"amorctl": [], "stable-baselines3": []}
    env_seconds: list[float] = []
    for repeat in range(repeats):
        order = ["amorctl", "stable-baselines3"] if repeat % 2 == 0 else ["stable-baselines3", "amorctl"]
        for name in order:
            fn = _amorctl_throughput if name == "amorctl" else _sb3_throughput
            result = fn(learning_starts, steps, update_steps, seed=repeat)
            runs[name].append(result)
            _log(f"repeat {repeat} {name}: {result['steps_per_second']:.1f} steps/s, "
                 f"update {1e3 * result['update_seconds']:.3f} ms")
        env_seconds.append(_bare_env_step(env_steps, seed=repeat))
        _log(f"repeat {repeat} bare env step: {1e6 * env_seconds[-1]:.1f} µs")
        for result in (runs["amorctl"][-1], runs["stable-baselines3"][-1]):
            # Paired with the same repeat's measurements, so that a noisy repeat cancels out.
            result["fraction"] = result["steps_per_second"] * (result["update_seconds"] + env_seconds[-1])

    env_step = median(env_seconds)
    rows, sps = [], {}
    for name, results in runs.items():
        values = [r["steps_per_second"] for r in results]
        update = median([r["update_seconds"] for r in results])
        limit = 1.0 / (update + env_step)
        sps[name] = median(values)
        rows.append([
            name, sps[name], f"{min(values):,.0f}–{max(values):,.0f}", 1e3 * update, 1e6 * env_step, limit,
            f"{100 * sps[name] / limit:.1f} %", f"{100 * median([r['fraction'] for r in results]):.1f} %",
        ])
    header = [
        "implementation", "env steps/s (median)", "min–max", "bare update (ms)", "bare env step (µs)",
        "compute limit (steps/s)", "fraction of limit (medians)", "fraction of limit (median of per-repeat)",
    ]
    amorctl_limit = 1.0 / (median([r["update_seconds"] for r in runs["amorctl"]]) + env_step)
    lines = [
        f"### TD3 throughput on {ENV_ID} (256-256, batch 256, 1 gradient step per env step, policy delay 2, "
        f"CPU, 1 thread; {repeats} alternating repeats of {steps} steps after learning_starts={learning_starts})",
        "",
        markdown_table(header, rows),
        "",
        f"amorctl / stable-baselines3 env steps/s: **{sps['amorctl'] / sps['stable-baselines3']:.2f}×**; "
        f"amorctl at **{100 * sps['amorctl'] / amorctl_limit:.1f} %** of its compute limit from the medians, "
        f"**{100 * median([r['fraction'] for r in runs['amorctl']]):.1f} %** as the median of per-repeat fractions "
        "(limit = 1 / (bare update + bare env step); target ≥ 90 %).",
        "",
        "Per repeat (amorctl / SB3): steps/s "
        + ", ".join(f"{a['steps_per_second']:.0f} / {b['steps_per_second']:.0f}"
                    for a, b in zip(runs["amorctl"], runs["stable-baselines3"]))
        + "; update ms "
        + ", ".join(f"{1e3 * a['update_seconds']:.2f} / {1e3 * b['update_seconds']:.2f}"
                    for a, b in zip(runs["amorctl"], runs["stable-baselines3"]))
        + "; bare env step µs " + ", ".join(f"{1e6 * e:.1f}" for e in env_seconds)
        + "; fraction of limit " + ", ".join(f"{100 * a['fraction']:.1f} % / {100 * b['fraction']:.1f} %"
                                            for a, b in zip(runs["amorctl"], runs["stable-baselines3"])) + ".",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)


# ============================================================================== learning runs
@dataclass
class RunResult:
    implementation: str
    task: str
    seed: int
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (env step, train seconds, mean return)
    solved_seconds: float = math.inf
    solved_step: int | None = None
    final_return: float = math.nan
    final_step: int = 0
    final_seconds: float = 0.0
    eval_seconds: float = 0.0


def _load(task: str, seed: int, overrides: tuple[str, ...]):
    from amorctl.run.config import load_config

    return load_config(CONFIGS / TASKS[task]["config"], [*overrides, f"seed={seed}", "device=cpu"])


def _evaluator(config):
    """stable-baselines3's periodic evaluation, made as amorctl's learner makes its own.

    :class:`~amorctl.agents.OffPolicyLearner` plays its k-th evaluation by
    :func:`~amorctl.eval.rollouts.run_episodes` on ``train.eval_envs`` copies of the config's environment,
    from seed :func:`~amorctl.eval.seeds.periodic_eval_seed` ``(config.seed, k, train.eval_episodes)``;
    the returned callable does exactly that for any ``policy(obs) -> action`` (call k plays evaluation k).
    """
    from amorctl.envs.kinds import make_env
    from amorctl.eval.rollouts import run_episodes
    from amorctl.eval.seeds import periodic_eval_seed

    eval_env = make_env(config.env, config.train.eval_envs, torch.device("cpu"))
    count = [0]

    def run(policy_predict) -> float:
        episodes = config.train.eval_episodes
        result = run_episodes(policy_predict, eval_env, episodes, periodic_eval_seed(config.seed, count[0], episodes))
        count[0] += 1
        return result["mean_return"]

    return run


BUDGET_CHECK_STEPS = 1000
"""With a wall-clock budget, the run loop checks it at least this often (in env steps): ``train.log_every``
is lowered to it when the config's is longer (the loop checks its stops at each log/eval/checkpoint)."""


def run_amorctl(task: str, seed: int, threshold: float | None, budget_seconds: float | None,
                max_steps: int, overrides: tuple[str, ...] = ()) -> RunResult:
    """Train amorctl's TD3 with its shipped config for ``task`` through the run loop (:func:`amorctl.run.loop.train`).

    The run goes to a temporary run folder. ``train.total_steps`` = ``max_steps``, ``train.target_return`` =
    ``threshold`` and ``train.max_wall_seconds`` = ``budget_seconds`` make the loop's own stops end it; its
    periodic evaluations (every ``train.eval_every`` steps, and one at a stop between them) form the curve,
    recorded with the loop's training clock (evaluation, logging and checkpoints excluded).
    ``eval_seconds`` is the wall-clock spent outside that clock while the loop ran.
    """
    import tempfile
    from contextlib import redirect_stdout

    from amorctl.run.loop import train
    from amorctl.run.rundir import RunDir

    _one_thread()
    result = RunResult("amorctl", task, seed)
    with tempfile.TemporaryDirectory(prefix="amorctl-benchmark-") as runs_dir:
        stops = [f"runs_dir={runs_dir}", f"train.total_steps={max_steps}"]
        if threshold is not None:
            stops.append(f"train.target_return={threshold!r}")
        if budget_seconds is not None:
            stops.append(f"train.max_wall_seconds={budget_seconds!r}")
        config = _load(task, seed, (*overrides, *stops))
        if budget_seconds is not None and config.train.log_every > BUDGET_CHECK_STEPS:
            config = _load(task, seed, (*overrides, *stops, f"train.log_every={BUDGET_CHECK_STEPS}"))
        run = RunDir.create(config)
        clock = {"wall": time.perf_counter(), "train": 0.0}

        def observe(step: int, train_seconds: float, evaluation: dict[str, float]) -> None:
            now = time.perf_counter()
            result.eval_seconds += (now - clock["wall"]) - (train_seconds - clock["train"])
            clock["wall"], clock["train"] = now, train_seconds
            mean_return = evaluation["mean_return"]
            result.curve.append((step, train_seconds, mean_return))
            _log(f"amorctl {task} seed {seed}: step {step} train {train_seconds:.1f} s return {mean_return:.1f}")
            if threshold is not None and result.solved_step is None and mean_return >= threshold:
                result.solved_seconds, result.solved_step = train_seconds, step

        # the loop prints its final metrics table; keep stdout for the benchmark's Markdown report
        with redirect_stdout(sys.stderr):
            train(config, run, show_progress=False, observer=observe)
    result.final_step, result.final_seconds, result.final_return = result.curve[-1]
    return result


def run_sb3(task: str, seed: int, threshold: float | None, budget_seconds: float | None,
            max_steps: int, overrides: tuple[str, ...] = ()) -> RunResult:
    """Train stable-baselines3's TD3 with the RL Zoo's settings for ``task``, evaluated as amorctl is."""
    from stable_baselines3 import TD3 as SB3TD3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    from amorctl.envs.gym_adapter import make_gym_env

    _one_thread()
    config = _load(task, seed, overrides)
    zoo = ZOO[task]
    evaluate = _evaluator(config)
    result = RunResult("stable-baselines3", task, seed)
    every = config.train.eval_every
    env = make_gym_env(config.env.id)
    action_dim = env.action_space.shape[0]
    extra = {key: zoo[key] for key in ("gamma", "buffer_size", "batch_size") if key in zoo}
    model = SB3TD3(
        "MlpPolicy", env, learning_rate=zoo["learning_rate"], learning_starts=zoo["learning_starts"],
        train_freq=zoo["train_freq"], gradient_steps=zoo["gradient_steps"],
        action_noise=NormalActionNoise(np.zeros(action_dim), zoo["noise_std"] * np.ones(action_dim)),
        policy_kwargs={"net_arch": zoo["net_arch"]}, seed=seed, device="cpu", **extra,
    )

    def predict(obs: torch.Tensor) -> torch.Tensor:
        action, _ = model.predict(obs.numpy(), deterministic=True)
        return torch.as_tensor(action, dtype=torch.float32)

    class EvalAndClock(BaseCallback):
        """Evaluates every ``eval_every`` steps; the training clock excludes evaluation."""

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def train_seconds(self) -> float:
            return time.perf_counter() - self.start - result.eval_seconds

        def _on_step(self) -> bool:
            step = self.num_timesteps
            out_of_time = budget_seconds is not None and self.train_seconds() >= budget_seconds
            if step % every == 0 or out_of_time:
                elapsed = self.train_seconds()
                start = time.perf_counter()
                mean_return = evaluate(predict)
                result.eval_seconds += time.perf_counter() - start
                result.curve.append((step, elapsed, mean_return))
                _log(f"sb3 {task} seed {seed}: step {step} train {elapsed:.1f} s return {mean_return:.1f}")
                if threshold is not None and mean_return >= threshold:
                    result.solved_seconds, result.solved_step = elapsed, step
                    return False
            return not out_of_time

    callback = EvalAndClock()
    model.learn(total_timesteps=max_steps, callback=callback)
    if not result.curve or result.curve[-1][0] != model.num_timesteps:
        elapsed = callback.train_seconds()
        result.curve.append((model.num_timesteps, elapsed, evaluate(predict)))
    env.close()
    result.final_step, result.final_seconds, result.final_return = result.curve[-1]
    return result


def _run(job: tuple[str, str, int, float | None, float | None, int, tuple[str, ...]]) -> RunResult:
    implementation, *args = job
    return (run_amorctl if implementation == "amorctl" else run_sb3)(*args)


def _run_jobs(jobs: list[tuple], workers: int) -> list[RunResult]:
    """Each job in its own one-thread process, ``workers`` at a time (spawned, so nothing is shared)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_run, jobs))


def _write_curves(path: Path, results: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["implementation", "task", "seed", "env_steps", "train_seconds", "eval_mean_return"])
        for r in results:
            for step, seconds, mean_return in r.curve:
                writer.writerow([r.implementation, r.task, r.seed, step, f"{seconds:.3f}", f"{mean_return:.3f}"])


def _read_curves(paths: list[Path]) -> list[RunResult]:
    results: dict[tuple[str, int], RunResult] = {}
    for path in paths:
        with path.open() as file:
            for row in csv.DictReader(file):
                key = (row["implementation"], int(row["seed"]))
                r = results.setdefault(key, RunResult(row["implementation"], row["task"], int(row["seed"])))
                r.curve.append((int(row["env_steps"]), float(row["train_seconds"]), float(row["eval_mean_return"])))
    for r in results.values():
        r.final_step, r.final_seconds, r.final_return = r.curve[-1]
    return sorted(results.values(), key=lambda r: (r.implementation, r.seed))


# ============================================================================== time to solve
def td3_time_to_solve(task: str = "pendulum", seeds: int = 3, workers: int = 2, out: str = "benchmarks",
                      overrides: tuple[str, ...] = (), max_seconds: float | None = None) -> str:
    """Section 2: training seconds until the mean deterministic return first reaches the task's threshold.

    A run that has not reached it after ``max_seconds`` of training (default: the task's) counts as
    not reached (+inf in the median). The slower stable-baselines3 runs are queued first, so that the
    workers finish together.
    """
    _one_thread()
    spec = dict(TASKS[task])
    if max_seconds is not None:
        spec["max_seconds"] = max_seconds
    jobs = [
        (implementation, task, seed, spec["threshold"], spec["max_seconds"], spec["max_steps"], overrides)
        for implementation in ("stable-baselines3", "amorctl") for seed in range(seeds)
    ]
    results = sorted(_run_jobs(jobs, workers), key=lambda r: (r.implementation, r.seed))
    _write_curves(Path(out) / f"td3_time_to_solve_{task}.csv", results)
    config = _load(task, 0, overrides)
    rows, medians = [], {}
    for name in ("amorctl", "stable-baselines3"):
        mine = [r for r in results if r.implementation == name]
        medians[name] = median([r.solved_seconds for r in mine])
        rows.append([
            name, ", ".join(f"{r.solved_seconds:.1f}" if r.solved_step else "not reached" for r in mine),
            medians[name], ", ".join(str(r.solved_step) if r.solved_step else "–" for r in mine),
            sum(r.solved_step is not None for r in mine),
        ])
    ratio = medians["amorctl"] / medians["stable-baselines3"]
    zoo = ZOO[task]
    lines = [
        f"### TD3 time to solve {config.env.id} (mean deterministic return ≥ {spec['threshold']:g})",
        "",
        markdown_table(
            ["implementation", "train seconds per seed", "median (s)", "env steps per seed", "seeds solved"], rows
        ),
        "",
        f"amorctl median / stable-baselines3 median: **{ratio:.3f}** (target ≤ 0.333).",
        "",
        f"Protocol: {config.train.eval_episodes} deterministic episodes on {config.train.eval_envs} environments every "
        f"{config.train.eval_every} env steps; clock = training time only (evaluation excluded) for both; "
        f"{workers} runs at a time, each a one-thread process; a run gives up after {spec['max_steps']} steps "
        f"or {spec['max_seconds']:g} s of training.  ",
        f"amorctl: `configs/{spec['config']}` as shipped.  ",
        f"stable-baselines3: RL Zoo `hyperparams/td3.yml` entry {zoo['entry']}: "
        + ", ".join(f"{k}={v}" for k, v in zoo.items() if k != "entry") + ".  ",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)


# ================================================================================== budget
def td3_budget(minutes: float = 20.0, seeds: int = 2, first_seed: int = 0, out: str = "benchmarks",
               overrides: tuple[str, ...] = ()) -> str:
    """Section 3: HalfCheetah-v5 with a wall-clock training budget, amorctl and SB3 of a seed concurrently.

    Each seed's curves go to ``<out>/td3_budget_halfcheetah_seed<seed>.csv``; the table and the plot
    cover every seed file present, so seeds can be run in separate invocations.
    """
    budget = 60.0 * minutes
    for seed in range(first_seed, first_seed + seeds):
        jobs = [
            (name, "halfcheetah", seed, None, budget, 10_000_000, overrides)
            for name in ("amorctl", "stable-baselines3")
        ]
        results = _run_jobs(jobs, workers=2)
        _write_curves(Path(out) / f"td3_budget_halfcheetah_seed{seed}.csv", results)
    return budget_report(minutes, out)


def budget_report(minutes: float, out: str = "benchmarks") -> str:
    """Table and plot of every ``td3_budget_halfcheetah_seed*.csv`` in ``out``."""
    _one_thread()
    paths = sorted(Path(out).glob("td3_budget_halfcheetah_seed*.csv"))
    results = _read_curves(paths)
    rows = [[r.implementation, r.seed, r.final_return, r.final_step, r.final_seconds] for r in results]
    medians = {name: median([r.final_return for r in results if r.implementation == name])
               for name in ("amorctl", "stable-baselines3")}
    plot = Path(out) / "td3_budget_halfcheetah.png"
    _plot(results, plot, minutes)
    zoo = ZOO["halfcheetah"]
    lines = [
        f"### TD3 on {ENV_ID} with a {minutes:g}-minute training budget",
        "",
        markdown_table(["implementation", "seed", "final eval return", "env steps", "train seconds"], rows),
        "",
        "Median final return: " + ", ".join(f"{k} {v:,.0f}" for k, v in medians.items()) + ".  ",
        f"Curves: {', '.join(f'`{p}`' for p in paths)}; plot `{plot}`.  ",
        "amorctl: `configs/td3_halfcheetah.yaml` as shipped; stable-baselines3: RL Zoo "
        f"{zoo['entry']}: " + ", ".join(f"{k}={v}" for k, v in zoo.items() if k != "entry") + ".  ",
        "The two implementations of a seed trained concurrently, one one-thread process each; the clock counts "
        "training only (evaluation excluded); final eval at the end of the budget.  ",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)


def _plot(results: list[RunResult], path: Path, minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"amorctl": "tab:blue", "stable-baselines3": "tab:orange"}
    styles = ["-", "--", ":", "-."]
    for r in results:
        steps, seconds, returns = zip(*r.curve)
        label = f"{r.implementation} seed {r.seed}"
        style = styles[r.seed % len(styles)]
        axes[0].plot(np.array(seconds) / 60, returns, style, color=colors[r.implementation], label=label)
        axes[1].plot(steps, returns, style, color=colors[r.implementation], label=label)
    axes[0].set_xlabel("training wall-clock (minutes, evaluation excluded)")
    axes[1].set_xlabel("environment steps")
    for ax in axes:
        ax.set_ylabel("mean deterministic eval return")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"TD3 on {ENV_ID}, {minutes:g}-minute budget")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""TD3 of amorctl against stable-baselines3's TD3: time to solve and a wall-clock budget.

(The throughput section, shared by TD3 and SAC, is :mod:`amorctl.benchmarking.throughput`.) With that
module, the only code of amorctl that imports stable-baselines3. Every measured process (the benchmark's
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
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, median, one_thread
from amorctl.benchmarking.throughput import ENV_ID

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

    one_thread()
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
            log(f"amorctl {task} seed {seed}: step {step} train {train_seconds:.1f} s return {mean_return:.1f}")
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

    one_thread()
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
                log(f"sb3 {task} seed {seed}: step {step} train {elapsed:.1f} s return {mean_return:.1f}")
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
    one_thread()
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
    one_thread()
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

"""Learning runs of an amorctl off-policy agent against stable-baselines3's: time to solve, and the runs
behind the wall-clock budget section (:mod:`amorctl.benchmarking.td3`).

One harness for every algorithm, as the throughput section (:mod:`amorctl.benchmarking.throughput`): a
:class:`LearningSpec` names, per task, amorctl's shipped config file, and the stable-baselines3 class with the
RL Zoo's hyper-parameters for that algorithm and task; :data:`SPECS` holds TD3's, SAC's and DDPG's. With the
throughput module, the only code of amorctl that imports stable-baselines3. Every measured process (the
benchmark's own, and each worker that trains concurrently) runs torch with one thread, so both
implementations get the same compute.

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
from amorctl.benchmarking.throughput import _load_class
from amorctl.sweep.stats import summarize

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
NAMES = ("amorctl", "stable-baselines3")

TASKS: dict[str, dict[str, Any]] = {
    "pendulum": {"threshold": -200.0, "max_steps": 60_000, "max_seconds": 900.0},
    "inverted_pendulum": {"threshold": 950.0, "max_steps": 100_000, "max_seconds": 1200.0},
    "halfcheetah": {"threshold": None, "max_steps": 10_000_000, "max_seconds": None},
}
"""What a task asks of every algorithm: the return threshold (None: a budget task), and when a run gives up."""


@dataclass(frozen=True)
class LearningSpec:
    """An algorithm of the learning sections: amorctl's configs and stable-baselines3's RL Zoo settings.

    Args:
        name: the algorithm's name in the report (``"SAC"``).
        sb3_class: ``"module:Class"`` of the stable-baselines3 implementation.
        zoo_file: the RL Zoo file its settings come from (``"hyperparams/sac.yml"``).
        configs: task → amorctl config file in ``configs/``, run as shipped.
        zoo: task → the zoo's entry for that task: ``entry`` (its name in ``zoo_file``) and the keys the
            entry sets, in stable-baselines3's keyword names, except ``noise_std`` (normal action noise of
            that σ) and ``net_arch`` (the policy's ``net_arch``); every other setting is
            stable-baselines3's default, as in the zoo.
    """

    name: str
    sb3_class: str
    zoo_file: str
    configs: dict[str, str]
    zoo: dict[str, dict[str, Any]]


# DLR-RM/rl-baselines3-zoo, hyperparams/td3.yml. Pendulum: the "Pendulum-v1" entry. MuJoCo: the
# "HalfCheetah-v4: &mujoco-defaults" entry, which the zoo also applies to its other MuJoCo tasks; the zoo
# has no InvertedPendulum entry for TD3, so InvertedPendulum-v5 gets the MuJoCo defaults as well.
TD3_ZOO_MUJOCO_DEFAULTS: dict[str, Any] = {
    "learning_starts": 10_000, "noise_std": 0.1, "train_freq": 1, "gradient_steps": 1,
    "learning_rate": 1e-3, "batch_size": 256, "net_arch": [400, 300],
}
# DDPG's Pendulum entry (hyperparams/ddpg.yml) has the same keys and values as TD3's.
ZOO_PENDULUM_DETERMINISTIC: dict[str, Any] = {
    "gamma": 0.98, "buffer_size": 200_000, "learning_starts": 10_000, "noise_std": 0.1,
    "gradient_steps": -1, "train_freq": (1, "episode"), "learning_rate": 1e-3, "net_arch": [400, 300],
}

SPECS: dict[str, LearningSpec] = {
    "td3": LearningSpec(
        "TD3", "stable_baselines3:TD3", "hyperparams/td3.yml",
        configs={"pendulum": "td3_pendulum.yaml", "inverted_pendulum": "td3_inverted_pendulum.yaml",
                 "halfcheetah": "td3_halfcheetah.yaml"},
        zoo={
            # As in the zoo's trained sb3/td3-Pendulum-v1 model card: one gradient step per env step, made
            # at episode ends.
            "pendulum": {"entry": "Pendulum-v1", **ZOO_PENDULUM_DETERMINISTIC},
            "inverted_pendulum": {"entry": "HalfCheetah-v4 (&mujoco-defaults)", **TD3_ZOO_MUJOCO_DEFAULTS},
            "halfcheetah": {"entry": "HalfCheetah-v4 (&mujoco-defaults)", **TD3_ZOO_MUJOCO_DEFAULTS},
        },
    ),
    # hyperparams/sac.yml of DLR-RM/rl-baselines3-zoo (checked at commit c94924e, the rl_zoo3 era):
    # "Pendulum-v1: n_timesteps 20000, policy MlpPolicy, learning_rate 1e-3" and nothing else, so SB3's SAC
    # defaults hold for the rest (buffer 1e6, batch 256, gamma 0.99, tau 0.005, learning_starts 100,
    # train_freq 1, gradient_steps 1, ent_coef "auto", net_arch [256, 256]). MuJoCo: "HalfCheetah-v3:
    # &mujoco-defaults" sets only learning_starts 10000 (no InvertedPendulum entry, so it gets these).
    "sac": LearningSpec(
        "SAC", "stable_baselines3:SAC", "hyperparams/sac.yml",
        configs={"pendulum": "sac_pendulum.yaml", "inverted_pendulum": "sac_inverted_pendulum.yaml"},
        zoo={
            "pendulum": {"entry": "Pendulum-v1", "learning_rate": 1e-3},
            "inverted_pendulum": {"entry": "HalfCheetah-v3 (&mujoco-defaults)", "learning_starts": 10_000},
        },
    ),
    # hyperparams/ddpg.yml of DLR-RM/rl-baselines3-zoo (checked at commit 1159e28, where the entry is still
    # named Pendulum-v0; the zoo renamed it with gym's Pendulum-v1, values unchanged): gamma 0.98, buffer
    # 200000, learning_starts 10000, noise normal σ 0.1, gradient_steps -1, train_freq [1, "episode"],
    # learning_rate 1e-3, net_arch [400, 300]; batch 256 and tau 0.005 are SB3 defaults.
    "ddpg": LearningSpec(
        "DDPG", "stable_baselines3:DDPG", "hyperparams/ddpg.yml",
        configs={"pendulum": "ddpg_pendulum.yaml"},
        zoo={"pendulum": {"entry": "Pendulum-v1 (Pendulum-v0 in older copies)", **ZOO_PENDULUM_DETERMINISTIC}},
    ),
}


def _sb3_kwargs(zoo: dict[str, Any], action_dim: int) -> dict[str, Any]:
    """stable-baselines3 keyword arguments of a zoo entry (see :class:`LearningSpec`)."""
    from stable_baselines3.common.noise import NormalActionNoise

    kwargs = {key: value for key, value in zoo.items() if key not in ("entry", "noise_std", "net_arch")}
    if "noise_std" in zoo:
        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), zoo["noise_std"] * np.ones(action_dim))
    if "net_arch" in zoo:
        kwargs["policy_kwargs"] = {"net_arch": zoo["net_arch"]}
    return kwargs


def zoo_description(algorithm: str, task: str) -> str:
    """One line naming the zoo entry and its settings, for reports."""
    spec = SPECS[algorithm]
    zoo = spec.zoo[task]
    settings = ", ".join(f"{k}={v}" for k, v in zoo.items() if k != "entry")
    return f"RL Zoo `{spec.zoo_file}` entry {zoo['entry']}: {settings} (other settings: SB3 defaults)"


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


def _load(algorithm: str, task: str, seed: int, overrides: tuple[str, ...]):
    from amorctl.run.config import load_config

    return load_config(CONFIGS / SPECS[algorithm].configs[task], [*overrides, f"seed={seed}", "device=cpu"])


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


def run_amorctl(algorithm: str, task: str, seed: int, threshold: float | None, budget_seconds: float | None,
                max_steps: int, overrides: tuple[str, ...] = ()) -> RunResult:
    """Train amorctl's ``algorithm`` with its shipped config for ``task`` through the run loop
    (:func:`amorctl.run.loop.train`).

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
        config = _load(algorithm, task, seed, (*overrides, *stops))
        if budget_seconds is not None and config.train.log_every > BUDGET_CHECK_STEPS:
            config = _load(algorithm, task, seed, (*overrides, *stops, f"train.log_every={BUDGET_CHECK_STEPS}"))
        run = RunDir.create(config)
        clock = {"wall": time.perf_counter(), "train": 0.0}

        def observe(step: int, train_seconds: float, evaluation: dict[str, float]) -> None:
            now = time.perf_counter()
            result.eval_seconds += (now - clock["wall"]) - (train_seconds - clock["train"])
            clock["wall"], clock["train"] = now, train_seconds
            mean_return = evaluation["mean_return"]
            result.curve.append((step, train_seconds, mean_return))
            log(f"amorctl {algorithm} {task} seed {seed}: step {step} train {train_seconds:.1f} s "
                f"return {mean_return:.1f}")
            if threshold is not None and result.solved_step is None and mean_return >= threshold:
                result.solved_seconds, result.solved_step = train_seconds, step

        # the loop prints its final metrics table; keep stdout for the benchmark's Markdown report
        with redirect_stdout(sys.stderr):
            train(config, run, show_progress=False, observer=observe)
    result.final_step, result.final_seconds, result.final_return = result.curve[-1]
    return result


def run_sb3(algorithm: str, task: str, seed: int, threshold: float | None, budget_seconds: float | None,
            max_steps: int, overrides: tuple[str, ...] = ()) -> RunResult:
    """Train stable-baselines3's ``algorithm`` with the RL Zoo's settings for ``task``, evaluated as amorctl is."""
    from stable_baselines3.common.callbacks import BaseCallback

    from amorctl.envs.gym_adapter import make_gym_env

    one_thread()
    config = _load(algorithm, task, seed, overrides)
    evaluate = _evaluator(config)
    result = RunResult("stable-baselines3", task, seed)
    every = config.train.eval_every
    env = make_gym_env(config.env.id)
    kwargs = _sb3_kwargs(SPECS[algorithm].zoo[task], env.action_space.shape[0])
    model = _load_class(SPECS[algorithm].sb3_class)("MlpPolicy", env, seed=seed, device="cpu", **kwargs)

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
                log(f"sb3 {algorithm} {task} seed {seed}: step {step} train {elapsed:.1f} s return {mean_return:.1f}")
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


Job = tuple[str, str, str, int, "float | None", "float | None", int, tuple[str, ...]]
"""(implementation, algorithm, task, seed, threshold, budget seconds, max steps, amorctl overrides)."""


def _run(job: Job) -> RunResult:
    implementation, *args = job
    return (run_amorctl if implementation == "amorctl" else run_sb3)(*args)


def run_jobs(jobs: list[Job], workers: int) -> list[RunResult]:
    """Each job in its own one-thread process, ``workers`` at a time (spawned, so nothing is shared)."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(_run, jobs))


def write_curves(path: Path, results: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["implementation", "task", "seed", "env_steps", "train_seconds", "eval_mean_return"])
        for r in results:
            for step, seconds, mean_return in r.curve:
                writer.writerow([r.implementation, r.task, r.seed, step, f"{seconds:.3f}", f"{mean_return:.3f}"])


def read_curves(paths: list[Path]) -> list[RunResult]:
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
def time_to_solve(algorithm: str = "td3", task: str = "pendulum", seeds: int = 3, workers: int = 2,
                  out: str = "benchmarks", overrides: tuple[str, ...] = (), max_seconds: float | None = None,
                  implementations: tuple[str, ...] = NAMES, max_steps: int | None = None) -> str:
    """Section 2: training seconds until the mean deterministic return first reaches the task's threshold.

    ``algorithm`` is a key of :data:`SPECS`, ``task`` one of its ``configs``. A run that has not reached the
    threshold after ``max_seconds`` of training or ``max_steps`` env steps (defaults: the task's) counts as not
    reached (+inf in the median). The slower stable-baselines3 runs are queued first, so that the workers
    finish together. ``implementations`` may leave one side out (no ratio is then reported).
    """
    one_thread()
    spec = SPECS[algorithm]
    limits = dict(TASKS[task])
    if max_seconds is not None:
        limits["max_seconds"] = max_seconds
    if max_steps is not None:
        limits["max_steps"] = max_steps
    order = [name for name in ("stable-baselines3", "amorctl") if name in implementations]
    jobs: list[Job] = [
        (name, algorithm, task, seed, limits["threshold"], limits["max_seconds"], limits["max_steps"], overrides)
        for name in order for seed in range(seeds)
    ]
    results = sorted(run_jobs(jobs, workers), key=lambda r: (r.implementation, r.seed))
    curves = Path(out) / f"{algorithm}_time_to_solve_{task}.csv"
    write_curves(curves, results)
    config = _load(algorithm, task, 0, overrides)
    rows, medians = [], {}
    for name in NAMES:
        mine = [r for r in results if r.implementation == name]
        if not mine:
            continue
        medians[name] = median([r.solved_seconds for r in mine])
        rows.append([
            name, ", ".join(f"{r.solved_seconds:.1f}" if r.solved_step else "not reached" for r in mine),
            medians[name], ", ".join(str(r.solved_step) if r.solved_step else "–" for r in mine),
            sum(r.solved_step is not None for r in mine),
            ", ".join(f"{r.final_return:.1f} @ {r.final_step}" for r in mine),
        ])
    lines = [
        f"### {spec.name} time to solve {config.env.id} (mean deterministic return ≥ {limits['threshold']:g})",
        "",
        markdown_table(["implementation", "train seconds per seed", "median (s)", "env steps per seed",
                        "seeds solved", "last eval return @ step"], rows),
        "",
    ]
    if len(medians) == 2:
        ratio = medians["amorctl"] / medians["stable-baselines3"]
        shown = f"{ratio:.3f}" if not math.isnan(ratio) else "undefined (neither median reached)"
        lines += [f"amorctl median / stable-baselines3 median: **{shown}** (target ≤ 0.333).", ""]
    for name in medians:  # the final returns' seed statistics (amorctl.sweep.stats)
        finals = [r.final_return for r in results if r.implementation == name and math.isfinite(r.final_return)]
        if finals:
            row = summarize(finals)
            lines.append(f"{name} last eval return over {row['n']} seeds: IQM {row['iqm']:.1f} "
                         f"[{row['iqm_ci_low']:.1f}, {row['iqm_ci_high']:.1f}] (95 % bootstrap CI), "
                         f"mean {row['mean']:.1f} ± {row['stderr']:.1f} (standard error).  ")
    sides = []
    if "amorctl" in medians:
        sides.append(f"amorctl: `configs/{spec.configs[task]}` as shipped" + (
            f", overrides {' '.join(overrides)}" if overrides else "") + ".  ")
    if "stable-baselines3" in medians:
        sides.append(f"stable-baselines3: {spec.name}, {zoo_description(algorithm, task)}.  ")
    lines += [
        f"Protocol: {config.train.eval_episodes} deterministic episodes on {config.train.eval_envs} environments every "
        f"{config.train.eval_every} env steps; clock = training time only (evaluation excluded) for both; "
        f"{workers} runs at a time, each a one-thread process; a run gives up after {limits['max_steps']} steps "
        f"or {limits['max_seconds']:g} s of training. Curves: `{curves}`.  ",
        *sides,
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)

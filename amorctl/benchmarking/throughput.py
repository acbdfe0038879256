"""Throughput of an amorctl off-policy agent against stable-baselines3's, with identical settings.

One harness for every algorithm: a :class:`ThroughputSpec` names the amorctl class, the
stable-baselines3 class and the settings in which the two differ; :data:`SPECS` holds TD3's and SAC's.
Settings shared by every algorithm: HalfCheetah-v5, 256-256 networks, batch 256, one gradient step per
environment step, learning rate 3e-4, one environment, CPU, one torch thread, both implementations in
the same process in alternating order. Per repeat and implementation: ``learning_starts`` random steps,
then ``steps`` timed steps with training (→ env steps/s), then ``update_steps`` bare updates on the
filled buffer (batch sampling included); then, once per repeat, the bare gymnasium environment step.
Compute limit = 1 / (bare update + bare env step).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, median, one_thread

ENV_ID = "HalfCheetah-v5"
NAMES = ("amorctl", "stable-baselines3")


def _td3_sb3_kwargs(action_dim: int) -> dict[str, Any]:
    from stable_baselines3.common.noise import NormalActionNoise

    return {"policy_delay": 2, "action_noise": NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim))}


@dataclass(frozen=True)
class ThroughputSpec:
    """An algorithm of the throughput section: its two classes and the settings that are its own.

    Args:
        name: the algorithm's name in the report (``"TD3"``).
        amorctl_class, sb3_class: ``"module:Class"`` of the two implementations.
        amorctl_kwargs: keyword arguments of the amorctl class beyond the shared settings.
        sb3_kwargs: keyword arguments of the stable-baselines3 class beyond the shared settings, from the
            action dimension (an action-noise object is built per run).
        settings: the algorithm's own settings, for the report's title.
        ratio_target: the amorctl / stable-baselines3 steps/s the issue asks for, if any.
    """

    name: str
    amorctl_class: str
    sb3_class: str
    amorctl_kwargs: dict[str, Any] = field(default_factory=dict)
    sb3_kwargs: Callable[[int], dict[str, Any]] = lambda action_dim: {}
    settings: str = ""
    ratio_target: float | None = None


SPECS: dict[str, ThroughputSpec] = {
    "td3": ThroughputSpec(
        "TD3", "amorctl.agents:TD3", "stable_baselines3:TD3",
        amorctl_kwargs={"policy_delay": 2, "exploration_noise": 0.1}, sb3_kwargs=_td3_sb3_kwargs,
        settings="policy delay 2",
    ),
    "sac": ThroughputSpec(
        "SAC", "amorctl.agents:SAC", "stable_baselines3:SAC",
        amorctl_kwargs={"ent_coef": "auto"}, sb3_kwargs=lambda action_dim: {"ent_coef": "auto"},
        settings="lr 3e-4, automatic entropy temperature", ratio_target=1.1,
    ),
}


def _load_class(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _whole_cycles(update_steps: int, model: Any) -> int:
    """``update_steps`` rounded up to whole policy-delay cycles (TD3 updates its actor every d-th step)."""
    cycle = getattr(model, "policy_delay", 1)
    return update_steps + (-update_steps % cycle)


def amorctl_throughput(
    spec: ThroughputSpec, learning_starts: int, steps: int, update_steps: int, seed: int
) -> dict[str, float]:
    """amorctl's env steps/s after ``learning_starts`` (``collect_and_train``) and its bare ``train_step``."""
    from amorctl.envs import GymVectorEnv

    env = GymVectorEnv(ENV_ID, 1, "cpu", "sync")
    agent = _load_class(spec.amorctl_class)(
        env, learning_rate=3e-4, batch_size=256, hidden_sizes=(256, 256), gradient_steps=1,
        learning_starts=learning_starts, buffer_size=learning_starts + steps + 1, seed=seed, device="cpu",
        **spec.amorctl_kwargs,
    )
    agent.collect_and_train(learning_starts)
    start = time.perf_counter()
    agent.collect_and_train(steps)
    env_steps_per_second = steps / (time.perf_counter() - start)
    update_steps = _whole_cycles(update_steps, agent)
    start = time.perf_counter()
    for _ in range(update_steps):
        agent.train_step()
    update_seconds = (time.perf_counter() - start) / update_steps
    env.close()
    return {"steps_per_second": env_steps_per_second, "update_seconds": update_seconds}


def sb3_throughput(
    spec: ThroughputSpec, learning_starts: int, steps: int, update_steps: int, seed: int
) -> dict[str, float]:
    """stable-baselines3's env steps/s after ``learning_starts`` (``learn``) and its bare ``train``."""
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    class StartClock(BaseCallback):
        start: float | None = None

        def _on_step(self) -> bool:
            if self.start is None and self.num_timesteps >= learning_starts:
                self.start = time.perf_counter()
            return True

    env = gym.make(ENV_ID)
    model = _load_class(spec.sb3_class)(
        "MlpPolicy", env, learning_rate=3e-4, batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
        learning_starts=learning_starts, buffer_size=learning_starts + steps + 1,
        policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", **spec.sb3_kwargs(env.action_space.shape[0]),
    )
    clock = StartClock()
    model.learn(total_timesteps=learning_starts + steps, callback=clock)
    env_steps_per_second = steps / (time.perf_counter() - clock.start)
    update_steps = _whole_cycles(update_steps, model)
    start = time.perf_counter()
    model.train(gradient_steps=update_steps, batch_size=256)
    update_seconds = (time.perf_counter() - start) / update_steps
    env.close()
    return {"steps_per_second": env_steps_per_second, "update_seconds": update_seconds}


def bare_env_step(steps: int, seed: int) -> float:
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


def throughput(algorithm: str, repeats: int = 3, steps: int = 3000, learning_starts: int = 1000,
               update_steps: int = 1000, env_steps: int = 20_000) -> str:
    """The throughput section of ``algorithm`` (a key of :data:`SPECS`) as Markdown: environment steps per
    second after ``learning_starts`` (identical settings), the bare update and the bare environment step,
    alternating amorctl and stable-baselines3 ``repeats`` times."""
    spec = SPECS[algorithm]
    one_thread()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in NAMES}
    env_seconds: list[float] = []
    for repeat in range(repeats):
        for name in NAMES if repeat % 2 == 0 else NAMES[::-1]:
            fn = amorctl_throughput if name == "amorctl" else sb3_throughput
            result = fn(spec, learning_starts, steps, update_steps, seed=repeat)
            runs[name].append(result)
            log(f"{spec.name} repeat {repeat} {name}: {result['steps_per_second']:.1f} steps/s, "
                f"update {1e3 * result['update_seconds']:.3f} ms")
        env_seconds.append(bare_env_step(env_steps, seed=repeat))
        log(f"repeat {repeat} bare env step: {1e6 * env_seconds[-1]:.1f} µs")
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
    pairs = list(zip(runs["amorctl"], runs["stable-baselines3"]))
    ratios = [a["steps_per_second"] / b["steps_per_second"] for a, b in pairs]
    amorctl_limit = 1.0 / (median([r["update_seconds"] for r in runs["amorctl"]]) + env_step)
    target = f" (target ≥ {spec.ratio_target:g}×)" if spec.ratio_target is not None else ""
    settings = f", {spec.settings}" if spec.settings else ""
    lines = [
        f"### {spec.name} throughput on {ENV_ID} (256-256, batch 256, 1 gradient step per env step{settings}, "
        f"CPU, 1 thread; {repeats} alternating repeats of {steps} steps after learning_starts={learning_starts})",
        "",
        markdown_table(header, rows),
        "",
        f"amorctl / stable-baselines3 env steps/s: **{sps['amorctl'] / sps['stable-baselines3']:.2f}×**{target}, "
        f"median of per-repeat ratios {median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}); "
        f"amorctl at **{100 * sps['amorctl'] / amorctl_limit:.1f} %** of its compute limit from the medians, "
        f"**{100 * median([r['fraction'] for r in runs['amorctl']]):.1f} %** as the median of per-repeat fractions "
        "(limit = 1 / (bare update + bare env step); target ≥ 90 %).",
        "",
        "Per repeat (amorctl / SB3): steps/s "
        + ", ".join(f"{a['steps_per_second']:.0f} / {b['steps_per_second']:.0f}" for a, b in pairs)
        + "; update ms "
        + ", ".join(f"{1e3 * a['update_seconds']:.2f} / {1e3 * b['update_seconds']:.2f}" for a, b in pairs)
        + "; bare env step µs " + ", ".join(f"{1e6 * e:.1f}" for e in env_seconds)
        + "; fraction of limit "
        + ", ".join(f"{100 * a['fraction']:.1f} % / {100 * b['fraction']:.1f} %" for a, b in pairs) + ".",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine_info()}",
    ]
    return "\n".join(lines)

"""A control run: TD3 on a gymnasium task, with evaluation, TensorBoard, checkpoints and resume."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from amorctl.agents.td3 import TD3
from amorctl.envs import BatchedEnv, GymVectorEnv, IterateEnv
from amorctl.eval.direct import format_table
from amorctl.eval.rollouts import run_episodes
from amorctl.eval.seeds import periodic_eval_seed
from amorctl.problems import make_problem
from amorctl.run.checkpoint import restore_latest, save_checkpoint
from amorctl.run.config import TD3Config, resolve_device
from amorctl.run.errors import ConfigError
from amorctl.run.finite import check_finite, parameters_of
from amorctl.run.rundir import RunDir


def make_env(config: TD3Config, num_envs: int, device: torch.device) -> BatchedEnv:
    """The configured environment with ``num_envs`` copies: a gymnasium task or a solver's iterations."""
    if config.env.kind == "iterate":
        return IterateEnv(make_problem(**config.env.problem), num_envs, device=device, **config.env.iterate)
    extra = {"max_episode_steps": config.env.max_episode_steps} if config.env.max_episode_steps else {}
    return GymVectorEnv(config.env.id, num_envs, device, config.env.vectorization, **extra)


def make_td3(config: TD3Config, env: BatchedEnv, device: torch.device) -> TD3:
    return TD3(env, **config.td3.model_dump(), seed=config.seed, device=device)


def train_td3(config: TD3Config, run: RunDir, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train TD3 as configured; returns the final evaluation (also in ``eval/metrics.json``).

    Evaluation runs every ``train.eval_every`` transitions on separate environments. Checkpoints
    restart the training episodes (they are not part of a checkpoint), so that a resumed run and
    an uninterrupted one see the same stream; with ``train.save_replay_buffer`` they continue
    identically on the CPU.
    """
    device = resolve_device(config)
    train_env = make_env(config, config.env.num_envs, device)
    eval_env = writer = progress = None
    try:
        eval_env = make_env(config, config.train.eval_envs, device)
        agent = make_td3(config, train_env, device)
        last_checkpoint = None
        if resume:
            load = lambda saved: agent.load_state_dict(saved["agent"])  # noqa: E731
            last_checkpoint, state = restore_latest(run.checkpoints, load)
            # a vectorized step adds N transitions, so a finished run may stop up to N - 1 past total_steps
            if agent.num_timesteps >= config.train.total_steps + train_env.num_envs:
                raise ConfigError(
                    f"config key 'train.total_steps' is {config.train.total_steps}, "
                    f"but the checkpoint is already at step {agent.num_timesteps}"
                )
            run.save_config(config)
        evaluations = state.get("evaluations", 0) if resume else 0
        elapsed = state.get("elapsed_seconds", 0.0) if resume else 0.0
        writer = SummaryWriter(str(run.events), purge_step=agent.num_timesteps + 1 if resume else None)
        progress = tqdm(
            total=config.train.total_steps, initial=agent.num_timesteps, desc=config.name,
            disable=not show_progress, dynamic_ncols=True, unit="step",
        )
        train_cfg = config.train
        result: dict[str, float] = {}
        result_step = None  # the step ``result`` was evaluated at
        steps_at_start = agent.num_timesteps
        stop_reason = "total_steps"
        while agent.num_timesteps < train_cfg.total_steps:
            chunk_start, steps_before = time.perf_counter(), agent.num_timesteps
            boundary = min(train_cfg.total_steps, _next_multiple(steps_before, train_cfg.log_every))
            try:
                metrics = agent.collect_and_train(boundary - steps_before)
            except ValueError:
                # non-finite parameters act NaN, which the environment refuses in the middle of the window
                check_finite_td3(agent, agent.num_timesteps, last_checkpoint)
                raise
            step = agent.num_timesteps
            seconds = time.perf_counter() - chunk_start
            elapsed += seconds
            check_finite_td3(agent, step, last_checkpoint)
            _log_train(writer, metrics, step, (step - steps_before) / max(seconds, 1e-9))
            progress.update(step - steps_before)
            if _crossed(steps_before, step, train_cfg.eval_every) or step >= train_cfg.total_steps:
                result, result_step = _evaluate_and_log(agent, eval_env, config, evaluations, writer, elapsed), step
                evaluations += 1
                progress.set_postfix(eval_return=f"{result['mean_return']:.1f}")
            done_early = _stop_reason(train_cfg, result, elapsed)
            if _crossed(steps_before, step, train_cfg.checkpoint_every) or step >= train_cfg.total_steps or done_early:
                state = {
                    "step": step,
                    "agent": agent.state_dict(include_replay_buffer=train_cfg.save_replay_buffer),
                    "evaluations": evaluations,
                    "elapsed_seconds": elapsed,
                }
                last_checkpoint = save_checkpoint(run.checkpoints, step, state, train_cfg.keep_checkpoints)
                agent.restart_episodes()
            if done_early:
                stop_reason = done_early
                break
        if result_step != agent.num_timesteps:
            # A wall-clock stop between evaluations, or a resume at total_steps: evaluate the final policy
            # (after the checkpoint, so that the saved evaluation counter is an uninterrupted run's). It is
            # logged only when new: a run resumed at total_steps logged its final evaluation already.
            trained = agent.num_timesteps > steps_at_start
            result = _evaluate_and_log(agent, eval_env, config, evaluations, writer if trained else None, elapsed)
    finally:
        # close the writer even on a NaN stop or an interrupt, so the events logged so far are kept
        for resource in (progress, writer, eval_env, train_env):
            if resource is not None:
                resource.close()
    final = {"step": agent.num_timesteps, "wall_seconds": elapsed, "stop_reason": stop_reason, **result}
    run.write_metrics(final)
    print(format_table(final))
    return final


def _evaluate_and_log(
    agent: TD3, env: BatchedEnv, config: TD3Config, index: int, writer: SummaryWriter | None, elapsed: float
) -> dict[str, Any]:
    """The ``index``-th evaluation of a run (its seeds: :func:`amorctl.eval.seeds.periodic_eval_seed`), logged."""
    seed = periodic_eval_seed(config.seed, index, config.train.eval_episodes)
    result = run_episodes(agent.predict, env, config.train.eval_episodes, seed)
    if writer is None:
        return result
    step = agent.num_timesteps
    writer.add_scalar("eval/mean_return", result["mean_return"], step)
    writer.add_scalar("eval/mean_length", result["mean_length"], step)
    writer.add_scalar("eval/wall_seconds", elapsed, step)
    return result


def check_finite_td3(agent: TD3, step: int, last_checkpoint) -> None:
    """Stop on the first NaN or Inf, in the order a divergence spreads: losses, critics, actor."""
    critic, actor = parameters_of(agent.critic, "critic."), parameters_of(agent.actor, "actor.")
    check_finite({**agent.latest_losses(), **critic, **actor}, step, last_checkpoint)


def _log_train(writer: SummaryWriter, metrics: dict[str, torch.Tensor], step: int, steps_per_second: float) -> None:
    """TensorBoard scalars of one logging window (checked finite by :func:`check_finite_td3` first)."""
    names = {
        "charts/episodic_return": "train/episodic_return",
        "charts/episodic_length": "train/episodic_length",
        "losses/qf_loss": "loss/critic",
        "losses/actor_loss": "loss/actor",
        "losses/qf1_values": "train/q_mean",
    }
    for key, value in metrics.items():
        if key in names:
            writer.add_scalar(names[key], float(value), step)
    writer.add_scalar("perf/steps_per_second", steps_per_second, step)


def _stop_reason(train_cfg, result: dict[str, float], elapsed: float) -> str | None:
    if train_cfg.target_return is not None and result and result["mean_return"] >= train_cfg.target_return:
        return "target_return"
    if train_cfg.max_wall_seconds is not None and elapsed >= train_cfg.max_wall_seconds:
        return "max_wall_seconds"
    return None


def _next_multiple(value: int, every: int) -> int:
    return (value // every + 1) * every


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, after]."""
    return after // every > before // every

"""The one run loop: drives any registered learner through its schedule in a run directory.

Everything around the learner lives here, once: device and seeding, resume (with the config checks
that keep a run resumable), TensorBoard, the progress bar, the log/eval/checkpoint schedule, early
stops (a target evaluation metric, a wall-clock budget), the stop on a NaN or Inf, and the final
metrics in ``eval/metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from amorctl.agents import AGENTS, Learner
from amorctl.eval.direct import format_table
from amorctl.run.checkpoint import restore_latest, save_checkpoint
from amorctl.run.config import changed_keys, check_resumable, config_dict, resolve_device, validate_config
from amorctl.run.errors import CheckpointError, ConfigError
from amorctl.run.finite import check_finite
from amorctl.run.rundir import RunDir
from amorctl.schema import RunConfig, Schedule

Observer = Callable[[int, float, dict[str, float]], None]
"""``observer(progress, training_seconds, evaluation)``, called after every evaluation (benchmarks record curves)."""


def train(
    config: RunConfig,
    run: RunDir,
    *,
    resume: bool = False,
    show_progress: bool = True,
    observer: Observer | None = None,
) -> dict[str, Any]:
    """Train ``config``'s agent in ``run``; returns the final metrics (also written to ``eval/metrics.json``).

    With ``resume=True`` the run continues from its latest checkpoint with the same counters and
    random streams. ``config`` is then the run's ``config.yaml`` with the user's overrides: a change
    to a key the agent cannot apply mid-run is refused, ``config.yaml`` must agree with the
    checkpoint, and the new ``config.yaml`` is written (atomically) only once the restore succeeded.
    A run already at its end is reported, not evaluated again.

    Raises :class:`~amorctl.run.errors.NonFiniteError` on a NaN or Inf (the last good checkpoint is
    kept), :class:`~amorctl.run.errors.ConfigError` / :class:`~amorctl.run.errors.CheckpointError`
    on bad input.
    """
    schedule = config.schedule()
    if resume:
        check_resumable(run.load_config(), config)
    device = resolve_device(config)
    torch.manual_seed(config.seed)
    learner = AGENTS[config.agent].build(config, device, False)
    writer = bar = None
    try:
        last_checkpoint, elapsed = None, 0.0
        if resume:
            last_checkpoint, elapsed = _restore(learner, run, config, schedule)
            run.remove_temporaries()
            if learner.progress >= schedule.total and (finished := _finished_metrics(run)) is not None:
                print(f"{run.root} already finished at step {learner.progress}; raise {schedule.total_key} to continue")
                return finished  # nothing trains, so config.yaml keeps the settings the run had
            run.save_config(config)
        writer = SummaryWriter(str(run.events), purge_step=learner.progress + 1 if resume else None)
        bar = tqdm(total=schedule.total, initial=min(learner.progress, schedule.total), desc=config.name,
                   disable=not show_progress, dynamic_ncols=True)
        evaluation: dict[str, float] = {}
        started_at, evaluated_at = learner.progress, None
        stop_reason = schedule.total_key.rsplit(".", 1)[-1]
        window_start, window_seconds = learner.progress, 0.0
        while learner.progress < schedule.total:
            before = learner.progress
            started = time.perf_counter()
            try:
                metrics = learner.advance(_next_boundary(before, schedule) - before)
            except ValueError:
                # non-finite parameters act NaN, which an environment refuses in the middle of a window
                check_finite(learner.finite_quantities(), learner.progress, last_checkpoint)
                raise
            seconds = time.perf_counter() - started
            elapsed += seconds
            window_seconds += seconds
            step = learner.progress
            check_finite({**metrics, **learner.finite_quantities()}, step, last_checkpoint)
            done = step >= schedule.total
            if _crossed(before, step, schedule.log_every) or done:
                for tag, value in metrics.items():
                    writer.add_scalar(tag, float(value), step)
                writer.add_scalar("perf/steps_per_second", (step - window_start) / max(window_seconds, 1e-9), step)
                window_start, window_seconds = step, 0.0
            if _crossed(before, step, schedule.eval_every) or done:
                evaluation, evaluated_at = _evaluate(learner, writer, elapsed, bar, observer), step
            early = _early_stop(schedule, evaluation, elapsed)
            if _crossed(before, step, schedule.checkpoint_every) or done or early:
                state = {"step": step, "learner": learner.state_dict(), "elapsed_seconds": elapsed,
                         "config": config_dict(config)}
                last_checkpoint = save_checkpoint(run.checkpoints, step, state, schedule.keep_checkpoints)
                learner.on_checkpoint()
            bar.update(step - before)
            if early:
                stop_reason = early
                break
        if evaluated_at != learner.progress and learner.progress > started_at:
            # a wall-clock or target stop between evaluations: evaluate the final policy too (after the
            # checkpoint, so that the saved evaluation counter is an uninterrupted run's)
            _evaluate(learner, writer, elapsed, bar, observer)
        final = {"step": learner.progress, "wall_seconds": elapsed, "stop_reason": stop_reason,
                 **learner.final_metrics()}
        for key, value in final.items():
            if isinstance(value, float) and key != "wall_seconds":
                writer.add_scalar(f"final/{key}", value, learner.progress)
    finally:
        # close everything even on a NaN stop or an interrupt, so the events logged so far are kept
        for resource in (bar, writer, learner):
            if resource is not None:
                resource.close()
    run.write_metrics(final)
    print(format_table(final))
    return final


def _evaluate(learner: Learner, writer: SummaryWriter, elapsed: float, bar: tqdm, observer: Observer | None) -> dict:
    """One periodic evaluation, logged under ``eval/`` at the learner's progress and shown on the bar."""
    evaluation = learner.evaluate()
    for key, value in evaluation.items():
        writer.add_scalar(f"eval/{key}", value, learner.progress)
    writer.add_scalar("eval/wall_seconds", elapsed, learner.progress)
    bar.set_postfix({key: f"{value:.4g}" for key, value in list(evaluation.items())[:2]})
    if observer is not None:
        observer(learner.progress, elapsed, evaluation)
    return evaluation


def _restore(learner: Learner, run: RunDir, config: RunConfig, schedule: Schedule) -> tuple[Any, float]:
    """Load the latest checkpoint into ``learner``; returns its path and the training seconds so far.

    The checkpoint's own copy of the config must agree with ``config.yaml`` on every key that a
    resume cannot change (an edited, emptied or truncated ``config.yaml`` is refused).
    """
    path, state = restore_latest(run.checkpoints, lambda saved: learner.load_state_dict(saved["learner"]))
    if "config" in state:
        saved = run.load_config()
        try:
            trained = validate_config(state["config"])
        except ConfigError as error:
            raise CheckpointError(f"checkpoint {str(path)!r} holds a config that no longer validates: {error}") \
                from None
        allowed = type(trained).RESUMABLE
        for key in changed_keys(config_dict(trained), config_dict(saved)):
            if not any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed):
                raise CheckpointError(
                    f"config.yaml of {str(run.root)!r} disagrees with checkpoint {path.name} on {key!r}; "
                    "was it edited? restore it, or start a new run"
                )
    if learner.progress > schedule.total + learner.overshoot:
        raise ConfigError(
            f"config key {schedule.total_key!r} is {schedule.total}, but the checkpoint is already at step "
            f"{learner.progress}"
        )
    elapsed = state.get("elapsed_seconds", 0.0)
    return path, float(elapsed) if isinstance(elapsed, int | float) and math.isfinite(elapsed) else 0.0


def _finished_metrics(run: RunDir) -> dict[str, Any] | None:
    """The final metrics a finished run wrote, or ``None`` when they are missing or unreadable."""
    try:
        metrics = json.loads((run.eval / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) else None


def _early_stop(schedule: Schedule, evaluation: dict[str, float], elapsed: float) -> str | None:
    if schedule.target is not None and schedule.target[0] in evaluation:
        key, value = schedule.target
        if evaluation[key] >= value:
            return schedule.target_key.rsplit(".", 1)[-1]
    if schedule.max_wall_seconds is not None and elapsed >= schedule.max_wall_seconds:
        return "max_wall_seconds"
    return None


def _next_boundary(progress: int, schedule: Schedule) -> int:
    """The next multiple of the log, eval or checkpoint period after ``progress`` (or the total)."""
    periods = (schedule.log_every, schedule.eval_every, schedule.checkpoint_every)
    return min(schedule.total, *((progress // every + 1) * every for every in periods))


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, after]."""
    return after // every > before // every

"""The training run: builds everything a config names, trains, logs, checkpoints and evaluates."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from amorctl.agents.direct import DirectAmortization
from amorctl.control import train_td3
from amorctl.eval.direct import ReferenceSet, evaluate_model, format_table, gap_metrics
from amorctl.models import FullyAmortizedMLP, TanhBox
from amorctl.problems import Problem, make_problem
from amorctl.run.checkpoint import restore_latest, save_checkpoint
from amorctl.run.config import Config, DirectConfig, TD3Config, resolve_device
from amorctl.run.errors import ConfigError
from amorctl.run.finite import check_finite, parameters_of
from amorctl.run.rundir import RunDir


def build_model(config: DirectConfig, problem: Problem) -> FullyAmortizedMLP:
    """The MLP of ``config.model`` for ``problem``, ending in a tanh projection onto its box if any."""
    projection = config.model.projection
    if projection == "auto":
        projection = "tanh" if problem.bounds is not None else "none"
    if projection == "tanh" and problem.bounds is None:
        raise ValueError(f"model.projection='tanh' needs a box domain, but {type(problem).__name__} has none")
    return FullyAmortizedMLP(
        problem.context_dim,
        problem.solution_dim,
        config.model.hidden_sizes,
        config.model.activation,
        TanhBox(*problem.bounds) if projection == "tanh" else None,
    )


def train_direct(config: DirectConfig, run: RunDir, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train the run's amortization model, write checkpoints and ``eval/metrics.json``; returns the final metrics.

    With ``resume=True`` the latest checkpoint in ``run`` is loaded first and training continues
    from its step with the same random streams; ``config`` (which may extend ``train.steps``)
    then replaces the run's ``config.yaml``. A NaN or Inf loss or parameter raises
    :class:`NonFiniteError` naming the step and the quantity, leaving the last good checkpoint.
    A family without a reference solver is evaluated on its objective only.
    """
    device = resolve_device(config)
    torch.manual_seed(config.seed)
    problem = make_problem(**config.problem)
    model = build_model(config, problem).to(device)
    learner = DirectAmortization(
        problem,
        model,
        loss=config.loss.kind,
        regression_weight=config.loss.regression_weight,
        optimizer=config.train.optimizer,
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        lr_schedule=config.train.lr_schedule,
        total_steps=config.train.steps,
        batch_size=config.train.batch_size,
        grad_clip=config.train.grad_clip,
        seed=config.seed,
        device=device,
    )
    last_checkpoint = None
    if resume:
        last_checkpoint, _ = restore_latest(run.checkpoints, learner.load_state_dict)
        if learner.step > config.train.steps:
            raise ConfigError(
                f"config key 'train.steps' is {config.train.steps}, "
                f"but the checkpoint is already at step {learner.step}"
            )

    reference = ReferenceSet.build(problem, config.eval.num_contexts, config.eval.seed, device)
    if config.loss.kind != "objective" and not reference.solved:
        raise ConfigError(
            f"loss.kind={config.loss.kind!r} needs y*, but problem {config.problem['name']!r} has no reference solver"
        )
    if resume:
        run.save_config(config)
    # On resume, TensorBoard drops the interrupted run's events after the checkpoint (steps >= purge_step).
    writer = SummaryWriter(str(run.events), purge_step=learner.step + 1 if resume else None)
    progress = tqdm(
        total=config.train.steps, initial=learner.step, desc=config.name, disable=not show_progress, dynamic_ncols=True
    )
    window_start, window_steps, last_eval = time.perf_counter(), 0, float("nan")
    try:
        while learner.step < config.train.steps:
            loss = learner.train_step()
            step = learner.step
            window_steps += 1
            check_finite({"loss/train": loss, **parameters_of(model)}, step, last_checkpoint)
            if step % config.train.log_every == 0 or step == config.train.steps:
                elapsed = time.perf_counter() - window_start
                writer.add_scalar("loss/train", loss.item(), step)
                writer.add_scalar("train/lr", learner.lr, step)
                writer.add_scalar("perf/steps_per_second", window_steps / elapsed, step)
                window_start, window_steps = time.perf_counter(), 0
                progress.set_postfix(loss=f"{loss.item():.4g}", eval=f"{last_eval:.3g}")
            if step % config.train.eval_every == 0 or step == config.train.steps:
                model.eval()
                with torch.no_grad():
                    metrics = gap_metrics(problem, model(reference.contexts), reference)
                model.train()
                writer.add_scalar("eval/objective", metrics["objective_mean"], step)
                # the bar shows the most telling held-out number: relative gap, else gap, else f(ŷ)
                keys = ("relative_gap_mean", "objective_gap_mean", "objective_mean")
                last_eval = next(metrics[k] for k in keys if k in metrics)
                if reference.solved:
                    writer.add_scalar("eval/objective_gap", metrics["objective_gap_mean"], step)
                    writer.add_scalar("eval/solution_distance", metrics["solution_distance_mean"], step)
                if "relative_gap_mean" in metrics:
                    writer.add_scalar("eval/relative_gap", metrics["relative_gap_mean"], step)
                progress.set_postfix(loss=f"{loss.item():.4g}", eval=f"{last_eval:.3g}")
            if step % config.train.checkpoint_every == 0 or step == config.train.steps:
                last_checkpoint = save_checkpoint(
                    run.checkpoints, step, learner.state_dict(), config.train.keep_checkpoints
                )
            progress.update(1)
    finally:
        progress.close()
        writer.flush()

    metrics = {"step": learner.step, **evaluate_model(problem, model, reference, config.eval.timing_repeats)}
    for key in ("objective_mean", "objective_gap_mean", "relative_gap_mean", "speedup"):
        if key in metrics:
            writer.add_scalar(f"final/{key}", metrics[key], learner.step)
    writer.close()
    run.write_metrics(metrics)
    print(format_table(metrics))
    return metrics


def train(config: Config, run: RunDir, resume: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Train the agent ``config.agent`` names (``direct`` or ``td3``) in ``run``; returns its final metrics."""
    if isinstance(config, TD3Config):
        return train_td3(config, run, resume, show_progress)
    return train_direct(config, run, resume, show_progress)

"""Hyper-parameter sweeps: an Optuna study over a search space, every trial a normal run directory.

The study lives in persistent storage (SQLite ``<out>/study.db`` by default, or any URL Optuna's
``RDBStorage`` takes, e.g. PostgreSQL for a cluster). Optuna decides what runs next: each trial job
(in this process, a local process pool or a Ray task, :mod:`amorctl.sweep.backends`) loads the study
and runs ``study.optimize(..., n_trials=1)``. Its run reports the evaluation curve to the study
after every periodic evaluation (through the run loop's observer), where the median or
successive-halving pruner may stop it.

Running the same command again resumes: finished trials (complete, pruned, or failed by an error of
their own) count towards ``--trials`` and are never repeated. A trial whose process was killed stops
sending its heartbeat; it is marked failed (Optuna's stale-trial check) and its parameters are queued
once more. A trial that fails (a NaN stop, an exception) is recorded as failed with its error, and the
study goes on.

At the end, ``<out>`` holds ``best_config.yaml`` (the base config with the best trial's values,
resolved and validated: ``scripts/train.py --config`` takes it unchanged), ``sweep.json`` (every
trial: state, value, parameters, run folder, error), and Optuna's plots ``history.png``,
``importance.png`` and ``intermediate.png``.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from amorctl.run.atomic import atomic_write_text
from amorctl.run.config import to_yaml, validate_config
from amorctl.run.errors import ConfigError
from amorctl.sweep.backends import Backend, execute
from amorctl.sweep.runs import curve_of, train_raw
from amorctl.sweep.space import SearchSpace
from amorctl.sweep.stats import normalized_auc

HEARTBEAT_SECONDS = 5
"""How often a running trial tells the storage it is alive."""
GRACE_SECONDS = 20
"""A running trial silent for this long belongs to a killed sweep: it is marked failed and retried."""

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class MetricMissing(ConfigError):
    """The objective's metric is not among what the runs report: every trial would fail the same way."""


def storage_for(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url`` with heartbeats (so killed trials are found) and a patient SQLite lock."""
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
        )


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    """The space's pruner: median (startup 2 trials by default) or successive halving (Li et al., 2020, ASHA)."""
    settings = space.pruner.settings
    if space.pruner.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.get("startup_trials", 2), n_warmup_steps=settings.get("warmup_steps", 0)
        )
    if space.pruner.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.get("min_resource", "auto"), reduction_factor=settings.get("reduction_factor", 4)
        )
    return optuna.pruners.NopPruner()


def open_study(job: dict[str, Any], seed: int | None = None) -> optuna.Study:
    """The job's study from its storage, with a TPE sampler (seeded) and the space's pruner."""
    space: SearchSpace = job["space"]
    sampler = optuna.samplers.TPESampler(n_startup_trials=job["startup_trials"], seed=seed, constant_liar=True)
    return optuna.create_study(
        study_name=job["study"],
        storage=storage_for(job["storage"]),
        sampler=sampler,
        pruner=make_pruner(space),
        direction=space.objective.direction,
        load_if_exists=True,
    )


def trial_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one trial of the study (in a pool worker, a Ray task or this process); returns its summary."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(job, seed=job["seed"])
    space: SearchSpace = job["space"]
    objective = space.objective
    ran: list[optuna.trial.FrozenTrial] = []

    def run_trial(trial: optuna.Trial) -> float:
        values = {param.key: param.suggest(trial) for param in space.params}
        raw = space.apply(job["raw"], values)
        raw.update(runs_dir=job["trials_dir"], name=f"trial_{trial.number:04d}")

        def on_evaluation(progress: int, evaluation: dict[str, float], curve: list) -> None:
            if objective.curve_metric not in evaluation:
                raise MetricMissing(
                    f"objective.curve_metric {objective.curve_metric!r} is not an evaluation key of "
                    f"this config (its evaluations report {', '.join(evaluation)})"
                )
            trial.report(_summary(objective.summary, curve_of(curve, objective.curve_metric)), progress)
            if trial.should_prune():
                trial.set_user_attr("pruned_at", progress)
                raise optuna.TrialPruned(f"pruned at step {progress}")

        try:
            outcome = train_raw(
                raw, job["imports"], on_evaluation, on_start=lambda run: trial.set_user_attr("run_dir", str(run.root))
            )
            if objective.summary == "auc":
                value = _summary("auc", curve_of(outcome.curve, objective.curve_metric))
            elif objective.metric in outcome.metrics:
                value = float(outcome.metrics[objective.metric])
            else:
                known = ", ".join(k for k, v in outcome.metrics.items() if isinstance(v, int | float))
                raise MetricMissing(
                    f"objective.metric {objective.metric!r} is not in eval/metrics.json of this config (it has {known})"
                )
            if not math.isfinite(value):
                raise ValueError(f"the objective is {value}")
        except optuna.TrialPruned:
            raise
        except MetricMissing as error:
            trial.set_user_attr("error", str(error))
            trial.set_user_attr("config_error", str(error))
            raise
        except Exception as error:  # a NaN stop or any other failure: recorded, and the study goes on
            trial.set_user_attr("error", f"{type(error).__name__}: {error}")
            raise
        return value

    study.optimize(run_trial, n_trials=1, catch=(Exception,), callbacks=[lambda _, trial: ran.append(trial)])
    return describe_trial(ran[0], space)


def describe_trial(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    """A JSON-able line of ``sweep.json``: number, state, value, config values, run folder, error."""
    params = {p.key: p.value_of(trial.params[p.key]) for p in space.params if p.key in trial.params}
    interrupted = trial.state == optuna.trial.TrialState.FAIL and "error" not in trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "params": params,
        **{
            key: trial.user_attrs[key]
            for key in ("run_dir", "error", "config_error", "pruned_at", "retry_of")
            if key in trial.user_attrs
        },
        **({"interrupted": True} if interrupted else {}),  # its process was killed: its parameters run again
    }


def _summary(summary: str, points: list[tuple[int, float]]) -> float:
    """The objective's value of a curve so far: its last value (``final``) or its normalized area (``auc``)."""
    return normalized_auc(points) if summary == "auc" else points[-1][1]


def run_sweep(
    raw: dict[str, Any],
    space: SearchSpace,
    trials: int,
    backend: Backend,
    out: Path,
    study_name: str,
    storage: str | None = None,
    imports: list[str] | tuple[str, ...] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Run (or resume) the study until ``trials`` trials have finished; write the best config, JSON and plots."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{out / 'study.db'}"
    job = {
        "storage": url,
        "study": study_name,
        "space": space,
        "raw": raw,
        "imports": list(imports),
        "trials_dir": str(out / "trials"),
        "startup_trials": min(10, max(2, trials // 2)),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(job)
    _check_same_study(study, raw, space, url)
    _recover_interrupted(study)
    done = _count_finished(study)
    remaining = max(0, trials - done)
    print(
        f"study {study_name!r} in {url}: {done} trials finished, {remaining} to run "
        f"(backend {backend.kind}, {backend.workers if backend.kind == 'local' else 'Ray'} workers)",
        flush=True,
    )
    jobs = [{**job, "seed": seed * 1_000_003 + len(study.trials) + i} for i in range(remaining)]
    for result in execute(trial_job, jobs, backend):
        value = f" value {result['value']:.5g}" if result["value"] is not None else ""
        extra = result.get("error") or (f"at step {result['pruned_at']}" if "pruned_at" in result else "")
        print(
            f"trial {result['number']} {result['state'].lower()}{value} {extra} {result.get('run_dir', '')}", flush=True
        )
        if "config_error" in result:
            raise MetricMissing(
                f"search space's {result['config_error']}; fix it and start a new study (another --study-name or --out)"
            )
    return write_results(open_study(job), space, raw, out)


def write_results(study: optuna.Study, space: SearchSpace, raw: dict[str, Any], out: Path) -> dict[str, Any]:
    """``best_config.yaml``, ``sweep.json`` and the PNGs of a study; returns the summary written to JSON."""
    trials = [describe_trial(t, space) for t in study.trials]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": space.objective.direction,
        "objective": vars(space.objective),
        "trials": trials,
    }
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        values = {p.key: p.value_of(best.params[p.key]) for p in space.params}
        config = validate_config(space.apply(raw, values))
        path = out / "best_config.yaml"
        atomic_write_text(
            path,
            f"# best trial {best.number} of study {study.study_name!r}: "
            f"{space.objective.metric} ({space.objective.summary}) = {best.value:.6g}\n" + to_yaml(config),
        )
        summary["best"] = {"number": best.number, "value": best.value, "params": values, "config": str(path)}
        print(f"best trial {best.number}: {best.value:.5g} with {values}\nbest config: {path}")
    else:
        print("no trial completed, so there is no best config")
    summary["plots"] = _plots(study, out)
    atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _plots(study: optuna.Study, out: Path) -> dict[str, str]:
    """Optuna's optimization history, parameter importances and intermediate values as PNGs (what can be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    written = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in (
            ("history", plots.plot_optimization_history),
            ("importance", plots.plot_param_importances),
            ("intermediate", plots.plot_intermediate_values),
        ):
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as error:  # e.g. importances need two completed trials
                print(f"no {name}.png: {error}")
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.tight_layout()
            figure.savefig(out / f"{name}.png", dpi=110)
            plt.close(figure)
            written[name] = str(out / f"{name}.png")
    return written


def _check_same_study(study: optuna.Study, raw: dict[str, Any], space: SearchSpace, url: str) -> None:
    """Record the base config and space in a new study; refuse to resume one started with others."""
    stored = {"base_config": raw, "space": space.raw}
    if not study.user_attrs:
        for key, value in stored.items():
            study.set_user_attr(key, json.loads(json.dumps(value, default=str)))
        return
    for key, value in stored.items():
        if json.dumps(study.user_attrs.get(key), sort_keys=True) != json.dumps(value, sort_keys=True, default=str):
            what = "config (file and overrides)" if key == "base_config" else "search space"
            raise ConfigError(
                f"study {study.study_name!r} in {url} was started with another {what}; "
                "resume it with the same command, or start a new one with --study-name or --out"
            )


def _recover_interrupted(study: optuna.Study) -> None:
    """Mark the trials of a killed sweep failed (once their heartbeat is stale) and queue their parameters again."""
    running = optuna.trial.TrialState.RUNNING
    deadline = time.monotonic() + GRACE_SECONDS + 2 * HEARTBEAT_SECONDS
    while any(t.state == running for t in study.get_trials(deepcopy=False)) and time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        if any(t.state == running for t in study.get_trials(deepcopy=False)):
            print("waiting for the trials of an interrupted sweep to go stale ...", flush=True)
            time.sleep(HEARTBEAT_SECONDS)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if (
            trial.state == optuna.trial.TrialState.FAIL
            and "error" not in trial.user_attrs
            and trial.number not in retried
            and trial.params
        ):
            study.enqueue_trial(copy.deepcopy(trial.params), user_attrs={"retry_of": trial.number})
            print(f"trial {trial.number} was interrupted; its parameters are queued again", flush=True)


def _count_finished(study: optuna.Study) -> int:
    """Trials that count towards ``--trials``: complete, pruned, or failed by their own error."""
    return sum(
        t.state in FINISHED or (t.state == optuna.trial.TrialState.FAIL and "error" in t.user_attrs)
        for t in study.get_trials(deepcopy=False)
    )

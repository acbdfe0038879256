"""One config over several seeds: every seed a normal run, then the aggregate of :mod:`amorctl.sweep.stats`.

``python scripts/train.py --config C --seeds 0-4`` trains seeds 0..4 into
``<runs_dir>/<name>/seeds-<time>/seed_<s>/<time>/`` and writes beside them:

- ``aggregate.json``: per seed its run folder, final metric (or its error); the final metric's mean,
  standard error, median, IQM with its 95 % bootstrap CI; the evaluation curves and their band (per
  step the IQM with its 95 % bootstrap CI, and mean ± standard error);
- ``aggregate.png``: the curves of every seed with the IQM and its band, and the final values;
- ``events/``: TensorBoard scalars ``seeds/<curve metric>/{iqm,ci_low,ci_high,mean}`` per step and
  ``seeds_final/<metric>/...``, with a margin chart of the band.

A seed that fails (a NaN stop, an exception) is recorded with its error and left out of the statistics.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from amorctl.run.errors import AmorctlError, ConfigError
from amorctl.sweep.backends import Backend, execute
from amorctl.sweep.runs import curve_of, train_raw
from amorctl.sweep.stats import curve_band, summarize

DEFAULT_METRICS = ("mean_return", "objective_gap_mean")
"""The final metric when none is named: the first of these that the runs report."""


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"1,3,7"`` → [1, 3, 7]; ranges and lists mix (``"0-2,10"``)."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise AmorctlError(f"--seeds must be seeds and ranges like 0-4 or 1,3,7, got {text!r}")
        seeds += range(int(match[1]), int(match[2] or match[1]) + 1)
    if len(set(seeds)) != len(seeds):
        raise AmorctlError(f"--seeds names a seed twice: {text!r}")
    return seeds


def seed_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one seed (a pool worker or Ray task); a failure is returned, not raised."""
    try:
        outcome = train_raw(job["raw"], job["imports"])
    except Exception as error:  # a NaN stop or an exception inside one seed must not lose the other seeds
        return {"seed": job["seed"], "run_dir": None, "error": f"{type(error).__name__}: {error}"}
    return {
        "seed": job["seed"],
        "run_dir": outcome.run_dir,
        "metrics": outcome.metrics,
        "curve": outcome.curve,
        "error": None,
    }


def run_seeds(
    raw: dict[str, Any],
    seeds: list[int],
    backend: Backend,
    imports: list[str] | tuple[str, ...] = (),
    metric: str | None = None,
    curve_metric: str | None = None,
) -> Path:
    """Train ``raw`` once per seed on ``backend`` and write the aggregate; returns the group folder."""
    from amorctl.run.config import validate_config

    config = validate_config(copy.deepcopy(raw))  # refuse a bad config before any seed starts
    group = Path(config.runs_dir).resolve() / config.name / f"seeds-{datetime.now():%Y%m%d-%H%M%S}"
    group.mkdir(parents=True, exist_ok=False)
    jobs = []
    for seed in seeds:
        seeded = copy.deepcopy(raw)
        seeded.update(seed=seed, runs_dir=str(group), name=f"seed_{seed}")
        jobs.append({"raw": seeded, "imports": list(imports), "seed": seed})
    print(f"seed group: {group} ({len(seeds)} seeds, backend {backend.kind}, {backend.workers} workers)")
    results = []
    for result in execute(seed_job, jobs, backend):
        results.append(result)
        state = f"failed: {result['error']}" if result["error"] else f"done: {result['run_dir']}"
        print(f"seed {result['seed']} {state}", flush=True)
    write_aggregate(group, sorted(results, key=lambda r: r["seed"]), metric, curve_metric)
    return group


def write_aggregate(
    group: Path, results: list[dict[str, Any]], metric: str | None = None, curve_metric: str | None = None
) -> dict[str, Any]:
    """Statistics of the seeds' final ``metric`` and band of their ``curve_metric`` curves → JSON, PNG, TensorBoard."""
    from amorctl.eval.reports import write_json

    finished = [r for r in results if r["error"] is None]
    if not finished:
        raise AmorctlError(f"every seed failed, so there is nothing to aggregate: {results[0]['error']}")
    metric = metric or next((m for m in DEFAULT_METRICS if m in finished[0]["metrics"]), None)
    if metric is None or any(metric not in r["metrics"] for r in finished):
        known = sorted(k for k, v in finished[0]["metrics"].items() if isinstance(v, int | float))
        raise ConfigError(f"--metric {metric!r} is not in every seed's eval/metrics.json (it has {', '.join(known)})")
    eval_keys = {key for r in finished for _, evaluation in r["curve"] for key in evaluation}
    curve_metric = curve_metric or (metric if metric in eval_keys else metric.removesuffix("_mean"))
    if curve_metric not in eval_keys:
        raise ConfigError(
            f"--curve-metric {curve_metric!r} is not an evaluation key of these runs "
            f"(they log {', '.join(sorted(eval_keys))})"
        )
    finals = [float(r["metrics"][metric]) for r in finished]
    curves = {r["seed"]: dict(curve_of(r["curve"], curve_metric)) for r in finished}
    aggregate = {
        "metric": metric,
        "curve_metric": curve_metric,
        "seeds": [
            {
                "seed": r["seed"],
                "run_dir": r["run_dir"],
                "error": r["error"],
                metric: r["metrics"].get(metric) if r["error"] is None else None,
            }
            for r in results
        ],
        "final": summarize(finals),
        "curve": curve_band(curves),
        "curves": {str(seed): sorted([step, value] for step, value in curve.items()) for seed, curve in curves.items()},
        "statistics": "IQM = mean of the middle values after dropping floor(n/4) at each end; 95 % percentile-"
        "bootstrap CIs from 10000 (final) / 2000 (per step) resamples, seed 0; stderr = s/sqrt(n)",
    }
    write_json(group / "aggregate.json", aggregate)
    _plot(group / "aggregate.png", aggregate)
    _tensorboard(group / "events", aggregate)
    final = aggregate["final"]
    print(
        f"{metric} over {final['n']} seeds: IQM {final['iqm']:.4g} "
        f"[{final['iqm_ci_low']:.4g}, {final['iqm_ci_high']:.4g}] (95 % CI), mean {final['mean']:.4g} "
        f"± {final['stderr']:.3g} (stderr), median {final['median']:.4g}"
    )
    print(f"aggregate: {group / 'aggregate.json'}, {group / 'aggregate.png'}")
    return aggregate


def _plot(path: Path, aggregate: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    band, final = aggregate["curve"], aggregate["final"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    for seed, points in aggregate["curves"].items():
        left.plot([p[0] for p in points], [p[1] for p in points], lw=0.8, alpha=0.5, label=f"seed {seed}")
    left.fill_between(band["step"], band["ci_low"], band["ci_high"], color="C0", alpha=0.25, label="IQM 95 % CI")
    left.plot(band["step"], band["iqm"], color="black", lw=2, label="IQM")
    left.set_xlabel("progress (steps)")
    left.set_ylabel(aggregate["curve_metric"])
    left.set_title(f"evaluation curves over {final['n']} seeds")
    left.legend(fontsize=7)
    values = [s[aggregate["metric"]] for s in aggregate["seeds"] if s["error"] is None]
    right.scatter([0.0] * len(values), values, color="C1", zorder=3, label="seeds")
    right.errorbar(
        [0.0],
        [final["iqm"]],
        yerr=[[final["iqm"] - final["iqm_ci_low"]], [final["iqm_ci_high"] - final["iqm"]]],
        fmt="s",
        color="black",
        capsize=6,
        label="IQM, 95 % CI",
    )
    right.set_xticks([])
    right.set_ylabel(f"final {aggregate['metric']}")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _tensorboard(folder: Path, aggregate: dict[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    band, name = aggregate["curve"], aggregate["curve_metric"]
    writer = SummaryWriter(str(folder))
    try:
        writer.add_custom_scalars(
            {
                "seeds": {
                    f"{name} IQM, 95 % CI": [
                        "Margin",
                        [f"seeds/{name}/iqm", f"seeds/{name}/ci_low", f"seeds/{name}/ci_high"],
                    ]
                }
            }
        )
        for i, step in enumerate(band["step"]):
            for key in ("iqm", "ci_low", "ci_high", "mean"):
                writer.add_scalar(f"seeds/{name}/{key}", band[key][i], step)
        last = band["step"][-1] if band["step"] else 0
        for key in ("iqm", "iqm_ci_low", "iqm_ci_high", "mean", "stderr", "median"):
            writer.add_scalar(f"seeds_final/{aggregate['metric']}/{key}", aggregate["final"][key], last)
    finally:
        writer.close()

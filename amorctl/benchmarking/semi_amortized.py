"""``scripts/benchmark.py semi-amortized``: fully- and semi-amortized models side by side on one family.

Every (model, estimator) cell is one training run through ``scripts/train.py``'s own code path
(:func:`amorctl.run.cli.train_main`) with the same stated budget (``train.steps`` of ``train.batch_size``
fresh contexts), then its held-out metrics (``eval/metrics.json``): mean relative gap (the objective gap
where the family's f* is zero), training seconds and the model's seconds per solution.

A model is named on the command line as ``KIND`` or ``KIND:K`` (``model.steps=K``), any registered
``model.kind``. Its config is ``configs/amortize_<family>_<kind>.yaml`` where one is shipped, else the
family's ``configs/amortize_<family>_objective.yaml`` with ``model={kind: KIND}``; ``--set LABEL key=value``
overrides a key for the models whose kind or label is LABEL, and positional overrides apply to all. A
combination the config validation refuses (e.g. an estimator on a model that unrolls nothing) is listed
under the table with its one-sentence reason instead of being trained.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from amorctl.benchmarking.common import command_line, log, machine_info, markdown_table, one_thread
from amorctl.run.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEFAULT_MODELS = ("mlp", "unrolled_gd:5", "unrolled_gd:10", "unrolled_gd:20", "learned_update", "warm_start")
DEFAULT_ESTIMATORS = ("bptt", "first_order", "truncated")


def model_config(family: str, label: str) -> tuple[Path, list[str]]:
    """The base config file and overrides of the model ``label`` (``KIND`` or ``KIND:K``) on ``family``."""
    kind, _, steps = label.partition(":")
    shipped = CONFIGS / f"amortize_{family}_{kind}.yaml"
    path, overrides = (shipped, []) if shipped.is_file() else (CONFIGS / f"amortize_{family}_objective.yaml",
                                                                [f"model={{kind: {kind}}}"])
    if not path.is_file():
        raise ConfigError(f"no config for family {family!r}: expected {path.relative_to(ROOT)}")
    if steps:
        overrides.append(f"model.steps={steps}")
    return path, overrides


def semi_amortized(
    family: str = "logistic_regression",
    models: Sequence[str] = DEFAULT_MODELS,
    estimators: Sequence[str] = DEFAULT_ESTIMATORS,
    train_steps: int = 1000,
    batch_size: int = 256,
    horizon: int = 3,
    eval_contexts: int = 256,
    settings: Sequence[tuple[str, str]] = (),
    overrides: Sequence[str] = (),
    out: str | Path = "benchmarks/semi_amortized",
) -> str:
    """Train every model × estimator on ``family`` with the same budget; the Markdown report of their metrics."""
    from amorctl.run.cli import train_main
    from amorctl.run.config import load_config

    one_thread()
    out = Path(out)
    runs_dir = out / "runs"
    budget = [f"train.steps={train_steps}", f"train.batch_size={batch_size}", f"train.eval_every={train_steps}",
              f"train.checkpoint_every={train_steps}", f"eval.num_contexts={eval_contexts}", "device=cpu",
              f"runs_dir={runs_dir}"]
    load_before = os.getloadavg()
    rows, refused, records = [], [], []
    for label in models:
        path, model_overrides = model_config(family, label)
        kind = label.partition(":")[0]
        own = [value for name, value in settings if name in (kind, label)]
        for estimator in estimators:
            cell = f"{label} / {estimator}"
            name = f"{family}-{label.replace(':', '_k')}-{estimator}"
            argv = [*model_overrides, *budget, f"name={name}", f"gradient={{estimator: {estimator}}}", *own,
                    *overrides]
            try:
                config = load_config(path, argv)
                steps = config.model.get("steps")
                if estimator == "truncated" and isinstance(steps, int):
                    argv.append(f"gradient.horizon={min(horizon, steps)}")
                    load_config(path, argv)
            except ConfigError as error:
                refused.append(f"{cell}: {error}")
                continue
            log(f"training {cell} ({train_steps} steps)")
            with contextlib.redirect_stdout(sys.stderr):
                status = train_main(["--no-progress", "--config", str(path), *argv])
            if status != 0:
                refused.append(f"{cell}: training exited with status {status}")
                continue
            run = sorted((runs_dir / name).iterdir())[-1]
            metrics = json.loads((run / "eval" / "metrics.json").read_text())
            records.append({"model": label, "estimator": estimator, "run": str(run), **metrics})
            gap = metrics.get("relative_gap_mean", metrics.get("objective_gap_mean"))
            rows.append([label, estimator, metrics.get("model_train_steps", "–"), metrics.get("model_steps", "–"),
                         gap, metrics.get("relative_gap_p95", metrics.get("objective_gap_p95")),
                         float(metrics["wall_seconds"]), metrics.get("model_seconds_per_solution"),
                         metrics.get("solver_seconds_per_solution")])
            log(f"{cell}: gap {gap:.3g} in {metrics['wall_seconds']:.0f} s")
    load_after = os.getloadavg()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{family}.json").write_text(json.dumps(records, indent=1))
    header = ["model", "estimator", "K train", "K eval", "rel. gap mean", "rel. gap p95", "train s",
              "model s/solution", "solver s/solution"]
    lines = [
        f"`{command_line()}`", "",
        machine_info(), "",
        f"family `{family}`, budget {train_steps} steps × {batch_size} contexts, {eval_contexts} held-out contexts; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after", "",
        markdown_table(header, rows),
    ]
    if refused:
        lines += ["", "Not trained (refused by the config validation):", *[f"- {line}" for line in refused]]
    return "\n".join(lines)

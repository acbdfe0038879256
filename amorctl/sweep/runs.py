"""One training run from a raw config mapping, as sweeps and seed groups start them: a normal run directory,
the one run loop, and the evaluation curve that the loop's observer saw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from amorctl.run.config import validate_config
from amorctl.run.plugins import load_plugins
from amorctl.run.rundir import RunDir

Curve = list[tuple[int, dict[str, float]]]
"""The periodic evaluations of a run: (progress, the evaluation's metrics), in order."""


@dataclass
class Outcome:
    """What became of a run: its folder, its final metrics (empty if it failed) and its evaluation curve."""

    run_dir: str
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: Curve = field(default_factory=list)
    error: str | None = None


def train_raw(
    raw: dict[str, Any],
    imports: list[str] | tuple[str, ...] = (),
    on_evaluation: Callable[[int, dict[str, float], Curve], None] | None = None,
    on_start: Callable[[RunDir], None] | None = None,
) -> Outcome:
    """Validate ``raw``, create its run directory and train it through :func:`amorctl.run.loop.train`.

    ``on_evaluation(progress, evaluation, curve_so_far)`` is called after each periodic evaluation (a
    pruner raises from it to stop the run); ``on_start(run)`` once the folder exists. Exceptions propagate:
    the caller decides what a failure means.
    """
    from amorctl.run.loop import train

    load_plugins(imports)
    config = validate_config(raw)
    run = RunDir.create(config)
    if on_start is not None:
        on_start(run)
    outcome = Outcome(str(run.root))

    def observe(progress: int, _seconds: float, evaluation: dict[str, float]) -> None:
        outcome.curve.append((progress, dict(evaluation)))
        if on_evaluation is not None:
            on_evaluation(progress, evaluation, outcome.curve)

    outcome.metrics = train(config, run, show_progress=False, observer=observe)
    return outcome


def curve_of(curve: Curve, key: str) -> list[tuple[int, float]]:
    """The (progress, value) points of one evaluation key."""
    return [(step, float(evaluation[key])) for step, evaluation in curve if key in evaluation]

"""Aggregate statistics over seeds, as recommended by Agarwal et al. (2021), "Deep Reinforcement Learning at
the Edge of the Statistical Precipice" (NeurIPS): the interquartile mean with a percentile-bootstrap
confidence interval, beside the mean, its standard error and the median.

- mean x̄ = (1/n) Σ xᵢ; standard error s/√n with the sample standard deviation s (n − 1 in its
  denominator; 0 for one value);
- interquartile mean: the mean of the values left after removing ⌊n/4⌋ of the smallest and ⌊n/4⌋ of
  the largest (``scipy.stats.trim_mean(x, 0.25)``, as the paper's ``rliable`` library computes it);
- 95 % confidence interval: the 2.5th and 97.5th percentiles of the statistic over ``resamples``
  bootstrap resamples (n values drawn with replacement), drawn from a seeded generator so that a
  report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: drop ⌊n/4⌋ values at each end of the sorted values, average the rest."""
    values = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = values.shape[axis]
    cut = n // 4
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[..., np.ndarray] = iqm,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """The percentile-bootstrap ``confidence`` interval of ``statistic`` (called with ``axis=-1``)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, len(values), size=(resamples, len(values)))]
    stats = statistic(samples, axis=-1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, float]:
    """Mean, standard error, median, IQM with its 95 % bootstrap CI, min and max of ``values`` (n ≥ 1)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarize")
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    low, high = bootstrap_ci(x, iqm, resamples, CONFIDENCE, seed)
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "stderr": std / math.sqrt(x.size),
        "median": float(np.median(x)),
        "iqm": float(iqm(x)),
        "iqm_ci_low": low,
        "iqm_ci_high": high,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def curve_band(curves: dict[int, dict[int, float]], seed: int = 0, resamples: int = 2000) -> dict[str, list[float]]:
    """Per evaluation step, the IQM of the seeds' values with its 95 % bootstrap band, and their mean ± stderr.

    ``curves`` maps each seed to its curve (progress → value). Only the steps every seed evaluated at
    are kept (runs of one config share the schedule; a seed stopped early ends the band).
    """
    common = sorted(set.intersection(*(set(curve) for curve in curves.values()))) if curves else []
    band: dict[str, list[float]] = {key: [] for key in ("step", "iqm", "ci_low", "ci_high", "mean", "stderr")}
    for step in common:
        row = summarize([curve[step] for curve in curves.values()], seed=seed, resamples=resamples)
        band["step"].append(step)
        band["iqm"].append(row["iqm"])
        band["ci_low"].append(row["iqm_ci_low"])
        band["ci_high"].append(row["iqm_ci_high"])
        band["mean"].append(row["mean"])
        band["stderr"].append(row["stderr"])
    return band


def normalized_auc(curve: Sequence[tuple[int, float]]) -> float:
    """The area under an evaluation curve by the trapezoid rule, divided by the progress it spans.

    (1/(s_K − s_1)) Σₖ (s_{k+1} − s_k)(v_k + v_{k+1})/2 for points (s_k, v_k) sorted by progress: the
    curve's average value, in the metric's own units; a single point is its own value.
    """
    points = sorted(curve)
    if not points:
        raise ValueError("an empty evaluation curve has no area")
    if len(points) == 1:
        return float(points[0][1])
    steps = np.array([s for s, _ in points], dtype=float)
    values = np.array([v for _, v in points], dtype=float)
    area = float(np.sum(np.diff(steps) * (values[1:] + values[:-1]) / 2.0))
    return area / float(steps[-1] - steps[0])

"""Search spaces: which dotted config keys a sweep varies, how, and what it optimises.

A search-space file is YAML with three sections::

    objective:
      metric: mean_return        # a key of the trial's eval/metrics.json ...
      summary: final             # ... its final value, or auc: the area under the evaluation curve
      curve_metric: mean_return  # the periodic-evaluation key behind pruning and auc (default: metric)
      direction: maximize        # or minimize
    pruner:
      kind: median               # median, successive_halving or none
      startup_trials: 2          # median: trials that finish before any is pruned
      warmup_steps: 4000         # median: progress before a trial can be pruned
    params:
      td3.learning_rate: {type: log_uniform, low: 1.0e-4, high: 3.0e-3}
      td3.gamma: {type: uniform, low: 0.95, high: 0.995}
      td3.learning_starts: {type: int, low: 500, high: 2000, step: 500}
      td3.hidden_sizes: {type: categorical, choices: [[64, 64], [256, 256]]}

Every key is checked before any trial runs (:func:`load_space`): the file's own keys, each
distribution's bounds, and each parameter against the base config: the dotted key must be a setting
of the resolved config, and the config must validate with the distribution's low and high ends (and
every categorical choice) in place. A refusal is one :class:`~amorctl.run.errors.ConfigError`
sentence naming the key (exit status 2).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amorctl.registry import closest
from amorctl.run.config import config_dict, read_yaml, validate_config
from amorctl.run.errors import ConfigError

DISTRIBUTIONS = {
    "log_uniform": ("low", "high"),
    "uniform": ("low", "high"),
    "int": ("low", "high", "step", "log"),
    "categorical": ("choices",),
}
"""Distribution type → the keys it takes (``type`` aside)."""

SUMMARIES = ("final", "auc")
DIRECTIONS = ("maximize", "minimize")
PRUNERS = {
    "median": ("startup_trials", "warmup_steps"),
    "successive_halving": ("min_resource", "reduction_factor"),
    "none": (),
}
"""Pruner kind → the keys it takes (``kind`` aside)."""


@dataclass(frozen=True)
class Param:
    """One varied config key: ``kind`` is a key of :data:`DISTRIBUTIONS`; unused fields keep their defaults."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: int = 1
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """A value drawn through an Optuna trial's ``suggest_*`` (the parameter is named by its dotted key)."""
        if self.kind == "categorical":
            # Optuna stores categorical choices as None/bool/int/float/str: a list choice travels as its index
            if all(choice is None or isinstance(choice, bool | int | float | str) for choice in self.choices):
                return trial.suggest_categorical(self.key, list(self.choices))
            return self.choices[trial.suggest_categorical(self.key, list(range(len(self.choices))))]
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, log=self.kind == "log_uniform")

    def value_of(self, stored: Any) -> Any:
        """The config value behind a value Optuna stored for this parameter (see :meth:`suggest`)."""
        if self.kind == "categorical" and not all(
            choice is None or isinstance(choice, bool | int | float | str) for choice in self.choices
        ):
            return self.choices[stored]
        return stored

    def extremes(self) -> list[tuple[str, Any]]:
        """The values to validate against the config: (description, value)."""
        if self.kind == "categorical":
            return [(f"choice {choice!r}", choice) for choice in self.choices]
        if self.kind == "int":
            return [(f"low {int(self.low)}", int(self.low)), (f"high {int(self.high)}", int(self.high))]
        return [(f"low {self.low!r}", float(self.low)), (f"high {self.high!r}", float(self.high))]


@dataclass(frozen=True)
class Objective:
    """What a trial is scored by: ``metric`` of ``eval/metrics.json`` (``summary="final"``) or the area under
    the ``curve_metric`` evaluation curve (``summary="auc"``), maximised or minimised."""

    metric: str
    curve_metric: str
    summary: str = "final"
    direction: str = "maximize"


@dataclass(frozen=True)
class Pruner:
    """The pruner's kind (a key of :data:`PRUNERS`) and settings (defaults: Optuna's, startup 2 trials)."""

    kind: str = "median"
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search-space file: the objective, the pruner and the varied parameters, in file order."""

    objective: Objective
    pruner: Pruner
    params: tuple[Param, ...]
    raw: dict[str, Any]
    """The file's mapping, stored with the study so that a resumed sweep can check it is the same one."""

    def apply(self, base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """A deep copy of the raw ``base`` config with each dotted key of ``values`` set."""
        raw = copy.deepcopy(base)
        for key, value in values.items():
            set_dotted(raw, key, value)
        return raw


def load_space(path: str | Path, base: dict[str, Any]) -> SearchSpace:
    """Read and validate the search-space file at ``path`` against the raw ``base`` config (file + overrides)."""
    raw = read_yaml(path, "search space")
    where = f"search space {str(path)!r}"
    _only(raw, ("objective", "pruner", "params"), where, "")
    if "objective" not in raw or "params" not in raw:
        missing = "objective" if "objective" not in raw else "params"
        raise ConfigError(f"{where} lacks its {missing!r} section")
    objective = _objective(raw["objective"], where)
    pruner = _pruner(raw.get("pruner", {"kind": "median"}), where)
    params_raw = raw["params"]
    if not isinstance(params_raw, dict) or not params_raw:
        raise ConfigError(f"{where}: 'params' must map dotted config keys to distributions")
    params = tuple(_param(str(key), spec, where) for key, spec in params_raw.items())
    check_against_config(params, base, where)
    return SearchSpace(objective, pruner, params, raw)


def check_against_config(params: tuple[Param, ...], base: dict[str, Any], where: str) -> None:
    """Refuse a parameter whose key the resolved ``base`` config lacks, or whose range the config refuses."""
    resolved = config_dict(validate_config(copy.deepcopy(base)))
    for param in params:
        node: Any = resolved
        parts = param.key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                prefix = ".".join(parts[:depth])
                known = list(node) if isinstance(node, dict) else []
                section = f" (section {prefix!r})" if prefix else ""
                raise ConfigError(
                    f"{where}: param {param.key!r} is not a setting of the config{section}{closest(part, known)}"
                )
            node = node[part]
        if isinstance(node, dict):
            raise ConfigError(f"{where}: param {param.key!r} is a config section, not a setting")
        for description, value in param.extremes():
            trial = copy.deepcopy(base)
            set_dotted(trial, param.key, value)
            try:
                validate_config(trial)
            except ConfigError as error:
                raise ConfigError(f"{where}: param {param.key!r} cannot take its {description}: {error}") from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """``raw[a][b][c] = value`` for ``key="a.b.c"``, creating sections that are missing."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _only(mapping: Any, allowed: tuple[str, ...], where: str, section: str) -> None:
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: {section or 'the file'} must be a mapping, not a {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            dotted = f"{section}.{key}" if section else str(key)
            raise ConfigError(f"{where}: key {dotted!r} is not a known setting{closest(str(key), allowed)}")


def _objective(raw: Any, where: str) -> Objective:
    _only(raw, ("metric", "curve_metric", "summary", "direction"), where, "objective")
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{where}: 'objective.metric' must name a key of eval/metrics.json, got {metric!r}")
    curve_metric = raw.get("curve_metric", metric)
    if not isinstance(curve_metric, str) or not curve_metric:
        raise ConfigError(f"{where}: 'objective.curve_metric' must name an evaluation key, got {curve_metric!r}")
    summary = raw.get("summary", "final")
    if summary not in SUMMARIES:
        raise ConfigError(f"{where}: 'objective.summary' must be one of {', '.join(SUMMARIES)}, got {summary!r}")
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise ConfigError(f"{where}: 'objective.direction' must be maximize or minimize, got {direction!r}")
    return Objective(metric, curve_metric, summary, direction)


def _pruner(raw: Any, where: str) -> Pruner:
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'pruner' must be a pruner kind or a mapping, not a {type(raw).__name__}")
    kind = raw.get("kind", "median")
    if kind not in PRUNERS:
        raise ConfigError(f"{where}: 'pruner.kind' must be one of {', '.join(PRUNERS)}, got {kind!r}")
    _only(raw, ("kind", *PRUNERS[kind]), where, "pruner")
    settings = {key: value for key, value in raw.items() if key != "kind"}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if key == "reduction_factor" else 0):
            least = 2 if key == "reduction_factor" else 0
            raise ConfigError(f"{where}: 'pruner.{key}' must be an integer of at least {least}, got {value!r}")
    return Pruner(kind, settings)


def _param(key: str, spec: Any, where: str) -> Param:
    name = f"param {key!r}"
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"{where}: {name} is not a dotted config key")
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: {name} must be a mapping with a 'type' ({', '.join(DISTRIBUTIONS)})")
    kind = spec["type"]
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: {name} has type {kind!r}, not one of {', '.join(DISTRIBUTIONS)}")
    for extra in spec:
        if extra != "type" and extra not in DISTRIBUTIONS[kind]:
            raise ConfigError(f"{where}: {name} ({kind}) takes no {extra!r}{closest(extra, DISTRIBUTIONS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {name} needs a non-empty list of 'choices'")
        if len({repr(choice) for choice in choices}) != len(choices):
            raise ConfigError(f"{where}: {name} repeats a choice")
        return Param(key, kind, choices=tuple(choices))
    for bound in ("low", "high"):
        value = spec.get(bound)
        integral = kind == "int"
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or (integral and value != int(value))
        ):
            expected = "an integer" if integral else "a finite number"
            raise ConfigError(f"{where}: {name} needs '{bound}' as {expected}, got {value!r}")
    low, high = spec["low"], spec["high"]
    if not low < high:
        raise ConfigError(f"{where}: {name} has low {low!r} not below high {high!r}")
    log = kind == "log_uniform" or spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: {name} needs 'log' as true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: {name} is log-scaled, so its low must be positive, got {low!r}")
    step = spec.get("step", 1)
    if kind == "int":
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ConfigError(f"{where}: {name} needs 'step' as a positive integer, got {step!r}")
        if log and step != 1:
            raise ConfigError(f"{where}: {name} cannot be log-scaled with a step other than 1 (Optuna's rule)")
        if (high - low) % step:
            raise ConfigError(f"{where}: {name} has high {high} not reachable from low {low} in steps of {step}")
    return Param(key, kind, low=low, high=high, step=step, log=bool(log))

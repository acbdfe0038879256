"""The vocabulary of config schemas, shared by every registry entry that has config keys.

Each agent, environment kind, model and problem family declares its keys here as a pydantic model,
usually read from its constructor's signature (:func:`constructor_schema`), so its defaults live in
one place: the constructor. The run layer (:mod:`amorctl.run.config`) reads YAML, applies overrides
and dispatches on ``agent`` to the registered schema.

Conventions every schema follows: unknown keys are errors; a float that is NaN or ±inf is refused
unless the constructor's annotation allows it explicitly (``Annotated[float, AllowInfNan(True)]``);
booleans are never read as numbers (checked by the run layer on the raw input).
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import pydantic
import torch
from annotated_types import Ge, Gt, Le, Lt
from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, field_validator

from amorctl.problems import PROBLEMS, ProblemArgumentError
from amorctl.registry import closest
from amorctl.run.errors import ConfigError

FiniteFloat = Annotated[float, AllowInfNan(False)]
PositiveFloat = Annotated[float, AllowInfNan(False), Gt(0)]
NonNegativeFloat = Annotated[float, AllowInfNan(False), Ge(0)]
UnitFloat = Annotated[float, AllowInfNan(False), Ge(0), Le(1)]
Tau = Annotated[float, AllowInfNan(False), Gt(0), Le(1)]
"""A Polyak rate in (0, 1]."""
PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
Seed = Annotated[int, Ge(0), Lt(2**32)]
"""Seeds are non-negative and below 2³², so that seed plus any evaluation offset seeds numpy, torch and gymnasium."""

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ScheduleConfig(Section):
    """When the run loop logs, evaluates and checkpoints, and when it stops early.

    Every agent's ``train`` section extends this with its run length (``steps`` or ``total_steps``).
    """

    log_every: PositiveInt = 1000
    eval_every: PositiveInt = 5000
    checkpoint_every: PositiveInt = 10_000
    keep_checkpoints: PositiveInt = 3
    max_wall_seconds: PositiveFloat | None = None
    """Stop after this much training time (fixed wall-clock budgets)."""


@dataclass(frozen=True)
class Schedule:
    """The run loop's schedule, in the learner's unit of progress (steps or transitions)."""

    total: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    keep_checkpoints: int
    max_wall_seconds: float | None = None
    target: tuple[str, float] | None = None
    """Stop once evaluation metric ``target[0]`` reaches ``target[1]`` (time-to-solve runs)."""
    total_key: str = "train.steps"
    """The config key of ``total``, for messages; its last part is the stop reason of a full run."""
    target_key: str = "train.target"
    """The config key of ``target``; its last part is the stop reason when the target is reached."""


KEYS_ADDED_LATER: dict[str, Any] = {
    "warm_start": None,
    "bc.final_learning_rate": None,
    "env.iterate.reward_clip": None,
    "gradient": {"estimator": "bptt"},
    "loss.iterate_weights": "last",
    "loss.geometric_ratio": 0.5,
    "eval.steps": None,
    "loss.target": "solver",
    "td3.policy": "mlp",
    "ddpg.policy": "mlp",
    "sac.policy": "mlp",
    "bc.policy": "mlp",
    "bc.loss": "squared",
    "bc.relative_floor": 1.0e-4,
    "env.iterate.observation_layout": "blocks",
    "env.iterate.secant_update": False,
    "expert.variant": "long",
    "warm_start.expert.variant": "long",
    "td3.bc_alpha": None,
    "td3.zero_init_actor": False,
    "ddpg.bc_alpha": None,
    "ddpg.zero_init_actor": False,
    "env.iterate.step_size_base": "range",
    "env.iterate.residual_scale": 1.0,
    "env.iterate.first_step": 0.01,
    "env.admm.features": ["log_slack", "dual", "residual", "log_rho", "log_primal_ratio", "log_dual_ratio"],
    "env.admm.row_mean": True,
    "env.iterate.ritz_memory": 0,
}
"""Config keys introduced after run directories existed, with the value that reproduces the versions
before them: a ``config.yaml`` written before a key existed may lack it (and resolves to that value),
while any other missing key means a truncated file. Add a key here when adding it to a config."""


class RunConfig(Section):
    """Keys every run has; an agent's config extends it with its own sections.

    ``RESUMABLE`` lists the dotted keys (or key prefixes ending in ``.``) that ``--resume`` may change;
    the learner applies them when it is built from the new config. Any other change is refused.
    """

    RESUMABLE: ClassVar[tuple[str, ...]] = ("device", "train.log_every", "train.eval_every",
                                            "train.checkpoint_every", "train.keep_checkpoints",
                                            "train.max_wall_seconds")

    agent: str
    name: str = "default"
    seed: Seed = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runs_dir: str = "runs"

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, name: str) -> str:
        if not _RUN_NAME.match(name) or name in (".", ".."):
            raise ValueError(
                f"config key 'name' must be one folder name (letters, digits, '.', '_', '-', not starting with"
                f" '.' or '-'), got {name!r}"
            )
        return name

    @field_validator("runs_dir")
    @classmethod
    def _nonempty(cls, runs_dir: str) -> str:
        if not runs_dir or "\0" in runs_dir:
            raise ValueError(f"config key 'runs_dir' must be a folder path, got {runs_dir!r}")
        return runs_dir

    def schedule(self) -> Schedule:
        """The run loop's schedule from this config."""
        raise NotImplementedError


def constructor_schema(
    target: type | Callable[..., Any], skip: tuple[str, ...] = (), name: str | None = None
) -> type[BaseModel]:
    """A pydantic model of the keyword arguments of a class's ``__init__`` (or a function) but ``skip``.

    Unknown keys are forbidden; defaults are the signature's; a parameter without a default is
    required. A ``float`` annotation refuses NaN and ±inf unless it is ``Annotated`` with ``AllowInfNan(True)``;
    a ``Sequence[X]`` is read as ``list[X]``; defaults are validated like given values.
    """
    function = target.__init__ if isinstance(target, type) else target
    hints = typing.get_type_hints(function, include_extras=True)
    fields: dict[str, Any] = {}
    for parameter_name, parameter in inspect.signature(function).parameters.items():
        if parameter_name in ("self", *skip) or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = _finite(hints.get(parameter_name, Any))
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter_name] = (hint, default)
    return pydantic.create_model(name or f"{target.__name__}Config", __base__=_ConstructorSection, **fields)


class _ConstructorSection(Section):
    """Base of :func:`constructor_schema`'s models: defaults are validated too, so a default and the same value
    read back from ``config.yaml`` are the same Python value (a ``(256, 256)`` default becomes ``[256, 256]``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _finite(hint: Any) -> Any:
    """``float`` → a float that refuses NaN and ±inf, also inside ``Annotated`` (unless it says ``AllowInfNan``),
    unions, tuples, lists and sequences."""
    if hint is float:
        return FiniteFloat
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        base, *metadata = args
        if any(isinstance(item, AllowInfNan) for item in metadata):
            return hint
        if base is float:
            return Annotated[(float, AllowInfNan(False), *metadata)]
        inner = _finite(base)
        return hint if inner is base else Annotated[(inner, *metadata)]
    if origin is None or origin is Literal or not args:
        return hint
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_finite(arg) for arg in args)]  # noqa: UP007 (built from a tuple)
    if origin in (tuple, list):
        return origin[tuple(_finite(arg) if arg is not Ellipsis else arg for arg in args)]
    if origin is collections.abc.Sequence:  # a list, whatever sequence came in (or is the default), so that
        return list[_finite(args[0])]  # a default tuple and the list read back from config.yaml compare equal
    return hint


def available_memory(device: str) -> int:
    """Bytes free for a run on ``device`` (``auto``, ``cpu`` or ``cuda``): the GPU's free memory, or the
    host's ``MemAvailable``."""
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(parts: dict[str, int], device: str) -> None:
    """Refuse a config whose estimated memory (``parts``: what → bytes) exceeds what ``device`` has free."""
    needed, free = sum(parts.values()), available_memory(device)
    if needed > 0.9 * free:
        largest = max(parts, key=parts.get)
        raise ConfigError(
            f"the config needs about {needed / 2**30:.3g} GiB ({largest}: {parts[largest] / 2**30:.3g} GiB), more than"
            f" the {free / 2**30:.3g} GiB free on this machine; reduce {largest}"
        )


def parameter_bytes(build: Callable[[], torch.nn.Module]) -> int:
    """Bytes of the parameters of the module ``build()`` makes, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        module = build()
    return sum(parameter.numel() * parameter.element_size() for parameter in module.parameters())


def validate_problem_section(section: Any, prefix: str = "problem", default: str = "quadratic") -> dict[str, Any]:
    """Check ``<prefix>.name`` and the family's keyword arguments; returns them with types coerced."""
    if not isinstance(section, dict):
        raise ConfigError(f"config key {prefix!r} must be a section (a mapping with a 'name'), got {section!r}")
    section = {"name": default, **section}
    try:
        family = PROBLEMS.lookup(section["name"], f"{prefix}.name")
    except KeyError as error:
        raise ConfigError(str(error)) from None
    kwargs = {key: value for key, value in section.items() if key != "name"}
    schema = constructor_schema(family)
    try:
        checked = schema.model_validate(kwargs).model_dump()
    except pydantic.ValidationError as error:
        error._amorctl_model = schema  # type: ignore[attr-defined]  (for "did you mean" on unknown keys)
        raise ConfigError(describe(error, prefix=prefix)) from None
    try:
        memory = family.memory_bytes(**checked)
    except ProblemArgumentError as error:
        raise _argument_error(error, prefix) from None
    check_memory({f"{prefix}.{key}": size for key, size in memory.items()}, "cpu")
    try:
        family(**checked)
    except ProblemArgumentError as error:
        raise _argument_error(error, prefix) from None
    except (RuntimeError, MemoryError, OverflowError) as error:
        raise ConfigError(
            f"config key {prefix!r} names a {section['name']} problem that cannot be built on this machine"
            f" ({type(error).__name__}: {_first_line(error)})"
        ) from None
    return {"name": section["name"], **checked}


def _argument_error(error: ProblemArgumentError, prefix: str) -> ConfigError:
    """The config error of an impossible constructor argument, named as the config key ``<prefix>.<argument>``."""
    return ConfigError(f"config key '{prefix}.{error.argument}' must be {error.expected}, got {error.value!r}")


def _first_line(error: BaseException) -> str:
    """The first line of an exception's message, without a trailing period (to fit inside one sentence)."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__).rstrip(".")


def describe(error: pydantic.ValidationError, prefix: str = "") -> str:
    """One sentence for the first validation error: the dotted key and what was expected.

    A value that fits none of a union's members (``'auto'`` or a positive number, say) is one error per
    member under the same key; their expectations are joined with "or".
    """
    errors = error.errors()
    first = errors[0]
    key = _key_of(first["loc"])
    parts = [str(part) for part in (prefix, *key) if part != ""]
    loc = ".".join(parts)
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        known = _known_keys(error, first["loc"])
        return f"config key {loc!r} is not a known setting{closest(parts[-1], known)}"
    if kind == "missing":
        return f"config key {loc!r} is required"
    if kind in ("value_error", "assertion_error"):
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    expectations = [_expected(other) for other in errors if _key_of(other["loc"]) == key]
    return f"config key {loc!r} must be {' or '.join(dict.fromkeys(expectations))}, got {first.get('input')!r}"


def _key_of(loc: tuple) -> tuple:
    """``loc`` without the tags pydantic adds for union members (``literal['auto']``, ``float``, ...)."""
    return tuple(part for part in loc if not (isinstance(part, str) and ("[" in part or part in _TYPE_TAGS)))


_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "tuple", "none"}


def _expected(error: dict) -> str:
    if error["type"] == "finite_number":
        return "a finite number"
    message = error["msg"]
    return (message[0].lower() + message[1:]).removeprefix("input should be ").removeprefix("value error, ")


def _known_keys(error: pydantic.ValidationError, loc: tuple) -> list[str]:
    """The field names of the (sub)model where an unknown key ``loc`` was found."""
    model = getattr(error, "_amorctl_model", None)
    for part in loc[:-1]:
        if model is None:
            return []
        annotation = model.model_fields.get(str(part))
        model = _model_of(annotation.annotation) if annotation is not None else None
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def validate_section(schema: type[BaseModel], raw: Any, prefix: str = "") -> BaseModel:
    """``schema.model_validate(raw)`` with one-sentence :class:`ConfigError` messages under ``prefix``."""
    if not isinstance(raw, dict):
        where = f"config key {prefix!r}" if prefix else "a config"
        raise ConfigError(f"{where} must be a mapping of keys, got {raw!r}")
    try:
        return schema.model_validate(raw)
    except pydantic.ValidationError as error:
        error._amorctl_model = schema  # type: ignore[attr-defined]  (for "did you mean" on unknown keys)
        raise ConfigError(describe(error, prefix)) from None


__all__ = [
    "Field",
    "FiniteFloat",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "RunConfig",
    "Schedule",
    "ScheduleConfig",
    "Section",
    "Seed",
    "constructor_schema",
    "describe",
    "validate_problem_section",
    "validate_section",
]

"""Typed run configs: YAML files plus ``dotted.key=value`` overrides, validated at the door.

A config is checked completely before a run writes anything: an unknown key, a value of the
wrong type or an impossible value raises :class:`~amorctl.run.errors.ConfigError` with one sentence
naming the dotted key and what was expected. Schemas are pydantic models; a problem family's
keys are read from its constructor's signature, so a user-defined family is validated too.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import pydantic
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from amorctl.problems import PROBLEMS, Problem, ProblemArgumentError, make_problem
from amorctl.run.errors import ConfigError

DEFAULT_PROBLEM = "pendulum_mpc"
"""The family of a config whose ``problem`` section names none."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ModelConfig(Section):
    """The fully-amortized MLP ŷθ(x) (Definition 2)."""

    hidden_sizes: list[PositiveInt] = Field(default_factory=lambda: [256, 256])
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu"
    projection: Literal["auto", "none", "tanh"] = "auto"
    """``auto``: a tanh projection onto the problem's box when it has one, none otherwise."""


class LossConfig(Section):
    """Which amortization loss trains the model."""

    kind: Literal["objective", "regression", "mixed"] = "objective"
    """``objective`` (eq. 2.10, needs only f), ``regression`` (eq. 2.9, needs y*), or ``mixed``."""
    regression_weight: float = Field(0.5, ge=0.0, le=1.0)
    """For ``mixed``: w in (1 − w)·objective + w·regression."""


class TrainConfig(Section):
    steps: PositiveInt = 8000
    batch_size: PositiveInt = 1024
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: float = Field(0.0, ge=0.0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    grad_clip: PositiveFloat | None = None
    log_every: PositiveInt = 100
    eval_every: PositiveInt = 1000
    checkpoint_every: PositiveInt = 2000
    keep_checkpoints: PositiveInt = 3


class EvalConfig(Section):
    num_contexts: PositiveInt = 256
    """Held-out contexts, drawn once from ``eval.seed`` (never from the training stream)."""
    seed: int = 12345
    timing_repeats: PositiveInt = 5


class DirectConfig(Section):
    """A direct amortization run: train ŷθ on a differentiable problem family."""

    agent: Literal["direct"] = "direct"
    name: str = "default"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runs_dir: str = "runs"
    problem: dict[str, Any] = Field(default_factory=lambda: {"name": DEFAULT_PROBLEM})
    """The family's ``name`` (default ``pendulum_mpc``) and its constructor's keyword arguments."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _check_problem(self) -> DirectConfig:
        self.problem = validate_problem_section({"name": DEFAULT_PROBLEM, **self.problem})
        name = self.problem["name"]
        if self.loss.kind != "objective" and PROBLEMS[name].solve is Problem.solve:
            raise ValueError(f"loss.kind={self.loss.kind!r} needs y*, but problem {name!r} has no reference solver")
        if self.model.projection == "tanh" and make_problem(**self.problem).bounds is None:
            raise ValueError(f"model.projection='tanh' needs a box domain, but problem {name!r} has none")
        return self


class EnvConfig(Section):
    """What TD3 trains on: a gymnasium task (``kind: gym``) or a solver's iterations (``kind: iterate``).

    ``gym`` puts ``id`` behind ``amorctl.envs.GymVectorEnv``; ``iterate`` builds
    ``amorctl.envs.IterateEnv`` over the family in ``problem`` (validated like a direct run's
    ``problem`` section) with the keyword arguments in ``iterate``.
    """

    kind: Literal["gym", "iterate"] = "gym"
    id: str = "Pendulum-v1"
    num_envs: PositiveInt = 1
    vectorization: Literal["auto", "sync", "async"] = "auto"
    max_episode_steps: PositiveInt | None = None
    """Overrides the gym task's own time limit when set."""
    problem: dict[str, Any] = Field(default_factory=dict)
    iterate: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_env(self) -> EnvConfig:
        from amorctl.envs import IterateEnv, check_env_id  # gymnasium, imported only for control configs

        if self.kind == "gym":
            for key in ("problem", "iterate"):
                if getattr(self, key):
                    raise ValueError(f"config key 'env.{key}' applies to env.kind=iterate, not gym")
            try:
                check_env_id(self.id)
            except ValueError as error:
                raise ValueError(f"config key 'env.id': {error}") from None
            return self
        for key in ("id", "vectorization", "max_episode_steps"):
            if getattr(self, key) != EnvConfig.model_fields[key].default:
                raise ValueError(f"config key 'env.{key}' applies to env.kind=gym, not iterate")
        self.problem = validate_problem_section({"name": "quadratic", **self.problem}, prefix="env.problem")
        schema = _constructor_schema(IterateEnv, skip=("problem", "num_envs", "device", "dtype", "init"))
        try:
            self.iterate = schema.model_validate(self.iterate).model_dump(exclude_unset=True)
        except pydantic.ValidationError as error:
            raise ConfigError(_describe(error, prefix="env.iterate")) from None
        try:
            IterateEnv(make_problem(**self.problem), 1, **self.iterate)
        except ValueError as error:
            raise ValueError(f"config key 'env.iterate': {error}") from None
        return self


class TD3Params(Section):
    """TD3's hyper-parameters (Fujimoto et al. 2018); defaults as in the paper, lr as in SB3/CleanRL."""

    learning_rate: PositiveFloat = 3e-4
    gamma: float = Field(0.99, ge=0.0, le=1.0)
    tau: float = Field(0.005, gt=0.0, le=1.0)
    batch_size: PositiveInt = 256
    policy_delay: PositiveInt = 2
    target_policy_noise: float = Field(0.2, ge=0.0)
    target_noise_clip: float = Field(0.5, ge=0.0)
    exploration_noise: float = Field(0.1, ge=0.0)
    buffer_size: PositiveInt = 1_000_000
    learning_starts: int = Field(25_000, ge=0)
    gradient_steps: int = Field(1, ge=0)
    hidden_sizes: list[PositiveInt] = Field(default_factory=lambda: [256, 256])
    compile: bool = False


class ControlTrainConfig(Section):
    total_steps: PositiveInt = 100_000
    """Environment transitions to collect (over all N copies)."""
    log_every: PositiveInt = 1000
    eval_every: PositiveInt = 5000
    eval_episodes: PositiveInt = 10
    eval_envs: PositiveInt = 5
    checkpoint_every: PositiveInt = 10_000
    keep_checkpoints: PositiveInt = 3
    save_replay_buffer: bool = False
    """Store the replay buffer in checkpoints, for an exactly equal continuation after ``--resume``."""
    target_return: float | None = None
    """Stop once the mean evaluation return reaches this (time-to-solve runs)."""
    max_wall_seconds: PositiveFloat | None = None
    """Stop after this much training time (fixed wall-clock budgets)."""


class TD3Config(Section):
    """A TD3 run: the policy πθ(s) amortizes argmax_a Q(s, a) (objective loss −Q, eq. 2.10)."""

    agent: Literal["td3"] = "td3"
    name: str = "td3"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runs_dir: str = "runs"
    env: EnvConfig = Field(default_factory=EnvConfig)
    td3: TD3Params = Field(default_factory=TD3Params)
    train: ControlTrainConfig = Field(default_factory=ControlTrainConfig)


AGENT_CONFIGS: dict[str, type[Section]] = {"direct": DirectConfig, "td3": TD3Config}
Config = DirectConfig | TD3Config


def validate_problem_section(section: dict[str, Any], prefix: str = "problem") -> dict[str, Any]:
    """Check ``<prefix>.name`` and the family's keyword arguments; returns them with types coerced."""
    name = section["name"]
    if name not in PROBLEMS:
        raise ConfigError(f"config key '{prefix}.name' is {name!r}; expected one of: {', '.join(sorted(PROBLEMS))}")
    family = PROBLEMS[name]
    schema = _constructor_schema(family)
    kwargs = {key: value for key, value in section.items() if key != "name"}
    try:
        checked = schema.model_validate(kwargs).model_dump(exclude_unset=True)
    except pydantic.ValidationError as error:
        raise ConfigError(_describe(error, prefix=prefix)) from None
    try:
        family(**checked)
    except ProblemArgumentError as error:
        raise ConfigError(
            f"config key '{prefix}.{error.argument}' must be {error.expected}, got {error.value!r}"
        ) from None
    return {"name": name, **checked}


def _constructor_schema(cls: type, skip: tuple[str, ...] = ()) -> type[BaseModel]:
    """A pydantic model of ``cls.__init__``'s keyword arguments but ``skip`` (unknown keys forbidden)."""
    hints = typing.get_type_hints(cls.__init__)
    fields = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", *skip) or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    return pydantic.create_model(f"{cls.__name__}Config", __config__=ConfigDict(extra="forbid"), **fields)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Section:
    """Read a YAML config, apply ``dotted.key=value`` overrides and validate the result.

    ``path=None`` starts from the schema's defaults. Raises :class:`ConfigError` on any problem.
    """
    raw = read_yaml(path) if path is not None else {}
    for override in overrides:
        apply_override(raw, override)
    return validate_config(raw)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML file, or a :class:`ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{line}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, not a {type(raw).__name__}")
    return raw


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``raw[a][b][c] = value`` for ``"a.b.c=value"``; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r} is not of the form dotted.key=value")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: config key {'.'.join(parts[: depth + 1])!r} is not a section")
        node = child
    node[parts[-1]] = value


def validate_config(raw: dict[str, Any]) -> Section:
    """Validate a raw mapping into the config of its ``agent`` (default ``direct``)."""
    agent = raw.get("agent", "direct")
    if agent not in AGENT_CONFIGS:
        raise ConfigError(f"config key 'agent' is {agent!r}; expected one of: {', '.join(sorted(AGENT_CONFIGS))}")
    try:
        config = AGENT_CONFIGS[agent].model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(_describe(error)) from None
    if getattr(config, "device", "auto") == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda', but no CUDA device is available here (use auto or cpu)")
    return config


def to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML, loadable by :func:`load_config`."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def resolve_device(config: Section) -> torch.device:
    """``auto`` is CUDA when present, the CPU otherwise."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def _describe(error: pydantic.ValidationError, prefix: str = "") -> str:
    """One sentence for the first validation error: the dotted key and what was expected."""
    first = error.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *first["loc"]) if part != "")
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        return f"config key {loc!r} is not a known setting"
    if kind == "missing":
        return f"config key {loc!r} is required"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    expected = message[0].lower() + message[1:]
    expected = expected.removeprefix("input should be ").removeprefix("value error, ")
    return f"config key {loc!r} must be {expected}, got {first.get('input')!r}"

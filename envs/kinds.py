"""The environment-kind registry: ``env.kind`` names a config section and how to build a BatchedEnv from it.

Shipped kinds: ``gym`` (a gymnasium task behind :class:`~amorctl.envs.GymVectorEnv`), ``iterate``
(a problem family's solver iterations, :class:`~amorctl.envs.IterateEnv`), ``pendulum_mpc`` (the
``pendulum_mpc`` family's pendulum as a control task, :class:`~amorctl.envs.PendulumControlEnv`), ``admm``
(OSQP's ADMM on a QP family with ρ as the action, :class:`~amorctl.envs.ADMMEnv`) and ``mjwarp`` (gymnasium
v5's MuJoCo tasks as N worlds of MuJoCo Warp, :class:`~amorctl.envs.mjwarp.MjWarpEnv`). A kind
of your own is a :class:`~amorctl.schema.Section` with ``kind: Literal[<name>]`` and ``num_envs``, a function
``make(section, num_envs, device) -> BatchedEnv``, and one :func:`register_env_kind` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from amorctl.envs.admm import ADMMEnv
from amorctl.envs.base import BatchedEnv
from amorctl.envs.gym_adapter import GymVectorEnv, Vectorization, check_env_id
from amorctl.envs.iterate import IterateEnv
from amorctl.envs.mjwarp import DEFAULT_MAX_EPISODE_STEPS, MjWarpEnv, mj_task
from amorctl.envs.pendulum import PendulumControlEnv
from amorctl.problems import ProblemArgumentError, make_problem
from amorctl.problems.qp import QP_FAMILIES, make_qp_family
from amorctl.registry import Registry
from amorctl.run.errors import ConfigError
from amorctl.schema import (
    PositiveInt,
    Section,
    check_memory,
    constructor_schema,
    validate_problem_section,
    validate_section,
)


@dataclass(frozen=True)
class EnvKind:
    """A registered environment kind: its config section and its builder."""

    schema: type[Section]
    make: Callable[[Any, int, torch.device], BatchedEnv]
    memory: Callable[[Any], dict[str, int]] | None = None
    """Bytes one copy needs, by what drives them (``{"what (config key)": bytes}``), estimated before any
    copy is built; ``None`` when unknown."""


ENV_KINDS: Registry[EnvKind] = Registry("environment kind", "env.kind")


def register_env_kind(
    name: str,
    schema: type[Section],
    make: Callable[[Any, int, torch.device], BatchedEnv],
    memory: Callable[[Any], dict[str, int]] | None = None,
) -> None:
    """Make an environment kind available to configs as ``env.kind: <name>``.

    ``memory(section)`` estimates the bytes of one copy (by what drives them), so that a config asking for
    more copies than fit is refused before anything is built.
    """
    ENV_KINDS.register(name, EnvKind(schema, make, memory))


def copy_memory(section: Section) -> dict[str, int]:
    """The estimated bytes of one copy of the environment a validated ``env`` section describes."""
    memory = ENV_KINDS[section.kind].memory
    return memory(section) if memory is not None else {}


def validate_env_section(raw: Any, default_kind: str = "gym") -> Section:
    """The ``env`` section validated by its kind's schema, after building one copy to check it works.

    Building one copy (on the CPU) catches what a schema cannot see: a discrete action space, a task
    whose dependencies are missing, an impossible combination of options.
    """
    if isinstance(raw, Section):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"config key 'env' must be a section (a mapping with a 'kind'), got {raw!r}")
    raw = {"kind": default_kind, **raw}
    try:
        kind = ENV_KINDS.lookup(raw["kind"])
    except KeyError as error:
        raise ConfigError(str(error)) from None
    for key in raw:
        if key not in kind.schema.model_fields:
            owners = [name for name, other in ENV_KINDS.items() if key in other.schema.model_fields]
            if owners:
                raise ConfigError(
                    f"config key 'env.{key}' applies to env.kind={' or '.join(owners)}, not {raw['kind']}"
                )
    section = validate_section(kind.schema, raw, "env")
    check_memory(copy_memory(section), "cpu")
    env = None
    try:
        env = kind.make(section, 1, torch.device("cpu"))
    except ValueError as error:
        raise ConfigError(f"config key 'env': {str(error).rstrip('.')}") from None
    except (RuntimeError, MemoryError, OverflowError) as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"config key 'env' describes an environment that cannot be built on this machine"
            f" ({type(error).__name__}: {text.rstrip('.')})"
        ) from None
    finally:
        if env is not None:
            env.close()
    return section


def make_env(section: Section, num_envs: int, device: torch.device) -> BatchedEnv:
    """``num_envs`` copies of the environment a validated ``env`` section describes."""
    return ENV_KINDS[section.kind].make(section, num_envs, device)


def checked_id(env_id: str, check: Callable[[str], Any]) -> str:
    """``env_id`` when ``check(env_id)`` accepts it; its ``ValueError`` again, naming the key ``env.id``."""
    try:
        check(env_id)
    except ValueError as error:
        raise ValueError(f"config key 'env.id': {error}") from None
    return env_id


class GymEnvConfig(Section):
    """``env.kind: gym``: a gymnasium task with a Box action space (``id``), ``num_envs`` copies."""

    kind: Literal["gym"] = "gym"
    id: str = "Pendulum-v1"
    num_envs: PositiveInt = 1
    vectorization: Vectorization = "auto"
    max_episode_steps: PositiveInt | None = None
    """Overrides the task's own time limit when set."""

    @field_validator("id")
    @classmethod
    def _registered(cls, env_id: str) -> str:
        return checked_id(env_id, check_env_id)


GYM_COPY_BYTES = 2**20
"""A rough upper estimate of one gymnasium copy (its Python objects; a MuJoCo model and data), for refusing
impossible ``env.num_envs`` before any copy is made."""


def gym_memory(section: GymEnvConfig) -> dict[str, int]:
    return {"a gymnasium copy (env.id)": GYM_COPY_BYTES}


def make_gym(section: GymEnvConfig, num_envs: int, device: torch.device) -> GymVectorEnv:
    extra = {"max_episode_steps": section.max_episode_steps} if section.max_episode_steps else {}
    return GymVectorEnv(section.id, num_envs, device, section.vectorization, **extra)


class IterateEnvConfig(Section):
    """``env.kind: iterate``: a solver's iterations on the family in ``problem`` (default ``quadratic``),
    with :class:`~amorctl.envs.IterateEnv`'s keyword arguments in ``iterate``."""

    kind: Literal["iterate"] = "iterate"
    num_envs: PositiveInt = 1
    problem: dict[str, Any] = Field(default_factory=dict)
    iterate: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_sections(self) -> IterateEnvConfig:
        self.problem = validate_problem_section(self.problem, prefix="env.problem", default="quadratic")
        schema = constructor_schema(IterateEnv, skip=("problem", "num_envs", "device", "dtype", "init"))
        self.iterate = validate_section(schema, self.iterate, "env.iterate").model_dump()
        return self


def iterate_memory(section: IterateEnvConfig) -> dict[str, int]:
    """One copy's float32 state: iterate, gradient, their histories, context, observations (with scratch)."""
    problem = make_problem(**section.problem)
    n, m = problem.solution_dim, problem.context_dim
    history = section.iterate["history"]
    return {
        "the iterate history (env.iterate.history)": 3 * 4 * 2 * history * n,
        "the problem's iterate and context (env.problem.*)": 3 * 4 * (8 * n + 2 * m + 8),
    }


def make_iterate(section: IterateEnvConfig, num_envs: int, device: torch.device) -> IterateEnv:
    try:
        return IterateEnv(make_problem(**section.problem), num_envs, device=device, **section.iterate)
    except ProblemArgumentError as error:
        raise ConfigError(
            f"config key 'env.iterate.{error.argument}' must be {error.expected}, got {error.value!r}"
        ) from None
    except ValueError as error:
        raise ConfigError(f"config key 'env.iterate': {str(error).rstrip('.')}") from None


class PendulumEnvConfig(Section):
    """``env.kind: pendulum_mpc``: the pendulum of the ``pendulum_mpc`` family as a control task, the
    family's keyword arguments in ``problem`` (its dynamics, costs, context ranges and MPC horizon)."""

    kind: Literal["pendulum_mpc"] = "pendulum_mpc"
    num_envs: PositiveInt = 1
    max_episode_steps: PositiveInt = 100
    problem: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_problem(self) -> PendulumEnvConfig:
        section = {"name": "pendulum_mpc", **self.problem}
        if section["name"] != "pendulum_mpc":
            raise ConfigError(f"config key 'env.problem.name' must be 'pendulum_mpc', got {section['name']!r}")
        self.problem = validate_problem_section(section, prefix="env.problem", default="pendulum_mpc")
        return self


def make_pendulum(section: PendulumEnvConfig, num_envs: int, device: torch.device) -> PendulumControlEnv:
    return PendulumControlEnv(make_problem(**section.problem), num_envs, max_episode_steps=section.max_episode_steps,
                              device=device)


def pendulum_memory(section: PendulumEnvConfig) -> dict[str, int]:
    """One copy's state, counters and fresh contexts (a few dozen bytes)."""
    return {"the pendulum state (env.num_envs)": 64}


class ADMMEnvConfig(Section):
    """``env.kind: admm``: OSQP's ADMM on a QP family with ρ as the action (:class:`~amorctl.envs.ADMMEnv`); the
    family's name and size keys in ``family`` (default ``random_qp``), the environment's options in ``admm``."""

    kind: Literal["admm"] = "admm"
    num_envs: PositiveInt = 1
    family: dict[str, Any] = Field(default_factory=dict)
    admm: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_sections(self) -> ADMMEnvConfig:
        section = {"name": "random_qp", **self.family}
        try:
            family = QP_FAMILIES.lookup(section["name"], "env.family.name")
        except KeyError as error:
            raise ConfigError(str(error)) from None
        kwargs = {key: value for key, value in section.items() if key != "name"}
        self.family = {"name": section["name"], **validate_section(constructor_schema(family), kwargs, "env.family")
                       .model_dump()}
        try:
            family(**kwargs)
        except ProblemArgumentError as error:
            raise ConfigError(
                f"config key 'env.family.{error.argument}' must be {error.expected}, got {error.value!r}"
            ) from None
        schema = constructor_schema(ADMMEnv, skip=("family", "num_envs", "device", "dtype"))
        self.admm = validate_section(schema, self.admm, "env.admm").model_dump()
        return self


def make_admm(section: ADMMEnvConfig, num_envs: int, device: torch.device) -> ADMMEnv:
    return ADMMEnv(make_qp_family(**section.family), num_envs, device=device, **section.admm)


def admm_memory(section: ADMMEnvConfig) -> dict[str, int]:
    """One copy's float64 problem data and solver state: P, A (twice), the matrix and its inverse, the vectors."""
    family = make_qp_family(**section.family)
    n, m = family.num_variables, family.num_constraints
    return {"the QP's matrices (env.family sizes)": 8 * (3 * n * n + 2 * m * n + 12 * (n + m))}


class MjWarpEnvConfig(Section):
    """``env.kind: mjwarp``: a gymnasium v5 MuJoCo task (``id``) as ``num_envs`` MuJoCo Warp worlds on the
    run's device."""

    kind: Literal["mjwarp"] = "mjwarp"
    id: str = "HalfCheetah-v5"
    num_envs: PositiveInt = 1
    max_episode_steps: PositiveInt = DEFAULT_MAX_EPISODE_STEPS
    nconmax: PositiveInt | None = None
    """Contacts allocated per world (MuJoCo Warp's heuristic when unset)."""
    njmax: PositiveInt | None = None
    """Constraint rows allocated per world (MuJoCo Warp's heuristic when unset)."""

    @field_validator("id")
    @classmethod
    def _offered(cls, env_id: str) -> str:
        return checked_id(env_id, mj_task)


MJWARP_WORLD_BYTES = 2**18
"""A rough upper estimate of one MuJoCo Warp world of the five tasks: the Data arrays of one world, with
MuJoCo Warp's default contact and constraint allocations, sum to 15 KiB (InvertedPendulum) ... 28 KiB (Ant)."""


def mjwarp_memory(section: MjWarpEnvConfig) -> dict[str, int]:
    return {"a MuJoCo Warp world (env.num_envs, env.nconmax, env.njmax)": MJWARP_WORLD_BYTES}


def make_mjwarp(section: MjWarpEnvConfig, num_envs: int, device: torch.device) -> MjWarpEnv:
    return MjWarpEnv(section.id, num_envs, device, max_episode_steps=section.max_episode_steps,
                     nconmax=section.nconmax, njmax=section.njmax)


register_env_kind("gym", GymEnvConfig, make_gym, gym_memory)
register_env_kind("iterate", IterateEnvConfig, make_iterate, iterate_memory)
register_env_kind("pendulum_mpc", PendulumEnvConfig, make_pendulum, pendulum_memory)
register_env_kind("admm", ADMMEnvConfig, make_admm, admm_memory)
register_env_kind("mjwarp", MjWarpEnvConfig, make_mjwarp, mjwarp_memory)

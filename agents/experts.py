"""Experts that label states with actions, for behavioural cloning, DAgger and warm starts (a registry).

An expert is ``expert(env, obs) -> actions in [-1, 1]`` for the N copies of ``env`` in states ``obs``.
Registered kinds (``expert.kind`` in a config): ``run``, the deterministic policy of a trained run of
any agent (distillation, e.g. into a smaller network); ``barzilai_borwein``, the Barzilai–Borwein step
size of gradient descent on an :class:`~amorctl.envs.IterateEnv` (a classical solver rule; in
``update`` mode the gradient step it makes); ``lmsd``, the step of limited-memory steepest descent
(Fletcher 2012) on an :class:`~amorctl.envs.IterateEnv` with ``ritz_memory`` > 0; ``mpc``, the
model-predictive controller of the pendulum control task (:class:`~amorctl.envs.PendulumControlEnv`). A plugin
adds one with :func:`register_expert`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from amorctl.envs import BatchedEnv
from amorctl.envs.kinds import make_env
from amorctl.registry import Registry
from amorctl.run.errors import AmorctlError, ConfigError
from amorctl.schema import PositiveFloat, Section, validate_section

Expert = Callable[[BatchedEnv, torch.Tensor], torch.Tensor]
"""``expert(env, obs)``: the expert's actions in [-1, 1] for the copies of ``env`` in states ``obs``."""


@dataclass(frozen=True)
class ExpertKind:
    """A registered expert: its config section and ``make(section, device) -> Expert``."""

    schema: type[Section]
    make: Callable[[Any, torch.device], Expert]


EXPERTS: Registry[ExpertKind] = Registry("expert", "expert.kind")


def register_expert(name: str, schema: type[Section], make: Callable[[Any, torch.device], Expert]) -> None:
    """Make an expert available to configs as ``expert.kind: <name>``."""
    EXPERTS.register(name, ExpertKind(schema, make))


class RunExpertConfig(Section):
    """``expert.kind: run``: the deterministic policy of a trained run (its latest checkpoint, or ``checkpoint``)."""

    kind: Literal["run"] = "run"
    path: str
    checkpoint: str | None = None


def make_run_expert(section: RunExpertConfig, device: torch.device) -> Expert:
    from amorctl.eval.load import load_run  # the eval layer builds learners from the registry

    policy = load_run(section.path, section.checkpoint, [f"device={device.type}"]).policy
    return lambda env, obs: policy(obs)


class BarzilaiBorweinConfig(Section):
    """``expert.kind: barzilai_borwein``: the Barzilai–Borwein gradient step on an iterate environment (its step
    size in ``step_size`` mode, the update itself in ``update`` mode) — α = sᵀs / sᵀz (``variant: long``, BB1)
    or α = sᵀz / zᵀz (``short``, BB2) — and ``fallback_step`` where the last update shows no positive
    curvature (the first step)."""

    kind: Literal["barzilai_borwein"] = "barzilai_borwein"
    fallback_step: PositiveFloat = 0.01
    variant: Literal["long", "short"] = "long"


def make_barzilai_borwein(section: BarzilaiBorweinConfig, device: torch.device) -> Expert:
    def expert(env: BatchedEnv, obs: torch.Tensor) -> torch.Tensor:
        if not hasattr(env, "barzilai_borwein_action"):
            raise ValueError(f"the Barzilai–Borwein expert needs an iterate environment, not {env.name}")
        return env.barzilai_borwein_action(section.fallback_step, long_step=section.variant == "long")

    return expert


class LMSDExpertConfig(Section):
    """``expert.kind: lmsd``: the next step of limited-memory steepest descent (Fletcher 2012) on an iterate
    environment with ``ritz_memory`` > 0 (the memory is the environment's; see
    :meth:`~amorctl.envs.IterateEnv.lmsd_action`), ``fallback_step`` before an episode's first update."""

    kind: Literal["lmsd"] = "lmsd"
    fallback_step: PositiveFloat = 0.01


def make_lmsd(section: LMSDExpertConfig, device: torch.device) -> Expert:
    def expert(env: BatchedEnv, obs: torch.Tensor) -> torch.Tensor:
        if not hasattr(env, "lmsd_action"):
            raise ValueError(f"the LMSD expert needs an iterate environment, not {env.name}")
        return env.lmsd_action(section.fallback_step)

    return expert


class MPCExpertConfig(Section):
    """``expert.kind: mpc``: the model-predictive controller of the ``pendulum_mpc`` control task — the first
    torque of the family's reference solution from the current state."""

    kind: Literal["mpc"] = "mpc"


def make_mpc_expert(section: MPCExpertConfig, device: torch.device) -> Expert:
    def expert(env: BatchedEnv, obs: torch.Tensor) -> torch.Tensor:
        if not hasattr(env, "mpc_action"):
            raise ValueError(
                f"the MPC expert needs the pendulum_mpc control task (env.kind: pendulum_mpc), not {env.name}"
            )
        return env.mpc_action()

    return expert


register_expert("run", RunExpertConfig, make_run_expert)
register_expert("barzilai_borwein", BarzilaiBorweinConfig, make_barzilai_borwein)
register_expert("lmsd", LMSDExpertConfig, make_lmsd)
register_expert("mpc", MPCExpertConfig, make_mpc_expert)


def _try_expert(section: Section, env_section: Section, key: str) -> None:
    """Ask the expert once on a CPU copy of the environment: a missing run, an environment the expert cannot
    act in or actions of the wrong shape are one sentence before anything is written."""
    with make_env(env_section, 1, torch.device("cpu")) as env:
        try:
            action = EXPERTS[section.kind].make(section, torch.device("cpu"))(env, env.reset(seed=0))
        except (AmorctlError, ValueError, RuntimeError) as error:  # a missing run, a wrong environment
            raise ConfigError(f"config key '{key}': {error}") from None
        if tuple(action.shape) != (1, env.action_dim):
            raise ConfigError(
                f"config key '{key}': the expert's actions have shape {tuple(action.shape)}, but {env.name} "
                f"takes ({1}, {env.action_dim})"
            )


def validate_expert(section: Any, env_section: Section, key: str = "expert") -> Section:
    """The validated expert section ``key`` of a config (a mapping with a registered ``kind``), asked once
    on a CPU copy of the environment: a missing run, an environment the expert cannot act in or actions
    of the wrong shape are one sentence (:class:`~amorctl.run.errors.ConfigError`) before anything is written."""
    if isinstance(section, Section):
        return section
    if not isinstance(section, dict):
        raise ConfigError(f"config key '{key}' must be a section with a 'kind', got {section!r}")
    try:
        kind = EXPERTS.lookup(section.get("kind"), f"{key}.kind")
    except KeyError as error:
        raise ConfigError(str(error)) from None
    section = validate_section(kind.schema, section, key)
    _try_expert(section, env_section, key)
    return section


def make_expert(section: Section, device: torch.device) -> Expert:
    """The expert of a validated section, acting on ``device``."""
    return EXPERTS[section.kind].make(section, device)

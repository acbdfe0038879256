"""Run configs: YAML files plus ``dotted.key=value`` overrides, validated at the door.

A config is checked completely before a run writes anything: an unknown key (with the closest known
one), a value of the wrong type (a boolean is never a number) or an impossible value raises
:class:`~amorctl.run.errors.ConfigError` with one sentence naming the dotted key and what was
expected. ``agent:`` picks the registered agent whose schema validates the rest
(:data:`amorctl.agents.AGENTS`); its sections in turn name registered environment kinds, models and
problem families, whose keys come from their constructors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import torch
import yaml

from amorctl.agents import AGENTS
from amorctl.run.errors import ConfigError
from amorctl.schema import RunConfig, describe

DEFAULT_AGENT = "direct"
"""The agent of a config that names none."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, also reading ``1e-3`` and ``1e12`` as floats (YAML 1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """``text`` parsed as YAML with :class:`_Loader` (``yaml.YAMLError`` on bad syntax)."""
    return yaml.load(text, Loader=_Loader)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config, apply ``dotted.key=value`` overrides and validate the result.

    ``path=None`` starts from the default agent's defaults. Raises :class:`ConfigError` on any problem.
    """
    raw = read_yaml(path) if path is not None else {}
    for override in overrides:
        apply_override(raw, override)
    return validate_config(raw)


def read_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping in a YAML file, or a :class:`ConfigError` naming the file (as ``what``: "config file",
    "search space")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{what} {str(path)!r} cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML{line}") from None
    if raw is None:
        hint = "; give settings, or leave --config out for the defaults" if what == "config file" else ""
        raise ConfigError(f"{what} {str(path)!r} is empty{hint}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping of keys, not a {type(raw).__name__}")
    return raw


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``raw[a][b][c] = value`` for ``"a.b.c=value"``; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r} is not of the form dotted.key=value")
    try:
        value = parse_yaml(text) if text else ""
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


def validate_config(raw: dict[str, Any]) -> RunConfig:
    """Validate a raw mapping into the config of its ``agent`` (default ``direct``)."""
    try:
        spec = AGENTS.lookup(raw.get("agent", DEFAULT_AGENT))
    except KeyError as error:
        raise ConfigError(str(error)) from None
    try:
        config = spec.config.model_validate(raw)
    except pydantic.ValidationError as error:
        error._amorctl_model = spec.config  # type: ignore[attr-defined]  (for "did you mean" on unknown keys)
        raise ConfigError(describe(error)) from None
    except (RuntimeError, MemoryError) as error:  # a problem or environment too large to even build
        raise ConfigError(f"the config cannot be built on this machine ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''})") from None
    _refuse_coerced_booleans(raw, config_dict(config))
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' is 'cuda', but no CUDA device is available here (use auto or cpu)")
    return config


def config_dict(config: RunConfig) -> dict[str, Any]:
    """The resolved config as plain Python values (floats keep ±inf; sections are dicts)."""
    return config.model_dump(mode="python")


def to_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, loadable by :func:`load_config` to the same values."""
    return yaml.safe_dump(config_dict(config), sort_keys=False, allow_unicode=True)


def resolve_device(config: RunConfig) -> torch.device:
    """``auto`` is CUDA when present, the CPU otherwise."""
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config dicts (sections compared key by key)."""
    changed = []
    for key in dict.fromkeys([*old, *new]):
        dotted = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_keys(a, b, f"{dotted}.")
        elif a != b or type(a) is not type(b):
            changed.append(dotted)
    return changed


def check_resumable(saved: RunConfig, new: RunConfig) -> None:
    """Refuse (one sentence, exit 2) a resume whose overrides change a key that cannot change mid-run.

    What may change is the agent's ``RESUMABLE`` list; the learner built from ``new`` applies it.
    """
    for key in changed_keys(config_dict(saved), config_dict(new)):
        if not any(key == allowed or (allowed.endswith(".") and key.startswith(allowed))
                   for allowed in type(saved).RESUMABLE):
            old_value = _get(config_dict(saved), key)
            raise ConfigError(
                f"config key {key!r} cannot change when resuming (the run was trained with {old_value!r}); "
                f"start a new run instead (keys that may change: {', '.join(type(saved).RESUMABLE)})"
            )


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _refuse_coerced_booleans(raw: Any, resolved: Any, prefix: str = "") -> None:
    """A ``true``/``false`` given where a number is expected is an error, not 1/0 (pydantic's lax mode); so is
    a number or a string (``1``, ``'yes'``) given where ``true``/``false`` is expected."""
    if isinstance(raw, dict) and isinstance(resolved, dict):
        for key, value in raw.items():
            if key in resolved:
                _refuse_coerced_booleans(value, resolved[key], f"{prefix}{key}.")
    elif isinstance(raw, list | tuple) and isinstance(resolved, list | tuple) and len(raw) == len(resolved):
        for index, (value, out) in enumerate(zip(raw, resolved)):
            _refuse_coerced_booleans(value, out, f"{prefix}{index}.")
    elif isinstance(raw, bool) and not isinstance(resolved, bool):
        raise ConfigError(f"config key {prefix.rstrip('.')!r} must be a number, got {raw!r}")
    elif isinstance(resolved, bool) and not isinstance(raw, bool):
        raise ConfigError(f"config key {prefix.rstrip('.')!r} must be true or false, got {raw!r}")

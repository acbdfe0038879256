"""A run is a folder: ``<runs_dir>/<name>/<timestamp>/`` with config, events, checkpoints and eval."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from amorctl.run.atomic import atomic_write_text, remove_temporaries
from amorctl.run.config import apply_override, parse_yaml, to_yaml, validate_config
from amorctl.run.errors import CheckpointError, ConfigError
from amorctl.schema import KEYS_ADDED_LATER, RunConfig


class RunDir:
    """Paths of one run: ``config.yaml``, ``events/`` (TensorBoard), ``checkpoints/``, ``eval/``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def create(cls, config: RunConfig) -> RunDir:
        """A new run folder ``<runs_dir>/<name>/<time>`` holding the config, or one :class:`ConfigError`.

        Refused: a ``name`` that is not a single folder name (it must not leave ``runs_dir``), and a
        ``runs_dir`` where no folder can be created (under a regular file, read-only, ...). On a
        refusal no run folder is left behind.
        """
        base = _run_base(config.runs_dir, config.name)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            root = _make_unique_folder(base, stamp)
        except (OSError, ValueError) as error:
            raise _unwritable(config.runs_dir, error) from None
        run = cls(root)
        try:
            run.save_config(config)
        except OSError as error:
            shutil.rmtree(root, ignore_errors=True)
            raise _unwritable(config.runs_dir, error) from None
        return run

    @classmethod
    def open(cls, root: str | Path) -> RunDir:
        """An existing run folder, or a :class:`CheckpointError` saying what is missing or unusable.

        Its ``config.yaml`` must be UTF-8 YAML holding a non-empty mapping; see :meth:`read_saved_config`.
        """
        run = cls(Path(root))
        if not run.root.is_dir():
            raise CheckpointError(f"run directory {str(root)!r} does not exist")
        if not run.config_path.is_file():
            raise CheckpointError(f"run directory {str(root)!r} has no config.yaml; is it an amorctl run?")
        run.read_saved_config()
        return run

    def read_saved_config(self) -> dict[str, Any]:
        """The raw mapping in the run's ``config.yaml``, or one :class:`CheckpointError` sentence.

        An unreadable, non-UTF-8, empty or blank file, invalid YAML, and anything but a non-empty
        mapping are refused: a run's settings are never replaced by defaults.
        """
        where = f"config.yaml of run directory {str(self.root)!r}"
        try:
            text = self.config_path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{where} is not UTF-8 text") from None
        except OSError as error:
            raise CheckpointError(f"{where} cannot be read ({error.strerror or type(error).__name__})") from None
        if not text.strip():
            raise CheckpointError(f"{where} is empty, so the run's settings are lost")
        try:
            raw = parse_yaml(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f" at line {mark.line + 1}" if mark is not None else ""
            raise CheckpointError(f"{where} is not valid YAML{line}") from None
        if not isinstance(raw, dict) or not raw:
            found = "an empty mapping" if isinstance(raw, dict) else f"a {type(raw).__name__}"
            raise CheckpointError(f"{where} must hold the run's settings as a mapping of keys, not {found}")
        return raw

    def load_config(self, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
        """The run's saved config with ``overrides`` applied (e.g. a larger ``train.steps``).

        Besides what :meth:`read_saved_config` refuses, a file that lacks a setting the resolved
        config has (a truncated ``config.yaml``) is refused rather than completed with defaults, except
        a key of :data:`~amorctl.schema.KEYS_ADDED_LATER` that resolves to the value that reproduces the
        versions before it (a run directory written before the key existed).
        """
        raw = self.read_saved_config()
        for override in overrides:
            apply_override(raw, override)
        config = validate_config(raw)
        missing = _first_missing_key(config.model_dump(mode="json"), raw)
        if missing is not None:
            raise CheckpointError(
                f"config.yaml of run directory {str(self.root)!r} lacks {missing!r}; "
                "it is truncated or from another amorctl version"
            )
        return config

    def save_config(self, config: RunConfig) -> Path:
        """Write the resolved ``config`` as the run's ``config.yaml`` atomically (never half a file)."""
        atomic_write_text(self.config_path, to_yaml(config))
        remove_temporaries(self.root, self.config_path.name)
        return self.config_path

    def remove_temporaries(self) -> list[Path]:
        """Delete what killed writes of this run left (``.tmp-*`` files); returns the removed paths.

        Call it when resuming, from the process that will write the run: never while another
        process trains it.
        """
        return [
            *remove_temporaries(self.root, self.config_path.name),
            *remove_temporaries(self.checkpoints),
            *remove_temporaries(self.eval, "metrics.json"),
        ]

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """``eval/metrics.json``: the run's final held-out metrics, written atomically."""
        self.eval.mkdir(exist_ok=True)
        path = atomic_write_text(self.eval / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        remove_temporaries(self.eval, path.name)
        return path


def check_run_name(name: Any) -> str:
    """``name`` if it is one folder name, else a :class:`ConfigError`: a run must stay inside ``runs_dir``.

    Refused: a non-string, ``''``, ``'.'``, ``'..'``, and names with a path separator or a NUL byte.
    """
    separators = {"/", "\\", os.sep, os.altsep} - {None}
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "\0" in name
        or any(separator in name for separator in separators)
    ):
        raise ConfigError(f"config key 'name' is {name!r}; a run name must be one folder name, without '/' or '..'")
    return name


def _run_base(runs_dir: str | Path, name: Any) -> Path:
    """``<runs_dir>/<name>``, checked to lie directly inside ``runs_dir``.

    The check is on the paths' text (after :func:`check_run_name`, it only matters for a Windows
    drive such as ``'C:x'``), so a symbolic link the user placed inside ``runs_dir`` is still followed.
    """
    base = Path(runs_dir) / check_run_name(name)
    if Path(os.path.abspath(base)).parent != Path(os.path.abspath(runs_dir)):
        raise ConfigError(f"config key 'name' is {name!r}, which would place the run outside runs_dir")
    return base


def _make_unique_folder(base: Path, stamp: str) -> Path:
    """Create ``base/stamp`` (``base/stamp-2``, ... when taken, even by a concurrent run) and return it."""
    base.mkdir(parents=True, exist_ok=True)
    root, suffix = base / stamp, 1
    while True:
        try:
            root.mkdir()
            return root
        except FileExistsError:
            suffix += 1
            root = base / f"{stamp}-{suffix}"


def _unwritable(runs_dir: str | Path, error: Exception) -> ConfigError:
    """The one sentence for a ``runs_dir`` where a run folder cannot be created or written."""
    reason = getattr(error, "strerror", None) or type(error).__name__
    return ConfigError(f"config key 'runs_dir' is {str(runs_dir)!r}, where no run folder can be written ({reason})")


def _first_missing_key(resolved: dict[str, Any], raw: dict[str, Any], prefix: str = "") -> str | None:
    """The first dotted key of ``resolved`` (recursing into sections) that ``raw`` lacks, else ``None``; a key
    added later is not missing where it resolves to its earlier value."""
    for key, value in resolved.items():
        dotted = f"{prefix}{key}"
        if key not in raw:
            if dotted in KEYS_ADDED_LATER and value == KEYS_ADDED_LATER[dotted]:
                continue
            return dotted
        if isinstance(value, dict) and isinstance(raw[key], dict):
            missing = _first_missing_key(value, raw[key], f"{prefix}{key}.")
            if missing is not None:
                return missing
    return None

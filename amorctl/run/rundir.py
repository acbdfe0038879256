"""A run is a folder: ``<runs_dir>/<name>/<timestamp>/`` with config, events, checkpoints and eval."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from amorctl.run.atomic import atomic_write_text, remove_temporaries
from amorctl.run.config import Section, load_config, to_yaml
from amorctl.run.errors import CheckpointError


class RunDir:
    """Paths of one run: ``config.yaml``, ``events/`` (TensorBoard), ``checkpoints/``, ``eval/``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @classmethod
    def create(cls, config: Section) -> RunDir:
        """A new, empty run folder named after the config and the current time."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(config.runs_dir) / config.name
        root, suffix = base / stamp, 1
        while root.exists():
            suffix += 1
            root = base / f"{stamp}-{suffix}"
        root.mkdir(parents=True)
        run = cls(root)
        run.save_config(config)
        return run

    @classmethod
    def open(cls, root: str | Path) -> RunDir:
        """An existing run folder, or a :class:`CheckpointError` saying what is missing."""
        run = cls(Path(root))
        if not run.root.is_dir():
            raise CheckpointError(f"run directory {str(root)!r} does not exist")
        if not run.config_path.is_file():
            raise CheckpointError(f"run directory {str(root)!r} has no config.yaml; is it an amorctl run?")
        return run

    def load_config(self, overrides: list[str] | tuple[str, ...] = ()) -> Section:
        """The run's saved config with ``overrides`` applied (e.g. a larger ``train.steps``)."""
        return load_config(self.config_path, overrides)

    def save_config(self, config: Section) -> Path:
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

"""Helpers of the sweep tests: the tiny direct run as a raw config mapping, and search-space files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from amorctl.run.config import apply_override


@pytest.fixture
def tiny_raw(tiny_args: Callable[..., list[str]]) -> Callable[..., dict[str, Any]]:
    """``tiny_raw(*extra)``: the tiny direct run (tests/conftest.py's TINY) as a raw mapping, ``extra`` last."""

    def _raw(*extra: str) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for override in tiny_args(*extra):
            apply_override(raw, override)
        return raw

    return _raw


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """``write_space(mapping)``: the mapping as a search-space YAML file; returns its path."""

    def _write(space: dict[str, Any], name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(space, sort_keys=False))
        return path

    return _write


@pytest.fixture
def gap_space() -> dict[str, Any]:
    """A space over the tiny direct run, scored by its held-out objective gap (a fresh copy per test)."""
    return {
        "objective": {"metric": "objective_gap_mean", "curve_metric": "objective_gap", "direction": "minimize"},
        "pruner": {"kind": "none"},
        "params": {
            "train.lr": {"type": "log_uniform", "low": 1.0e-3, "high": 1.0e-1},
            "model.hidden_sizes": {"type": "categorical", "choices": [[8], [16, 16]]},
            "train.batch_size": {"type": "int", "low": 8, "high": 32, "step": 8},
        },
    }

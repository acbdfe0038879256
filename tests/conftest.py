"""Shared fixtures: tiny runs in a temporary runs folder, and a registry guard for test families.

``AMORCTL_TEST_DEVICE=cuda python -m pytest`` runs the suite on the GPU: every test run and every test that
names a device takes it from :data:`TEST_DEVICE` (tests/device_under_test.py) or the ``test_device`` fixture;
the few tests about the CPU itself say so in a comment, and unit tests that build with a constructor's default
device stay on the CPU. Unset, TEST_DEVICE is the CPU (runs that set no device follow ``device: auto``).
"""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents import DirectConfig
from amorctl.problems import PROBLEMS, Problem, register_problem
from amorctl.run.config import load_config

# Two shared CPU cores: one intra-op thread per test process avoids oversubscription stalls.
torch.set_num_threads(1)

TINY = [
    "name=tiny",
    f"device={TEST_DEVICE}",
    "problem={name: quadratic, dim: 3, cond_max: 10}",
    "model.hidden_sizes=[16]",
    "train.steps=6",
    "train.batch_size=16",
    "train.log_every=2",
    "train.eval_every=3",
    "train.checkpoint_every=3",
    "train.keep_checkpoints=10",
    "eval.num_contexts=16",
    "eval.timing_repeats=1",
]
"""Overrides for a run that takes a fraction of a second: a 3-d quadratic, a 16-unit MLP, 6 steps."""


@pytest.fixture(scope="session")
def test_device() -> torch.device:
    """:data:`TEST_DEVICE`, for tests that build tensors or environments on the device under test."""
    return TEST_DEVICE


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """A runs folder inside the test's temporary directory (the runs create it)."""
    return tmp_path / "runs"


@pytest.fixture
def tiny_args(runs_dir: Path) -> Callable[..., list[str]]:
    """``tiny_args(*extra)``: the tiny run's overrides into ``runs_dir``, with ``extra`` applied last."""
    return lambda *extra: [f"runs_dir={runs_dir}", *TINY, *extra]


@pytest.fixture
def tiny_config(tiny_args: Callable[..., list[str]]) -> Callable[..., DirectConfig]:
    """``tiny_config(*extra)``: the validated tiny config."""
    return lambda *extra: load_config(None, tiny_args(*extra))


@pytest.fixture
def find_runs(runs_dir: Path) -> Callable[..., list[Path]]:
    """``find_runs(name="tiny")``: the run folders created under ``runs_dir/name``, oldest first."""

    def _find(name: str = "tiny") -> list[Path]:
        base = runs_dir / name
        return sorted(base.iterdir()) if base.is_dir() else []

    return _find


@pytest.fixture
def interrupt(tmp_path: Path) -> Callable[[Path, int], Path]:
    """``interrupt(run, last_step)``: a copy of a finished run without its last checkpoint (``last_step``) and its
    evaluation, as a run stopped between its last two checkpoints leaves it."""

    def _interrupt(run: Path, last_step: int) -> Path:
        interrupted = tmp_path / "interrupted"
        shutil.copytree(run, interrupted)
        (interrupted / "checkpoints" / f"step_{last_step:09d}.pt").unlink()
        shutil.rmtree(interrupted / "eval")
        return interrupted

    return _interrupt


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, type[Problem]], None]:
    """``register(name, cls)``: register a family for this test only; the registry is restored afterwards."""

    def _register(name: str, cls: type[Problem]) -> None:
        monkeypatch.setitem(PROBLEMS, name, cls)
        register_problem(name, cls)

    return _register


@dataclass
class GymPlugin:
    """A user's module that registers a gymnasium task: ``env_id`` is ``"<module>:<name>"``."""

    module: str
    env_id: str
    marker: Path
    """Gets one line each time the module's code runs."""


@pytest.fixture
def gym_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GymPlugin]:
    """A module on ``sys.path``, not imported yet, registering a 5-step Pendulum and recording its imports."""
    import gymnasium

    module = f"amorctl_test_plugin_{uuid.uuid4().hex[:8]}"
    name = f"PluginPendulum_{module[-8:]}-v0"
    marker = tmp_path / "plugin_imports.txt"
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / f"{module}.py").write_text(
        "import pathlib\n\nimport gymnasium\nfrom gymnasium.envs.classic_control.pendulum import PendulumEnv\n\n"
        f"with pathlib.Path({str(marker)!r}).open('a') as file:\n    file.write('imported\\n')\n"
        f"gymnasium.register({name!r}, entry_point=PendulumEnv, max_episode_steps=5)\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield GymPlugin(module, f"{module}:{name}", marker)
    sys.modules.pop(module, None)
    gymnasium.registry.pop(name, None)

"""Users' own code from the command line: a plugin module registers a family and an agent (--import)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

import amorctl
from amorctl.agents import AGENTS
from amorctl.problems import PROBLEMS
from amorctl.run import plugins
from amorctl.run.cli import train_main

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "toy_plugin.py"
RUNNING_MEAN = ROOT / "examples" / "running_mean.yaml"


@pytest.fixture
def clean_registries():
    """Plugin registrations made by a test are undone afterwards."""
    saved_agents, saved_problems = dict(AGENTS), dict(PROBLEMS)
    yield
    for registry, saved in ((AGENTS, saved_agents), (PROBLEMS, saved_problems)):
        registry.clear()
        registry.update(saved)
    sys.modules.pop("toy_plugin", None)


def script(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--no-progress", *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def only_run(runs_dir: Path, name: str) -> Path:
    (run,) = sorted((runs_dir / name).iterdir())
    return run


def test_a_plugin_agent_and_family_train_through_the_script(tmp_path):
    runs_dir = tmp_path / "runs"
    done = script("--import", str(PLUGIN), "--config", str(RUNNING_MEAN), f"runs_dir={runs_dir}",
                  f"device={TEST_DEVICE}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((only_run(runs_dir, "running_mean") / "eval" / "metrics.json").read_text())
    # θ starts at 0, a distance of ‖(1, 2, 3)‖ ≈ 3.74 from the mean; 200 steps of lr 0.05 shrink it ~2e4-fold
    # before the sampling noise (std ≈ 0.16 per coordinate) dominates
    assert metrics["step"] == 200 and metrics["distance"] < 1.0

    done = script("--import", str(PLUGIN), "problem={name: shifted_sphere, dim: 4}", "model.hidden_sizes=[32]",
                  "train.steps=300", "train.lr=0.01", "train.batch_size=64", "eval.num_contexts=64",
                  "eval.timing_repeats=1", "name=sphere", f"runs_dir={runs_dir}", f"device={TEST_DEVICE}")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((only_run(runs_dir, "sphere") / "eval" / "metrics.json").read_text())
    assert math.isfinite(metrics["relative_gap_mean"]) and metrics["relative_gap_mean"] < 0.1


def test_a_module_name_is_imported_from_the_current_folder(tmp_path):
    runs_dir = tmp_path / "runs"
    done = script("--import", "toy_plugin", "--config", str(RUNNING_MEAN), f"runs_dir={runs_dir}",
                  "train.steps=20", cwd=ROOT / "examples")
    assert done.returncode == 0, done.stderr


def test_without_the_import_the_names_are_unknown_and_the_error_says_how(tmp_path, capsys):
    assert train_main(["--no-progress", "--config", str(RUNNING_MEAN), f"runs_dir={tmp_path}"]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "'running_mean'" in message and "--import MODULE" in message
    assert train_main(["--no-progress", "problem.name=shifted_spher", f"runs_dir={tmp_path}"]) == 2
    assert "--import" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "expected"), [("no_such_module", "cannot be found"),
                                                ("missing.py", "no such file")])
def test_a_plugin_that_cannot_be_loaded_is_one_sentence(name, expected, tmp_path, capsys):
    assert train_main(["--no-progress", "--import", name, f"runs_dir={tmp_path}"]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and expected in message


def test_a_plugin_that_raises_is_one_sentence(tmp_path, capsys):
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise RuntimeError('the plugin is broken')\n")
    assert train_main(["--no-progress", "--import", str(broken), f"runs_dir={tmp_path / 'runs'}"]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "the plugin is broken" in message
    assert not (tmp_path / "runs").exists()


def test_entry_points_of_installed_packages_are_loaded(monkeypatch, clean_registries):
    entry = EntryPoint(name="toy", value="toy_plugin", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [entry] if group == plugins.ENTRY_POINT_GROUP else [])
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    plugins.load_plugins()
    assert "running_mean" in AGENTS and "shifted_sphere" in PROBLEMS


def test_load_run_returns_the_plugin_agents_policy(tmp_path, clean_registries):
    plugins.load_plugins([str(PLUGIN)], installed=False)
    argv = ["--no-progress", "--config", str(RUNNING_MEAN), f"runs_dir={tmp_path}", f"device={TEST_DEVICE}"]
    assert train_main(argv) == 0
    loaded = amorctl.load_run(only_run(tmp_path, "running_mean"))
    assert loaded.step == 200
    out = loaded.policy(torch.zeros(2, 3, device=TEST_DEVICE)).cpu()
    assert out.shape == (2, 3) and torch.allclose(out, torch.tensor([1.0, 2.0, 3.0]).expand(2, 3), atol=1.0)

"""``--backend ray``: trials and seeds as Ray tasks on a one-CPU local Ray instance.

Skipped, with the reason, only where Ray is not installed or cannot start (e.g. no shared memory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[sweep]')")
pytest.importorskip("optuna", reason="Optuna is not installed (pip install -e '.[sweep]')")

from amorctl.sweep.backends import Backend  # noqa: E402
from amorctl.sweep.multiseed import run_seeds  # noqa: E402
from amorctl.sweep.space import load_space  # noqa: E402
from amorctl.sweep.study import run_sweep  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    except Exception as error:  # whatever stops Ray from starting is the reason to skip
        pytest.skip(f"Ray cannot start a local instance here: {type(error).__name__}: {error}")
    yield
    ray.shutdown()


def test_sweep_trial_as_a_ray_task(local_ray, tmp_path, tiny_raw, write_space, gap_space, monkeypatch):
    from amorctl.sweep import study as study_module

    monkeypatch.setattr(study_module, "_plots", lambda study, out: {})
    raw, out = tiny_raw(), tmp_path / "sweep"
    backend = Backend("ray", cpus_per_job=1)
    summary = run_sweep(raw, load_space(write_space(gap_space), raw), 1, backend, out, "tiny")
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"]
    for trial in summary["trials"]:  # written by the Ray workers, where the job's paths point
        assert (Path(trial["run_dir"]) / "eval" / "metrics.json").is_file()
    assert (out / "best_config.yaml").is_file()


@pytest.mark.slow
def test_seeds_as_ray_tasks(local_ray, tiny_raw, runs_dir):
    group = run_seeds(tiny_raw(), [0, 1], Backend("ray", cpus_per_job=1))
    saved = json.loads((group / "aggregate.json").read_text())
    assert [s["seed"] for s in saved["seeds"]] == [0, 1] and saved["final"]["n"] == 2
    assert group.parent == runs_dir / "tiny"

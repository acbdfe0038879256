"""What a run leaves behind: the folder layout, eval/metrics.json and the TensorBoard scalars."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from amorctl.run.checkpoint import list_checkpoints
from amorctl.run.cli import train_main
from amorctl.run.config import load_config

LOGGED = ["loss/train", "train/lr", "perf/steps_per_second"]
EVALUATED = ["eval/objective", "eval/objective_gap", "eval/relative_gap", "eval/solution_distance"]
FINAL = ["final/objective_mean", "final/objective_gap_mean", "final/relative_gap_mean", "final/speedup"]


def scalars(run) -> dict[str, list]:
    """Every scalar series in the run's events, by tag."""
    events = EventAccumulator(str(run / "events"))
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


SCHEDULE = ("train.steps=7", "train.log_every=3", "train.eval_every=4")


@pytest.fixture
def run(tiny_args, find_runs, capsys):
    """A finished 7-step run: logged every 3 steps, evaluated every 4, checkpointed every 3."""
    assert train_main(["--no-progress", *tiny_args(*SCHEDULE)]) == 0
    capsys.readouterr()
    (folder,) = find_runs()
    return folder


def test_run_folder_layout(run, runs_dir, tiny_args):
    assert run.parent == runs_dir / "tiny"
    assert sorted(path.name for path in run.iterdir()) == ["checkpoints", "config.yaml", "eval", "events"]
    assert load_config(run / "config.yaml") == load_config(None, tiny_args(*SCHEDULE))
    assert [path.name for path in list_checkpoints(run / "checkpoints")] == [
        "step_000000003.pt",
        "step_000000006.pt",
        "step_000000007.pt",
    ]
    assert not [path for path in (run / "checkpoints").iterdir() if path.name.startswith(".tmp")]
    assert any(path.name.startswith("events.out.tfevents") for path in (run / "events").iterdir())
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 7 and metrics["num_contexts"] == 16
    for key in ("relative_gap_mean", "objective_gap_mean", "solution_distance_mean", "speedup"):
        assert math.isfinite(metrics[key]), key
    assert metrics["speedup"] > 0 and metrics["solution_distance_mean"] >= 0


def test_scalar_tags_and_steps(run):
    series = scalars(run)
    for tag in LOGGED:
        assert [event.step for event in series[tag]] == [3, 6, 7], tag
    for tag in EVALUATED:
        assert [event.step for event in series[tag]] == [4, 7], tag
    for tag in FINAL:
        assert [event.step for event in series[tag]] == [7], tag
    assert all(event.value > 0 for event in series["perf/steps_per_second"])
    assert all(math.isfinite(event.value) for tag in (*LOGGED, *EVALUATED) for event in series[tag])


def test_logged_eval_matches_metrics_json(run):
    series = scalars(run)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert series["eval/relative_gap"][-1].value == pytest.approx(metrics["relative_gap_mean"], rel=1e-5)
    assert series["eval/objective_gap"][-1].value == pytest.approx(metrics["objective_gap_mean"], rel=1e-5)
    assert series["final/speedup"][-1].value == pytest.approx(metrics["speedup"], rel=1e-5)


def test_resume_does_not_duplicate_steps(run, tmp_path, capsys):
    """Events written after the resumed checkpoint by the interrupted run are purged, then rewritten once."""
    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    for name in ("step_000000006.pt", "step_000000007.pt"):
        (interrupted / "checkpoints" / name).unlink()
    assert train_main(["--no-progress", "--resume", str(interrupted)]) == 0
    capsys.readouterr()
    series = scalars(interrupted)
    assert [event.step for event in series["loss/train"]] == [3, 6, 7]
    assert [event.step for event in series["eval/relative_gap"]] == [4, 7]
    straight = scalars(run)
    assert [event.value for event in series["loss/train"]] == [event.value for event in straight["loss/train"]]

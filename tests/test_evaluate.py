"""scripts/evaluate.py: a trained policy on fresh deterministic episodes, JSON results, videos, clear errors."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.eval.reports import REPORTS
from amorctl.run.cli import evaluate_main, train_main
from amorctl.run.config import load_config
from amorctl.run.rundir import RunDir

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

TINY_TD3 = [
    f"device={TEST_DEVICE}",
    "td3.hidden_sizes=[16, 16]",
    "td3.batch_size=16",
    "td3.buffer_size=1000",
    "td3.learning_starts=20",
    "train.total_steps=60",
    "train.log_every=30",
    "train.eval_every=30",
    "train.eval_episodes=1",
    "train.eval_envs=1",
    "train.checkpoint_every=30",
]
"""A 60-step TD3 run checkpointed at steps 30 and 60: a fraction of a second."""


def train(runs_dir: Path, config: str | Path, *extra: str) -> Path:
    assert train_main(["--no-progress", "--config", str(config), f"runs_dir={runs_dir}", *TINY_TD3, *extra]) == 0
    (run,) = [path for base in runs_dir.iterdir() for path in base.iterdir()]
    return run


def one_sentence(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    """A tiny trained Pendulum-v1 run with 50-step episodes (never terminated early)."""
    runs_dir = tmp_path_factory.mktemp("evaluate") / "runs"
    return train(runs_dir, CONFIGS / "td3_pendulum.yaml", "env.max_episode_steps=50")


@pytest.fixture
def run_copy(pendulum_run, tmp_path) -> Path:
    """A copy of the tiny run that a test may damage or write into."""
    return Path(shutil.copytree(pendulum_run, tmp_path / "run"))


def evaluate(*argv: str) -> int:
    return evaluate_main([str(arg) for arg in argv])


def test_evaluate_prints_mean_and_std_and_writes_json(run_copy, capsys):
    assert evaluate(run_copy, "--episodes", "3") == 0
    out = capsys.readouterr().out
    result = json.loads((run_copy / "eval" / "evaluate.json").read_text())
    assert result["episodes"] == 3 and len(result["returns"]) == 3 and result["lengths"] == [50, 50, 50]
    assert result["step"] == 60 and result["checkpoint"].endswith("step_000000060.pt")
    assert result["env"] == "Pendulum-v1" and result["deterministic"] is True
    assert result["seeds"] == [2_000_000, 2_000_001, 2_000_002]  # the run's seed 0 + 2000000: not training's
    assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    assert result["std_return"] == pytest.approx(np.std(result["returns"]))
    assert len(set(result["returns"])) == 3  # fresh episodes, not one repeated
    assert f"return  {result['mean_return']:.2f} ± {result['std_return']:.2f}" in out
    assert "length  50.0 ± 0.0" in out
    assert str(run_copy / "eval" / "evaluate.json") in out
    assert (run_copy / "eval" / "metrics.json").is_file()  # training's own results are left alone


def test_episodes_are_deterministic_given_the_seed(pendulum_run, tmp_path, capsys):
    def returns(name: str, *argv: str) -> list[float]:
        output = tmp_path / f"{name}.json"
        assert evaluate(pendulum_run, "--episodes", "4", "--output", output, *argv) == 0
        return json.loads(output.read_text())["returns"]

    first = returns("a", "--seed", "7")
    assert returns("b", "--seed", "7") == first
    assert returns("c", "--seed", "7", "--num-envs", "2") == pytest.approx(first, rel=1e-5)  # episode k: seed 7 + k
    assert returns("d", "--seed", "8")[:3] == pytest.approx(first[1:], rel=1e-5)
    assert returns("e", "--seed", "100") != first


def test_a_checkpoint_file_is_evaluated_with_its_runs_config(run_copy, tmp_path, capsys):
    checkpoint = run_copy / "checkpoints" / "step_000000030.pt"
    output = tmp_path / "early.json"
    assert evaluate(checkpoint, "--episodes", "2", "--output", output) == 0
    result = json.loads(output.read_text())
    assert result["step"] == 30 and result["checkpoint"] == str(checkpoint) and len(result["lengths"]) == 2
    assert not (run_copy / "eval" / "evaluate.json").exists()


def test_config_overrides_apply_to_the_runs_config(pendulum_run, tmp_path, capsys):
    output = tmp_path / "long.json"
    assert evaluate(pendulum_run, "--episodes", "1", "--output", output, "env.max_episode_steps=80") == 0
    assert json.loads(output.read_text())["lengths"] == [80]


def _bad_input(kind: str, run: Path, scratch: Path) -> tuple[list, list[str]]:
    """Arguments that evaluate.py must refuse (damaging ``run`` where needed), and words its sentence must hold."""
    latest = run / "checkpoints" / "step_000000060.pt"
    if kind == "missing":
        return [scratch / "absent"], [str(scratch / "absent"), "does not exist"]
    if kind == "not_a_run":
        return [scratch], ["config.yaml", "not an amorctl run"]
    if kind == "checkpoints_folder":
        return [run / "checkpoints"], ["not an amorctl run", "run directory"]
    if kind == "no_checkpoint":
        empty = RunDir.create(load_config(None, ["agent=td3", f"runs_dir={scratch / 'runs'}", f"device={TEST_DEVICE}"]))
        return [empty.root], ["no checkpoint"]
    if kind == "corrupt":
        latest.write_bytes(latest.read_bytes()[:300])
        return [run], [latest.name, "corrupt"]
    if kind == "loose_checkpoint":
        shutil.copy(latest, scratch / latest.name)
        return [scratch / latest.name], ["not inside a run directory"]
    if kind == "not_a_checkpoint":
        return [run / "config.yaml"], ["neither a run directory nor a checkpoint"]
    if kind == "zero_episodes":
        return [run, "--episodes", "0"], ["--episodes", "at least 1"]
    if kind == "other_networks":
        return [run, "td3.hidden_sizes=[32]"], ["does not match"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["missing", "not_a_run", "checkpoints_folder", "no_checkpoint", "corrupt", "loose_checkpoint",
     "not_a_checkpoint", "zero_episodes", "other_networks"],
)
def test_bad_input_exits_2_with_one_sentence(kind, run_copy, tmp_path, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv, words = _bad_input(kind, run_copy, scratch)
    assert evaluate(*argv) == 2
    message = one_sentence(capsys.readouterr().err)
    for word in words:
        assert word in message, message
    assert not (run_copy / "eval" / "evaluate.json").exists()


def test_a_policy_acting_nan_exits_3_with_one_sentence(run_copy, capsys):
    checkpoint = run_copy / "checkpoints" / "step_000000060.pt"
    state = torch.load(checkpoint, weights_only=True)
    for value in state["learner"]["algorithm"]["actor"].values():
        value.fill_(float("nan"))
    torch.save(state, checkpoint)
    assert evaluate(run_copy, "--episodes", "2") == 3
    message = one_sentence(capsys.readouterr().err)
    assert "NaN or Inf action at step 0 of the evaluation episode with seed 2000000" in message
    assert not (run_copy / "eval" / "evaluate.json").exists()


def test_a_run_whose_env_id_names_a_module_cannot_import_it(run_copy, gym_plugin, capsys):
    """Evaluating a run someone sent must not execute their code: module-qualified ids need --import."""
    config = run_copy / "config.yaml"
    config.write_text(config.read_text().replace("id: Pendulum-v1", f"id: {gym_plugin.env_id}"))
    assert gym_plugin.env_id in config.read_text()
    assert evaluate(run_copy, "--episodes", "1") == 2
    assert f"pass --import {gym_plugin.module}" in one_sentence(capsys.readouterr().err)
    assert not gym_plugin.marker.exists() and gym_plugin.module not in sys.modules


def test_a_direct_run_shows_its_held_out_metrics(tiny_args, find_runs, capsys):
    assert train_main(["--no-progress", *tiny_args()]) == 0
    (run,) = find_runs()
    capsys.readouterr()
    assert evaluate(run) == 0
    out = capsys.readouterr().out
    assert "direct run of a model, not a policy" in out and "relative_gap_mean" in out
    assert "amortization report" in out  # and its files, beside evaluate.json (tests/eval/test_amortization_report.py)
    assert "amortization" in json.loads((run / "eval" / "evaluate.json").read_text())

    (run / "eval" / "metrics.json").unlink()
    assert evaluate(run) == 2
    message = one_sentence(capsys.readouterr().err)
    assert "direct run without a readable eval/metrics.json" in message


def test_an_iterate_run_is_compared_with_the_baselines(tmp_path, capsys, monkeypatch):
    config = tmp_path / "td3_iterate.yaml"
    config.write_text("agent: td3\nenv:\n  kind: iterate\n  problem: {name: quadratic, dim: 3, cond_max: 10}\n"
                      "  iterate: {max_iterations: 8, action: step_size}\n")
    run = train(tmp_path / "runs", config)
    calls = []

    def compare_with_baselines(run_dir, config, policy, output_dir):
        calls.append((run_dir, config, policy, output_dir))
        return {"ratio": 0.25, "json": output_dir / "optimizer_comparison.json"}

    monkeypatch.setitem(REPORTS, "iterate", compare_with_baselines)
    assert evaluate(run, "--episodes", "3") == 0
    ((run_dir, used_config, policy, output_dir),) = calls
    assert run_dir == run and output_dir == run / "eval"
    assert used_config.env.kind == "iterate" and used_config.td3["buffer_size"] == 1000  # the run's own config
    assert policy.__self__.num_timesteps == 60  # the trained TD3's deterministic predict
    result = json.loads((run / "eval" / "evaluate.json").read_text())
    assert result["report"] == {"ratio": 0.25, "json": str(run / "eval" / "optimizer_comparison.json")}
    assert len(result["returns"]) == 3 and all(1 <= length <= 8 for length in result["lengths"])

    assert evaluate(run, "--video") == 2
    assert "can be filmed" in one_sentence(capsys.readouterr().err)


@pytest.fixture(scope="module")
def cheetah_run(tmp_path_factory) -> Path:
    """A tiny HalfCheetah-v5 run with 20-step episodes (the cheetah never terminates)."""
    runs_dir = tmp_path_factory.mktemp("video") / "runs"
    return train(runs_dir, CONFIGS / "td3_halfcheetah.yaml", "env.max_episode_steps=20")


def test_video_records_a_decodable_mp4_of_the_scored_episode(cheetah_run, capsys, monkeypatch):
    """Runs MuJoCo's offscreen renderer for real (.ci/run installs EGL and Mesa): no skip here."""
    monkeypatch.setenv("MUJOCO_GL", "unset-by-the-test")
    monkeypatch.delenv("MUJOCO_GL")  # evaluate.py picks its default, egl
    assert evaluate(cheetah_run, "--episodes", "2", "--video") == 0
    assert os.environ["MUJOCO_GL"] == "egl"
    out = capsys.readouterr().out
    result = json.loads((cheetah_run / "eval" / "evaluate.json").read_text())
    (video,) = result["videos"]
    path = Path(video["path"])
    assert path == cheetah_run / "eval" / "videos" / "step_000000060-episode-0.mp4" and f"video: {path}" in out
    assert video["bytes"] == path.stat().st_size > 0
    assert video["seed"] == result["seeds"][0]
    assert video["return"] == result["returns"][0] and video["length"] == 20  # the filmed episode is the scored one
    assert video["frames_captured"] == 21  # the reset frame and one per step

    reader = imageio.get_reader(path, format="FFMPEG")
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == video["frames"] and 20 <= len(frames) <= 21
    assert frames[0].shape == (480, 480, 3) and frames[0].dtype == np.uint8
    assert frames[0].std() > 10  # a rendered scene, not a blank image
    assert not np.array_equal(frames[0], frames[-1])  # the cheetah moved
    assert video["seconds"] == pytest.approx(len(frames) / 20, abs=0.1)  # HalfCheetah renders at 20 fps


# gymnasium's OffScreenViewer.__del__ trips over the context it failed to create; not ours to fix
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_video_without_a_working_renderer_is_one_sentence(cheetah_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    assert evaluate(cheetah_run, "--episodes", "1", "--video", "--output", tmp_path / "out.json") == 2
    message = one_sentence(capsys.readouterr().err)
    assert "MUJOCO_GL=no-such-backend" in message and "libegl1" in message
    assert not (tmp_path / "out.json").exists()
    assert math.isfinite(json.loads((cheetah_run / "eval" / "metrics.json").read_text())["mean_return"])


def test_the_script_reports_a_broken_renderer_in_one_line(cheetah_run, tmp_path):
    """In a fresh process MuJoCo reads MUJOCO_GL when it is imported, before any rendering."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "evaluate.py"
    env = {**os.environ, "MUJOCO_GL": "no-such-backend"}
    argv = [sys.executable, str(script), str(cheetah_run), "--video", "--output", str(tmp_path / "out.json")]
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "MUJOCO_GL=no-such-backend" in one_sentence(done.stderr)

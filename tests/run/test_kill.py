"""``kill -9`` of ``scripts/train.py`` at random moments loses nothing, and the run still finishes on resume.

Each kill is followed by checks: every checkpoint left loads, config.yaml loads, and the temporary
files a kill can leave (one is planted as well, since a random kill rarely lands mid-write) are gone
once the resumed process has restored its checkpoint. A last resume runs to the end.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from device_under_test import TEST_DEVICE

from amorctl.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from amorctl.run.rundir import RunDir

REPOSITORY = Path(__file__).resolve().parents[2]
SCHEDULE = [
    "train.steps=400",
    "train.log_every=5",
    "train.eval_every=50",
    "train.checkpoint_every=5",
    "train.keep_checkpoints=2",
]
"""A checkpoint every few milliseconds, so that kills land between, around and during saves."""
KILLS = 3
HANG_GUARD_SECONDS = 180.0
"""Not a speed assertion: only how long to wait before calling a child process hung."""


def start(log: Path, *args: str) -> subprocess.Popen:
    """``python scripts/train.py --no-progress ARGS`` from the repository root, stderr into ``log``."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "scripts/train.py", "--no-progress", *args],
            cwd=REPOSITORY, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )


def wait_for(condition: Callable[[], object], process: subprocess.Popen) -> object:
    """Poll ``condition`` until it holds (returns its value) or ``process`` has exited (returns ``None``)."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            return None
        time.sleep(0.01)
    process.kill()
    pytest.fail("scripts/train.py hung")


def latest_step(run: Path) -> int:
    """The step of the run's newest checkpoint, -1 when it has none."""
    latest = latest_checkpoint(run / "checkpoints")
    return -1 if latest is None else int(latest.stem.removeprefix("step_"))


def assert_intact(run: Path) -> None:
    """Every checkpoint left loads, at the step its name says, and the run's config loads."""
    for path in list_checkpoints(run / "checkpoints"):
        assert load_checkpoint(path)["step"] == int(path.stem.removeprefix("step_"))
    RunDir.open(run).load_config()


def plant_orphans(run: Path) -> list[Path]:
    """What a kill during a save leaves, plus whatever the last kill really left in the run's own folders."""
    planted = [run / "checkpoints" / ".tmp-step_000000999-planted.pt", run / ".tmp-config-planted.yaml"]
    for path in planted:
        path.write_bytes(b"half a file")
    return [*planted, *(run / "checkpoints").glob(".tmp-*"), *run.glob(".tmp-*")]


def kill_resume_and_finish(args: list[str], find_runs: Callable[[], list[Path]], log: Path, seed: int,
                           kills_wanted: int) -> Path:
    """Start ``scripts/train.py ARGS``; ``kills_wanted`` times, once a newer checkpoint exists, kill -9 it at a
    random moment, check the run is intact, plant orphans and resume; let the last resume finish. Returns the run."""
    rng = random.Random(seed)
    process = start(log, *args)
    try:
        run = wait_for(lambda: next(iter(find_runs()), None), process)
        assert run is not None, log.read_text()
        step, orphans, kills = -1, [], 0
        for _ in range(kills_wanted):
            reached = wait_for(lambda: latest_step(run) > step, process)  # noqa: B023
            assert reached or process.returncode == 0, log.read_text()
            assert [path for path in orphans if path.exists()] == [], "a resume left a killed write's temporary file"
            time.sleep(rng.uniform(0.0, 1.0))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += process.wait() == -signal.SIGKILL
            assert_intact(run)
            step, orphans = latest_step(run), plant_orphans(run)
            process = start(log, "--resume", str(run))
        assert process.wait(timeout=HANG_GUARD_SECONDS) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert kills >= 1
    assert_intact(run)
    assert (run / "eval" / "metrics.json").is_file()
    assert sorted(run.rglob(".tmp-*")) == []
    return run


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_at_random_moments_loses_nothing(tiny_args, find_runs, tmp_path):
    run = kill_resume_and_finish(tiny_args(*SCHEDULE), find_runs, tmp_path / "stderr.log", 20240517, KILLS)
    assert latest_step(run) == 400


SB3_TINY = ["--config", str(REPOSITORY / "configs" / "sb3_sac_pendulum.yaml"), "name=tiny", f"device={TEST_DEVICE}",
            "env.max_episode_steps=50", "sb3.hidden_sizes=[16, 16]",
            "sb3.kwargs={buffer_size: 1000, batch_size: 16, learning_starts: 20}", "train.total_steps=600",
            "train.log_every=20", "train.eval_every=600", "train.eval_episodes=1", "train.eval_envs=1",
            "train.checkpoint_every=20", "train.keep_checkpoints=2"]
"""An ``agent: sb3`` run (SB3's zip and replay buffer inside every checkpoint) saving every 20 transitions."""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_of_a_stable_baselines3_run_loses_nothing(runs_dir, find_runs, tmp_path):
    run = kill_resume_and_finish([f"runs_dir={runs_dir}", *SB3_TINY], find_runs, tmp_path / "stderr.log", 7, 2)
    assert latest_step(run) == 600

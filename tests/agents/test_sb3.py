"""``agent: sb3``: stable-baselines3 under the run loop — same scalars, resume, evaluate.py, refusals, and
checkpoints that never execute code."""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from amorctl.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from amorctl.run.cli import evaluate_main, train_main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_SAC = ["--no-progress", "--config", str(CONFIGS / "sb3_sac_pendulum.yaml"), "name=tiny_sb3",
            f"device={TEST_DEVICE}", "env.max_episode_steps=50", "sb3.hidden_sizes=[16, 16]",
            "sb3.kwargs={buffer_size: 1000, batch_size: 32, "
            "learning_starts: 100}", "train.total_steps=300", "train.log_every=100", "train.eval_every=300",
            "train.eval_episodes=2", "train.eval_envs=2", "train.checkpoint_every=150", "train.keep_checkpoints=10"]
NATIVE_TAGS = {"loss/critic", "loss/actor", "train/episodic_return", "train/episodic_length", "perf/steps_per_second",
               "eval/mean_return", "eval/std_return", "eval/mean_length"}
"""What an off-policy run of amorctl's own SAC writes (but ``train/q_mean``, which SB3 does not record)."""


def the_run(runs_dir: Path, name: str = "tiny_sb3") -> Path:
    (run,) = sorted((runs_dir / name).iterdir())
    return run


def scalar_tags(run: Path) -> set[str]:
    events = EventAccumulator(str(run / "events"))
    events.Reload()
    return set(events.Tags()["scalars"])


class Hostile:
    """Unpickling this creates ``marker`` (as code in a pickle could do anything)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory) -> Path:
    """A tiny SB3 SAC run (300 transitions, checkpoints at 150 and 300, replay buffer kept)."""
    runs = tmp_path_factory.mktemp("sb3") / "runs"
    assert train_main([*TINY_SAC, f"runs_dir={runs}"]) == 0
    return the_run(runs)


def test_sb3_sac_writes_the_native_scalars_and_metrics(sac_run):
    tags = scalar_tags(sac_run)
    assert tags >= NATIVE_TAGS
    assert {tag.split("/")[0] for tag in tags} <= {"loss", "train", "perf", "eval", "final", "sb3"}
    assert "sb3/ent_coef" in tags and "train/lr" in tags
    metrics = json.loads((sac_run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 300 and metrics["stop_reason"] == "total_steps" and metrics["episodes"] == 2
    assert {"mean_return", "std_return", "mean_length", "seeds", "returns", "lengths"} <= set(metrics)


def test_sb3_resume_continues_counters_and_the_replay_buffer(sac_run, tmp_path, capsys):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(sac_run, run)
    before = load_checkpoint(latest_checkpoint(run / "checkpoints"))["learner"]["replay_buffer"]
    assert before["observations"].shape[0] == 300
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=450", "sb3.learning_rate=0.0005"]) == 0
    state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    assert state["step"] == 450
    with zipfile.ZipFile(io.BytesIO(state["learner"]["model_zip"].numpy().tobytes())) as files:
        data = json.loads(files.read("data"))
    assert data["num_timesteps"] == 450 and data["learning_rate"] == 0.0005
    after = state["learner"]["replay_buffer"]
    assert after["observations"].shape[0] == 450  # the 300 saved transitions and 150 new ones
    assert torch.equal(after["observations"][:300], before["observations"])
    events = EventAccumulator(str(run / "events"))
    events.Reload()
    assert max(event.step for event in events.Scalars("loss/critic")) == 450


def test_evaluate_py_on_an_sb3_run(sac_run, tmp_path, capsys):
    output = tmp_path / "evaluate.json"
    assert evaluate_main([str(sac_run), "--episodes", "2", "--output", str(output)]) == 0
    assert "return" in capsys.readouterr().out
    report = json.loads(output.read_text())
    assert report["step"] == 300 and report["episodes"] == 2 and len(report["returns"]) == 2


@pytest.mark.parametrize(("override", "expected"), [
    ("sb3.kwargs.gamma=0.5", "'sb3.kwargs.gamma' cannot change when resuming"),
    ("sb3.algo=TD3", "'sb3.algo' cannot change when resuming"),
    ("sb3.hidden_sizes=[8]", "'sb3.hidden_sizes' cannot change when resuming"),
])
def test_a_resume_may_not_change_what_the_model_was_built_with(sac_run, override, expected, capsys):
    saved = (sac_run / "config.yaml").read_text()
    assert train_main(["--no-progress", "--resume", str(sac_run), override]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and expected in message
    assert (sac_run / "config.yaml").read_text() == saved


def _hostile_copy(sac_run: Path, tmp_path: Path, marker: Path, part: str) -> Path:
    """A copy of the run whose latest checkpoint holds a zip with a code-running pickle in ``part``."""
    import shutil

    run = tmp_path / "hostile"
    shutil.copytree(sac_run, run)
    path = latest_checkpoint(run / "checkpoints")
    state = torch.load(path, weights_only=True)
    archive = state["learner"]["model_zip"].numpy().tobytes()
    out = io.BytesIO()
    payload = pickle.dumps(Hostile(marker))
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            content = source.read(name)
            if name == "data" and part == "data":
                data = json.loads(content)
                serialized = {":type:": "<class 'object'>", ":serialized:": base64.b64encode(payload).decode()}
                for key in ("lr_schedule", "policy_class", "observation_space", "evil"):
                    data[key] = serialized
                content = json.dumps(data).encode()
            if name == "policy.pth" and part == "policy.pth":
                buffer = io.BytesIO()
                torch.save({"weights": Hostile(marker)}, buffer)
                content = buffer.getvalue()
            target.writestr(name, content)
    state["learner"]["model_zip"] = torch.frombuffer(bytearray(out.getvalue()), dtype=torch.uint8)
    torch.save(state, path)
    for older in list_checkpoints(run / "checkpoints")[:-1]:
        older.unlink()
    return run


def test_the_hostile_payload_runs_code_when_unpickled(tmp_path):
    """The control: the payload the next test plants does execute when anything unpickles it."""
    import cloudpickle

    marker = tmp_path / "control"
    cloudpickle.loads(pickle.dumps(Hostile(marker)))
    assert marker.exists()


def test_a_hostile_model_data_entry_is_never_unpickled(sac_run, tmp_path, capsys):
    marker = tmp_path / "executed"
    run = _hostile_copy(sac_run, tmp_path, marker, "data")
    assert evaluate_main([str(run), "--episodes", "1"]) == 0  # every pickled entry is rebuilt from the config
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=350"]) == 0
    assert not marker.exists()


def test_hostile_parameters_are_refused_without_running_code(sac_run, tmp_path, capsys):
    marker = tmp_path / "executed"
    run = _hostile_copy(sac_run, tmp_path, marker, "policy.pth")
    assert evaluate_main([str(run), "--episodes", "1"]) == 2
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=350"]) == 2
    message = capsys.readouterr().err.strip().splitlines()
    assert all("cannot be loaded" in line or "does not match" in line for line in message)
    assert not marker.exists()


@pytest.mark.parametrize(("override", "expected"), [
    ("sb3.algo=SACC", "did you mean 'SAC'?"),
    ("sb3.algo=DQN", "'sb3.algo'"),
    ("sb3.kwargs.gama=0.9", "'sb3.kwargs.gama' is not a keyword argument of stable_baselines3.SAC; did you mean"),
    ("sb3.kwargs.learning_rate=0.1", "sb3.learning_rate"),
    ("sb3.kwargs.gamma=fast", "'sb3.kwargs.gamma' must be a finite number"),
    ("sb3.kwargs.batch_size=0", "'sb3.kwargs.batch_size' must be at least 1"),
    ("sb3.hidden_size=[8]", "'sb3.hidden_size' is not a known setting; did you mean 'hidden_sizes'?"),
    ("env={kind: pendulum_mpc}", "no single-instance gymnasium form"),
    ("sb3={algo: PPO, kwargs: {n_steps: 1}}", "refused by stable_baselines3.PPO"),
])
def test_bad_sb3_settings_are_one_sentence_before_anything_is_written(override, expected, tmp_path, capsys):
    assert train_main([*TINY_SAC, f"runs_dir={tmp_path / 'runs'}", override]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and expected in message
    assert not (tmp_path / "runs").exists()


def test_sb3_ppo_trains_and_evaluates(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = [*TINY_SAC, f"runs_dir={runs}", "name=tiny_ppo", "sb3={algo: PPO, hidden_sizes: [16], "
            "kwargs: {n_steps: 64, batch_size: 32, n_epochs: 2}}", "train.total_steps=128", "train.log_every=64",
            "train.eval_every=128", "train.checkpoint_every=64"]
    assert train_main(argv) == 0
    run = the_run(runs, "tiny_ppo")
    expected = {"loss/critic", "loss/actor", "perf/steps_per_second", "eval/mean_return", "sb3/approx_kl"}
    assert scalar_tags(run) >= expected
    assert train_main(["--no-progress", "--resume", str(run), "train.total_steps=192"]) == 0
    assert load_checkpoint(latest_checkpoint(run / "checkpoints"))["step"] == 192
    assert evaluate_main([str(run), "--episodes", "1"]) == 0


def test_sb3_td3_on_the_iterate_environment(tmp_path, capsys):
    runs, config = tmp_path / "runs", tmp_path / "sb3.yaml"
    config.write_text("agent: sb3\n")
    argv = ["--no-progress", "--config", str(config), f"runs_dir={runs}", "name=tiny_iterate", f"device={TEST_DEVICE}",
            "env={kind: iterate, problem: {name: quadratic, dim: 3}, iterate: {max_iterations: 10}}",
            "sb3={algo: TD3, hidden_sizes: [16], action_noise_std: 0.1, kwargs: {buffer_size: 500, batch_size: 16, "
            "learning_starts: 20}}", "train.total_steps=60", "train.log_every=30", "train.eval_every=60",
            "train.checkpoint_every=60", "train.eval_episodes=2", "train.eval_envs=2"]
    assert train_main(argv) == 0
    run = the_run(runs, "tiny_iterate")
    assert json.loads((run / "eval" / "metrics.json").read_text())["episodes"] == 2
    assert "loss/critic" in scalar_tags(run)

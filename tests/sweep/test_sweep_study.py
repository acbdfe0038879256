"""Optuna studies over the tiny direct run: trials as run folders, resume, failures, pruning, the best config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="the sweep extra (pip install -e '.[sweep]') is not installed")

from amorctl.run.config import load_config  # noqa: E402
from amorctl.run.errors import ConfigError, NonFiniteError  # noqa: E402
from amorctl.sweep import study as study_module  # noqa: E402
from amorctl.sweep.backends import Backend  # noqa: E402
from amorctl.sweep.cli import sweep_main  # noqa: E402
from amorctl.sweep.space import load_space  # noqa: E402
from amorctl.sweep.study import run_sweep, storage_for  # noqa: E402

LOCAL = Backend("local", 1)


@pytest.fixture
def no_plots(monkeypatch):
    """Skip Optuna's PNGs (seconds each on a loaded CPU) in tests that do not look at them."""
    monkeypatch.setattr(study_module, "_plots", lambda study, out: {})


def states(out: Path) -> list[str]:
    return [trial["state"] for trial in json.loads((out / "sweep.json").read_text())["trials"]]


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=storage_for(f"sqlite:///{out / 'study.db'}"))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the test's own ask() plays a killed trial
def test_sweep_resumes_without_repeating(tmp_path, tiny_raw, write_space, gap_space, monkeypatch):
    monkeypatch.setattr(study_module, "_plots", lambda study, out: {})  # drawn once, by the last call
    raw, out = tiny_raw(), tmp_path / "sweep"
    space = load_space(write_space(gap_space), raw)
    summary = run_sweep(raw, space, 2, LOCAL, out, "tiny")
    first = {t["number"]: t for t in summary["trials"]}
    assert states(out) == ["COMPLETE", "COMPLETE"]
    for trial in first.values():  # every trial a normal run folder
        run = Path(trial["run_dir"])
        assert (run / "config.yaml").is_file() and (run / "eval" / "metrics.json").is_file()
        assert run.parent.parent == out / "trials"
        metrics = json.loads((run / "eval" / "metrics.json").read_text())
        assert trial["value"] == pytest.approx(metrics["objective_gap_mean"])

    # an interrupted trial (its process killed: failed without an error of its own) is queued again
    study = load(out)
    killed = study.ask(
        {
            p.key: optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)
            for p in space.params
            if p.key == "train.lr"
        }
    )
    study.tell(killed, state=optuna.trial.TrialState.FAIL)
    summary = run_sweep(raw, space, 4, LOCAL, out, "tiny")  # the same command with --trials 4
    trials = {t["number"]: t for t in summary["trials"]}
    assert len(trials) == 5 and trials[killed.number]["state"] == "FAIL" and trials[killed.number]["interrupted"]
    retry = next(t for t in trials.values() if t.get("retry_of") == killed.number)
    assert retry["state"] == "COMPLETE" and retry["params"]["train.lr"] == killed.params["train.lr"]
    for number, trial in first.items():  # finished trials are kept, not run again
        assert trials[number]["run_dir"] == trial["run_dir"] and trials[number]["value"] == trial["value"]
    assert len(list((out / "trials").iterdir())) == 4

    monkeypatch.undo()
    summary = run_sweep(raw, space, 4, LOCAL, out, "tiny")  # nothing left to run: only the results are written
    assert len(summary["trials"]) == 5

    best = summary["best"]
    assert best["value"] == min(t["value"] for t in summary["trials"] if t["state"] == "COMPLETE")
    config = load_config(out / "best_config.yaml")  # what train.py --config reads
    assert config.train.lr == pytest.approx(best["params"]["train.lr"])
    assert list(config.model["hidden_sizes"]) == best["params"]["model.hidden_sizes"]
    assert config.runs_dir == raw["runs_dir"] and config.name == "tiny"
    for plot in ("history", "importance", "intermediate"):
        assert (out / f"{plot}.png").stat().st_size > 5_000

    gap_space["params"]["train.lr"]["high"] = 0.5  # resuming with another space is refused
    with pytest.raises(ConfigError, match="was started with another search space"):
        run_sweep(raw, load_space(write_space(gap_space), raw), 5, LOCAL, out, "tiny")


def test_failed_trial_is_recorded_and_the_study_goes_on(
    tmp_path, tiny_raw, write_space, gap_space, monkeypatch, no_plots
):
    calls = []
    real = study_module.train_raw

    def fail_first(raw, *args, **kwargs):
        calls.append(raw)
        if len(calls) == 1:
            raise NonFiniteError("NaN in 'loss/train' at step 3; the last good checkpoint is kept")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(study_module, "train_raw", fail_first)
    raw, out = tiny_raw(), tmp_path / "sweep"
    summary = run_sweep(raw, load_space(write_space(gap_space), raw), 2, LOCAL, out, "tiny")
    assert states(out) == ["FAIL", "COMPLETE"]
    assert summary["trials"][0]["error"].startswith("NonFiniteError: NaN in 'loss/train'")
    # a failure of its own counts as finished: resuming runs nothing more
    assert len(run_sweep(raw, load_space(write_space(gap_space), raw), 2, LOCAL, out, "tiny")["trials"]) == 2


def test_pruning_from_the_evaluation_curve(tmp_path, tiny_raw, write_space, gap_space, no_plots):
    """The second trial learns nothing (lr 1e-9): at its first evaluation its gap is above the first trial's."""
    raw, out = tiny_raw("train.steps=30", "train.eval_every=10", "train.checkpoint_every=30"), tmp_path / "sweep"
    gap_space["pruner"] = {"kind": "median", "startup_trials": 1}
    gap_space["params"] = {"train.lr": {"type": "categorical", "choices": [0.03, 1.0e-9]}}
    space = load_space(write_space(gap_space), raw)
    out.mkdir(parents=True)
    study = study_module.open_study(
        {"space": space, "storage": f"sqlite:///{out / 'study.db'}", "study": "tiny", "startup_trials": 2}
    )
    study.enqueue_trial({"train.lr": 0.03})
    study.enqueue_trial({"train.lr": 1.0e-9})
    summary = run_sweep(raw, space, 2, LOCAL, out, "tiny")
    good, bad = summary["trials"]
    assert good["state"] == "COMPLETE" and bad["state"] == "PRUNED" and bad["pruned_at"] == 10
    assert not (Path(bad["run_dir"]) / "eval" / "metrics.json").exists()  # stopped mid-run
    frozen = load(out).trials
    assert sorted(frozen[0].intermediate_values) == [10, 20, 30]
    assert frozen[1].intermediate_values[10] > frozen[0].intermediate_values[10]


def test_auc_objective_is_the_curve_average(tmp_path, tiny_raw, write_space, gap_space, no_plots):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from amorctl.sweep.stats import normalized_auc

    raw, out = tiny_raw("train.steps=9"), tmp_path / "sweep"
    gap_space["objective"]["summary"] = "auc"
    summary = run_sweep(raw, load_space(write_space(gap_space), raw), 1, LOCAL, out, "tiny")
    trial = summary["trials"][0]
    events = EventAccumulator(str(Path(trial["run_dir"]) / "events")).Reload()
    curve = [(event.step, event.value) for event in events.Scalars("eval/objective_gap")]
    assert [step for step, _ in curve] == [3, 6, 9]
    assert trial["value"] == pytest.approx(normalized_auc(curve), rel=1e-5)


def test_missing_metric_stops_the_sweep_with_exit_2(tmp_path, tiny_args, write_space, gap_space, capsys, no_plots):
    gap_space["objective"] = {"metric": "objective_gapp", "curve_metric": "objective_gap", "direction": "minimize"}
    status = sweep_main(
        ["--space", str(write_space(gap_space)), "--trials", "3", "--out", str(tmp_path / "s"), *tiny_args()]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "'objective_gapp' is not in eval/metrics.json" in err and "objective_gap_mean" in err


@pytest.mark.slow
def test_local_pool_of_two_workers(tmp_path, tiny_raw, write_space, gap_space):
    raw, out = tiny_raw(), tmp_path / "sweep"
    summary = run_sweep(raw, load_space(write_space(gap_space), raw), 4, Backend("local", 2), out, "tiny")
    assert [t["state"] for t in summary["trials"]] == ["COMPLETE"] * 4
    assert len({t["run_dir"] for t in summary["trials"]}) == 4


@pytest.mark.slow
def test_killed_sweep_resumes(tmp_path, tiny_args, write_space, gap_space):
    """``kill PID`` of a sweep with two workers mid-trial, then the same command: the study completes, every
    finished trial is kept and the killed trials' parameters run again."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "sweep"
    command = [
        sys.executable,
        str(Path(__file__).resolve().parents[2] / "scripts" / "sweep.py"),
        "--space",
        str(write_space(gap_space)),
        "--trials",
        "4",
        "--workers",
        "2",
        "--out",
        str(out),
        *tiny_args("train.steps=400", "train.eval_every=100", "train.checkpoint_every=400"),
    ]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("trials/*/*/checkpoints")):
        time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 130, first.stderr.read()
    before = {t.number: t for t in load(out).trials if t.state in study_module.FINISHED}
    assert subprocess.run(command, capture_output=True, timeout=600).returncode == 0
    trials = load(out).trials
    finished = [t for t in trials if t.state in study_module.FINISHED]
    assert len(finished) == 4
    for number, trial in before.items():
        assert trials[number].user_attrs["run_dir"] == trial.user_attrs["run_dir"]
    killed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert killed and all(any(r.user_attrs.get("retry_of") == k.number for r in trials) for k in killed)

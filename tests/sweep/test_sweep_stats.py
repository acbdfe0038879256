"""Aggregate statistics over seeds against hand-computed values, and the seed group's JSON, PNG and TensorBoard."""

from __future__ import annotations

import json
import math

import pytest

from amorctl.run.cli import train_main
from amorctl.run.errors import AmorctlError
from amorctl.sweep.multiseed import parse_seeds, write_aggregate
from amorctl.sweep.stats import bootstrap_ci, curve_band, iqm, normalized_auc, summarize


def test_summary_of_five_values_by_hand():
    # deviations from the mean 4: -3, -2, -1, 0, 6 → Σ² = 50, s² = 50/4, stderr = √12.5/√5 = √2.5
    row = summarize([10.0, 1.0, 3.0, 2.0, 4.0])
    assert row["n"] == 5
    assert row["mean"] == pytest.approx(4.0)
    assert row["stderr"] == pytest.approx(math.sqrt(2.5))
    assert row["median"] == pytest.approx(3.0)
    assert row["iqm"] == pytest.approx(3.0)  # ⌊5/4⌋ = 1 dropped at each end: mean of 2, 3, 4
    assert row["iqm_ci_low"] <= row["iqm"] <= row["iqm_ci_high"]
    assert (row["min"], row["max"]) == (1.0, 10.0)


def test_iqm_drops_a_quarter_at_each_end():
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm([5.0, -100.0, 5.0, 100.0]) == pytest.approx(5.0)
    assert iqm([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # ⌊3/4⌋ = 0: the mean


def test_bootstrap_ci_by_hand():
    # two values: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4; the 2.5th and 97.5th
    # percentiles of 10000 resamples are therefore 0 and 1
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    low, high = bootstrap_ci([float(v) for v in range(20)], seed=1)
    assert 5.0 < low < 9.5 < high < 14.0  # around the IQM 9.5, inside the range
    assert bootstrap_ci([float(v) for v in range(20)], seed=1) == (low, high)  # seeded: reproducible


def test_normalized_auc_by_hand():
    assert normalized_auc([(0, 0.0), (10, 10.0)]) == pytest.approx(5.0)
    # trapezoids (4 − 2)(1 + 3)/2 = 4 and (8 − 4)(3 + 3)/2 = 12, over the span 6
    assert normalized_auc([(8, 3.0), (2, 1.0), (4, 3.0)]) == pytest.approx(16.0 / 6.0)
    assert normalized_auc([(5, -2.0)]) == -2.0


def test_curve_band_keeps_common_steps():
    band = curve_band({0: {1: 1.0, 2: 2.0, 3: 9.0}, 1: {1: 3.0, 2: 4.0}})
    assert band["step"] == [1, 2]
    assert band["mean"] == pytest.approx([2.0, 3.0])
    assert band["stderr"] == pytest.approx([1.0, 1.0])
    assert band["ci_low"] == pytest.approx([1.0, 2.0]) and band["ci_high"] == pytest.approx([3.0, 4.0])


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("1,3,7", [1, 3, 7]), ("0-1,5", [0, 1, 5]), ("3", [3])]
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["4-0", "a", "1,,2", "0-2,2", "-1"])
def test_parse_seeds_refuses(text):
    with pytest.raises(AmorctlError, match="--seeds"):
        parse_seeds(text)


def test_aggregate_files(tmp_path):
    results = [
        {
            "seed": s,
            "run_dir": f"r{s}",
            "error": None,
            "metrics": {"mean_return": float(v)},
            "curve": [(10, {"mean_return": float(v) - 5}), (20, {"mean_return": float(v)})],
        }
        for s, v in enumerate([1, 2, 3, 4, 10])
    ]
    results.append({"seed": 5, "run_dir": None, "error": "NonFiniteError: NaN"})
    aggregate = write_aggregate(tmp_path, results)
    saved = json.loads((tmp_path / "aggregate.json").read_text())
    assert saved["final"]["iqm"] == pytest.approx(3.0) and saved["final"]["mean"] == pytest.approx(4.0)
    assert saved["curve"]["step"] == [10, 20] and saved["curve"]["mean"] == pytest.approx([-1.0, 4.0])
    assert saved["seeds"][5]["error"] == "NonFiniteError: NaN" and saved["final"]["n"] == 5
    assert aggregate["metric"] == "mean_return" == aggregate["curve_metric"]
    assert (tmp_path / "aggregate.png").stat().st_size > 10_000
    assert any((tmp_path / "events").iterdir())


def test_train_seeds_end_to_end(tiny_args, runs_dir, capsys):
    assert train_main(["--seeds", "0-1", *tiny_args("train.steps=9")]) == 0
    groups = list((runs_dir / "tiny").glob("seeds-*"))
    assert len(groups) == 1
    saved = json.loads((groups[0] / "aggregate.json").read_text())
    assert saved["metric"] == "objective_gap_mean" and saved["curve_metric"] == "objective_gap"
    finals = []
    for seed in saved["seeds"]:
        metrics = json.loads(next((groups[0] / f"seed_{seed['seed']}").glob("*/eval/metrics.json")).read_text())
        finals.append(metrics["objective_gap_mean"])
    assert saved["final"]["mean"] == pytest.approx(sum(finals) / 2)
    assert saved["curve"]["step"] == [3, 6, 9]
    assert len(set(finals)) == 2  # two seeds, two different runs
    assert (groups[0] / "aggregate.png").is_file()
    assert "IQM" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seeds", "4-0"], "--seeds must be seeds and ranges"),
        (["--seeds", "0-1", "--resume", "runs/x"], "--seeds starts new runs"),
        (["--seeds", "0-1", "--ray-address", "auto"], "--ray-address needs --backend ray"),
        (["--seeds", "0-1", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_train_seeds_refuses(tiny_args, runs_dir, capsys, options, message):
    assert train_main([*options, *tiny_args()]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not runs_dir.exists()

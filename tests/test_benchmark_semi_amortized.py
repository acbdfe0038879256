"""``scripts/benchmark.py semi-amortized`` end to end with a tiny budget (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

from amorctl.benchmarking.semi_amortized import model_config, semi_amortized

ROOT = Path(__file__).resolve().parent.parent


def test_every_model_and_estimator_trains_or_is_refused_with_its_reason(tmp_path, capsys):
    report = semi_amortized(
        "quadratic", models=["mlp", "unrolled_gd:2", "warm_start"], estimators=["bptt", "first_order", "truncated"],
        train_steps=3, batch_size=8, horizon=3, eval_contexts=8,
        settings=[("warm_start", "model.step_size=0.01"), ("unrolled_gd:2", "model.step_size=0.01")],
        overrides=["model.hidden_sizes=[8]", "problem.dim=3"], out=tmp_path,
    )
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[:4] for row in rows] == [
        ["| mlp", "bptt", "–", "–"], ["| unrolled_gd:2", "bptt", "2", "2"],
        ["| unrolled_gd:2", "first_order", "2", "2"], ["| unrolled_gd:2", "truncated", "2", "2"],
        ["| warm_start", "bptt", "10", "10"],
    ]
    refused = [line for line in report.splitlines() if line.startswith("- ")]
    assert len(refused) == 4 and all("gradient.estimator" in line for line in refused), refused
    records = json.loads((tmp_path / "quadratic.json").read_text())
    assert len(records) == 5 and all(record["relative_gap_mean"] >= 0 for record in records)
    truncated = next(r for r in records if r["estimator"] == "truncated")
    assert "horizon: 2" in (Path(truncated["run"]) / "config.yaml").read_text(), "the horizon is clipped to K"


def test_a_shipped_model_config_is_preferred_over_the_family_default():
    path, overrides = model_config("logistic_regression", "unrolled_gd:5")
    assert path.name == "amortize_logistic_regression_unrolled_gd.yaml" and overrides == ["model.steps=5"]
    path, overrides = model_config("quadratic", "learned_update")
    assert path.name == "amortize_quadratic_objective.yaml" and overrides == ["model={kind: learned_update}"]


def test_an_unknown_family_is_one_sentence_exit_2():
    result = subprocess.run([sys.executable, "scripts/benchmark.py", "semi-amortized", "--family", "nope"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "amortize_nope_objective.yaml" in result.stderr, result.stderr

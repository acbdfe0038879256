"""The learned-ρ report (RLQP, issue 10): a tiny rowwise TD3 run on Random QP evaluated by scripts/evaluate.py."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.agents.networks import build_actor
from amorctl.envs import ADMMEnv
from amorctl.eval import rho_comparison
from amorctl.eval.reports import REPORTS
from amorctl.eval.rho_comparison import METHODS, PolicyRho, compare_rho_policies
from amorctl.problems.qp import make_qp_family
from amorctl.run.cli import evaluate_main, train_main
from amorctl.run.config import load_config
from amorctl.run.errors import ConfigError
from amorctl.solvers import ADMMSettings

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "rlqp_random_qp.yaml"


def test_the_shipped_config_validates_and_bad_keys_are_refused():
    config = load_config(CONFIG)
    assert config.env.kind == "admm" and config.td3["policy"] == "rowwise_set"
    assert config.env.admm["features"] == ["log_slack"] and config.env.admm["row_mean"] is False
    assert config.env.admm["eps_abs"] == config.env.admm["eps_rel"] == 1e-6
    for override, key in (
        ("td3.policy=rowwize", "td3.policy"),
        ("env.admm.rho_log_range=-1", "env.admm.rho_log_range"),
        ("env.admm.features=[slack]", "env.admm.features"),
        ("env.admm.row_mean=maybe", "env.admm.row_mean"),
        ("env.family.n=0", "env.family.n"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(CONFIG, [override])


@pytest.mark.parametrize("selection", [{}, {"features": ["log_slack", "log_rho"], "row_mean": False}])
def test_the_policy_rule_solves_as_the_environment_steps(selection):
    """PolicyRho on the batched solver reproduces the episodes of ADMMEnv under the same policy and problems."""
    torch.manual_seed(0)
    options = {
        "iterations_per_step": 5,
        "max_steps": 40,
        "action": "per_constraint",
        "rho_log_range": 3.0,
        "observation_clip": 1e3,
        **selection,
    }
    env = ADMMEnv(make_qp_family("random_qp", n=4), 4, eps_abs=1e-6, eps_rel=1e-6, **options)
    actor = build_actor(env, (8,), "rowwise")
    obs = env.reset(seed=3)
    problems = env.solver.qp.to(dtype=torch.float64)
    problems = type(problems)(
        *(t.clone() for t in (problems.P, problems.q, problems.A, problems.lower, problems.upper))
    )
    lengths = torch.full((4,), -1)
    for _ in range(options["max_steps"]):
        with torch.no_grad():
            obs, _, terminated, truncated, info = env.step(actor(obs))
        first = (terminated | truncated) & (lengths < 0)
        lengths[first] = info["iterations"][first]
    settings = ADMMSettings(eps_abs=1e-6, eps_rel=1e-6, max_iter=200, check_termination=5)
    solved = rho_comparison._batched(problems, settings, PolicyRho(actor, options))
    assert torch.equal(solved["iterations"], lengths)


def test_evaluate_reports_the_learned_rho_against_osqps_rules(tmp_path, capsys, monkeypatch):
    assert REPORTS["admm"] is compare_rho_policies
    status = train_main(
        [
            "--no-progress",
            "--config",
            str(CONFIG),
            f"runs_dir={tmp_path}",
            "name=tiny",
            f"device={TEST_DEVICE}",
            "env.num_envs=2",
            "env.family.n=3",
            "env.admm.max_steps=4",
            "td3.hidden_sizes=[8]",
            "td3.buffer_size=64",
            "td3.batch_size=4",
            "td3.learning_starts=4",
            "train.total_steps=8",
            "train.log_every=4",
            "train.eval_every=8",
            "train.checkpoint_every=8",
            "train.eval_episodes=1",
            "train.eval_envs=1",
        ]
    )
    assert status == 0
    run = next(tmp_path.glob("tiny/*"))
    small = functools.partial(
        compare_rho_policies,
        num_heldout=3,
        num_tuning=2,
        max_iterations=100,
        classes={"eq_qp": {"n": 4}, "svm": {"features": 2, "data": 4}},
    )
    monkeypatch.setitem(REPORTS, "admm", small)
    assert evaluate_main([str(run), "--episodes", "1"]) == 0
    printed = capsys.readouterr().out
    assert "random_qp  policy" in printed and "svm        osqp_default" in printed

    report = json.loads((run / "eval" / "rho_comparison.json").read_text())
    assert (run / "eval" / "rho_comparison.png").stat().st_size > 0
    assert report["trained_class"] == "random_qp" and report["classes_evaluated"] == 2
    assert list(report["classes"]) == ["random_qp", "eq_qp", "svm"]
    assert report["classes"]["random_qp"]["num_constraints"] == 30  # the trained size, n = 3
    for name, result in report["classes"].items():
        rows = result["methods"]
        assert list(rows) == list(METHODS)
        for row in rows.values():
            assert 0 < row["median_iterations"] <= 100 and 0 <= row["solved"] <= 1 and row["seconds_per_problem"] > 0
        assert result["ratio"] == pytest.approx(
            rows["policy"]["median_iterations"] / rows["adaptive"]["median_iterations"]
        )
        assert rows["fixed"]["rho"] in rho_comparison.FIXED_RHO_GRID
        assert rows["policy"]["curve"]["iteration"][-1] == max(rows["policy"]["curve"]["iteration"])
        assert report[f"{name}/ratio"] == result["ratio"]
    beating = [name for name in ("eq_qp", "svm") if report["classes"][name]["ratio"] < 1]
    assert report["beating"] == beating and report["classes_beating_adaptive"] == len(beating)
    evaluate = json.loads((run / "eval" / "evaluate.json").read_text())
    assert evaluate["report"]["ratio"] == report["ratio"]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "events"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "rlqp/random_qp/policy/median_iterations",
        "rlqp/svm/osqp/seconds_per_problem",
        "rlqp/eq_qp/adaptive/median_log_ratio",
        "rlqp/random_qp/ratio",
    } <= tags


def test_the_report_refuses_a_run_of_another_kind(tmp_path):
    config = load_config(None, ["agent=td3", "env={kind: iterate, problem: {name: quadratic, dim: 3}}"])
    with pytest.raises(ValueError, match=r"env\.kind: admm"):
        compare_rho_policies(tmp_path, config, lambda obs: obs, tmp_path)

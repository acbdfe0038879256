"""The ADMM environment: ρ as the action on OSQP's iterations, consistent with the solver it drives."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.envs import ADMMEnv
from amorctl.envs.admm import FEATURES
from amorctl.envs.kinds import make_env, validate_env_section
from amorctl.problems.qp import make_qp_family
from amorctl.run.errors import ConfigError
from amorctl.solvers import ADMMSettings, BatchedADMM, FixedRho, Status

FAMILY = make_qp_family("portfolio", assets=6, factors=2)
RHO_0_1 = math.log10(0.1) / 6  # the action of ρ = 0.1 with rho_log_range 6


def test_shapes_and_reproducible_resets():
    env = ADMMEnv(FAMILY, num_envs=3, iterations_per_step=5)
    m = FAMILY.num_constraints
    assert (env.observation_dim, env.action_dim) == (m * len(FEATURES), m)
    obs = env.reset(seed=4)
    assert obs.shape == (3, m * len(FEATURES)) and obs.dtype == torch.float32
    assert torch.equal(obs, env.reset(seed=4))
    log_rho = obs.reshape(3, m, len(FEATURES))[..., FEATURES.index("log_rho")]
    assert torch.allclose(log_rho, torch.log10(env.solver.rho).float())
    assert ADMMEnv(FAMILY, num_envs=2, action="scalar").action_dim == 1


def test_scalar_mode_at_osqps_rho_reproduces_the_fixed_rho_solver():
    k = 5
    env = ADMMEnv(FAMILY, num_envs=4, iterations_per_step=k, action="scalar", max_steps=200)
    env.reset(seed=7)
    qp = FAMILY.sample(4, torch.Generator().manual_seed(7))
    direct = BatchedADMM(qp, ADMMSettings(eps_abs=1e-6, eps_rel=1e-6, check_termination=k)).solve(FixedRho())
    first_lengths = torch.zeros(4, dtype=torch.int64)
    action = torch.full((4, 1), RHO_0_1)
    while bool((first_lengths == 0).any()):
        _, reward, terminated, truncated, info = env.step(action)
        assert not truncated.any() and torch.equal(reward, -torch.ones(4))
        new = terminated & (first_lengths == 0)
        first_lengths[new] = info["episode_length"][new]
        assert torch.equal(info["episode_return"][new], -info["episode_length"][new].float())
    assert (direct.status == Status.SOLVED).all()
    assert torch.equal(first_lengths * k, direct.iterations)


def test_per_constraint_action_sets_rho_and_refactors_only_on_change():
    env = ADMMEnv(FAMILY, num_envs=2, iterations_per_step=3)
    env.reset(seed=0)
    action = torch.linspace(-0.5, 0.5, env.action_dim).repeat(2, 1)
    env.step(action)
    assert torch.allclose(env.solver.rho, 10 ** (6 * action.double()))
    factorizations = env.solver.factorizations.clone()
    env.step(action)
    assert torch.equal(env.solver.factorizations, factorizations)
    action[1, 0] = 0.0
    env.step(action)
    assert env.solver.factorizations.tolist() == [factorizations[0].item(), factorizations[1].item() + 1]


def test_truncation_auto_reset_and_final_observation():
    env = ADMMEnv(FAMILY, num_envs=2, iterations_per_step=2, max_steps=3)
    env.reset(seed=1)
    tiny_rho = torch.full((2, env.action_dim), -1.0)  # ρ = 1e-6 everywhere: hopeless in 6 iterations
    for _ in range(3):
        obs, _, terminated, truncated, info = env.step(tiny_rho)
        assert not terminated.any()
    assert truncated.all() and (info["episode_length"] == 3).all()
    assert not torch.equal(obs, info["final_obs"])
    assert (env.solver.iterations == 0).all() and (env.solver.status == Status.UNSOLVED).all()


def test_log_residual_rewards_telescope_to_the_start_ratio_minus_the_end():
    env = ADMMEnv(FAMILY, num_envs=1, iterations_per_step=10, reward="log_residual", action="scalar")
    obs = env.reset(seed=3)
    start = obs.reshape(-1, len(FEATURES))[0, -2:].max()
    total = 0.0
    for _ in range(100):
        obs, reward, terminated, _, info = env.step(torch.full((1, 1), RHO_0_1))
        total += float(reward)
        if terminated.all():
            break
    end = info["final_obs"].reshape(-1, len(FEATURES))[0, -2:].max()
    assert bool(terminated.all()) and bool(info["solved"].all()) and end <= 0
    assert total == pytest.approx(float(start - end), abs=1e-4)


def test_env_kind_validates_and_builds():
    section = validate_env_section(
        {"kind": "admm", "family": {"name": "svm", "features": 2, "data": 6}, "admm": {"action": "scalar"}}
    )
    env = make_env(section, 3, TEST_DEVICE)
    assert isinstance(env, ADMMEnv) and env.num_envs == 3 and env.action_dim == 1
    for raw, key in (
        ({"kind": "admm", "family": {"name": "svm", "data": 5}}, "env.family.data"),
        ({"kind": "admm", "admm": {"reward": "fast"}}, "env.admm.reward"),
        ({"kind": "admm", "family": {"name": "qp"}}, "env.family.name"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            validate_env_section(raw)


def test_td3_trains_on_the_admm_kind_end_to_end(tmp_path):
    from amorctl.run.cli import train_main

    config = Path(__file__).resolve().parents[2] / "configs" / "td3_opt_quadratic.yaml"
    status = train_main(
        [
            "--no-progress",
            "--config",
            str(config),
            f"runs_dir={tmp_path}",
            "name=admm",
            f"device={TEST_DEVICE}",
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
            "env={kind: admm, num_envs: 2, family: {name: random_qp, n: 3}, admm: {max_steps: 3}}",
        ]
    )
    assert status == 0
    metrics = json.loads(next(tmp_path.glob("admm/*/eval/metrics.json")).read_text())
    assert -3 <= metrics["mean_return"] < 0


def test_single_instance_form_passes_the_gymnasium_and_sb3_checks():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from amorctl.envs import ADMMGymEnv

    for kwargs in ({}, {"action": "scalar", "reward": "log_residual"}):
        env = ADMMGymEnv("portfolio", {"assets": 6, "factors": 2}, iterations_per_step=5, max_steps=4, **kwargs)
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    env = ADMMGymEnv(FAMILY, iterations_per_step=5, action="scalar", max_steps=300)
    obs, _ = env.reset(seed=7)
    batched = ADMMEnv(FAMILY, 1, iterations_per_step=5, action="scalar")
    assert np.array_equal(obs, batched.reset(seed=7)[0].numpy())
    lengths = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(np.array([RHO_0_1], dtype=np.float32))
        lengths += 1
        if terminated or truncated:
            break
    assert terminated and info["solved"] and info["iterations"] == 5 * lengths and reward == -1.0


def test_a_feature_selection_observes_those_columns_in_its_order():
    full = ADMMEnv(FAMILY, num_envs=2, iterations_per_step=3)
    chosen = ("log_rho", "log_slack")
    some = ADMMEnv(FAMILY, num_envs=2, iterations_per_step=3, features=chosen)
    m = FAMILY.num_constraints
    assert some.observation_dim == 2 * m and some.row_layout.row_features == 2
    action = torch.linspace(-0.5, 0.5, m).repeat(2, 1)
    full.reset(seed=1), some.reset(seed=1)
    rows_full = full.step(action)[0].reshape(2, m, len(FEATURES))
    rows_some = some.step(action)[0].reshape(2, m, 2)
    assert torch.equal(rows_some, rows_full[..., [FEATURES.index(name) for name in chosen]])
    for bad in (("log_slack", "log_slack"), ("slack",)):
        with pytest.raises(ValueError, match="features"):
            ADMMEnv(FAMILY, features=bad)

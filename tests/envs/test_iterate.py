"""The optimizer-as-MDP environment: rewards, termination, history, seeding, divergence, gymnasium form."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from device_under_test import TEST_DEVICE

from amorctl.envs import ITERATE_ENV_IDS, IterateEnv, IterateGymEnv, register_iterate_envs
from amorctl.envs.iterate import signed_log
from amorctl.envs.iterate_gym import DEFAULT_MAX_ITERATIONS, REWARD_BOUND, STEP_SIZE_RANGES, registered_kwargs
from amorctl.problems import Lasso, PendulumMPC, Problem, Quadratic, Rosenbrock, make_problem

RHO = 1e-6  # IterateEnv's default gap_floor


class DiagonalQuadratic(Problem):
    """f(y; x) = ½ Σ d_i (y_i − c_i)² with fixed curvatures d and context x = (d, c), c ~ N(0, I); no solver."""

    def __init__(self, curvature: tuple[float, ...] = (4.0, 4.0)):
        self.curvature = torch.tensor(curvature, dtype=torch.float64)
        self.solution_dim = len(curvature)
        self.context_dim = 2 * len(curvature)

    def sample_contexts(self, batch_size, generator, device="cpu"):
        centre = torch.randn(batch_size, self.solution_dim, generator=generator, dtype=torch.float64)
        return torch.cat([self.curvature.expand(batch_size, -1), centre], -1).to(device)

    def objective(self, y, x):
        d, c = x[:, : self.solution_dim], x[:, self.solution_dim :]
        return 0.5 * (d * (y - c).square()).sum(-1)


class SolvedDiagonalQuadratic(DiagonalQuadratic):
    """The same family with its exact solver y* = c (f* = 0)."""

    def solve(self, x):
        return x[:, self.solution_dim :].clone()


def blocks(env: IterateEnv, obs: torch.Tensor, name: str) -> torch.Tensor:
    return obs[..., env.observation_slices[name]]


def centres(env: IterateEnv, obs: torch.Tensor) -> torch.Tensor:
    """c from the raw context block (the tests build their envs with include_context=True)."""
    return blocks(env, obs, "context")[:, env.solution_dim :].double()


def quadratic_env(problem=None, num_envs=3, **kwargs) -> IterateEnv:
    options = dict(max_iterations=5, include_context=True, dtype=torch.float64, tolerance=1e-4)
    options.update(kwargs)
    return IterateEnv(problem or SolvedDiagonalQuadratic(), num_envs, **options)


def test_the_rows_layout_holds_the_same_entries_coordinate_by_coordinate():
    options = dict(history=2, include_context=True, secant_features=True, action="update", max_iterations=4)
    flat, rows = (IterateEnv(Quadratic(dim=4), 3, observation_layout=layout, **options)
                  for layout in ("blocks", "rows"))
    assert flat.row_layout is None and rows.row_layout.rows == 4 and rows.observation_dim == flat.observation_dim
    assert rows.row_layout.row_features == 1 + 1 + 2 + 2 and rows.row_layout.shared_features == 3 + 3 + 8
    actions = torch.rand(3, 3, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    obs_flat, obs_rows = flat.reset(seed=5), rows.reset(seed=5)
    for action in [None, *actions]:
        if action is not None:
            obs_flat, obs_rows = flat.step(action)[0], rows.step(action)[0]
        table = obs_rows[:, : 4 * 6].view(3, 4, 6)  # (N, coordinate, its row)
        for block, where in rows.row_slices.items():
            width = where.stop - where.start  # the block's entries of coordinate i are its i-th of each slot
            expected = obs_flat[:, flat.observation_slices[block]].view(3, width, 4).mT
            torch.testing.assert_close(table[..., where], expected)
        for block, where in rows.observation_slices.items():
            torch.testing.assert_close(obs_rows[:, where], obs_flat[:, flat.observation_slices[block]])


# ---------------------------------------------------------------------------------- rewards and termination


def test_observation_layout_and_sizes():
    env = IterateEnv(Quadratic(dim=4), 2, history=3, include_context=True)
    n, m = 4, 8
    assert env.observation_dim == 3 + (2 + 2 * 3) * n + m
    sizes = {k: s.stop - s.start for k, s in env.observation_slices.items()}
    assert sizes == {"iterate": n, "gradient": n, "objective": 1, "stationarity": 1, "budget": 1,
                     "update_history": 3 * n, "gradient_history": 3 * n, "context": m}
    obs = env.reset(seed=0)
    assert obs.shape == (2, env.observation_dim) and obs.dtype == torch.float32
    assert IterateEnv(Quadratic(dim=4), 1, action="step_size").action_dim == 1


def test_exact_step_size_solves_in_one_step_and_auto_resets():
    # d = (4, 4): alpha = 1/L = 0.25 is the Newton step. a = 0 maps to the geometric mean of the range.
    env = quadratic_env(action="step_size", step_size_range=(0.025, 2.5))
    obs0 = env.reset(seed=1)
    c = centres(env, obs0)
    f0 = 2.0 * c.square().sum(-1)  # ½·4·‖0 − c‖²
    obs, reward, terminated, truncated, info = env.step(torch.zeros(3, 1, dtype=torch.float64))

    torch.testing.assert_close(reward, torch.ones(3), atol=1e-6, rtol=0)
    assert terminated.all() and not truncated.any()
    assert info["converged"].all() and not info["diverged"].any()
    torch.testing.assert_close(info["episode_return"], reward)
    assert info["episode_length"].tolist() == [1, 1, 1]
    assert (info["final_gap"] < 1e-12).all()

    final = info["final_obs"]
    torch.testing.assert_close(blocks(env, final, "iterate"), signed_log(c).float())
    torch.testing.assert_close(blocks(env, final, "objective"), torch.full((3, 1), math.log(RHO)), atol=1e-4, rtol=0)
    assert torch.allclose(blocks(env, final, "budget"), torch.full((3, 1), 1 / 5))
    torch.testing.assert_close(blocks(env, final, "update_history")[:, :2], signed_log(c).float())

    # The returned observation is the next episode's first one: new contexts, nothing in the history.
    assert not torch.allclose(centres(env, obs), c)
    assert (blocks(env, obs, "budget") == 0).all()
    assert (blocks(env, obs, "update_history") == 0).all() and (blocks(env, obs, "gradient_history") == 0).all()
    assert (blocks(env, obs, "iterate") == 0).all()  # init="zeros"
    torch.testing.assert_close(blocks(env, obs, "objective"), torch.full((3, 1), math.log(1 + RHO)))
    assert f0.min() > 0


@pytest.mark.parametrize("reward_mode", ["improvement", "log_gap", "objective", "per_step"])
def test_reward_equals_the_hand_computed_decrease(reward_mode):
    # d = (4, 1), alpha = alpha_min = 1/8 (a = -1): y1 = c·alpha·d since y0 = 0.
    problem = SolvedDiagonalQuadratic(curvature=(4.0, 1.0))
    env = quadratic_env(problem, action="step_size", step_size_range=(0.125, 8.0), reward=reward_mode)
    c = centres(env, env.reset(seed=2))
    d = torch.tensor([4.0, 1.0], dtype=torch.float64)
    f0 = 0.5 * (d * c.square()).sum(-1)
    y1 = 0.125 * d * c
    f1 = 0.5 * (d * (y1 - c).square()).sum(-1)
    _, reward, terminated, truncated, _ = env.step(-torch.ones(3, 1, dtype=torch.float64))
    expected = {
        "improvement": (f0 - f1) / f0,
        "log_gap": torch.log(f0 / f0 + RHO) - torch.log(f1 / f0 + RHO),
        "objective": -f1 / f0,
        "per_step": -torch.ones(3, dtype=torch.float64),
    }[reward_mode]
    torch.testing.assert_close(reward.double(), expected.float().double(), atol=1e-6, rtol=1e-6)
    assert not terminated.any() and not truncated.any()


def test_improvement_without_a_solver_uses_the_documented_scale():
    env = quadratic_env(DiagonalQuadratic(curvature=(4.0, 1.0)), action="step_size", step_size_range=(0.125, 8.0))
    assert not env.uses_solver
    c = centres(env, env.reset(seed=3))
    d = torch.tensor([4.0, 1.0], dtype=torch.float64)
    f0, g0 = 0.5 * (d * c.square()).sum(-1), -d * c
    f1 = 0.5 * (d * (0.125 * d * c - c).square()).sum(-1)
    _, reward, _, _, info = env.step(-torch.ones(3, 1, dtype=torch.float64))
    scale = f0.abs() + g0.norm(dim=-1) + 1e-6
    torch.testing.assert_close(reward.double(), ((f0 - f1) / scale).float().double(), atol=1e-6, rtol=1e-6)
    assert "final_gap" not in info
    with pytest.raises(ValueError, match=r"log_gap.*no reference solver"):
        quadratic_env(DiagonalQuadratic(), reward="log_gap")


def test_exact_newton_update_terminates():
    env = quadratic_env(action="update", action_scale=10.0)
    c = centres(env, env.reset(seed=4))
    assert c.abs().max() < 10
    _, reward, terminated, truncated, info = env.step(c / 10.0)  # Δ = y* − y0 = c
    assert terminated.all() and not truncated.any() and info["converged"].all()
    torch.testing.assert_close(reward, torch.ones(3), atol=1e-6, rtol=0)


def test_gradient_update_scaling_measures_steps_in_initial_gradient_rms():
    env = quadratic_env(action="update", action_scale=0.5, update_scaling="gradient")
    c = centres(env, env.reset(seed=4))
    unit = (4.0 * c).norm(dim=-1, keepdim=True) / math.sqrt(2)  # ‖∇f(0)‖/√n with ∇f(0) = −4c
    action = torch.tensor([[0.5, -1.0]], dtype=torch.float64).expand(3, 2)
    obs, *_ = env.step(action)
    torch.testing.assert_close(blocks(env, obs, "iterate"), signed_log(0.5 * unit * action).float())


def test_truncation_at_the_budget():
    env = quadratic_env(action="step_size", step_size_range=(1e-3, 1e-2), max_iterations=3)
    env.reset(seed=5)
    small = -torch.ones(3, 1, dtype=torch.float64)
    for t in range(1, 3):
        obs, _, terminated, truncated, _ = env.step(small)
        assert not terminated.any() and not truncated.any()
        assert torch.allclose(blocks(env, obs, "budget"), torch.full((3, 1), t / 3))
    obs, _, terminated, truncated, info = env.step(small)
    assert truncated.all() and not terminated.any()
    assert info["episode_length"].tolist() == [3, 3, 3]
    assert (blocks(env, info["final_obs"], "budget") == 1).all() and (blocks(env, obs, "budget") == 0).all()
    assert (info["final_gap"] > 0).all()

    # Converging on the last allowed iteration is a termination, not a truncation.
    env = quadratic_env(action="step_size", step_size_range=(0.025, 2.5), max_iterations=1)
    env.reset(seed=5)
    _, _, terminated, truncated, _ = env.step(torch.zeros(3, 1, dtype=torch.float64))
    assert terminated.all() and not truncated.any()


# ---------------------------------------------------------------------------------- history features


def test_history_holds_the_last_updates_and_gradients_most_recent_first():
    problem = SolvedDiagonalQuadratic(curvature=(4.0, 1.0))
    env = quadratic_env(problem, num_envs=2, history=2, action="update", action_scale=0.5, max_iterations=10)
    obs = env.reset(seed=6)
    assert (blocks(env, obs, "update_history") == 0).all() and (blocks(env, obs, "gradient_history") == 0).all()
    assert (blocks(env, obs, "budget") == 0).all()
    c, d = centres(env, obs), torch.tensor([4.0, 1.0], dtype=torch.float64)
    gradient = lambda y: d * (y - c)  # noqa: E731
    unit = gradient(torch.zeros_like(c)).norm(dim=-1, keepdim=True) / math.sqrt(2)  # RMS of ∇f(y0)
    actions = torch.tensor([[[0.2, -0.4], [1.0, 0.5]], [[-0.6, 0.8], [0.0, -1.0]], [[0.1, 0.3], [-0.2, 0.9]]],
                           dtype=torch.float64)
    ys = [torch.zeros_like(c)]
    for k, a in enumerate(actions, start=1):
        obs, _, terminated, truncated, _ = env.step(a)
        assert not (terminated | truncated).any()
        ys.append(ys[-1] + 0.5 * a)
        updates = [0.5 * actions[k - 1 - j] if k - 1 - j >= 0 else torch.zeros_like(c) for j in range(2)]
        grads = [gradient(ys[k - 1 - j]) / unit if k - 1 - j >= 0 else torch.zeros_like(c) for j in range(2)]
        torch.testing.assert_close(blocks(env, obs, "update_history"), signed_log(torch.cat(updates, -1)).float())
        torch.testing.assert_close(blocks(env, obs, "gradient_history"), signed_log(torch.cat(grads, -1)).float())
        torch.testing.assert_close(blocks(env, obs, "iterate"), signed_log(ys[k]).float())
        torch.testing.assert_close(blocks(env, obs, "gradient"), signed_log(gradient(ys[k]) / unit).float())
        assert torch.allclose(blocks(env, obs, "budget"), torch.full((2, 1), k / 10))


# ---------------------------------------------------------------------------------- seeding


def random_actions(steps: int, num_envs: int, dim: int) -> torch.Tensor:
    return torch.rand(steps, num_envs, dim, generator=torch.Generator().manual_seed(0)) * 2 - 1


ROSENBROCK_KWARGS = dict(max_iterations=5, history=2, init="random", init_scale=0.5, action_scale=0.5,
                         divergence_threshold=3.0, include_context=True, reward="log_gap")
"""Random updates that diverge now and then: rows end at different steps and are redrawn one by one."""


def test_batched_rows_match_single_gym_envs_seeded_seed_plus_i():
    n, seed, steps = 3, 10, 14
    batched = IterateEnv(Rosenbrock(dim=3), n, seeding="per_row", **ROSENBROCK_KWARGS)
    singles = [IterateGymEnv(Rosenbrock(dim=3), **ROSENBROCK_KWARGS) for _ in range(n)]
    obs = batched.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    torch.testing.assert_close(obs, torch.from_numpy(np.stack(single_obs)))
    ended_rows, diverged_rows = 0, 0
    for action in random_actions(steps, n, 3):
        obs, reward, terminated, truncated, info = batched.step(action)
        for i, env in enumerate(singles):
            o, r, term, trunc, single_info = env.step(action[i].numpy())
            torch.testing.assert_close(info["final_obs"][i], torch.from_numpy(o))
            assert r == pytest.approx(float(reward[i]), abs=1e-6)
            assert (term, trunc) == (bool(terminated[i]), bool(truncated[i]))
            assert single_info["diverged"] == bool(info["diverged"][i])
            if term or trunc:
                o, _ = env.reset()  # the next episode of this copy's own stream
                ended_rows += 1
            torch.testing.assert_close(obs[i], torch.from_numpy(o))
        diverged_rows += int(info["diverged"].sum())
    assert ended_rows > n and diverged_rows > 0  # rows were redrawn, not all at the same step


def test_shared_seeding_is_reproducible_and_equals_per_row_for_one_copy():
    def rollout(num_envs, seeding, seed=7):
        env = IterateEnv(Rosenbrock(dim=3), num_envs, seeding=seeding, **ROSENBROCK_KWARGS)
        trace = [env.reset(seed=seed)]
        for action in random_actions(12, num_envs, 3):
            obs, reward, *_ = env.step(action)
            trace += [obs, reward]
        return trace

    for a, b in zip(rollout(4, "shared"), rollout(4, "shared")):
        assert torch.equal(a, b)
    for a, b in zip(rollout(1, "shared"), rollout(1, "per_row")):
        assert torch.equal(a, b)
    assert not torch.equal(rollout(4, "shared", seed=7)[0], rollout(4, "shared", seed=8)[0])


# ---------------------------------------------------------------------------------- divergence


def test_huge_updates_on_rosenbrock_diverge_only_in_their_rows():
    env = IterateEnv(Rosenbrock(dim=2), 4, action="update", action_scale=1e20, divergence_penalty=5.0,
                     max_iterations=10, init="random")
    start = env.reset(seed=0)
    action = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["diverged"].tolist() == [True, True, False, False]
    assert terminated.tolist() == [True, True, False, False] and not truncated.any()
    assert reward[:2].tolist() == [-5.0, -5.0] and reward[2:].tolist() == [0.0, 0.0]
    assert info["episode_return"][:2].tolist() == [-5.0, -5.0]
    for tensor in (obs, reward, info["final_obs"], info["final_gap"]):
        assert torch.isfinite(tensor).all()
    final = info["final_obs"]
    for name in ("iterate", "gradient", "objective"):  # the state of the last finite iterate, y0
        assert torch.equal(blocks(env, final, name)[:2], blocks(env, start, name)[:2])
    assert (blocks(env, final, "update_history")[:2] == 0).all()  # the rejected update is not recorded
    assert (blocks(env, obs, "budget")[:2] == 0).all() and (blocks(env, obs, "budget")[2:] == 0.1).all()
    assert int(info["total_diverged"]) == 2
    _, _, _, _, info = env.step(action)
    assert int(info["total_diverged"]) == 4 and int(env.total_diverged) == 4


def test_largest_step_size_diverges_without_nan():
    env = IterateEnv(Quadratic(dim=4, cond_min=50, cond_max=100), 4, action="step_size",
                     step_size_range=(1e-3, 10.0), max_iterations=20)
    env.reset(seed=0)
    action = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])  # alpha_max = 10 vs alpha_min = 1e-3 (stable)
    diverged = torch.zeros(4, dtype=torch.bool)
    for _ in range(3):
        obs, reward, terminated, _, info = env.step(action)
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all() and torch.isfinite(info["final_obs"]).all()
        assert (reward[info["diverged"]] == -10.0).all() and terminated[info["diverged"]].all()
        diverged |= info["diverged"]
    assert diverged.tolist() == [True, True, False, False]


# ---------------------------------------------------------------------------------- other families and inits


def test_warm_start_from_the_solution_converges_at_once():
    problem = Quadratic(dim=3)
    env = IterateEnv(problem, 2, init=problem.solve, tolerance=1e-3)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(torch.zeros(2, 3))
    assert terminated.all() and info["converged"].all() and (reward.abs() < 1e-3).all()


def test_model_init_and_bad_init_shape():
    problem = Rosenbrock(dim=2)
    model = torch.nn.Linear(problem.context_dim, 2)
    env = IterateEnv(problem, 3, init=model)
    obs = env.reset(seed=0)
    assert torch.isfinite(obs).all() and not (blocks(env, obs, "iterate") == 0).all()
    with pytest.raises(ValueError, match="initial iterates"):
        IterateEnv(problem, 3, init=torch.nn.Linear(problem.context_dim, 5)).reset(seed=0)


def test_lasso_step_size_is_an_ista_step():
    problem = Lasso(signal_dim=4, code_dim=6, sparsity=1)
    lipschitz = problem.lipschitz
    env = IterateEnv(problem, 2, action="step_size", step_size_range=(0.1 / lipschitz, 10 / lipschitz),
                     include_context=True, dtype=torch.float64)
    x = blocks(env, env.reset(seed=0), "context").double()
    obs, reward, _, _, _ = env.step(torch.zeros(2, 1, dtype=torch.float64))
    y0 = torch.zeros(2, 6, dtype=torch.float64)
    y1 = problem.prox(y0 - problem.smooth_gradient(y0, x) / lipschitz, 1 / lipschitz)
    torch.testing.assert_close(blocks(env, obs, "iterate"), signed_log(y1).float())
    assert (reward > 0).all()


def test_box_constrained_family_stays_in_its_bounds():
    env = IterateEnv(PendulumMPC(horizon=4), 2, action="update", action_scale=10.0, solve=False)
    env.reset(seed=0)
    obs, *_ = env.step(torch.ones(2, 4))
    torch.testing.assert_close(blocks(env, obs, "iterate"), torch.full((2, 4), math.log(2.0)))


def test_invalid_options_and_actions_are_rejected():
    with pytest.raises(ValueError, match="action must be"):
        IterateEnv(Quadratic(dim=2), action="newton")
    with pytest.raises(ValueError, match="step_size_range"):
        IterateEnv(Quadratic(dim=2), step_size_range=(1.0, 0.1))
    env = IterateEnv(Quadratic(dim=2), 2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        env.step(torch.tensor([[0.0, float("nan")], [0.0, 0.0]]))


def test_step_before_reset_is_one_sentence_and_changes_nothing():
    env = quadratic_env(num_envs=2)
    with pytest.raises(RuntimeError, match=r"^IterateSolvedDiagonalQuadratic: call reset\(\) before step\(\)$"):
        env.step(torch.zeros(2, env.action_dim))
    assert int(env.total_diverged) == 0
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(torch.zeros(2, env.action_dim))
    assert not terminated.any() and not truncated.any() and torch.equal(info["episode_length"], torch.tensor([1, 1]))


# ---------------------------------------------------------------------------------- gymnasium form


KNOWN_CHECKER_WARNINGS = ("is different from the unwrapped version",)


@pytest.fixture(autouse=True, scope="module")
def _gymnasium_ids():
    register_iterate_envs()


@pytest.mark.parametrize("env_id", list(ITERATE_ENV_IDS))
def test_check_env_passes_for_every_registered_id(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make(env_id).unwrapped)
        check_env(gym.make(env_id))
        sb3_check_env(gym.make(env_id))
        sb3_check_env(IterateGymEnv(ITERATE_ENV_IDS[env_id]))
    unexpected = [str(w.message) for w in caught if not any(k in str(w.message) for k in KNOWN_CHECKER_WARNINGS)]
    assert not unexpected
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == DEFAULT_MAX_ITERATIONS
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape


def test_gym_env_errors_and_kwargs_forwarding():
    env = gym.make("amorctl/Quadratic-v0", problem_kwargs={"dim": 3}, action="step_size", history=1,
                   secant_features=False, omit_blocks=())
    assert env.action_space.shape == (1,) and env.observation_space.shape == (3 + 4 * 3,)
    raw = IterateGymEnv("rosenbrock")
    with pytest.raises(RuntimeError, match="reset"):
        raw.step(np.zeros(2, dtype=np.float32))
    raw.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        raw.step(np.zeros(5, dtype=np.float32))


def test_importing_amorctl_registers_nothing_and_one_call_registers_the_ids():
    code = (
        "import gymnasium, amorctl, amorctl.envs, amorctl.agents, amorctl.run.config\n"
        "assert not [i for i in gymnasium.registry if i.startswith('amorctl/')]\n"
        "amorctl.envs.register_iterate_envs()\n"
        "gymnasium.make('amorctl/Lasso-v0').reset(seed=0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_sb3_td3_trains_on_the_gym_env():
    from stable_baselines3 import TD3

    env = gym.make("amorctl/Quadratic-v0", problem_kwargs={"dim": 3}, max_iterations=20, max_episode_steps=20,
                   action="update")
    model = TD3("MlpPolicy", env, learning_starts=50, buffer_size=1000, batch_size=32, seed=0, device=TEST_DEVICE,
                policy_kwargs={"net_arch": [16, 16]})
    before = [p.detach().clone() for p in model.actor.parameters()]
    model.learn(300)
    assert model.num_timesteps == 300
    assert any(not torch.equal(a, b) for a, b in zip(before, model.actor.parameters()))
    action, _ = model.predict(env.reset(seed=1)[0], deterministic=True)
    assert action.shape == (3,) and np.all(np.abs(action) <= 1)


def _registered_returns(env_id: str, act, episodes: int = 8) -> tuple[np.ndarray, list[float]]:
    """Episode returns of ``act(obs, rng)`` on the registered id, and every per-step reward seen."""
    env, rng = gym.make(env_id), np.random.default_rng(0)
    returns, rewards = np.zeros(episodes), []
    for k in range(episodes):
        obs, _ = env.reset(seed=100 + k)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(np.asarray(act(obs, rng), dtype=np.float32))
            returns[k] += reward
            rewards.append(reward)
            done = terminated or truncated
    return returns, rewards


@pytest.mark.parametrize("env_id", list(ITERATE_ENV_IDS))
def test_registered_ids_default_to_the_scale_free_step_size_set_up(env_id):
    env = gym.make(env_id)
    inner = env.unwrapped.batched
    assert inner.action_mode == "step_size" and inner.reward_mode == "log_gap" and inner.secant_features
    assert inner.step_size_range == STEP_SIZE_RANGES[ITERATE_ENV_IDS[env_id]]
    assert inner.reward_clip == REWARD_BOUND and inner.divergence_penalty <= REWARD_BOUND
    assert env.action_space.shape == (1,) and env.observation_space.shape == (6,)  # no raw iterate or gradient
    assert inner.max_iterations == env.spec.max_episode_steps == DEFAULT_MAX_ITERATIONS


def _batched_registered_returns(env_id: str, act, episodes: int = 16) -> float:
    """Mean return of ``act(env)`` on ``episodes`` problems of the registered id's set-up, batched."""
    kwargs = registered_kwargs(ITERATE_ENV_IDS[env_id])
    env = IterateEnv(make_problem(kwargs.pop("problem")), episodes, **kwargs)
    env.reset(seed=100)
    returns, done = torch.zeros(episodes), torch.zeros(episodes, dtype=torch.bool)
    for _ in range(env.max_iterations):
        _, reward, terminated, truncated, _ = env.step(act(env))
        returns += torch.where(done, 0.0, reward)
        done |= terminated | truncated
    return float(returns.mean())


@pytest.mark.parametrize("env_id", list(ITERATE_ENV_IDS))
def test_registered_rewards_stay_in_the_documented_bound_and_the_zero_action_is_not_the_best_step(env_id):
    policies = {
        "random": lambda obs, rng: rng.uniform(-1, 1, 1),
        "largest": lambda obs, rng: [1.0],
        "smallest": lambda obs, rng: [-1.0],
    }
    for name, act in policies.items():
        _, rewards = _registered_returns(env_id, act, episodes=2)
        assert all(-REWARD_BOUND <= r <= REWARD_BOUND and math.isfinite(r) for r in rewards), name
    # The zero action (the middle of the log range) is not the best fixed step, and the best fixed step or a
    # state-dependent rule (Barzilai–Borwein, which the observation's secant block holds) beats it clearly:
    # there is something to learn.
    fixed = {a: _batched_registered_returns(env_id, lambda env, a=a: torch.full((env.num_envs, 1), a))
             for a in (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)}
    assert max(fixed, key=fixed.get) != 0.0
    low = STEP_SIZE_RANGES[ITERATE_ENV_IDS[env_id]][0]
    barzilai_borwein = _batched_registered_returns(env_id, lambda env: env.barzilai_borwein_action(low))
    assert max(barzilai_borwein, *fixed.values()) > fixed[0.0] + 1.5
    if env_id in ("amorctl/Quadratic-v0", "amorctl/Lasso-v0"):  # ranges past the stable step: state matters
        assert barzilai_borwein > max(fixed.values()) + 3.0


def test_reward_clip_bounds_every_reward_the_divergence_penalty_included():
    kwargs = dict(action="step_size", step_size_range=(1e-3, 1e3), reward="log_gap")
    plain, clipped = IterateEnv(Quadratic(dim=4), 8, **kwargs), IterateEnv(Quadratic(dim=4), 8, reward_clip=0.5,
                                                                             **kwargs)
    plain.reset(seed=0), clipped.reset(seed=0)
    for a in (0.0, -0.2, 1.0):  # a good step, a smaller one, a diverging one
        action = torch.full((8, 1), a)
        _, r_plain, *_, info = plain.step(action)
        _, r_clip, *_ = clipped.step(action)
        assert torch.equal(r_clip, r_plain.clamp(-0.5, 0.5))
    diverged = info["diverged"]
    assert diverged.any() and (r_plain[diverged] == -10.0).all() and (r_clip[diverged] == -0.5).all()
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="reward_clip"):
            IterateEnv(Quadratic(dim=2), reward_clip=bad)
    assert IterateEnv(Quadratic(dim=2)).reward_clip is None  # off by default: configs keep their rewards


def test_secant_features_are_the_log_barzilai_borwein_steps_of_the_last_update():
    problem = SolvedDiagonalQuadratic((1.0, 4.0))
    env = quadratic_env(problem, num_envs=3, action="step_size", secant_features=True, init="random")
    obs = env.reset(seed=0)
    assert env.observation_dim == 3 + (2 + 2 * 3) * 2 + 3 + 4
    assert torch.equal(blocks(env, obs, "secant"), torch.zeros(3, 3))  # no update yet
    y0, g0 = env.iterates.double(), env._g.clone()
    obs, *_ = env.step(torch.tensor([[0.0], [-0.5], [-1.0]]))
    s, z = env.iterates.double() - y0, env._g - g0
    expected = torch.stack([torch.ones(3), torch.log((s * s).sum(-1) / (s * z).sum(-1)),
                            torch.log((s * z).sum(-1) / (z * z).sum(-1))], -1)
    torch.testing.assert_close(blocks(env, obs, "secant").double(), expected, atol=1e-5, rtol=1e-5)
    # curvature along any update lies in [1, 4]: both BB steps in [1/4, 1]
    assert bool((expected[:, 1:] <= 1e-9).all() and (expected[:, 1:] >= math.log(0.25) - 1e-9).all())


def test_secant_features_are_zero_without_positive_curvature_and_after_a_reset():
    env = quadratic_env(num_envs=2, action="update", secant_features=True, max_iterations=2)
    env.reset(seed=1)
    obs, *_ = env.step(torch.zeros(2, 2))  # s = 0: no curvature information
    assert torch.equal(blocks(env, obs, "secant"), torch.zeros(2, 3))
    obs, *_ = env.step(torch.ones(2, 2))  # the episodes end (T = 2): the new episodes start at zeros
    assert torch.equal(blocks(env, obs, "secant"), torch.zeros(2, 3))


def test_omit_blocks_drops_exactly_the_named_blocks():
    options = dict(num_envs=2, action="step_size", secant_features=True, history=2)
    omitted = ("iterate", "gradient", "update_history")
    full, reduced = quadratic_env(**options), quadratic_env(**options, omit_blocks=omitted)
    assert list(reduced.observation_slices) == ["objective", "stationarity", "budget", "gradient_history", "secant",
                                                "context"]
    assert reduced.observation_dim == full.observation_dim - 2 * 2 - 2 * 2
    obs_full, obs_reduced = full.reset(seed=4), reduced.reset(seed=4)
    for _ in range(3):
        for block, where in reduced.observation_slices.items():
            assert torch.equal(obs_reduced[:, where], blocks(full, obs_full, block)), block
        action = torch.full((2, 1), 0.3)
        obs_full, *_ = full.step(action)
        obs_reduced, *_ = reduced.step(action)
    with pytest.raises(ValueError, match="omit_blocks"):
        quadratic_env(omit_blocks=("velocity",))


def test_contexts_and_iterates_are_copies_of_the_drawn_problems():
    env = quadratic_env(num_envs=3, init="random")
    obs = env.reset(seed=5)
    torch.testing.assert_close(env.contexts, blocks(env, obs, "context").double())
    torch.testing.assert_close(signed_log(env.iterates), blocks(env, obs, "iterate").double(), atol=1e-6, rtol=1e-6)
    env.contexts.zero_()
    assert env.contexts.abs().sum() > 0


def test_barzilai_borwein_actions_decode_to_the_long_and_short_steps():
    env = IterateEnv(Quadratic(dim=5), 4, action="step_size", secant_features=True, step_size_range=(1e-3, 10.0))
    env.reset(seed=0)
    low, high = math.log(1e-3), math.log(10.0)
    decode = lambda a: torch.exp(low + 0.5 * (a.squeeze(-1).double() + 1) * (high - low))  # noqa: E731
    torch.testing.assert_close(decode(env.barzilai_borwein_action(0.05, long_step=False)),
                               torch.full((4,), 0.05, dtype=torch.float64), rtol=1e-5, atol=0)  # first step
    y, g = env.iterates, env._g.clone()
    env.step(env.barzilai_borwein_action(0.05))
    s, z = env.iterates - y, env._g - g
    long_step, short_step = (s * s).sum(-1) / (s * z).sum(-1), (s * z).sum(-1) / (z * z).sum(-1)
    torch.testing.assert_close(decode(env.barzilai_borwein_action(0.05)), long_step.double(), rtol=1e-4, atol=0)
    torch.testing.assert_close(decode(env.barzilai_borwein_action(0.05, long_step=False)), short_step.double(),
                               rtol=1e-4, atol=0)


def test_the_secant_update_block_is_the_short_barzilai_borwein_update_per_coordinate():
    env = IterateEnv(Quadratic(dim=5), 3, action="update", secant_update=True, observation_layout="rows",
                     omit_blocks=("iterate", "gradient"), history=0)
    assert env.row_layout.row_features == 1 and env.observation_slices == {
        "objective": slice(5, 6), "stationarity": slice(6, 7), "budget": slice(7, 8)}
    obs = env.reset(seed=0)
    assert (obs[:, :5] == 0).all()  # no secant pair yet
    y, g = env.iterates, env._g.clone()
    unit = (torch.linalg.vector_norm(g, dim=-1, keepdim=True) / math.sqrt(5))
    obs = env.step(torch.full((3, 5), 0.3))[0]
    s, z = env.iterates - y, env._g - g
    short_step = ((s * z).sum(-1) / (z * z).sum(-1)).unsqueeze(-1)
    torch.testing.assert_close(obs[:, :5], (short_step * env._g / unit).float())


def test_the_barzilai_borwein_action_in_update_mode_is_the_gradient_step():
    env = IterateEnv(Quadratic(dim=4), 3, action="update", action_scale=2.0, update_scaling="gradient",
                     secant_update=True, dtype=torch.float64)
    env.reset(seed=1)
    y0, g0, unit = env.iterates, env._g.clone(), env._grad_unit.unsqueeze(-1)
    first = env.barzilai_borwein_action(0.01, long_step=False)
    torch.testing.assert_close(first.double(), (-0.01 * g0 / (2.0 * unit)).clamp(-1, 1))
    env.step(first)
    s, z = env.iterates - y0, env._g - g0
    short_step = ((s * z).sum(-1) / (z * z).sum(-1)).unsqueeze(-1)
    torch.testing.assert_close(env.barzilai_borwein_action(0.01, long_step=False).double(),
                               (-short_step * env._g / (2.0 * unit)).clamp(-1, 1), rtol=1e-5, atol=1e-6)


def test_the_lmsd_expert_reproduces_limited_memory_steepest_descent_and_the_ritz_block_shows_its_sweep():
    from amorctl.optimizers import run_optimizer

    problem = Quadratic(dim=6, cond_max=30.0)
    env = IterateEnv(problem, 8, max_iterations=12, action="step_size", step_size_base="bb2", first_step=0.5,
                     residual_scale=10.0, history=0, secant_features=True, ritz_memory=3,
                     omit_blocks=("iterate", "gradient"), tolerance=0.0, dtype=torch.float64)
    assert env.observation_slices["ritz"] == slice(6, 12) and env.observation_dim == 12
    obs = env.reset(seed=3)
    x, y0 = env.contexts, env.iterates
    assert (obs[:, 6:] == 0).all()  # no sweep before the first update
    torch.testing.assert_close(env.lmsd_action(0.5), torch.zeros(8, 1))  # the first step is BB2's: first_step
    obs = env.step(env.lmsd_action(0.5))[0]
    # a sweep of one step, 1/θ = BB1: the slot holds log(BB1 / BB2) ≥ 0, the next index is 0
    torch.testing.assert_close(obs[:, 6], obs[:, 4] - obs[:, 5])  # secant block: log BB1, log BB2
    assert (obs[:, 7:9] == 0).all() and (obs[:, 9] == 1).all() and (obs[:, 10:] == 0).all()
    for _ in range(10):
        obs = env.step(env.lmsd_action(0.5))[0]
    expected = run_optimizer("lmsd", problem, x, y0, 11, step_size=0.5, memory=3).solution
    torch.testing.assert_close(env.iterates, expected, rtol=1e-4, atol=1e-8)
    assert (obs[:, 9:].sum(-1) == 1).all()  # one next index
    with pytest.raises(ValueError, match="ritz_memory"):
        IterateEnv(problem, 2, ritz_memory=-1)
    with pytest.raises(ValueError, match="ritz_memory"):
        IterateEnv(problem, 2).lmsd_action(0.5)

"""The pendulum of the ``pendulum_mpc`` family as a batched control task.

The state is the family's context (angle error θ − θ_target, velocity θ̇ and, when the family draws
targets, θ_target), the action the normalised torque u ∈ [-1, 1], the dynamics and the per-step cost
the family's own (:meth:`~amorctl.problems.PendulumMPC.step`, :meth:`~amorctl.problems.PendulumMPC.stage_cost`),
and the reward minus that cost. Episodes start from the family's context distribution and are
truncated after ``max_episode_steps``. It is where amortized MPC controllers, policies trained by RL
and behavioural cloning from the MPC expert (:meth:`PendulumControlEnv.mpc_action`) meet on one task.
"""

from __future__ import annotations

import torch

from amorctl.envs.base import BatchedEnv, StepResult
from amorctl.problems import PendulumMPC


class PendulumControlEnv(BatchedEnv):
    """N pendulums of a :class:`~amorctl.problems.PendulumMPC` family, stepped together on one device.

    Args:
        problem: the family (its dynamics, cost weights, horizon for the MPC expert, context ranges).
        num_envs: N.
        max_episode_steps: the time limit (a truncation: the final state still has a value).
        device: where states and returned tensors live.
    """

    def __init__(self, problem: PendulumMPC, num_envs: int = 1, *, max_episode_steps: int = 100,
                 device: torch.device | str = "cpu"):
        if num_envs < 1 or max_episode_steps < 1:
            raise ValueError(
                f"num_envs and max_episode_steps must be at least 1, got {num_envs} and {max_episode_steps}"
            )
        self.problem, self.num_envs, self.max_episode_steps = problem, num_envs, max_episode_steps
        self.name, self.device = "pendulum_mpc", torch.device(device)
        self.observation_dim, self.action_dim = problem.context_dim, 1
        self.generator = torch.Generator(device=self.device)
        self._state: torch.Tensor | None = None
        self._t = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self._return = torch.zeros(num_envs, dtype=torch.float32, device=self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        self._state = self.problem.sample_contexts(self.num_envs, self.generator, self.device)
        self._t.zero_()
        self._return.zero_()
        return self._state.clone()

    def step(self, action: torch.Tensor) -> StepResult:
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        self.validate_action(action)
        u = action[:, 0].to(self.device, self._state.dtype).clamp(-1.0, 1.0)
        x = self._state
        target = x[:, 2] if self.problem.context_dim == 3 else torch.zeros_like(x[:, 0])
        error, velocity = self.problem.step(x[:, 0], x[:, 1], target, u)
        reward = -self.problem.stage_cost(error, velocity, u).to(torch.float32)
        final = torch.stack([error, velocity, target][: self.problem.context_dim], dim=1)
        self._t += 1
        self._return += reward
        truncated = self._t >= self.max_episode_steps
        terminated = torch.zeros_like(truncated)
        info = {"final_obs": final.clone(), "episode_return": self._return.clone(), "episode_length": self._t.clone()}
        fresh = self.problem.sample_contexts(self.num_envs, self.generator, self.device)
        self._state = torch.where(truncated.unsqueeze(-1), fresh, final)
        self._t.masked_fill_(truncated, 0)
        self._return.masked_fill_(truncated, 0.0)
        return self._state.clone(), reward, terminated, truncated, info

    @torch.no_grad()
    def mpc_action(self) -> torch.Tensor:
        """The model-predictive controller's action: the first torque of the family's reference solution
        (projected Levenberg–Marquardt over the horizon) from each copy's current state, (N, 1)."""
        if self._state is None:
            raise RuntimeError(f"{self.name}: call reset() before asking the MPC controller")
        return self.problem.solve(self._state)[:, :1].to(torch.float32)

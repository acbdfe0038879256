"""The one batched environment interface every agent trains on.

A :class:`BatchedEnv` holds N copies of an MDP as tensors of leading size N on one device. Actions
live in the policy's box [-1, 1]^action_dim (the environment rescales them to its own bounds), the
environments reset themselves when an episode ends, and the true final observation of a finished
episode is kept in ``info["final_obs"]`` so that a learner can bootstrap from it.
Policies are scored on it by :func:`amorctl.eval.rollouts.run_episodes`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]
"""``(obs, reward, terminated, truncated, info)`` as returned by :meth:`BatchedEnv.step`."""


@dataclass(frozen=True)
class RowLayout:
    """A flat observation read as a set of rows plus shared features, and an action with one block per row.

    An environment whose state is naturally a set of like items (the coordinates of an iterate, the
    constraints of a QP) declares it so that one small network can act on every row (a per-row, or
    factored, policy: :class:`~amorctl.agents.networks.RowwiseActor`). A flat observation ``(..., D)``
    is the R rows' features, row after row (``row_features`` each), then ``shared_features`` entries
    every row sees; the action ``(..., R·row_actions)`` is the rows' actions, row after row. R is read
    from D, so a network built from the layout applies to any number of rows.

    Attributes:
        rows: R of the declaring environment (for messages; :meth:`rows_of` reads R from an observation).
        row_features: F, the features of one row.
        shared_features: S, the features every row sees (scalars of the whole state).
        row_actions: the actions of one row.
        pooled: whether a row's input also holds the mean of every row's features (a summary of the whole set);
            without it a row's action depends on its own features and the shared ones only.
    """

    rows: int
    row_features: int
    shared_features: int = 0
    row_actions: int = 1
    pooled: bool = True

    @property
    def input_dim(self) -> int:
        """The width of one row's input (:meth:`row_inputs`): its features, the rows' mean, the shared ones."""
        return (2 if self.pooled else 1) * self.row_features + self.shared_features

    def rows_of(self, observation_dim: int) -> int:
        """R for flat observations of width ``observation_dim``; ``ValueError`` if that width fits no R ≥ 1."""
        rows, rest = divmod(observation_dim - self.shared_features, self.row_features)
        if rows < 1 or rest:
            raise ValueError(f"an observation of width {observation_dim} is not R rows of {self.row_features} "
                             f"features and {self.shared_features} shared ones")
        return rows

    def row_inputs(self, obs: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` → ``(..., R, 2F + S)``: each row's features, the mean of every row's features (a pooled,
        permutation-invariant summary of the set, as in Deep Sets; not with ``pooled=False``: ``(..., R, F + S)``)
        and the shared features."""
        rows = self.rows_of(obs.shape[-1])
        split = self.row_features * rows
        per_row = obs[..., :split].unflatten(-1, (rows, self.row_features))
        shared = obs[..., split:].unsqueeze(-2).expand(*per_row.shape[:-1], self.shared_features)
        if not self.pooled:
            return torch.cat([per_row, shared], dim=-1)
        pooled = per_row.mean(-2, keepdim=True).expand_as(per_row)
        return torch.cat([per_row, pooled, shared], dim=-1)


class BatchedEnv(ABC):
    """N auto-resetting copies of an MDP behind tensors of leading size N.

    Attributes:
        name: what the environment is called in messages and logs (a gym id for gymnasium tasks).
        num_envs: N, the number of copies stepped together.
        observation_dim: size of one flat observation.
        action_dim: size of one action.
        device: where observations, rewards and flags are returned.
        row_layout: how observations and actions split into rows (:class:`RowLayout`), for per-row policies;
            ``None`` (the default) for an environment without one.

    Contract of :meth:`step` (implementations must honour it):

    - ``action`` is a float tensor of shape (N, action_dim) in [-1, 1]; implementations call
      :meth:`validate_action` on it before using it.
    - returns ``obs`` float32 (N, observation_dim), ``reward`` float32 (N,), ``terminated`` and
      ``truncated`` bool (N,), all on ``device``. ``terminated`` means the MDP reached a terminal state
      (no bootstrapping); ``truncated`` means the episode was cut (by a time limit), and the value of
      its final state still counts.
    - for rows whose episode ended (``terminated | truncated``), ``obs[i]`` is already the first
      observation of the next episode; ``info["final_obs"]`` is a (N, observation_dim) tensor equal to
      ``obs`` except in those rows, where it holds the true final observation.
    - ``info["episode_return"]`` (float32) and ``info["episode_length"]`` (int64) are (N,) tensors,
      meaningful in the rows that ended: the finished episode's undiscounted return and length.
    """

    name: str
    num_envs: int
    observation_dim: int
    action_dim: int
    device: torch.device
    row_layout: RowLayout | None = None

    @abstractmethod
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new episode in every copy; returns observations (N, observation_dim).

        With a ``seed``, the episodes that follow are reproducible (copy i is seeded from ``seed + i``).
        """

    @abstractmethod
    def step(self, action: torch.Tensor) -> StepResult:
        """Advance every copy by one step; see the class docstring for the returned tensors."""

    def close(self) -> None:  # noqa: B027 (a no-op unless the environment holds something)
        """Release what the environment holds (worker processes, simulators)."""

    def validate_action(self, action: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``action`` is a finite float tensor of shape (N, action_dim).

        The shape and dtype checks read metadata only. The finite check reads the values, so it runs
        only when ``action`` is on the CPU (on an accelerator it would stall the stream every step);
        an environment that copies actions to the host anyway should validate the host copy.
        """
        expected = f"{self.name} expects float actions of shape ({self.num_envs}, {self.action_dim}) in [-1, 1]"
        if not isinstance(action, torch.Tensor):
            raise ValueError(f"{expected}, got a {type(action).__name__} instead of a torch.Tensor")
        if tuple(action.shape) != (self.num_envs, self.action_dim):
            raise ValueError(f"{expected}, got shape {tuple(action.shape)}")
        if not action.is_floating_point():
            raise ValueError(f"{expected}, got dtype {action.dtype}")
        if action.device.type == "cpu" and not bool(torch.isfinite(action).all()):
            rows = (~torch.isfinite(action)).any(dim=1).nonzero().flatten().tolist()
            raise ValueError(f"{expected}, got NaN or Inf in rows {rows}")

    def __enter__(self) -> BatchedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, num_envs={self.num_envs}, observation_dim={self.observation_dim},"
            f" action_dim={self.action_dim}, device={self.device})"
        )

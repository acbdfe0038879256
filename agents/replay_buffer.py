"""A ring buffer of transitions, preallocated as tensors on the learner's device."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated")


class Transitions(NamedTuple):
    """A batch of B transitions: obs (B, D), action (B, A), reward (B,), next_obs (B, D), terminated bool (B,).

    ``next_obs`` is the true successor state (the final observation when the episode ended), and
    ``terminated`` is set only for terminal states, never for time-limit truncations.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """The last ``capacity`` transitions, added N at a time and sampled uniformly with replacement.

    Args:
        capacity: the number of transitions kept; the oldest are overwritten first.
        observation_dim, action_dim: sizes of one observation and one action.
        device: where the storage lives (and where samples are returned).
    """

    def __init__(self, capacity: int, observation_dim: int, action_dim: int, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be at least 1, got {capacity}")
        self.capacity, self.device = capacity, torch.device(device)
        self.obs = torch.zeros(capacity, observation_dim, device=self.device)
        self.action = torch.zeros(capacity, action_dim, device=self.device)
        self.reward = torch.zeros(capacity, device=self.device)
        self.next_obs = torch.zeros(capacity, observation_dim, device=self.device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor,
    ) -> None:
        """Store a batch of N transitions (leading size N on every tensor), wrapping around at the end."""
        n = obs.shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions at once to a replay buffer of capacity {self.capacity}")
        head = min(n, self.capacity - self.pos)
        for name, value in zip(FIELDS, (obs, action, reward, next_obs, terminated)):
            storage = getattr(self, name)
            storage[self.pos : self.pos + head] = value[:head]
            if head < n:
                storage[: n - head] = value[head:]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Transitions:
        """``batch_size`` stored transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        index = torch.randint(0, self.size, (batch_size,), generator=generator, device=self.device)
        return Transitions(*(getattr(self, name).index_select(0, index) for name in FIELDS))

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (only the filled rows) and the write position."""
        state: dict[str, Any] = {"capacity": self.capacity, "pos": self.pos, "size": self.size}
        for name in FIELDS:
            state[name] = getattr(self, name)[: self.size].clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"replay buffer state has capacity {state['capacity']}, this buffer {self.capacity}")
        for name in FIELDS:
            storage = getattr(self, name)
            if state[name].shape[1:] != storage.shape[1:]:
                raise ValueError(
                    f"replay buffer state has {name} rows of shape {tuple(state[name].shape[1:])},"
                    f" this buffer {tuple(storage.shape[1:])}"
                )
            storage[: state["size"]] = state[name]
        self.pos, self.size = state["pos"], state["size"]

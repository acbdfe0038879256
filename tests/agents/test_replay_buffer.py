import pytest
import torch

from amorctl.agents import ReplayBuffer


def transitions(ids: list[int]) -> tuple[torch.Tensor, ...]:
    """Transitions whose every field encodes its id, so rows can be traced after storage."""
    x = torch.tensor(ids, dtype=torch.float32)
    return x[:, None].expand(-1, 3), x[:, None].expand(-1, 2), x, x[:, None].expand(-1, 3) + 0.5, x.long() % 2 == 1


def test_add_wraps_around():
    buffer = ReplayBuffer(5, observation_dim=3, action_dim=2)
    buffer.add(*transitions([0, 1, 2]))
    assert (buffer.pos, len(buffer)) == (3, 3)
    buffer.add(*transitions([3, 4, 5, 6]))
    assert (buffer.pos, len(buffer)) == (2, 5)
    assert buffer.reward.tolist() == [5, 6, 2, 3, 4]
    assert torch.equal(buffer.obs[:, 0], buffer.reward) and torch.equal(buffer.action[:, 1], buffer.reward)
    assert torch.equal(buffer.next_obs[:, 2], buffer.reward + 0.5)
    assert buffer.terminated.tolist() == [True, False, False, True, False]


def test_samples_only_stored_transitions():
    buffer = ReplayBuffer(100, observation_dim=3, action_dim=2)
    buffer.add(*transitions([10, 11, 12]))
    batch = buffer.sample(500, torch.Generator().manual_seed(0))
    assert batch.obs.shape == (500, 3) and batch.action.shape == (500, 2) and batch.terminated.dtype == torch.bool
    assert set(batch.reward.tolist()) == {10.0, 11.0, 12.0}
    assert torch.equal(batch.obs[:, 0], batch.reward) and torch.equal(batch.next_obs[:, 0], batch.reward + 0.5)
    assert torch.equal(batch.terminated, batch.reward.long() % 2 == 1)


def test_sampling_is_reproducible_from_the_generator():
    buffer = ReplayBuffer(100, observation_dim=3, action_dim=2)
    buffer.add(*transitions(list(range(50))))
    a, b = (buffer.sample(32, torch.Generator().manual_seed(1)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_errors():
    buffer = ReplayBuffer(2, observation_dim=3, action_dim=2)
    with pytest.raises(RuntimeError, match="empty"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="cannot add 3 transitions at once to a replay buffer of capacity 2"):
        buffer.add(*transitions([0, 1, 2]))


@pytest.mark.parametrize("ids", [[0, 1, 2], list(range(9))])
def test_state_dict_round_trip(ids):
    buffer = ReplayBuffer(6, observation_dim=3, action_dim=2)
    for start in range(0, len(ids), 3):
        buffer.add(*transitions(ids[start : start + 3]))
    restored = ReplayBuffer(6, observation_dim=3, action_dim=2)
    restored.load_state_dict(buffer.state_dict())
    assert (restored.pos, len(restored)) == (buffer.pos, len(buffer))
    a = buffer.sample(64, torch.Generator().manual_seed(2))
    b = restored.sample(64, torch.Generator().manual_seed(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="capacity 6, this buffer 7"):
        ReplayBuffer(7, observation_dim=3, action_dim=2).load_state_dict(buffer.state_dict())

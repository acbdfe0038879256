"""Videos of a policy callable: the filmed episode is the scored one (same seed, same action map)."""

from __future__ import annotations

import pytest
import torch

from amorctl.envs import GymVectorEnv
from amorctl.eval.rollouts import run_episodes
from amorctl.eval.video import record_video
from amorctl.run.errors import EvaluationError


def swinging(obs: torch.Tensor) -> torch.Tensor:
    """Actions beyond [-1, 1] too, so that the clipping of the one action map is part of what is compared."""
    return 3.0 * obs[:, 2:3]


def test_the_video_of_episode_k_is_the_episode_run_episodes_scored(tmp_path):
    folder = tmp_path / "videos"
    videos = record_video(swinging, "Pendulum-v1", folder, seed=9, episodes=2, name_prefix="p", max_episode_steps=12)
    with GymVectorEnv("Pendulum-v1", num_envs=2, max_episode_steps=12) as env:
        scored = run_episodes(swinging, env, episodes=2, seed=9)
    assert [video["seed"] for video in videos] == scored["seeds"] == [9, 10]
    assert [video["return"] for video in videos] == scored["returns"]
    assert [video["length"] for video in videos] == scored["lengths"] == [12, 12]
    for k, video in enumerate(videos):
        assert video["path"] == str(folder / f"p-episode-{k}.mp4") and video["bytes"] > 0
        assert video["frames_captured"] == 13 and 12 <= video["frames"] <= 13


def test_an_id_that_would_import_a_module_is_one_sentence(gym_plugin, tmp_path):
    with pytest.raises(EvaluationError, match=f"pass --import {gym_plugin.module}"):
        record_video(swinging, gym_plugin.env_id, tmp_path, seed=0)
    assert not gym_plugin.marker.exists()

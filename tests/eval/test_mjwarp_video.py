"""Videos of MjWarpEnv tasks: one world rendered through a CPU MjData; the filmed episode is the scored one."""

from __future__ import annotations

import imageio
import numpy as np
import torch

from amorctl.envs.mjwarp import MjWarpEnv
from amorctl.eval.rollouts import run_episodes
from amorctl.eval.video import record_mjwarp_video


def balancing(obs: torch.Tensor) -> torch.Tensor:
    """A deterministic feedback on the pole's angle and angular velocity (InvertedPendulum-v5's obs[1], obs[3])."""
    return (4.0 * obs[:, 1:2] + 0.5 * obs[:, 3:4]).clamp(-1.0, 1.0)


def test_the_video_of_episode_k_is_the_episode_run_episodes_scored(tmp_path):
    """Runs MuJoCo's offscreen renderer for real (.ci/run installs EGL and Mesa): no skip here."""
    folder = tmp_path / "videos"
    videos = record_mjwarp_video(
        balancing, "InvertedPendulum-v5", folder, seed=9, episodes=2, name_prefix="p", max_episode_steps=6
    )
    with MjWarpEnv("InvertedPendulum-v5", num_envs=2, max_episode_steps=6) as env:
        scored = run_episodes(balancing, env, episodes=2, seed=9)
    assert [video["seed"] for video in videos] == scored["seeds"] == [9, 10]
    assert [video["return"] for video in videos] == scored["returns"]
    assert [video["length"] for video in videos] == scored["lengths"] == [6, 6]
    for k, video in enumerate(videos):
        assert video["path"] == str(folder / f"p-episode-{k}.mp4") and video["bytes"] > 0
        assert video["frames_captured"] == 6  # the reset frame and one per step but the last (reset in the step)
        reader = imageio.get_reader(video["path"], format="FFMPEG")
        frames = [frame for frame in reader]  # the reader has no finite len() for list()
        reader.close()
        assert len(frames) == video["frames"] and 5 <= len(frames) <= 6
        assert frames[0].shape == (480, 480, 3) and frames[0].dtype == np.uint8
        assert frames[0].std() > 10  # a rendered scene, not a blank image

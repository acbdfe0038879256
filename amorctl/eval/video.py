"""Film a trained policy's episodes as mp4 files, and the renderer set-up and messages that takes.

:func:`record_video` plays deterministic episodes of a policy callable on one ``render_mode="rgb_array"``
copy of a gymnasium task through ``gymnasium.wrappers.RecordVideo``. Episode k starts from
``reset(seed=seed + k)`` and its actions go through the same :class:`~amorctl.envs.ActionMap` as in
training (:func:`~amorctl.envs.make_gym_env`), so the video of episode k shows exactly the episode that
:func:`amorctl.eval.rollouts.run_episodes` scored with that seed.
:func:`record_mjwarp_video` films a MuJoCo Warp task (``env.kind: mjwarp``): it plays one world of an
:class:`~amorctl.envs.MjWarpEnv` and renders each step by copying the world's joint state into a CPU
``MjData`` drawn by gymnasium's ``MujocoRenderer``.

Rendering. MuJoCo tasks render offscreen through MuJoCo's OpenGL backend named by ``MUJOCO_GL``;
``scripts/evaluate.py --video`` (and :func:`record_video`) set it to ``egl`` when it is unset, which
works without a display given Debian's ``libegl1``, ``libopengl0`` and ``libgl1-mesa-dri`` (Mesa's
software rasteriser; ``.ci/run`` installs them). ``MUJOCO_GL=osmesa`` with ``libosmesa6`` is the
alternative. The mp4 is written by moviepy with the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from amorctl.envs import make_gym_env
from amorctl.run.errors import EvaluationError

DEFAULT_GL_BACKEND = "egl"
"""``MUJOCO_GL`` when it is unset: headless offscreen rendering through EGL and Mesa."""


def default_gl_backend() -> str:
    """Set ``MUJOCO_GL`` to :data:`DEFAULT_GL_BACKEND` unless the user chose one; returns the backend in force.

    Classic-control tasks (Pendulum-v1) draw with pygame instead; SDL is told to need no display or
    sound device, which also keeps it from complaining about a missing session.
    """
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    return os.environ.setdefault("MUJOCO_GL", DEFAULT_GL_BACKEND)


@torch.no_grad()
def record_video(
    policy: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    folder: Path,
    seed: int,
    episodes: int = 1,
    name_prefix: str = "evaluate",
    max_episode_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Film ``episodes`` deterministic episodes (episode k from ``reset(seed=seed + k)``) as mp4 files in ``folder``.

    Uses ``gymnasium.wrappers.RecordVideo`` on one ``render_mode="rgb_array"`` copy of the gymnasium
    task ``env_id`` from :func:`~amorctl.envs.make_gym_env` (with ``max_episode_steps`` when given):
    ``policy`` gives actions in [-1, 1] for observations (1, observation_dim), mapped onto the task's
    bounds by :class:`~amorctl.envs.ActionMap` exactly as in training. Returns, per episode, its seed,
    return and length, ``frames_captured`` (the reset frame and one per step), and the video's path,
    size in bytes, and frame count and duration as decoded by ffmpeg. Raises
    :class:`~amorctl.run.errors.EvaluationError` with one sentence when the task cannot be rendered here.
    """
    backend = default_gl_backend()
    extra = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    try:
        env = make_gym_env(env_id, render_mode="rgb_array", **extra)
    except gym.error.DependencyNotInstalled as error:
        raise EvaluationError(f"cannot render {env_id}: {_first_line(error)}") from None
    except ValueError as error:  # an id or action space a run's config cannot hold, for direct callers
        raise EvaluationError(str(error)) from None
    try:
        env = gym.wrappers.RecordVideo(
            env, str(folder), episode_trigger=lambda episode: True, name_prefix=name_prefix, disable_logger=True
        )
    except gym.error.DependencyNotInstalled as error:
        env.close()
        raise EvaluationError(f"--video needs moviepy to write mp4 files ({_first_line(error)})") from None
    results = []
    try:
        for k in range(episodes):
            obs, _ = _rendering(partial(env.reset, seed=seed + k), env_id, backend)
            total, length, ended = 0.0, 0, False
            while not ended:
                obs_t = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)
                action = policy(obs_t).cpu().double().numpy().reshape(-1)
                obs, reward, terminated, truncated, _ = env.step(action)
                # accumulate in float32 like GymVectorEnv's episode return
                total = float(np.float32(total) + np.float32(reward))
                length += 1
                ended = terminated or truncated
            results.append({"seed": seed + k, "return": total, "length": length, "frames_captured": length + 1})
    except BaseException:
        with warnings.catch_warnings():  # RecordVideo would warn that it has no frames to save
            warnings.simplefilter("ignore")
            env.close()
        raise
    env.close()  # writes the last episode's video (each reset wrote the one before)
    return _with_video_files(results, folder, name_prefix)


def _with_video_files(results: list[dict[str, Any]], folder: Path, name_prefix: str) -> list[dict[str, Any]]:
    """Each episode's result with its video's path, size in bytes, and frames and seconds as ffmpeg decodes them."""
    for k, result in enumerate(results):
        path = Path(folder) / f"{name_prefix}-episode-{k}.mp4"
        if not path.is_file():
            raise EvaluationError(f"the video of episode {k} was not written to {str(path)!r}")
        frames, seconds = video_frames(path)
        result |= {"path": str(path), "bytes": path.stat().st_size, "frames": frames, "seconds": seconds}
    return results


@torch.no_grad()
def record_mjwarp_video(
    policy: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    folder: Path,
    seed: int,
    episodes: int = 1,
    name_prefix: str = "evaluate",
    max_episode_steps: int | None = None,
    size: tuple[int, int] = (480, 480),
) -> list[dict[str, Any]]:
    """Film ``episodes`` deterministic episodes of an :class:`~amorctl.envs.MjWarpEnv` task as mp4 files in ``folder``.

    Episode k is the episode of a one-world MjWarpEnv on the CPU after ``reset(seed=seed + k)``, the one
    :func:`amorctl.eval.rollouts.run_episodes` scores with that seed whatever its N (to float32 rounding:
    with contacts, a one-world and an N-world simulation can differ in the last bits). After the reset and
    after every step but the last (whose end state the automatic reset replaces), the world's (qpos,
    qvel) is copied into a CPU ``mujoco.MjData`` and drawn by gymnasium's own ``MujocoRenderer`` with the
    task's gymnasium camera; frames are written at 1 / dt frames per second with moviepy, as
    ``RecordVideo`` does. Returns what :func:`record_video` returns (``frames_captured`` = the length).
    """
    import mujoco
    from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

    from amorctl.envs.mjwarp import MjWarpEnv

    backend = default_gl_backend()
    extra = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    env = MjWarpEnv(env_id, 1, "cpu", **extra)
    data = mujoco.MjData(env.mj_model)
    renderer = MujocoRenderer(env.mj_model, data, _camera_config(env_id), width=size[0], height=size[1])

    def frame() -> np.ndarray:
        data.qpos[:], data.qvel[:] = env.world_state(0)
        mujoco.mj_forward(env.mj_model, data)
        return renderer.render("rgb_array").copy()

    results = []
    try:
        for k in range(episodes):
            obs = env.reset(seed=seed + k)
            frames, ended = [_rendering(frame, env_id, backend)], False
            while not ended:
                obs, _, terminated, truncated, info = env.step(policy(obs).cpu().float())
                ended = bool(terminated[0] | truncated[0])
                if not ended:
                    frames.append(frame())
            _write_mp4(frames, Path(folder) / f"{name_prefix}-episode-{k}.mp4", fps=round(1.0 / env.dt))
            results.append({"seed": seed + k, "return": float(info["episode_return"][0]),
                            "length": int(info["episode_length"][0]), "frames_captured": len(frames)})
    finally:
        renderer.close()
        env.close()
    return _with_video_files(results, folder, name_prefix)


def _camera_config(env_id: str) -> dict[str, Any]:
    """gymnasium's camera settings for the task (``DEFAULT_CAMERA_CONFIG`` of its ``*_v5`` module)."""
    import importlib

    module = importlib.import_module(gym.spec(env_id).entry_point.split(":")[0])
    return dict(getattr(module, "DEFAULT_CAMERA_CONFIG", {}))


def _write_mp4(frames: list[np.ndarray], path: Path, fps: int) -> None:
    """Write RGB frames as an mp4 with moviepy (what gymnasium's ``RecordVideo`` uses)."""
    try:
        from moviepy.video.io.ImageSequenceClip import ImageSequenceClip
    except ImportError as error:
        raise EvaluationError(f"--video needs moviepy to write mp4 files ({_first_line(error)})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    ImageSequenceClip(frames, fps=fps).write_videofile(str(path), logger=None)


def video_frames(path: Path) -> tuple[int, float]:
    """Decode the video at ``path`` with ffmpeg; returns its frame count and duration in seconds.

    moviepy writes ⌊captured frames − 1⌋ to ⌊captured frames⌋ of them (its clip duration is frames/fps
    and the last frame can fall on the end), so the decoded count is the one reported.
    """
    import imageio_ffmpeg

    try:
        frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError) as error:
        raise EvaluationError(
            f"the video {str(path)!r} was written but cannot be decoded ({_first_line(error)})"
        ) from None
    return int(frames), float(seconds)


def _rendering(call: Callable[[], Any], env_id: str, backend: str) -> Any:
    """Run ``call`` (the first render happens inside), turning a renderer failure into one sentence."""
    try:
        return call()
    except Exception as error:
        raise EvaluationError(renderer_trouble(env_id, backend, error)) from None


def renderer_trouble(env_id: str, backend: str, error: BaseException) -> str:
    """One sentence for a renderer that cannot start: the error, and the system packages headless rendering needs."""
    return (
        f"cannot start MuJoCo's renderer for {env_id} with MUJOCO_GL={backend} "
        f"({type(error).__name__}: {_first_line(error)}); headless rendering needs Debian's libegl1, libopengl0 "
        "and libgl1-mesa-dri for MUJOCO_GL=egl, or libosmesa6 for MUJOCO_GL=osmesa"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""Evaluate a trained policy: load it from a run (or one checkpoint), run fresh episodes, record videos.

The library behind ``scripts/evaluate.py``. A TD3 run's policy π(s) is loaded with the run's own
``config.yaml``; :func:`run_episodes` plays deterministic episodes whose seeds were never used in
training, and :func:`record_video` films some of them through ``gymnasium.wrappers.RecordVideo``.

Seeds. Episode k of an evaluation with seed s starts from ``reset(seed=s + k)``; the default s is
``config.seed + EVALUATE_SEED_OFFSET``, apart from training's own episodes (seeded from the
learner's stream) and from its periodic evaluations (``config.seed + EVAL_SEED_OFFSET + i``). On a
gymnasium task episode k is therefore the same whatever the number of copies that run it side by
side, and the video of episode k shows exactly the episode that :func:`run_episodes` scored.

Rendering. MuJoCo tasks render offscreen through MuJoCo's OpenGL backend named by ``MUJOCO_GL``;
``scripts/evaluate.py --video`` (and :func:`record_video`) set it to ``egl`` when it is unset, which
works without a display given Debian's ``libegl1``, ``libopengl0`` and ``libgl1-mesa-dri`` (Mesa's
software rasteriser; ``.ci/run`` installs them). ``MUJOCO_GL=osmesa`` with ``libosmesa6`` is the
alternative. The mp4 is written by moviepy with the ffmpeg binary that the ``imageio-ffmpeg`` wheel ships.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from amorctl.agents.td3 import TD3
from amorctl.run.checkpoint import latest_checkpoint, load_checkpoint
from amorctl.run.config import TD3Config, resolve_device
from amorctl.control import make_env, make_td3
from amorctl.envs import BatchedEnv
from amorctl.run.errors import AmorctlError, CheckpointError
from amorctl.run.rundir import RunDir

EVALUATE_SEED_OFFSET = 2_000_000
"""The default evaluation seed is ``config.seed + EVALUATE_SEED_OFFSET``, apart from training's evaluation seeds."""

DEFAULT_GL_BACKEND = "egl"
"""``MUJOCO_GL`` when it is unset: headless offscreen rendering through EGL and Mesa."""

_CHECKPOINT_NAME = re.compile(r"^step_\d+\.pt$")


class EvaluationError(AmorctlError):
    """A policy cannot be evaluated as asked (wrong kind of run, no checkpoint, no renderer, ...)."""


@dataclass
class LoadedPolicy:
    """A trained TD3 learner with the config and the checkpoint it came from."""

    run: RunDir
    config: TD3Config
    checkpoint: Path
    step: int
    agent: TD3
    device: torch.device

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions π(s) in [-1, 1] for observations (N, observation_dim)."""
        return self.agent.predict(obs, deterministic=True)


def locate_run(path: str | Path) -> tuple[RunDir, Path | None]:
    """The run of ``path`` and the checkpoint it names: a run folder (``None``: its latest) or a checkpoint file.

    A checkpoint file must lie in its run's ``checkpoints/`` folder (``<run>/checkpoints/step_*.pt``),
    whose ``config.yaml`` describes it. Raises :class:`EvaluationError` or :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.exists():
        raise EvaluationError(f"{str(path)!r} does not exist; pass a run directory or a checkpoint file")
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            hint = ""
            if path.name == "checkpoints":
                hint = "; pass a run directory (<runs_dir>/<name>/<time>), not its checkpoints folder"
            raise CheckpointError(f"directory {str(path)!r} has no config.yaml, so it is not an amorctl run{hint}")
        return RunDir.open(path), None
    if not _CHECKPOINT_NAME.match(path.name):
        raise EvaluationError(f"{str(path)!r} is neither a run directory nor a checkpoint file (step_*.pt)")
    root = path.resolve().parent.parent
    if path.resolve().parent.name != "checkpoints" or not (root / "config.yaml").is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not inside a run directory "
            "(<run>/checkpoints/step_*.pt beside <run>/config.yaml)"
        )
    return RunDir.open(root), path


def load_policy(
    run: RunDir, config: TD3Config, checkpoint: Path | None = None, num_envs: int = 1
) -> tuple[LoadedPolicy, BatchedEnv]:
    """Load the TD3 policy of ``checkpoint`` (default: the run's latest) and an environment of ``num_envs`` copies.

    The learner is built as in training (same networks) but with a replay buffer of one step and
    without the checkpoint's stored buffer; the returned environment is the caller's to close.
    """
    if checkpoint is None:
        checkpoint = latest_checkpoint(run.checkpoints)
        if checkpoint is None:
            raise CheckpointError(f"run directory {str(run.root)!r} has no checkpoint to evaluate; train it first")
    device = resolve_device(config)
    state = load_checkpoint(checkpoint)  # onto the CPU: random-number states must stay there
    agent_state = state.get("agent")
    if not isinstance(agent_state, dict):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} holds no TD3 agent; is it from a {config.agent} run?")
    try:
        env = make_env(config, num_envs, device)
    except Exception as error:  # importing MuJoCo sets up MUJOCO_GL's backend, which fails in many ways
        if "MUJOCO_GL" not in os.environ or config.env.kind != "gym":
            raise
        raise EvaluationError(_renderer_trouble(config.env.id, os.environ["MUJOCO_GL"], error)) from None
    try:
        small = config.model_copy(update={"td3": config.td3.model_copy(update={"buffer_size": num_envs})})
        agent = make_td3(small, env, device)
        try:
            agent.load_state_dict({key: value for key, value in agent_state.items() if key != "replay_buffer"})
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint {str(checkpoint)!r} does not match the run's config ({type(error).__name__})"
            ) from None
    except BaseException:
        env.close()
        raise
    return LoadedPolicy(run, config, checkpoint, int(state["step"]), agent, device), env


@torch.no_grad()
def run_episodes(
    policy: Callable[[torch.Tensor], torch.Tensor], env: BatchedEnv, episodes: int, seed: int
) -> dict[str, Any]:
    """Play ``episodes`` complete episodes of ``policy``; episode k starts from ``reset(seed=seed + k)``.

    The N copies of ``env`` play rounds of N episodes side by side (round r resets with
    ``seed + r·N``, so copy i plays episode r·N + i); a copy that finishes early waits for the
    round's last one. Returns per-episode ``seeds``, ``returns`` and ``lengths`` with their mean and
    (population) standard deviation.
    """
    if episodes < 1:
        raise EvaluationError(f"the number of episodes must be at least 1, got {episodes}")
    n = env.num_envs
    returns: list[float] = []
    lengths: list[int] = []
    for first in range(0, episodes, n):
        obs = env.reset(seed=seed + first)
        active = min(n, episodes - first)
        done = torch.zeros(n, dtype=torch.bool)
        done[active:] = True
        round_returns, round_lengths = [math.nan] * active, [0] * active
        while not bool(done.all()):
            obs, _, terminated, truncated, info = env.step(policy(obs))
            ended = (terminated | truncated).cpu() & ~done
            if ended.any():
                episode_return, episode_length = info["episode_return"].cpu(), info["episode_length"].cpu()
                for i in ended.nonzero().flatten().tolist():
                    round_returns[i], round_lengths[i] = float(episode_return[i]), int(episode_length[i])
                done |= ended
        returns += round_returns
        lengths += round_lengths
    return summarize(returns, lengths, [seed + k for k in range(episodes)])


def summarize(returns: list[float], lengths: list[int], seeds: list[int]) -> dict[str, Any]:
    """Means and population standard deviations of per-episode returns and lengths, with the lists."""
    r, length = np.asarray(returns, dtype=np.float64), np.asarray(lengths, dtype=np.float64)
    return {
        "episodes": len(returns),
        "mean_return": float(r.mean()),
        "std_return": float(r.std()),
        "mean_length": float(length.mean()),
        "std_length": float(length.std()),
        "seeds": list(seeds),
        "returns": [float(value) for value in returns],
        "lengths": [int(value) for value in lengths],
    }


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
    loaded: LoadedPolicy, folder: Path, seed: int, episodes: int = 1, name_prefix: str = "evaluate"
) -> list[dict[str, Any]]:
    """Film ``episodes`` deterministic episodes (episode k from ``reset(seed=seed + k)``) as mp4 files in ``folder``.

    Uses ``gymnasium.wrappers.RecordVideo`` on one ``render_mode="rgb_array"`` copy of the run's
    gymnasium task, whose actions are mapped from [-1, 1] exactly as in training. Returns, per
    episode, its seed, return and length, ``frames_captured`` (the reset frame and one per step), and
    the video's path, size in bytes, and frame count and duration as decoded by ffmpeg. Raises
    :class:`EvaluationError` with one sentence when the task cannot be rendered here.
    """
    import gymnasium as gym

    config = loaded.config
    if config.env.kind != "gym":
        raise EvaluationError(
            f"--video needs a gymnasium task; env.kind={config.env.kind!r} runs have nothing to render"
        )
    backend = default_gl_backend()
    extra = {"max_episode_steps": config.env.max_episode_steps} if config.env.max_episode_steps else {}
    try:
        env = gym.make(config.env.id, render_mode="rgb_array", **extra)
    except gym.error.DependencyNotInstalled as error:
        raise EvaluationError(f"cannot render {config.env.id}: {_first_line(error)}") from None
    try:
        env = gym.wrappers.RecordVideo(
            env, str(folder), episode_trigger=lambda episode: True, name_prefix=name_prefix, disable_logger=True
        )
    except gym.error.DependencyNotInstalled as error:
        env.close()
        raise EvaluationError(f"--video needs moviepy to write mp4 files ({_first_line(error)})") from None
    space = env.action_space
    low, high = space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)
    center, half_width = (high + low) / 2, (high - low) / 2
    results = []
    try:
        for k in range(episodes):
            obs, _ = _rendering(partial(env.reset, seed=seed + k), config.env.id, backend)
            total, length, ended = 0.0, 0, False
            while not ended:
                obs_t = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)
                action = loaded.act(obs_t).cpu().double().numpy().reshape(-1)
                # the same affine map from [-1, 1] as GymVectorEnv, so the filmed episode is the scored one
                env_action = (center + half_width * np.clip(action, -1.0, 1.0)).astype(space.dtype).reshape(space.shape)
                obs, reward, terminated, truncated, _ = env.step(env_action)
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
    for k, result in enumerate(results):
        path = Path(folder) / f"{name_prefix}-episode-{k}.mp4"
        if not path.is_file():
            raise EvaluationError(f"the video of episode {k} was not written to {str(path)!r}")
        frames, seconds = video_frames(path)
        result |= {"path": str(path), "bytes": path.stat().st_size, "frames": frames, "seconds": seconds}
    return results


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
        raise EvaluationError(_renderer_trouble(env_id, backend, error)) from None


def _renderer_trouble(env_id: str, backend: str, error: BaseException) -> str:
    return (
        f"cannot start MuJoCo's renderer for {env_id} with MUJOCO_GL={backend} "
        f"({type(error).__name__}: {_first_line(error)}); headless rendering needs Debian's libegl1, libopengl0 "
        "and libgl1-mesa-dri for MUJOCO_GL=egl, or libosmesa6 for MUJOCO_GL=osmesa"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def write_json(path: Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as indented JSON (creating the folder); values JSON cannot hold become strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path

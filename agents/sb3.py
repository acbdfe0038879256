"""``agent: sb3``: stable-baselines3's SAC, TD3, DDPG, PPO and A2C under amorctl's one run loop.

The SB3 model trains on the single-instance gymnasium form of the run's environment (``env.kind: gym``:
the task with its actions rescaled to [-1, 1] by :func:`~amorctl.envs.make_gym_env`; ``env.kind: iterate``:
:class:`~amorctl.envs.IterateGymEnv`; a kind of your own registers one with :func:`register_gym_form`),
``env.num_envs`` copies in a ``DummyVecEnv``, each behind SB3's ``Monitor``. Everything around it is the
run loop's: TensorBoard, the log/eval/checkpoint schedule, early stops, the NaN stop, ``eval/metrics.json``.
Periodic evaluations and ``scripts/evaluate.py`` play the deterministic policy through the shared rollout
loop (:func:`amorctl.eval.rollouts.run_episodes`) on the batched environment, as for every other agent.

Config section ``sb3``: ``algo`` (one of :data:`ALGORITHMS`), ``hidden_sizes`` (the policy's and critic's
``net_arch``; ``null`` is SB3's default for the algorithm), ``learning_rate`` (``null``: SB3's default,
written into ``config.yaml``), ``action_noise_std`` (Gaussian exploration noise of off-policy algorithms;
``null``: none, SB3's default) and ``kwargs``, further keyword arguments of the SB3 class's constructor,
checked against its ``__init__`` signature before anything is written.

TensorBoard tags (:data:`TAGS`): SB3's ``train/critic_loss`` and ``train/value_loss`` are ``loss/critic``,
``train/actor_loss``, ``train/policy_gradient_loss`` and ``train/policy_loss`` are ``loss/actor``,
``train/learning_rate`` is ``train/lr``; ``train/episodic_return`` and ``train/episodic_length`` are the
means over the episodes that ended since the last log (from ``Monitor``), as for the native agents; every
other ``train/<x>`` SB3 records is ``sb3/<x>`` (``sb3/ent_coef``, ``sb3/approx_kl``, ``sb3/n_updates``, ...).
``perf/steps_per_second`` and ``eval/*`` are the run loop's. SB3 records no Q values, so there is no
``train/q_mean``.

Checkpoints. The learner's state holds the zip that ``model.save`` writes (as a uint8 tensor inside the
run loop's atomically written checkpoint, so a kill mid-save leaves the last good checkpoint) and, with
``train.save_replay_buffer`` (on by default for sb3 runs), the filled rows of the replay buffer as tensors.
Loading never unpickles: ``model.load`` gets ``custom_objects`` for every entry of the zip's ``data``
except a few plain counters (:data:`RESTORED_COUNTERS`, checked to be numbers), their values taken from a
model freshly built from the validated config; SB3 reads the parameters and optimizer states with
``torch.load(weights_only=True)``; the replay buffer is tensors in the checkpoint itself. A resumed run
continues from the saved counters, parameters, optimizers and replay buffer, with fresh episodes (the
environments are reset); it is not bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from amorctl.agents.base import Learner, PeriodicEvaluation, optimizer_state_of, parameters_of, register_agent
from amorctl.agents.off_policy import OffPolicyTrainConfig
from amorctl.envs import BatchedEnv, IterateGymEnv, make_gym_env
from amorctl.envs.kinds import copy_memory, make_env, validate_env_section
from amorctl.registry import Registry, closest
from amorctl.run.errors import ConfigError
from amorctl.schema import PositiveFloat, PositiveInt, RunConfig, Schedule, Section, check_memory

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

ALGORITHMS = ("SAC", "TD3", "DDPG", "PPO", "A2C")
"""The stable-baselines3 classes ``sb3.algo`` may name (continuous actions; SB3 is imported on first use)."""

OFF_POLICY = ("SAC", "TD3", "DDPG")

TAGS = {
    "train/critic_loss": "loss/critic",  # SAC, TD3, DDPG: the critics' TD loss
    "train/value_loss": "loss/critic",  # PPO, A2C: the value function's regression loss
    "train/actor_loss": "loss/actor",  # SAC, TD3, DDPG
    "train/policy_gradient_loss": "loss/actor",  # PPO's clipped surrogate
    "train/policy_loss": "loss/actor",  # A2C
    "train/learning_rate": "train/lr",
}
"""SB3 logger keys → amorctl's TensorBoard tags where the meaning is the same; other ``train/<x>`` → ``sb3/<x>``."""

SET_BY_AMORCTL = {
    "policy": "the MLP policy is always used; set sb3.hidden_sizes",
    "env": "set env",
    "learning_rate": "set sb3.learning_rate",
    "policy_kwargs": "set sb3.hidden_sizes",
    "action_noise": "set sb3.action_noise_std",
    "seed": "set seed",
    "device": "set device",
    "verbose": "amorctl logs to TensorBoard itself",
    "tensorboard_log": "amorctl logs to TensorBoard itself",
    "_init_setup_model": "it is internal to stable-baselines3",
    "replay_buffer_class": "classes cannot come from a config",
    "replay_buffer_kwargs": "classes cannot come from a config",
    "rollout_buffer_class": "classes cannot come from a config",
    "rollout_buffer_kwargs": "classes cannot come from a config",
}
"""Constructor arguments that ``sb3.kwargs`` may not hold, and why."""

MINIMUM = {"batch_size": 1, "buffer_size": 1, "n_steps": 1, "n_epochs": 1, "learning_starts": 0}
"""Smallest values of ``sb3.kwargs`` entries that SB3 does not check itself."""

RESTORED_COUNTERS = ("num_timesteps", "_total_timesteps", "_num_timesteps_at_start", "_n_updates", "_episode_num",
                     "_current_progress_remaining")
"""The entries of a saved model's ``data`` that a checkpoint restores (plain numbers); every other entry is
replaced by the freshly built model's value, so that nothing stored in a run directory is unpickled."""


def _sb3_class(algo: str) -> type[BaseAlgorithm]:
    import stable_baselines3

    return getattr(stable_baselines3, algo)


# ------------------------------------------------------------------------- single-instance gymnasium forms
GymForm = Callable[[Any], "gym.Env"]
"""``make(env_section) -> gymnasium.Env``: one copy of a validated ``env`` section's environment, actions in [-1, 1]."""

GYM_FORMS: Registry[GymForm] = Registry("environment kind with a single-instance gymnasium form", "env.kind")


def register_gym_form(kind: str, make: GymForm) -> None:
    """Let ``agent: sb3`` train on ``env.kind: <kind>`` through ``make(section)``, one gymnasium ``Env``."""
    GYM_FORMS.register(kind, make)


def _gym_task(section: Any) -> gym.Env:
    extra = {"max_episode_steps": section.max_episode_steps} if section.max_episode_steps else {}
    return make_gym_env(section.id, **extra)


def _iterate_task(section: Any) -> gym.Env:
    problem = {key: value for key, value in section.problem.items() if key != "name"}
    return IterateGymEnv(section.problem["name"], problem, **section.iterate)


register_gym_form("gym", _gym_task)
register_gym_form("iterate", _iterate_task)


def make_vec_env(section: Any, num_envs: int) -> VecEnv:
    """``num_envs`` copies of the gymnasium form of ``section`` in a ``DummyVecEnv``, each behind ``Monitor``."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    make = GYM_FORMS[section.kind]
    return DummyVecEnv([lambda: Monitor(make(section)) for _ in range(num_envs)])


# ----------------------------------------------------------------------------------------------- config
class SB3Section(Section):
    """The ``sb3`` section: which stable-baselines3 algorithm and its settings (see the module docstring)."""

    algo: str = "SAC"
    hidden_sizes: list[PositiveInt] | None = None
    learning_rate: PositiveFloat | None = None
    action_noise_std: PositiveFloat | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)


class SB3TrainConfig(OffPolicyTrainConfig):
    """The ``train`` section of sb3 runs: the off-policy runs' keys, the replay buffer kept in checkpoints
    by default (SB3's off-policy algorithms resumed on an empty buffer train at once on a handful of samples)."""

    save_replay_buffer: bool = True


class SB3Config(RunConfig):
    """An sb3 run: ``env``, ``sb3`` and ``train`` (progress in environment transitions)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = (*RunConfig.RESUMABLE, *OffPolicyTrainConfig.RESUMABLE,
                                            "sb3.learning_rate")

    agent: Literal["sb3"] = "sb3"
    name: str = "sb3"
    env: Any = Field(default_factory=lambda: {"kind": "gym"})
    sb3: SB3Section = Field(default_factory=SB3Section)
    train: SB3TrainConfig = Field(default_factory=SB3TrainConfig)

    @model_validator(mode="after")
    def _check_sections(self) -> SB3Config:
        section = self.sb3
        if section.algo not in ALGORITHMS:
            raise ConfigError(
                f"config key 'sb3.algo' is {section.algo!r}, which is not a stable-baselines3 algorithm amorctl runs"
                f"{closest(section.algo.upper(), ALGORITHMS)} (one of {', '.join(ALGORITHMS)})"
            )
        if section.action_noise_std is not None and section.algo not in OFF_POLICY:
            raise ConfigError(
                f"config key 'sb3.action_noise_std' applies to {', '.join(OFF_POLICY)}, not {section.algo}"
            )
        self.env = validate_env_section(self.env)
        if self.env.kind not in GYM_FORMS:
            raise ConfigError(
                f"config key 'env.kind' is {self.env.kind!r}, which has no single-instance gymnasium form for "
                f"stable-baselines3 (agent: sb3 trains on env.kind {' or '.join(sorted(GYM_FORMS))})"
            )
        cls = _sb3_class(section.algo)
        parameters = inspect.signature(cls.__init__).parameters
        for key, value in section.kwargs.items():
            _check_kwarg(section.algo, parameters, key, value)
        if section.learning_rate is None:
            section.learning_rate = float(parameters["learning_rate"].default)
        kwargs = {**{key: p.default for key, p in parameters.items()}, **section.kwargs}
        copy = sum(copy_memory(self.env).values())
        parts = {"the training copies (env.num_envs)": copy * self.env.num_envs,
                 "the evaluation copies (train.eval_envs)": copy * self.train.eval_envs}
        env = GYM_FORMS[self.env.kind](self.env)
        try:
            observations = int(np.prod(env.observation_space.shape))
            actions = int(np.prod(env.action_space.shape))
            if section.algo in OFF_POLICY:
                parts["the replay buffer (sb3.kwargs.buffer_size)"] = \
                    4 * int(kwargs["buffer_size"]) * (2 * observations + actions + 3)
            else:
                parts["the rollout buffer (sb3.kwargs.n_steps)"] = \
                    4 * int(kwargs["n_steps"]) * self.env.num_envs * (observations + actions + 6)
            check_memory(parts, self.device)
            _try_model(self, env)  # SB3's own checks of its arguments, on one CPU copy
        finally:
            env.close()
        return self

    def schedule(self) -> Schedule:
        return self.train.schedule()


def _check_kwarg(algo: str, parameters: Any, key: str, value: Any) -> None:
    """One sentence unless ``key`` is a constructor argument of the SB3 class that a config may set, with a
    value of the default's type (a bool for a bool, an int for an int, a finite number for a float)."""
    where = f"config key 'sb3.kwargs.{key}'"
    if key in SET_BY_AMORCTL:
        raise ConfigError(f"{where} cannot be set through sb3.kwargs ({SET_BY_AMORCTL[key]})")
    allowed = [name for name, p in parameters.items()
               if name != "self" and name not in SET_BY_AMORCTL and p.kind is p.POSITIONAL_OR_KEYWORD]
    if key not in allowed:
        raise ConfigError(f"{where} is not a keyword argument of stable_baselines3.{algo}{closest(key, allowed)}")
    default = parameters[key].default
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool) and not (
            (number and float(value).is_integer()) or isinstance(value, list)):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if isinstance(default, float) and not (number and math.isfinite(value)):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if key in MINIMUM and number and value < MINIMUM[key]:
        raise ConfigError(f"{where} must be at least {MINIMUM[key]}, got {value!r}")


def _constructor_kwargs(config: SB3Config, action_dim: int) -> dict[str, Any]:
    """The SB3 constructor's keyword arguments from a validated config (lists become tuples: ``train_freq``)."""
    section = config.sb3
    kwargs = {key: tuple(value) if isinstance(value, list) else value for key, value in section.kwargs.items()}
    kwargs["learning_rate"] = section.learning_rate
    if section.hidden_sizes is not None:
        kwargs["policy_kwargs"] = {"net_arch": list(section.hidden_sizes)}
    if section.action_noise_std is not None:
        from stable_baselines3.common.noise import NormalActionNoise

        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dim), np.full(action_dim, section.action_noise_std))
    return kwargs


def _try_model(config: SB3Config, env: gym.Env) -> None:
    """Build the model once on the CPU, so that SB3's own argument checks are one sentence before anything
    is written."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    kwargs = _constructor_kwargs(config, int(np.prod(env.action_space.shape)))
    if config.sb3.algo in OFF_POLICY:
        kwargs["buffer_size"] = 1  # the buffer's size is checked against memory above; a small one is built here
    try:
        _sb3_class(config.sb3.algo)("MlpPolicy", DummyVecEnv([lambda: env]), seed=config.seed, device="cpu",
                                    **kwargs)
    except (AssertionError, ValueError, TypeError, KeyError) as error:
        text = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        raise ConfigError(f"config key 'sb3.kwargs' is refused by stable_baselines3.{config.sb3.algo}: {text}") \
            from None


# ---------------------------------------------------------------------------------------------- learner
def _capture_writer() -> Any:
    """An SB3 ``KVWriter`` whose ``values`` keep the latest value of every numeric key it is asked to write."""
    from stable_baselines3.common.logger import KVWriter

    class Capture(KVWriter):
        def __init__(self) -> None:
            self.values: dict[str, float] = {}

        def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
            for key, value in key_values.items():
                if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                    self.values[key] = float(value)

        def close(self) -> None:
            pass

    return Capture()


def _episodes_callback(episodes: list[tuple[float, int]]) -> Any:
    """An SB3 callback appending (return, length) of every episode that ends (``Monitor``'s ``info["episode"]``)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Episodes(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if "episode" in info:
                    episodes.append((float(info["episode"]["r"]), int(info["episode"]["l"])))
            return True

    return Episodes()


class SB3Learner(PeriodicEvaluation, Learner):
    """A stable-baselines3 model with its evaluation environment, driven by the run loop.

    Args:
        config: the validated run config (rebuilds the model on load, from its settings, never from a file).
        device: where the model lives.
        vec_env: the training copies (the gymnasium form of ``config.env``), owned by the learner.
        eval_env: batched copies for deterministic evaluations (``None`` for inference only, which also skips a
            checkpoint's replay buffer).
    """

    def __init__(self, config: SB3Config, device: torch.device, vec_env: VecEnv, eval_env: BatchedEnv | None,
                 inference: bool = False):
        self.config, self.device, self.vec_env = config, device, vec_env
        self.algo, self.inference = config.sb3.algo, inference
        self._init_evaluation(eval_env, config.train.eval_episodes, config.seed)
        self.save_replay_buffer = config.train.save_replay_buffer
        self._capture = _capture_writer()
        self._episodes: list[tuple[float, int]] = []
        self._callback = _episodes_callback(self._episodes)
        self.model = self._fresh_model()
        self.overshoot = self._overshoot()

    def _fresh_model(self) -> BaseAlgorithm:
        kwargs = _constructor_kwargs(self.config, int(np.prod(self.vec_env.action_space.shape)))
        if self.inference and self.algo in OFF_POLICY:
            kwargs["buffer_size"] = 1
        model = _sb3_class(self.algo)("MlpPolicy", self.vec_env, seed=self.seed, device=self.device, **kwargs)
        self._attach_logger(model)
        return model

    def _attach_logger(self, model: BaseAlgorithm) -> None:
        from stable_baselines3.common.logger import Logger

        model.set_logger(Logger(folder=None, output_formats=[self._capture]))

    def _overshoot(self) -> int:
        """How far past its target one ``learn`` call may go: a rollout (PPO, A2C) or a training period."""
        n = self.vec_env.num_envs
        if self.algo not in OFF_POLICY:
            return self.model.n_steps * n - 1
        frequency = self.model.train_freq
        return frequency.frequency * n - 1 if frequency.unit.value == "step" else 2**62

    @property
    def progress(self) -> int:
        """Environment transitions collected (SB3's ``num_timesteps``)."""
        return int(self.model.num_timesteps)

    def advance(self, units: int) -> dict[str, torch.Tensor]:
        """``model.learn(units, reset_num_timesteps=False)``; the SB3 logger's values under amorctl's tags."""
        self._capture.values.clear()
        self._episodes.clear()
        self.model.learn(units, callback=self._callback, reset_num_timesteps=False, progress_bar=False)
        self.model.logger.dump(self.model.num_timesteps)  # the values recorded since SB3's last dump
        metrics: dict[str, float] = {}
        for key, value in self._capture.values.items():
            if key in TAGS:
                metrics[TAGS[key]] = value
            elif key.startswith("train/"):
                metrics[f"sb3/{key.removeprefix('train/')}"] = value
        if self._episodes:
            returns, lengths = zip(*self._episodes)
            metrics["train/episodic_return"] = float(np.mean(returns))
            metrics["train/episodic_length"] = float(np.mean(lengths))
        return {tag: torch.tensor(value) for tag, value in metrics.items()}

    def finite_quantities(self) -> dict[str, torch.Tensor]:
        """The policy's parameters, the optimizers' moments and SAC's entropy coefficient."""
        from stable_baselines3.common.save_util import recursive_getattr

        found: dict[str, torch.Tensor] = {}
        modules, variables = self.model._get_torch_save_params()
        for name in [*modules, *variables]:
            item = recursive_getattr(self.model, name)
            if isinstance(item, torch.nn.Module):
                found |= parameters_of(item, f"{name}.")
            elif isinstance(item, torch.optim.Optimizer):
                found |= optimizer_state_of(item, f"{name}.")
            elif isinstance(item, torch.Tensor):
                found[f"parameter '{name}'"] = item.detach()
        return found

    def policy(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Deterministic actions in [-1, 1] (``model.predict(deterministic=True)``) for observations (N, dim)."""
        model, shape = self.model, self.vec_env.observation_space.shape

        def act(obs: torch.Tensor) -> torch.Tensor:
            array = obs.detach().cpu().numpy().reshape(len(obs), *shape)
            action, _ = model.predict(array, deterministic=True)
            return torch.as_tensor(np.asarray(action), dtype=torch.float32, device=obs.device).reshape(len(obs), -1)

        return act

    # ----------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The zip of ``model.save`` as a uint8 tensor, the replay buffer's filled rows, the evaluation counters."""
        buffer = io.BytesIO()
        self.model.save(buffer)
        state: dict[str, Any] = {
            "algo": self.algo,
            "model_zip": torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8),
            **self.evaluation_state(),
        }
        replay = getattr(self.model, "replay_buffer", None)
        if self.save_replay_buffer and replay is not None:
            rows = replay.buffer_size if replay.full else replay.pos
            arrays = {name: getattr(replay, name) for name in ("observations", "next_observations", "actions",
                                                                "rewards", "dones", "timeouts")
                      if isinstance(getattr(replay, name, None), np.ndarray)}
            state["replay_buffer"] = {"pos": int(replay.pos), "full": bool(replay.full),
                                      **{name: torch.from_numpy(array[:rows].copy()) for name, array in arrays.items()}}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` without unpickling anything (see the module docstring)."""
        if state.get("algo") != self.algo:
            raise ValueError(f"the checkpoint holds a {state.get('algo')!r} model, the config a {self.algo!r} one")
        data = state["model_zip"]
        if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
            raise TypeError("the checkpoint's model is not a byte tensor")
        archive = data.numpy().tobytes()
        try:
            model = self._load_model(archive)
        except (KeyError, TypeError, ValueError):
            raise
        except Exception as error:  # a corrupt or hostile zip: zipfile, torch's weights-only unpickler, SB3 asserts
            raise ValueError(f"the checkpoint's stable-baselines3 model cannot be loaded ({type(error).__name__})") \
                from None
        if "replay_buffer" in state and self.eval_env is not None and getattr(model, "replay_buffer", None) is not None:
            _restore_replay_buffer(model.replay_buffer, state["replay_buffer"])
        self.model = model
        self.load_evaluation_state(state)

    def _load_model(self, archive: bytes) -> BaseAlgorithm:
        with zipfile.ZipFile(io.BytesIO(archive)) as files:
            entries = json.loads(files.read("data"))
        if not isinstance(entries, dict):
            raise ValueError("the checkpoint's model data is not a mapping")
        for key in RESTORED_COUNTERS:
            value = entries.get(key)
            if key in entries and not (isinstance(value, int | float) and not isinstance(value, bool)
                                       and math.isfinite(value) and value >= 0):
                raise ValueError(f"the checkpoint's model has {key} = {value!r}, not a non-negative number")
        fresh = self.model
        custom = {key: getattr(fresh, key, None) for key in entries if key not in RESTORED_COUNTERS}
        model = _sb3_class(self.algo).load(io.BytesIO(archive), env=self.vec_env, device=self.device,
                                            custom_objects=custom, force_reset=True)
        model.num_timesteps = int(model.num_timesteps)
        self._attach_logger(model)
        return model

    def close(self) -> None:
        for env in (self.eval_env, self.vec_env):
            if env is not None:
                env.close()


def _restore_replay_buffer(replay: Any, saved: dict[str, Any]) -> None:
    """Copy a checkpoint's replay-buffer rows (tensors) into SB3's buffer arrays; shapes must match."""
    pos, full = saved["pos"], saved["full"]
    if type(pos) is not int or type(full) is not bool or not 0 <= pos < replay.buffer_size + 1:
        raise ValueError("the checkpoint's replay buffer has an invalid position")
    for name, tensor in saved.items():
        if name in ("pos", "full"):
            continue
        target = getattr(replay, name, None)
        if not isinstance(target, np.ndarray) or not isinstance(tensor, torch.Tensor):
            raise ValueError(f"the checkpoint's replay buffer has an unexpected entry {name!r}")
        rows = tensor.shape[0]
        if rows > target.shape[0] or tuple(tensor.shape[1:]) != target.shape[1:]:
            raise ValueError(f"the checkpoint's replay buffer {name!r} does not fit this run's buffer")
        target[:rows] = tensor.numpy()
    replay.pos, replay.full = pos % replay.buffer_size, full


def build_sb3(config: SB3Config, device: torch.device, inference: bool = False) -> SB3Learner:
    """The configured SB3 model on ``env.num_envs`` gymnasium copies with its batched evaluation copies; for
    inference, one copy and a one-row replay buffer."""
    vec_env = make_vec_env(config.env, 1 if inference else config.env.num_envs)
    eval_env = None
    try:
        eval_env = None if inference else make_env(config.env, config.train.eval_envs, device)
        return SB3Learner(config, device, vec_env, eval_env, inference)
    except BaseException:
        for env in (vec_env, eval_env):
            if env is not None:
                env.close()
        raise


register_agent("sb3", SB3Config, build_sb3)

"""Errors that reach the user as one sentence and an exit status, never as a traceback."""

from __future__ import annotations


class AmorctlError(Exception):
    """A user-facing failure; ``exit_code`` is what the command line exits with."""

    exit_code = 2


class ConfigError(AmorctlError):
    """A config file or override is unknown, of the wrong type or out of range."""


class CheckpointError(AmorctlError):
    """A checkpoint or run directory is missing, unreadable or does not match the config."""


class EvaluationError(AmorctlError):
    """A policy cannot be evaluated as asked (wrong kind of run, no checkpoint, no renderer, ...)."""


class NonFiniteError(AmorctlError):
    """NaN or Inf in a loss or parameter (training keeps the last good checkpoint) or in an evaluated action."""

    exit_code = 3

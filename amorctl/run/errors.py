"""Errors that reach the user as one sentence and an exit status, never as a traceback."""

from __future__ import annotations


class AmorctlError(Exception):
    """A user-facing failure; ``exit_code`` is what the command line exits with."""

    exit_code = 2


class ConfigError(AmorctlError):
    """A config file or override is unknown, of the wrong type or out of range."""


class CheckpointError(AmorctlError):
    """A checkpoint or run directory is missing, unreadable or does not match the config."""


class NonFiniteError(AmorctlError):
    """A loss or parameter became NaN or infinite during training; the last good checkpoint is kept."""

    exit_code = 3

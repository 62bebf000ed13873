"""Typed errors for user mistakes; the CLIs print their message and exit with code 2."""

from __future__ import annotations


class RlkitError(Exception):
    """Base class of errors caused by the user's input, not by a bug in rlkit."""


class ConfigError(RlkitError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class UnknownNameError(RlkitError, KeyError):
    """An agent, env or preset name that rlkit does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IncompatibleEnvError(RlkitError, TypeError):
    """The agent cannot handle the env's observation or action space."""


class EnvWorkerError(RlkitError, RuntimeError):
    """Env workers (subprocesses or Ray actors) crashed more often than the run allows."""

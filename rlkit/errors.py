"""Typed errors.

``RlkitError``: the user's input is wrong (a name, a setting, an env that breaks its own
spaces); the CLIs print the message and exit with code 2, before any work starts.
``TrainingFault``: a run met a fault it could not recover from (numerical blow-up, env
workers that keep failing, a disk that refuses the final checkpoint); the CLIs print the
message, which names what is still safe on disk, and exit with code 1.
"""

from __future__ import annotations


class RlkitError(Exception):
    """Base class of errors caused by the user's input, not by a bug in rlkit."""


class ConfigError(RlkitError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class UnknownNameError(RlkitError, KeyError):
    """An agent, env or preset name that rlkit does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingExtraError(RlkitError, ImportError):
    """An optional package is not installed; the message names the extra to install."""


class IncompatibleEnvError(RlkitError, TypeError):
    """The agent cannot handle the env's observation or action space."""


class EnvSpaceError(RlkitError, ValueError):
    """The env returned an observation outside its declared observation space."""


class EnvCheckError(RlkitError, ValueError):
    """gymnasium's env checker found a problem with an env rlkit has never seen."""


class TrainingFault(RuntimeError):
    """A run stopped on a fault it could not recover from; the message says what is safe."""


class NumericalError(TrainingFault):
    """Too many consecutive updates had a non-finite loss or gradient."""


class EnvWorkerError(TrainingFault):
    """Env workers (subprocesses or Ray actors) failed more often than the run allows."""


class CheckpointWriteError(TrainingFault):
    """A checkpoint could not be written; the previous one is intact."""

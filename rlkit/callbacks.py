"""Callbacks: code of yours that the training loop calls, and that may stop training.

A callback subclasses ``Callback`` and overrides the hooks it needs. Every hook that runs
during training may return ``False`` to stop the run there (``None`` or ``True`` go on),
as in Stable-Baselines3. The loop finishes the step it is in, writes its final checkpoint
and returns; ``TrainResult.stopped_by`` names the callback and hook that stopped it.

Hooks, in the order a run meets them:

- ``on_training_start(agent, env_steps)``: once, before the first step (``env_steps`` is
  non-zero when a run is resumed).
- ``on_step(env_steps)``: after every vector step (``num_envs`` env steps).
- ``on_update(env_steps, metrics)``: after every update, with its metrics (loss, ...). For
  the policy-gradient agents this is the end of each rollout (SB3's ``on_rollout_end``).
- ``on_evaluation(env_steps, row)``: after each periodic evaluation, with its row
  (``mean_reward``, ``std_reward``, ``episodes``, ``train_seconds`` and, when the mean
  reached ``stop_reward``, ``confirm_mean_reward``).
- ``on_checkpoint(env_steps, path)``: after each checkpoint written during training.
- ``on_training_end(result)``: once, with the ``TrainResult``.

Example:
    >>> class StopAfterUpdates(Callback):
    ...     def __init__(self, updates: int) -> None:
    ...         self.left = updates
    ...
    ...     def on_update(self, env_steps, metrics):
    ...         self.left -= 1
    ...         return self.left > 0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HOOKS = ("on_step", "on_update", "on_evaluation", "on_checkpoint")


class Callback:
    """Base class: every hook does nothing and lets training go on."""

    def on_training_start(self, agent: Any, env_steps: int) -> None:
        """Called once before the first step (``env_steps`` > 0 when resuming)."""

    def on_step(self, env_steps: int) -> bool | None:
        """Called after every vector step; return False to stop."""
        return None

    def on_update(self, env_steps: int, metrics: Mapping[str, float]) -> bool | None:
        """Called after every update with its metrics; return False to stop."""
        return None

    def on_evaluation(self, env_steps: int, row: Mapping[str, Any]) -> bool | None:
        """Called after every periodic evaluation with its row; return False to stop."""
        return None

    def on_checkpoint(self, env_steps: int, path: Path) -> bool | None:
        """Called after every checkpoint written during training; return False to stop."""
        return None

    def on_training_end(self, result: Any) -> None:
        """Called once at the end with the ``TrainResult`` (not after an exception)."""


class CallbackList(Callback):
    """Several callbacks as one: each hook calls them all, in order.

    A hook returns False when any callback's did; every callback is still called, so
    that none misses an event. ``stopped_by`` names the first callback and hook that asked
    to stop.
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"callbacks must subclass rlkit.callbacks.Callback, got {callback!r}"
                )
        self.stopped_by: str | None = None

    def _dispatch(self, hook: str, *args: Any) -> bool:
        go_on = True
        for callback in self.callbacks:
            if getattr(callback, hook)(*args) is False:
                if self.stopped_by is None:
                    inner = getattr(callback, "stopped_by", None)
                    self.stopped_by = inner or f"{type(callback).__name__}.{hook}"
                go_on = False
        return go_on

    def on_training_start(self, agent: Any, env_steps: int) -> None:
        """Call every callback's ``on_training_start``."""
        for callback in self.callbacks:
            callback.on_training_start(agent, env_steps)

    def on_step(self, env_steps: int) -> bool:
        """Call every callback's ``on_step``; False if any asked to stop."""
        return self._dispatch("on_step", env_steps)

    def on_update(self, env_steps: int, metrics: Mapping[str, float]) -> bool:
        """Call every callback's ``on_update``; False if any asked to stop."""
        return self._dispatch("on_update", env_steps, metrics)

    def on_evaluation(self, env_steps: int, row: Mapping[str, Any]) -> bool:
        """Call every callback's ``on_evaluation``; False if any asked to stop."""
        return self._dispatch("on_evaluation", env_steps, row)

    def on_checkpoint(self, env_steps: int, path: Path) -> bool:
        """Call every callback's ``on_checkpoint``; False if any asked to stop."""
        return self._dispatch("on_checkpoint", env_steps, path)

    def on_training_end(self, result: Any) -> None:
        """Call every callback's ``on_training_end``."""
        for callback in self.callbacks:
            callback.on_training_end(result)


def stop_score(row: Mapping[str, Any]) -> float:
    """The number a stop is judged by.

    The confirmation's ``confirm_score`` (its mean less the run's margin), else its mean,
    else (no confirmation) the evaluation's mean.
    """
    return float(row.get("confirm_score", row.get("confirm_mean_reward", row["mean_reward"])))


class StopOnReward(Callback):
    """Stop when an evaluation reaches ``threshold``: the run's ``stop_reward`` rule.

    With ``stop_reward`` set in the run's settings, every evaluation whose mean reaches it
    plays ``confirm_episodes`` more episodes from fresh seeds, and this callback (which
    ``learn`` adds for that setting) stops only when their mean reaches it too. Added by
    hand with another threshold, it reads the confirmation when there is one and the
    periodic mean otherwise.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def on_evaluation(self, env_steps: int, row: Mapping[str, Any]) -> bool:
        """False (stop) when the confirmation (or else the mean) reaches the threshold.

        The confirmation's ``confirm_score`` (its mean less the run's margin) when the row
        has one, else its mean.
        """
        return not (row["mean_reward"] >= self.threshold and stop_score(row) >= self.threshold)

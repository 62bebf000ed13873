"""Run gymnasium's env checker on an env rlkit has never seen; its real findings are errors."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

import gymnasium as gym

from rlkit.envs.checks import observation_problem
from rlkit.envs.source import EnvLike, EnvSource, is_new_to_rlkit
from rlkit.errors import EnvCheckError, RlkitError

log = logging.getLogger(__name__)

# Warnings of gymnasium's checker (and of its passive checker, which it calls) that mean
# training would go wrong: observations that are not what the space declares, rewards or
# flags of the wrong type or not finite, the old step API, broken bounds, a reset that
# cannot be seeded (a default seed other than None makes every autoreset the same episode).
# Other warnings (infinite Box bounds, an action space that is not [-1, 1], observations
# "not equal although similar") are advice: printed once, not errors.
ERROR_WARNINGS = (
    "not within the observation space",
    "was expecting numpy array dtype",
    "was expecting a numpy array",
    "was expecting a tuple",
    "should be an int or np.int64",
    "signal to be a boolean",
    "the reward returned by `step()` must be",
    "the reward is a nan value",
    "the reward is an inf value",
    "old step api",
    "low value is greater than a high value",
    "default seed argument",
    "can be passed a `seed`",
    "can be passed `options`",
)
SKIP_HINT = (
    "fix the env, or skip the check with --skip-env-check (Python: "
    "RunConfig(skip_env_check=True) or rlkit.train.run(..., skip_env_check=True))"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_printed: set[str] = set()  # advice already shown in this process


def warning_text(message: Warning | str) -> str:
    """A gymnasium warning without its colour codes and ``WARN:`` prefix."""
    text = _ANSI.sub("", str(message)).strip()
    return text.removeprefix("WARN:").strip()


def is_error_warning(text: str) -> bool:
    """Whether a checker warning means training would go wrong (``ERROR_WARNINGS``)."""
    lowered = text.lower()
    return any(pattern.lower() in lowered for pattern in ERROR_WARNINGS)


def check_user_env(env: EnvLike, *, skip: bool = False) -> None:
    """Run ``gymnasium.utils.env_checker.check_env`` on an env rlkit has never seen.

    Only for envs that ``is_new_to_rlkit`` (a ``module:Id`` id, a callable, an instance,
    an id whose entry point is not gymnasium's, ale-py's, MinAtar's or rlkit's); on a
    separate env made for the check (an instance that cannot be copied is checked itself:
    training resets it with a seed before its first step). The render and close checks are
    left out (a "human" render mode would open a window). What the checker raises, and the
    warnings in ``ERROR_WARNINGS``, are errors; other warnings are logged once.

    Args:
        env: what ``rlkit.envs.make_env`` takes (an ``EnvSource`` brings its kwargs).
        skip: check nothing (``--skip-env-check``).

    Raises:
        EnvCheckError: naming the checker's finding (with the offending value where rlkit
            can tell) and how to skip the check.
        ConfigError: if the env rejects its kwargs.
    """
    source = EnvSource.of(env)
    if skip or not is_new_to_rlkit(source):
        return
    from gymnasium.utils.env_checker import check_env

    copies = source.copies()
    made = copies.create() if copies is not None else source.instance
    if made is None:  # copies() covers everything but an instance
        raise RlkitError(f"cannot make the env {source.name} to check it")
    finding = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check_env(made.unwrapped, skip_render_check=True, skip_close_check=True)
            except RlkitError:
                raise
            except Exception as e:  # an assertion of the checker, or the env's own error
                plain = type(e) in (AssertionError, gym.error.Error)  # the checker's own
                finding = str(e) if plain else f"{type(e).__name__}: {e}"
        texts = [warning_text(w.message) for w in caught]
        errors = [t for t in texts if is_error_warning(t)]
        if finding is None and errors:
            finding = errors[0]
        if finding is not None:
            finding = finding.strip().rstrip(".")
            detail = describe_observations(made.unwrapped)
            if detail and "observation" in finding.lower():
                finding += f" ({detail})"
        for text in texts:
            if text not in errors and text not in _printed:
                _printed.add(text)
                log.warning("gymnasium's env checker on %s: %s", source.name, text)
    finally:
        if copies is not None:
            made.close()
    if finding is not None:
        raise EnvCheckError(
            f"env {source.name} fails gymnasium's env checker "
            f"(gymnasium.utils.env_checker.check_env): {finding}; {SKIP_HINT}"
        )


def describe_observations(env: gym.Env) -> str | None:
    """What is wrong with the first observations of ``env`` (reset, one step), if rlkit can tell."""
    space = env.observation_space
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _first_problem(env, space)
    except Exception:  # the checker's finding stands on its own
        return None


def _first_problem(env: gym.Env, space: gym.spaces.Space) -> str | None:
    obs, _ = env.reset(seed=123)
    problem = observation_problem(space, obs)
    if problem is not None:
        return f"reset(seed=123): {problem}"
    out: Any = env.step(env.action_space.sample())
    problem = observation_problem(space, out[0])
    return None if problem is None else f"step(): {problem}"

"""Where envs come from: a gymnasium id (``module:Id`` too), a callable or one env instance."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Union

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from rlkit.errors import ConfigError, RlkitError, UnknownNameError

log = logging.getLogger(__name__)

# Packages whose envs rlkit knows (gymnasium's own, ale-py's, MinAtar's, rlkit's test envs):
# an env whose entry point lives elsewhere is new to rlkit and goes through gymnasium's env
# checker before training (``rlkit.envs.api_check``).
KNOWN_ENTRY_POINTS = ("gymnasium", "ale_py", "minatar", "rlkit")

# What ``learn()``, ``make_env`` and ``play_episodes`` accept as an env.
EnvLike = Union[str, Callable[..., gym.Env], gym.Env, EnvSpec, "EnvSource"]


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``("my_pkg.envs", "MyEnv-v0")`` for ``"my_pkg.envs:MyEnv-v0"``; ``(None, env_id)`` else.

    gymnasium's ``module:id`` convention: importing the module registers the id.

    Raises:
        UnknownNameError: for more than one ``:``.
    """
    module, sep, name = env_id.partition(":")
    if not sep:
        return None, env_id
    if ":" in name or not module or not name:
        raise UnknownNameError(
            f"env {env_id!r}: expected an id or module:id (one ':'), e.g. my_package.envs:MyEnv-v0"
        )
    return module, name


def import_env_module(module: str, env: str) -> ModuleType:
    """Import ``module`` (which registers ``env``'s id), or explain how to make it importable.

    Raises:
        UnknownNameError: if the module is not found, naming it and the fix (PYTHONPATH or
            ``pip install``).
        RlkitError: if importing it fails otherwise (an error inside the module).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or module
        top = module.partition(".")[0]
        inside = module == missing or module.startswith(missing + ".")
        if inside and missing != top:  # the package is there, the module is not
            parent, _, leaf = missing.rpartition(".")
            raise UnknownNameError(
                f"env {env!r}: cannot import module {module!r}: package {parent!r} has no "
                f"module {leaf!r}; check the module path"
            ) from e
        if missing == top:
            raise UnknownNameError(
                f"env {env!r}: cannot import module {module!r} ({e}); put the folder that "
                f"holds {top!r} on PYTHONPATH (e.g. PYTHONPATH=/path/to/project python -m "
                f"rlkit.train ...) or pip install the package that provides {top!r}"
            ) from e
        raise RlkitError(
            f"env {env!r}: importing module {module!r} failed: {e} (a package it imports is "
            f"missing: pip install {missing.partition('.')[0]})"
        ) from e
    except Exception as e:
        message = f"env {env!r}: importing module {module!r} failed: {type(e).__name__}: {e}"
        raise RlkitError(message) from e


def ids_registered_by(module: str) -> list[str]:
    """Registered ids whose entry point lives in ``module`` (for error messages)."""
    return sorted(env_id for env_id, spec in gym.registry.items() if _spec_module(spec) == module)


def _spec_module(spec: EnvSpec) -> str | None:
    """The module of a spec's entry point (a ``module:attr`` string or a callable)."""
    entry = spec.entry_point
    if isinstance(entry, str):
        return entry.partition(":")[0]
    return getattr(entry, "__module__", None)


def safe_name(text: str) -> str:
    """``text`` usable as a file name: anything but letters, digits, ``_ . -`` becomes ``-``.

    ``ALE/Pong-v5`` -> ``ALE-Pong-v5``.
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def file_name(env_name: str) -> str:
    """``env_name`` as a file or folder name: ``UserCorridor-v0`` for ``pkg.mod:UserCorridor-v0``.

    The module prefix is left out, the rest goes through ``safe_name``.
    """
    name = env_name.partition(":")[2] or env_name
    return safe_name(name).strip("-.") or "env"


def callable_name(fn: Any) -> str:
    """How configs and policies name a callable env factory.

    ``module:name`` for a module-level class or function (which ``--env`` and
    ``python -m rlkit.evaluate`` accept back), else ``<name>`` (a lambda, a local function,
    one defined in ``__main__``: these are made from Python only).
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    if module and module != "__main__" and qualname.isidentifier():
        return f"{module}:{qualname}"
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return f"<{name.strip('<>')}>"


def _call(fn: Callable[..., gym.Env], kwargs: Mapping[str, Any], render_mode: str | None) -> Any:
    """``fn(**kwargs)``, with ``render_mode`` only when one is asked for.

    Envs that take no ``render_mode`` (many hand-written ones) are made without it.
    """
    extra = {} if render_mode is None else {"render_mode": render_mode}
    return fn(**kwargs, **extra)


@dataclasses.dataclass(frozen=True, eq=False)
class EnvSource:
    """What rlkit makes envs from, with the keyword arguments they are made with.

    Picklable (with cloudpickle, which gymnasium's async workers and Ray use, for lambdas):
    ``spawn``ed workers make their envs from it. A ``module:Id`` id is imported in every
    process that makes the env.

    Attributes:
        target: a gymnasium id (``"CartPole-v1"``, ``"my_pkg.envs:MyEnv-v0"``, or
            ``"my_pkg.envs:MyEnv"`` naming a module-level class or function), a callable
            that returns an env (called with ``kwargs``), a gymnasium ``EnvSpec``, or one
            ``gym.Env`` instance. An instance cannot be copied: it is the one env of a
            ``num_envs=1`` ``sync`` run; its ``spec`` (if ``gym.make`` made it) makes any
            further copy (evaluation, more envs, workers).
        kwargs: keyword arguments for the env's constructor (``gym.make(id, **kwargs)``).
        flatten_dict_obs: wrap envs whose observations are a ``Dict`` in gymnasium's
            ``FlattenObservation`` (without it such an env is an error naming this setting).

    Example:
        >>> source = EnvSource("my_pkg.envs:Corridor-v0", {"length": 8})
        >>> env = rlkit.envs.make_env(source)
    """

    target: Any
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    flatten_dict_obs: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.target, (str, EnvSpec, gym.Env)) and not callable(self.target):
            kind = type(self.target).__name__
            hint = (
                "; a vector env goes to learn(..., envs=...)"
                if isinstance(self.target, gym.vector.VectorEnv)
                else ""
            )
            raise ConfigError(
                f"expected an env id, a callable that returns an env or a gymnasium.Env, "
                f"got a {kind}{hint}"
            )
        if isinstance(self.target, gym.Env) and self.kwargs:
            raise ConfigError(
                f"env_kwargs {dict(self.kwargs)} cannot apply to an env instance "
                f"({self.name}), which is made already; pass a callable or an id instead"
            )

    @classmethod
    def of(
        cls,
        env: EnvLike,
        kwargs: Mapping[str, Any] | None = None,
        flatten_dict_obs: bool = False,
    ) -> EnvSource:
        """``env`` as a source, with ``kwargs`` added to (and beating) its own.

        A source given with nothing new comes back as it is, so this can be applied twice.
        """
        if isinstance(env, EnvSource):
            if not kwargs and (env.flatten_dict_obs or not flatten_dict_obs):
                return env
            merged = {**env.kwargs, **(kwargs or {})}
            return cls(env.target, merged, env.flatten_dict_obs or flatten_dict_obs)
        return cls(env, dict(kwargs or {}), flatten_dict_obs)

    # -- what it is ------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The id as given (maybe ``module:Id``), or None for a callable, spec or instance."""
        return self.target if isinstance(self.target, str) else None

    @property
    def instance(self) -> gym.Env | None:
        """The env instance given, or None."""
        return self.target if isinstance(self.target, gym.Env) else None

    @property
    def name(self) -> str:
        """How runs, configs, policies and messages name the env.

        The id as given; ``module:name`` or ``<name>`` for a callable (``callable_name``);
        an instance's or spec's gymnasium id, else its class as a callable.
        """
        if isinstance(self.target, str):
            return self.target
        if isinstance(self.target, EnvSpec):
            return self.target.id
        if isinstance(self.target, gym.Env):
            spec = self.target.spec
            return spec.id if spec is not None else callable_name(type(self.target.unwrapped))
        return callable_name(self.target)

    def copies(self) -> EnvSource | None:
        """A source of fresh envs like this one's: itself, or an instance's spec; None if none.

        An instance without a ``spec`` (not made by ``gym.make``) cannot be copied.
        """
        if not isinstance(self.target, gym.Env):
            return self
        spec = self.target.spec
        if spec is None or spec.entry_point is None:
            return None
        return EnvSource(spec, {}, self.flatten_dict_obs)

    def copy_problem(self, purpose: str) -> str:
        """Why an instance without a spec cannot serve ``purpose`` (for error messages)."""
        return (
            f"{purpose} needs more envs than the one env instance given ({self.name}), "
            "which has no gymnasium spec to make them from (it was not made by "
            "gymnasium.make); pass a callable that returns the env (e.g. the class, or "
            "lambda: MyEnv(...)) or a registered id instead"
        )

    # -- making envs -----------------------------------------------------------------------
    def create(self, render_mode: str | None = None) -> gym.Env:
        """A new env, as its id, callable or spec makes it (no rlkit wrappers).

        For an instance, a new env made from its spec (the instance itself is used only as
        the one env of a ``sync`` run: ``rlkit.envs.make_vector_env``).

        Raises:
            ConfigError: if the env rejects ``kwargs`` (a ``TypeError`` or ``ValueError``
                from its constructor), with the env's message; or for an instance that
                cannot be copied.
            UnknownNameError: if a ``module:`` prefix does not import.
        """
        try:
            return self._create(render_mode)
        except (TypeError, ValueError) as e:
            if not self.kwargs or isinstance(e, RlkitError):
                raise
            raise ConfigError(
                f"env {self.name} rejected env_kwargs {dict(self.kwargs)}: {e}; check the "
                "names and values its constructor takes"
            ) from e

    def _create(self, render_mode: str | None) -> gym.Env:
        target = self.target
        if isinstance(target, gym.Env):
            copies = self.copies()
            if copies is None:
                raise ConfigError(self.copy_problem("making another env"))
            return copies.create(render_mode)
        if isinstance(target, str):
            module, name = split_env_id(target)
            if module is not None:
                imported = import_env_module(module, target)
                if name not in gym.registry and callable(getattr(imported, name, None)):
                    target = getattr(imported, name)  # module:callable, an entry point
        if isinstance(target, (str, EnvSpec)):
            target = functools.partial(gym.make, target)
        return _call(target, self.kwargs, render_mode)

    def metadata(self) -> dict[str, Any]:
        """``{"env": name}``, plus ``env_kwargs`` and ``flatten_dict_obs`` when set.

        What ``policy.json`` records so that an evaluation remakes the same env. Keyword
        arguments that JSON cannot hold (a callable, say) are left out, with a warning.
        """
        out: dict[str, Any] = {"env": self.name}
        kwargs = {}
        for key, value in self.kwargs.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                log.warning("env_kwargs %r=%r is not JSON: not saved with the policy", key, value)
                continue
            kwargs[key] = value
        if kwargs:
            out["env_kwargs"] = kwargs
        if self.flatten_dict_obs:
            out["flatten_dict_obs"] = True
        return out


def env_metadata(env: EnvLike) -> dict[str, Any]:
    """``EnvSource.metadata`` of ``env`` (an id gives ``{"env": id}``)."""
    return {"env": env} if isinstance(env, str) else EnvSource.of(env).metadata()


def entry_point_module(source: EnvSource) -> str | None:
    """The module of the code that makes ``source``'s envs, if rlkit can tell without making one."""
    target = source.target
    if isinstance(target, gym.Env):
        return type(target.unwrapped).__module__
    if isinstance(target, str):
        module, name = split_env_id(target)
        spec = gym.registry.get(name)
        if spec is None:
            return module
        target = spec
    if isinstance(target, EnvSpec):
        return _spec_module(target)
    return getattr(target, "__module__", None)


def is_new_to_rlkit(source: EnvSource) -> bool:
    """Whether rlkit has never seen the env: not one of gymnasium's, ale-py's, MinAtar's or its own.

    An id given as ``module:Id``, or an env whose code (the id's entry point, the callable,
    the instance's class) lives outside ``KNOWN_ENTRY_POINTS``: gymnasium's env checker
    looks at it before training.
    """
    if source.id is not None and split_env_id(source.id)[0] is not None:
        return True
    module = entry_point_module(source) or ""
    return module.partition(".")[0] not in KNOWN_ENTRY_POINTS

"""Env factories: single envs by id and gymnasium vector envs with NEXT_STEP autoreset."""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlkit.envs.atari import (
    AtariProtocol,
    is_atari,
    make_atari_env,
    make_atari_vector_env,
    register_ale,
)
from rlkit.envs.checks import CheckVectorObservations
from rlkit.envs.source import (
    EnvLike,
    EnvSource,
    ids_registered_by,
    import_env_module,
    split_env_id,
)
from rlkit.envs.vector import VECTORIZATIONS, vectorize
from rlkit.envs.wrappers import WideSeeds
from rlkit.errors import ConfigError, MissingExtraError, UnknownNameError

# Env families that need an optional package: (id prefix or gymnasium entry-point prefix,
# the module that must import, rlkit's extra that installs it).
ID_EXTRAS = (("MinAtar/", "minatar.gym", "minatar"),)
# Families whose envs seed a 32-bit RNG: wider seeds (rlkit's evaluation seeds) are hashed.
NARROW_SEED_PREFIXES = ("MinAtar/",)
ENTRY_POINT_EXTRAS = (
    ("gymnasium.envs.box2d", "Box2D", "box2d"),
    ("gymnasium.envs.mujoco", "mujoco", "mujoco"),
)


def require_module(module: str, extra: str, env_id: str) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` if ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"{env_id} needs {module}: pip install 'rlkit[{extra}]'")


def check_env_id(env_id: str) -> None:
    """Check that ``env_id`` is registered and that its packages are installed.

    ``module:Id`` (gymnasium's convention) imports the module first, which registers the
    id; ``module:name`` may also name a module-level class or function that makes the env.

    Raises:
        UnknownNameError: if gymnasium does not know the id (with gymnasium's hint), or
            the module of ``module:Id`` is not found (naming it, and PYTHONPATH or
            ``pip install`` as the fix).
        MissingExtraError: if the env needs an extra that is not installed (Box2D, MuJoCo,
            ale-py, MinAtar), naming the ``pip install 'rlkit[...]'`` that fixes it.
        RlkitError: if importing the module fails otherwise.
    """
    module, name = split_env_id(env_id)
    if module is not None:
        imported = import_env_module(module, env_id)
        if name not in gym.registry:
            if callable(getattr(imported, name, None)):
                return  # module:callable, an entry point
            ids = ids_registered_by(module)
            raise UnknownNameError(
                f"unknown env {env_id!r}: module {module!r} imports, but registers no id "
                f"{name!r} and has no callable named so (ids registered from it: "
                f"{', '.join(ids) or 'none'})"
            )
        env_id = name
    elif env_id.startswith("<") and env_id.endswith(">"):
        raise UnknownNameError(
            f"env {env_id} was a Python callable that cannot be imported by name (a lambda, "
            "a local function or one defined in __main__): make it from Python "
            "(rlkit.evaluate.play_episodes(policy, make_env)), give a registered id with "
            "--env, or define the callable at module level in an importable module"
        )
    if is_atari(env_id):
        register_ale(env_id)  # raises MissingExtraError without ale-py
    register_family(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as e:
        raise UnknownNameError(f"unknown env {env_id!r}: {e}") from None
    entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
    for prefix, module, extra in ENTRY_POINT_EXTRAS:
        if entry_point.startswith(prefix):
            require_module(module, extra, env_id)


def register_family(env_id: str) -> None:
    """Register the ids of ``env_id``'s family if an optional package provides them.

    MinAtar's package registers its ids only when asked (a gymnasium plugin entry point
    that gymnasium 1.x no longer loads by itself); subprocess workers call this too.

    Raises:
        MissingExtraError: if the family's package is not installed.
    """
    for prefix, module, extra in ID_EXTRAS:
        if env_id.startswith(prefix):
            # Checked even when the ids are registered: they may be, while the package
            # cannot be imported (uninstalled since, or blocked).
            require_module(module.partition(".")[0], extra, env_id)
            if env_id not in gym.registry:
                importlib.import_module(module).register_envs()


def vector_entry_point_ids() -> list[str]:
    """Registered non-Atari ids whose gymnasium spec has a ``vector_entry_point``."""
    return sorted(
        env_id
        for env_id, spec in gym.registry.items()
        if spec.vector_entry_point is not None and not is_atari(env_id)
    )


def vector_entry_point_problem(env_id: str) -> str | None:
    """Why ``vectorization: vector`` cannot run ``env_id``, or None if it can.

    ``vector`` needs the env's own vectorized implementation, the ``vector_entry_point`` of
    its gymnasium spec. Atari ids have one too (ale-py's), but it lacks rlkit's
    preprocessing protocol: they use ``ale``. An unknown id is not this check's business
    (``check_env_id`` reports it).
    """
    if is_atari(env_id):
        return (
            f"vectorization 'vector' is not for Atari ids ({env_id!r}); use 'ale' (ale-py's "
            "C++ vector env with rlkit's preprocessing protocol)"
        )
    module, name = split_env_id(env_id)  # module:Id: the module is imported by now
    try:
        spec = gym.spec(name)
    except gym.error.Error:
        if module is None:
            return None
        return f"vectorization 'vector' needs a registered id, and {env_id!r} is not one"
    if spec.vector_entry_point is not None:
        return None
    have = ", ".join(vector_entry_point_ids()) or "none"
    return (
        f"vectorization 'vector' needs an env with a vector entry point in its gymnasium "
        f"spec, and {env_id!r} has none (envs that have one: {have}); use 'sync' or 'async'"
    )


def make_env(
    env: EnvLike,
    render_mode: str | None = None,
    protocol: AtariProtocol | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Make one env (Atari ids get ``protocol``'s preprocessing).

    Args:
        env: a gymnasium id (``module:Id`` too), a callable that returns an env, a
            ``gym.Env`` with a spec to copy, or an ``EnvSource`` (with its kwargs and
            ``flatten_dict_obs``).
        render_mode: e.g. ``"rgb_array"`` to record frames.
        protocol: the Atari preprocessing protocol (Atari ids only).
        **kwargs: passed to the env's constructor (beating the source's own).

    Raises:
        ConfigError: if the env rejects the kwargs, has ``Dict`` observations without
            ``flatten_dict_obs``, or is an instance that cannot be copied.
    """
    source = EnvSource.of(env, kwargs)
    if source.id is not None:
        check_env_id(source.id)
        if is_atari(source.id):
            _refuse_atari_kwargs(source)
            return make_atari_env(source.id, protocol or AtariProtocol(), render_mode=render_mode)
    return _prepared(source, source.create(render_mode=render_mode))


def _refuse_atari_kwargs(source: EnvSource) -> None:
    if source.kwargs:
        raise ConfigError(
            f"env_kwargs {dict(source.kwargs)} are not supported for Atari ids "
            f"({source.id}): the preprocessing protocol builds those envs (see atari_protocol)"
        )


def _family_wrappers(env_id: str, env: gym.Env) -> gym.Env:
    """``env`` wrapped as its family needs (``WideSeeds`` for MinAtar's 32-bit seeding)."""
    if env_id.startswith(NARROW_SEED_PREFIXES):
        env = WideSeeds(env)
    return env


def _prepared(source: EnvSource, env: gym.Env) -> gym.Env:
    """``env`` as rlkit's agents take it: family wrappers, ``Dict`` observations flattened.

    Raises:
        ConfigError: for ``Dict`` observations without ``source.flatten_dict_obs``.
    """
    if source.id is not None:
        env = _family_wrappers(source.id, env)
    if isinstance(env.observation_space, gym.spaces.Dict):
        if not source.flatten_dict_obs:
            env.close()
            raise ConfigError(
                f"env {source.name} has Dict observations ({env.observation_space}), and "
                "rlkit's agents take arrays: set flatten_dict_obs (--flatten-dict-obs, "
                "--set flatten_dict_obs=true, or RunConfig(flatten_dict_obs=True)) to "
                "flatten them with gymnasium's FlattenObservation"
            )
        env = gym.wrappers.FlattenObservation(env)
    return env


def _env_fn(
    source: EnvSource,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
) -> gym.Env:
    # Module-level so that `spawn`ed workers can unpickle it.
    if source.id is not None:
        register_family(source.id)  # a new process knows only gymnasium's own ids
    return _with_wrappers(_prepared(source, source.create()), wrappers)


def _instance_fn(
    source: EnvSource,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
) -> gym.Env:
    # The env instance itself, for the one env of a sync vector env.
    return _with_wrappers(_prepared(source, source.instance), wrappers)  # type: ignore[arg-type]


def _with_wrappers(env: gym.Env, wrappers: Sequence[Callable[[gym.Env], gym.Env]]) -> gym.Env:
    if wrappers:
        # Statistics of the env's own rewards, before a wrapper changes them; the runner
        # reports these as the episode returns.
        env = gym.wrappers.RecordEpisodeStatistics(env)
    for wrap in wrappers:
        env = wrap(env)
    return env


def make_vector_env(
    env: EnvLike,
    num_envs: int = 1,
    vectorization: str = "sync",
    protocol: AtariProtocol | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """Make ``num_envs`` copies of an env as one vector env with NEXT_STEP autoreset.

    Args:
        env: a registered gymnasium id (``module:Id`` imports the module, in every worker
            too), a callable that returns an env (with ``async``, pickled by cloudpickle),
            a ``gym.Env`` instance (the one env of ``num_envs=1`` ``sync``; else copies
            are made from its spec, if it has one), or an ``EnvSource``.
        num_envs: number of copies.
        vectorization: ``"sync"`` (one process), ``"async"`` (one ``spawn``ed subprocess
            per env; forking after TensorFlow has started is unsafe), for Atari ``"ale"``
            (ale-py's C++ vector env, preprocessing in threads), or ``"vector"``: the env's
            own vectorized implementation (``gym.make_vec(..., "vector_entry_point")``,
            e.g. CartPole's numpy ``CartPoleVectorEnv``), for ids whose spec has a
            ``vector_entry_point`` (``vector_entry_point_ids()``). Its random numbers
            differ from ``sync``'s (one generator for all envs, not one per env), so the
            same seed gives other start states; its observations are checked batch-wise
            (``CheckVectorObservations``) and it takes no ``wrappers``.
        protocol: the Atari preprocessing protocol (Atari ids only; default ``dqn``).
        wrappers: applied to every copy in order, e.g.
            ``[functools.partial(RewardNoise, mean=1.0, std=1.0)]``; with ``async`` they
            must pickle (classes, module-level functions, partials of them). Each copy then
            is ``gym.make`` -> ``RecordEpisodeStatistics`` -> wrappers, so the episode
            returns in training statistics are the env's own, before any wrapper changes
            the rewards (the learner gets the wrapped rewards). Not for Atari ids, nor
            with ``"vector"`` (which has no per-env copies to wrap).
        **kwargs: passed to ``gym.make`` (or the callable) for every copy
            (``gym.make_vec`` with ``"vector"``, e.g. ``max_episode_steps=200``).

    Returns:
        A gymnasium ``VectorEnv``.

    Raises:
        UnknownNameError: for an unknown id or vectorization.
        ConfigError: for ``wrappers`` with Atari or ``"vector"``, ``"ale"`` for a non-Atari
            id, ``"vector"`` for an id without a vector entry point (the message names
            the ids that have one), kwargs the env rejects, ``Dict`` observations without
            ``flatten_dict_obs``, or an instance that cannot be copied.

    Example:
        >>> envs = make_vector_env("CartPole-v1", 4, wrappers=[RewardNoise])
    """
    if vectorization not in VECTORIZATIONS:
        raise UnknownNameError(
            f"unknown vectorization {vectorization!r}; choose one of {VECTORIZATIONS}"
        )
    source = EnvSource.of(env, kwargs)
    if source.id is None:
        return _make_vector_from_object(source, num_envs, vectorization, wrappers)
    env_id = source.id
    check_env_id(env_id)
    if vectorization == "vector":  # refuses Atari ids, which have ale-py's vector entry point
        return _make_vector_entry_point(source, num_envs, wrappers)
    if is_atari(env_id):
        if wrappers:
            raise ConfigError(
                f"wrappers= is not supported for Atari ids ({env_id!r}): the protocol's "
                "preprocessing builds those envs"
            )
        _refuse_atari_kwargs(source)
        return make_atari_vector_env(env_id, num_envs, vectorization, protocol or AtariProtocol())
    if vectorization == "ale":
        raise ConfigError(f"vectorization 'ale' is for Atari envs only, not {env_id!r}")
    fns = [functools.partial(_env_fn, source, tuple(wrappers)) for _ in range(num_envs)]
    return vectorize(fns, vectorization)


def _make_vector_from_object(
    source: EnvSource,
    num_envs: int,
    vectorization: str,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]],
) -> gym.vector.VectorEnv:
    """``sync`` or ``async`` copies of a callable's or spec's envs, or one env instance."""
    if vectorization not in ("sync", "async"):
        raise ConfigError(
            f"vectorization {vectorization!r} needs a registered id, and {source.name} is a "
            "Python object; use 'sync' or 'async'"
        )
    if source.instance is not None and num_envs == 1 and vectorization == "sync":
        return vectorize([functools.partial(_instance_fn, source, tuple(wrappers))], "sync")
    copies = source.copies()
    if copies is None:
        raise ConfigError(source.copy_problem(f"{num_envs} {vectorization} env(s)"))
    fns = [functools.partial(_env_fn, copies, tuple(wrappers)) for _ in range(num_envs)]
    return vectorize(fns, vectorization)


def _make_vector_entry_point(
    source: EnvSource,
    num_envs: int,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]],
) -> gym.vector.VectorEnv:
    """The env's own vectorized implementation, NEXT_STEP, observations checked batch-wise."""
    env_id, kwargs = source.name, dict(source.kwargs)
    problem = vector_entry_point_problem(env_id)
    if problem is not None:
        raise ConfigError(problem)
    if wrappers:
        raise ConfigError(
            f"wrappers= (e.g. reward_noise) cannot apply to vectorization 'vector': "
            f"{env_id}'s vector entry point steps all envs at once, with no per-env copy "
            "to wrap; use 'sync' or 'async'"
        )
    envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **kwargs)
    mode = envs.metadata.get("autoreset_mode")
    if mode != AutoresetMode.NEXT_STEP:
        envs.close()
        raise ConfigError(
            f"{env_id}'s vector entry point autoresets with {mode}, and rlkit's runner needs "
            "NEXT_STEP; use 'sync' or 'async'"
        )
    return CheckVectorObservations(envs)

"""Settings: typed config dataclasses, YAML presets, overrides and their validation.

Resolution order, later wins: dataclass defaults < preset (``default`` section, then the
env's own section) < the user's ``--config`` file < ``--set key=value`` flags. Every
problem (unknown keys, wrong types, out-of-range values) is reported in one ConfigError.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from rlkit.core import Agent
from rlkit.envs.atari import is_atari, load_protocol
from rlkit.envs.make import vector_entry_point_problem
from rlkit.envs.vector import VECTORIZATIONS
from rlkit.errors import ConfigError
from rlkit.preset_files import env_settings, preset_dir, read_yaml

RUNNERS = ("local", "ray")


def hp(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[Any, ...] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field with its valid range and a one-line help text."""
    meta = {"ge": ge, "gt": gt, "le": le, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults so configs stay frozen")
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Settings of a training run that are not the agent's hyperparameters."""

    total_steps: int = hp(100_000, gt=0, help="env steps to train for, summed over envs")
    num_envs: int = hp(1, ge=1, help="envs stepped in parallel (per worker with runner=ray)")
    vectorization: str = hp(
        "sync",
        choices=VECTORIZATIONS,
        help="sync (one process), async, ale (Atari only), or vector (the env's own "
        "vectorized implementation, e.g. CartPole's)",
    )
    seed: int = hp(0, ge=0, le=2**32 - 1, help="seeds Python, numpy, TF and the envs")
    deterministic: bool = hp(True, help="TF op determinism: same seed, same weights")
    eval_episodes: int = hp(
        10, ge=1, help="greedy episodes per periodic evaluation, each from a fresh seed"
    )
    eval_every: int = hp(0, ge=0, help="env steps between periodic evaluations (0: off)")
    eval_epsilon: float = hp(0.0, ge=0, le=1, help="random-action rate in evaluations")
    stop_reward: float | None = hp(
        None, help="stop once a periodic evaluation and its confirmation reach this mean"
    )
    confirm_episodes: int = hp(
        30, ge=30, help="fresh episodes that must confirm stop_reward before a run stops"
    )
    confirm_margin_se: float = hp(
        0.0,
        ge=0,
        help="a stop needs the confirmation's mean this many standard errors above stop_reward",
    )
    final_eval_episodes: int = hp(
        100, ge=0, help="greedy episodes after training, on seeds the run never used (0: none)"
    )
    log_interval: int = hp(5_000, gt=0, help="env steps between progress rows")
    checkpoint_every: int = hp(0, ge=0, help="env steps between checkpoints (0: at the end)")
    video_every: int = hp(0, ge=0, help="env steps between GIFs of the policy (run_dir/videos)")
    keep_checkpoints: int = hp(2, ge=1, help="newest checkpoints kept")
    max_bad_updates: int = hp(
        100, ge=1, help="consecutive non-finite update steps (skipped) before the run stops"
    )
    max_env_restarts: int = hp(
        3, ge=0, help="env (or Ray worker) rebuilds after faults before stopping"
    )
    env_step_timeout: float = hp(
        120.0, gt=0, help="seconds an async env step may take before the workers count as hung"
    )
    atari_protocol: str = hp("dqn", help="Atari preprocessing protocol from envs/atari.yaml")
    frame_stack: int | None = hp(None, ge=1, help="Atari: frames per observation (protocol's)")
    screen_size: tuple[int, ...] | None = hp(None, ge=8, help="Atari: [height, width]")
    runner: str = hp(
        "local", choices=RUNNERS, help="local (this machine's envs) or ray (Ray actors)"
    )
    num_workers: int = hp(2, ge=1, help="ray runner: actors, each with num_envs envs")
    ray_address: str | None = hp(
        None, help="ray runner: cluster to join ('auto', 'ray://host:10001'); none: start one"
    )
    chunk_steps: int = hp(
        0, ge=0, help="ray runner: steps per env in each collection (0: from the agent)"
    )
    max_weight_lag: int = hp(
        1, ge=0, help="ray runner, DQN family: chunks collected ahead with older weights"
    )
    reward_noise: tuple[float, ...] | None = hp(
        None, help="[mean, std]: learn from rewards replaced by Normal(mean, std) samples"
    )
    env_kwargs: dict[str, Any] | None = hp(
        None, help="keyword arguments of the env's constructor: gym.make(env, **env_kwargs)"
    )
    flatten_dict_obs: bool = hp(
        False, help="flatten Dict observations into one array (gymnasium's FlattenObservation)"
    )
    skip_env_check: bool = hp(
        False, help="skip gymnasium's env checker, which runs on envs rlkit has never seen"
    )

    def problems(self) -> list[str]:
        """Problems that involve several fields."""
        out = []
        if self.stop_reward is not None and self.eval_every == 0:
            out.append("stop_reward needs periodic evaluation: set eval_every > 0")
        if self.reward_noise is not None and (
            len(self.reward_noise) != 2 or self.reward_noise[1] < 0
        ):
            out.append(f"reward_noise: expected [mean, std] with std >= 0, got {self.reward_noise}")
        if self.reward_noise is not None and self.vectorization == "vector":
            out.append(
                "reward_noise: its RewardNoise wrapper wraps each env, and vectorization "
                "'vector' has no per-env copies to wrap; use sync or async"
            )
        return out


# -- validation --------------------------------------------------------------------------
def _coerce(name: str, kind: Any, value: Any) -> tuple[Any, str | None]:
    """Convert ``value`` to the field type ``kind``; return (value, problem or None)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):  # X | None, bool | str, ...
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(kind)):
            return None, None
        first_problem = None
        for option in options:  # the first type that takes the value wins
            converted, problem = _coerce(name, option, value)
            if problem is None:
                return converted, None
            first_problem = first_problem or problem
        return value, first_problem
    if origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value), None
        return value, f"{name}: expected a mapping of names to values ({{size: 8}}), got {value!r}"
    if origin is tuple:
        if isinstance(value, (list, tuple)):
            inner = typing.get_args(kind)[0]
            out = []
            for v in value:
                cv, problem = _coerce(name, inner, v)
                if problem:
                    return value, problem
                out.append(cv)
            return tuple(out), None
        return value, f"{name}: expected a list, got {value!r}"
    if kind is bool:
        if isinstance(value, bool):
            return value, None
        return value, f"{name}: expected true or false, got {value!r}"
    if kind is int:
        if isinstance(value, bool):
            return value, f"{name}: expected an integer, got {value!r}"
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return value, f"{name}: expected an integer, got {value!r}"
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        if isinstance(value, int):
            return value, None
        return value, f"{name}: expected an integer, got {value!r}"
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value), None
            except ValueError:
                return value, f"{name}: expected a number, got {value!r}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return value, f"{name}: expected a number, got {value!r}"
    if kind is str:
        if isinstance(value, str):
            return value, None
        return value, f"{name}: expected a string, got {value!r}"
    return value, None


def _range_problem(name: str, value: Any, meta: dict[str, Any]) -> str | None:
    if meta.get("choices") is not None and value not in meta["choices"]:
        return f"{name}: {value!r} is not one of {list(meta['choices'])}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}: must be finite, got {value}"
        if meta.get("ge") is not None and value < meta["ge"]:
            return f"{name}: must be >= {meta['ge']}, got {value}"
        if meta.get("gt") is not None and value <= meta["gt"]:
            return f"{name}: must be > {meta['gt']}, got {value}"
        if meta.get("le") is not None and value > meta["le"]:
            return f"{name}: must be <= {meta['le']}, got {value}"
    if isinstance(value, tuple):
        for v in value:
            problem = _range_problem(name, v, meta)
            if problem:
                return problem
    return None


def defaults(cls: type) -> dict[str, Any]:
    """The default value of each field of a config dataclass."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def field_names(cls: type) -> list[str]:
    """Names of a config dataclass's fields."""
    return [f.name for f in dataclasses.fields(cls)]


def build(cls: type, values: dict[str, Any]) -> tuple[Any, list[str]]:
    """Make ``cls(**values)`` with type coercion; return (instance, problems).

    Bad values are reported and left at their defaults in the instance, so checks across
    fields (``problems()``) still run on the good ones and every problem is reported at once.
    """
    hints = typing.get_type_hints(cls)
    kwargs, problems, bad = {}, [], set()
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, problem = _coerce(f.name, hints[f.name], values[f.name])
        choices = f.metadata.get("choices")
        if problem and choices is not None:  # a list of what is allowed says it best
            problem = f"{f.name}: {value!r} is not one of {list(choices)}"
        problem = problem or _range_problem(f.name, value, dict(f.metadata))
        if problem:
            problems.append(problem)
            bad.add(f.name)
        else:
            kwargs[f.name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "problems", None)
    cross = list(check()) if check else []
    # A check across fields that involves a bad field would only repeat its problem.
    problems += [c for c in cross if not any(name in c for name in bad)]
    return obj, problems


# -- presets -----------------------------------------------------------------------------
def _preset_file(agent: str) -> dict[str, Any] | None:
    """The sections of ``agent``'s shipped preset file, or None if it has none."""
    path = preset_dir() / "agents" / f"{agent}.yaml"
    return read_yaml(path) if path.exists() else None


def _section_for(sections: dict[str, Any], env_id: str) -> str | None:
    env_id = env_id.partition(":")[2] or env_id  # module:Id: the registered id's section
    if env_id in sections:
        return env_id
    if (env_id.startswith("ALE/") or "NoFrameskip" in env_id) and "atari" in sections:
        return "atari"
    return "default" if "default" in sections else None


def preset_section(agent: str, env_id: str) -> str | None:
    """Which section of ``agent``'s shipped preset file applies to ``env_id``.

    The env's own id, ``atari`` (ALE ids without a section of their own), ``default``, or
    None when the agent has no preset file or the file has none of them.
    """
    sections = _preset_file(agent)
    return None if sections is None else _section_for(sections, env_id)


def load_preset(agent: str, env_id: str) -> dict[str, Any]:
    """The shipped preset for ``agent`` on ``env_id``.

    Its ``default`` section, updated by the env's own section (or by ``atari`` for ALE ids
    without a section of their own).
    """
    sections = _preset_file(agent)
    if sections is None:
        return {}
    values = dict(sections.get("default") or {})
    section = _section_for(sections, env_id)
    if section not in (None, "default"):
        values.update(sections[section] or {})
    return values


def default_section_note(agent: str, env_id: str) -> str | None:
    """One line saying that ``env_id`` runs ``agent``'s ``default`` section, else None.

    Those settings were tuned for no env in particular: a user should know the run is not
    on a preset made for its env, and how to change that.
    """
    if preset_section(agent, env_id) != "default":
        return None
    return (
        f"preset: agents/{agent}.yaml has no section for {env_id}, so its `default` settings "
        "apply (change them with --set key=value or --config FILE)"
    )


def parse_overrides(pairs: list[str], flag: str = "--set") -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars (``3e-4``, ``[64, 64]``).

    ``flag`` names the option in the error for a string without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def resolve(
    agent_cls: type,
    env_id: str,
    *,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[RunConfig, Any]:
    """Resolve the run and agent settings for ``agent_cls`` on ``env_id``.

    Raises:
        ConfigError: listing every unknown key, wrong type and out-of-range value at once.
    """
    values = load_preset(agent_cls.name, env_id)
    # What the user chose, as opposed to the preset: every --set, and what a config file
    # changes (a run's own config.yaml names every setting, most of them the preset's).
    explicit = set(overrides or {})
    if config_file is not None:
        from_file = env_settings(read_yaml(Path(config_file)), env_id, config_file)
        base = {**defaults(RunConfig), **defaults(agent_cls.config_cls), **values}
        explicit |= {k for k, v in from_file.items() if k not in base or base[k] != v}
        values.update(from_file)
    values.update(overrides or {})
    values.pop("agent", None)
    values.pop("env", None)
    run_keys, agent_keys = set(field_names(RunConfig)), set(field_names(agent_cls.config_cls))
    unknown = sorted(set(values) - run_keys - agent_keys)
    problems = []
    if unknown:
        problems.append(
            f"unknown setting(s) {unknown} for agent {agent_cls.name!r}; valid settings: "
            f"{sorted(run_keys | agent_keys)}"
        )
    problems += [
        f"{key} is a setting of {', '.join(owners)}, not of {agent_cls.name!r}"
        for key in unknown
        if (owners := owners_of(key))
    ]
    run, p1 = build(RunConfig, {k: v for k, v in values.items() if k in run_keys})
    cfg, p2 = build(agent_cls.config_cls, {k: v for k, v in values.items() if k in agent_keys})
    problems += p1 + p2
    if run.vectorization == "ale" and not is_atari(env_id):
        problems.append(f"vectorization: 'ale' is for Atari envs only, not {env_id!r}")
    if run.vectorization == "vector" and (problem := vector_entry_point_problem(env_id)):
        problems.append(f"vectorization: {problem}")
    if is_atari(env_id):
        try:
            load_protocol(
                run.atari_protocol, frame_stack=run.frame_stack, screen_size=run.screen_size
            )
        except ConfigError as e:
            problems.append(f"atari_protocol: {e}")
    if hasattr(cfg, "explicit_problems"):
        problems += cfg.explicit_problems(explicit)
    if hasattr(cfg, "run_problems"):
        bad = {p.split(":")[0] for p in p1 + p2}
        problems += [c for c in cfg.run_problems(run) if not any(name in c for name in bad)]
    if len(problems) == 1:
        raise ConfigError(f"invalid setting {problems[0]}")
    if problems:
        raise ConfigError("invalid settings:\n  - " + "\n  - ".join(problems))
    return run, cfg


def owners_of(key: str) -> list[str]:
    """Names of the agents (loaded ``Agent`` subclasses) that have a setting ``key``."""
    names, todo = set(), list(Agent.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        config_cls = getattr(cls, "config_cls", None)
        if "name" in vars(cls) and config_cls is not None and key in field_names(config_cls):
            names.add(cls.name)
    return sorted(names)


def plain_dict(obj: Any) -> dict[str, Any]:
    """A settings dataclass as a JSON/YAML-able dict (tuples become lists, at any depth)."""
    return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_yaml(agent: str, env_id: str, run: RunConfig, cfg: Any) -> str:
    """The resolved settings as YAML, readable by ``--config`` (agent and env included)."""
    data: dict[str, Any] = {"agent": agent, "env": env_id, **plain_dict(run), **plain_dict(cfg)}
    return yaml.safe_dump(data, sort_keys=False)

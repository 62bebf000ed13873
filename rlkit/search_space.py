"""Search spaces of ``rlkit.tune``: YAML files of settings and their ranges, checked and sampled.

A space file maps rlkit settings (of the agent or of the run) to how Optuna samples them::

    learning_rate: {type: float, low: 1.0e-5, high: 2.0e-3, log: true}
    n_steps: {type: categorical, choices: [5, 8, 16, 32]}
    hidden_sizes: {type: categorical, choices: [[64, 64], [256, 256]]}
    gamma: {type: float, low: 1.0e-4, high: 0.03, log: true, one_minus: true}
    exploration_steps: {type: float, low: 0.0, high: 0.5, ratio_of: total_steps}

- ``type``: ``float`` or ``int`` (``low``, ``high``, optional ``log`` and ``step``), or
  ``categorical`` (``choices``: numbers, strings, booleans, null or lists such as layer
  widths).
- ``one_minus: true`` (floats): Optuna samples ``1 - setting`` in [low, high], so
  ``gamma`` can be searched log-uniformly near 1 (rl-zoo3's ``one_minus_gamma``).
- ``ratio_of: NAME``: Optuna samples a ratio and the setting is ``ratio * NAME`` (another
  setting, e.g. ``total_steps`` or ``train_frequency``), rounded for integer settings and
  raised to the setting's minimum (rl-zoo3's ``exploration_fraction`` and
  ``subsample_steps``).

Optuna's parameter is named after the setting (``one_minus_gamma`` and
``exploration_steps_per_total_steps`` for the two kinds above). Every name must be a
setting of the agent or the run, every bound and choice a valid value of it: a file that
breaks a rule is refused with every problem named. The shipped spaces are
``agents/tune/<agent>.yaml`` (a DQN-family agent without a file of its own uses ``dqn.yaml``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlkit import config as config_lib
from rlkit.errors import ConfigError, RlkitError
from rlkit.preset_files import preset_dir, read_yaml

TYPES = ("float", "int", "categorical")
SPEC_KEYS = ("type", "low", "high", "log", "step", "choices", "one_minus", "ratio_of")
# Set by rlkit.tune's own flags (--total-steps, --seed, --seeds-per-trial), not by a space.
RESERVED = ("total_steps", "seed")


def space_dir() -> Path:
    """The folder of the shipped search spaces (``agents/tune`` in the repository)."""
    return preset_dir() / "agents" / "tune"


def default_space_file(agent_cls: type) -> Path:
    """The shipped space of ``agent_cls``: its own file, else that of the class it extends.

    Raises:
        RlkitError: if no shipped file covers the agent.
    """
    for cls in agent_cls.__mro__:
        name = vars(cls).get("name")
        if isinstance(name, str) and (space_dir() / f"{name}.yaml").is_file():
            return space_dir() / f"{name}.yaml"
    raise RlkitError(
        f"no shipped search space for agent {agent_cls.name!r} (in {space_dir()}); "
        "write one and pass it with --space FILE"
    )


def _label(choice: Any) -> Any:
    """What Optuna stores for a categorical choice: scalars as they are, lists as JSON."""
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One setting of a search space and how Optuna samples it."""

    setting: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    one_minus: bool = False
    ratio_of: str | None = None

    @property
    def param(self) -> str:
        """Optuna's name of the sampled quantity."""
        if self.one_minus:
            return f"one_minus_{self.setting}"
        if self.ratio_of:
            return f"{self.setting}_per_{self.ratio_of}"
        return self.setting

    def suggest(self, trial: Any) -> Any:
        """Ask ``trial`` (an ``optuna.Trial``) for this dimension's sampled quantity."""
        if self.type == "float":
            return trial.suggest_float(
                self.param, self.low, self.high, log=self.log, step=self.step
            )
        if self.type == "int":
            step = int(self.step) if self.step else 1
            return trial.suggest_int(
                self.param, int(self.low), int(self.high), log=self.log, step=step
            )
        choices = self.choices or ()
        labels = [_label(c) for c in choices]
        return choices[labels.index(trial.suggest_categorical(self.param, labels))]

    def from_param(self, stored: Any) -> Any:
        """The sampled quantity from what Optuna stored (a categorical's label)."""
        if self.type != "categorical":
            return stored
        labels = [_label(c) for c in self.choices or ()]
        return (self.choices or ())[labels.index(stored)]


class SearchSpace:
    """The settings a study searches, read from a space file and checked against an agent.

    Example:
        >>> space = SearchSpace.load(default_space_file(A2C), A2C)
        >>> settings = space.sample(trial, base={"total_steps": 100_000})
    """

    def __init__(self, dimensions: list[Dimension], agent_cls: type, source: str) -> None:
        self.dimensions, self.agent_cls, self.source = dimensions, agent_cls, source
        self._fields = _fields(agent_cls)

    @property
    def settings(self) -> list[str]:
        """The settings this space samples."""
        return [d.setting for d in self.dimensions]

    @classmethod
    def load(cls, path: str | Path, agent_cls: type) -> SearchSpace:
        """Read and check a space file for ``agent_cls``.

        Raises:
            ConfigError: naming the file and every problem in it (unknown settings, keys or
                types, empty ranges, bounds or choices the setting does not accept).
        """
        data = read_yaml(Path(path))
        return cls.from_mapping(data, agent_cls, source=str(path))

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], agent_cls: type, source: str = "<space>"
    ) -> SearchSpace:
        """A space from a mapping like a space file's (see the module docstring).

        Raises:
            ConfigError: as ``load``.
        """
        fields = _fields(agent_cls)
        problems: list[str] = []
        unknown = sorted(k for k in data if k not in fields and k not in RESERVED)
        if unknown:
            problems.append(
                f"unknown setting(s) {unknown} for agent {agent_cls.name!r}; valid settings: "
                f"{sorted(k for k in fields if k not in RESERVED)}"
            )
        reserved = sorted(k for k in data if k in RESERVED)
        if reserved:
            problems.append(
                f"{reserved}: set by rlkit.tune's --total-steps and --seed, not by a space"
            )
        dims = []
        for name, spec in data.items():
            if name in unknown or name in reserved:
                continue
            dim, found = _dimension(name, spec)
            problems += found
            if dim is not None:
                dims.append(dim)
        names = {d.setting for d in dims}
        for dim in dims:
            if dim.ratio_of is None:
                problems += _value_problems(dim, agent_cls)
                continue
            ref = dim.ratio_of
            if ref not in fields:
                problems.append(f"{dim.setting}: ratio_of {ref!r} is not a setting")
            elif fields[ref] not in (int, float):
                problems.append(f"{dim.setting}: ratio_of {ref!r} is not a numeric setting")
            elif ref in names and next(d for d in dims if d.setting == ref).ratio_of:
                problems.append(f"{dim.setting}: ratio_of {ref!r} is itself a ratio")
        if problems:
            raise ConfigError(f"search space {source}:\n  - " + "\n  - ".join(problems))
        return cls(dims, agent_cls, source)

    def sample(self, trial: Any, base: Mapping[str, Any]) -> dict[str, Any]:
        """Sample every dimension with ``trial``; return the settings (setting -> value).

        ``base`` gives the settings a ``ratio_of`` may refer to when the space does not
        sample them (the run's resolved settings).
        """
        params = {d.param: d.suggest(trial) for d in self.dimensions}
        return self.settings_from(params, base, stored=False)

    def settings_from(
        self, params: Mapping[str, Any], base: Mapping[str, Any], *, stored: bool = True
    ) -> dict[str, Any]:
        """The settings of the sampled quantities ``params``.

        With ``stored``, ``params`` are Optuna's ``trial.params``: categorical labels are
        mapped back to their choices.
        """
        values: dict[str, Any] = {}
        for d in self.dimensions:
            if d.param not in params:
                continue
            x = d.from_param(params[d.param]) if stored else params[d.param]
            if d.one_minus:
                x = 1.0 - x
            if d.ratio_of is None:
                values[d.setting] = list(x) if isinstance(x, tuple) else x
        for d in self.dimensions:
            if d.ratio_of is None or d.param not in params:
                continue
            x = d.from_param(params[d.param]) if stored else params[d.param]
            reference = values.get(d.ratio_of, base.get(d.ratio_of))
            if reference is None:
                raise ConfigError(f"{d.setting}: ratio_of {d.ratio_of!r} has no value")
            values[d.setting] = self._scaled(d.setting, x * reference)
        return values

    def _scaled(self, setting: str, value: float) -> int | float:
        """``value`` as the setting's type, raised to its minimum."""
        meta = dict(self._metadata(setting))
        if self._fields[setting] is int:
            value = int(round(value))
            if meta.get("gt") is not None:
                value = max(value, int(math.floor(meta["gt"])) + 1)
        if meta.get("ge") is not None:
            value = max(value, type(value)(meta["ge"]))
        return value

    def _metadata(self, setting: str) -> Mapping[str, Any]:
        for cls in (config_lib.RunConfig, self.agent_cls.config_cls):
            for f in dataclasses.fields(cls):
                if f.name == setting:
                    return f.metadata
        return {}


def _fields(agent_cls: type) -> dict[str, type | None]:
    """Every setting of the run and the agent -> int, float or None (other types)."""
    out: dict[str, type | None] = {}
    for cls in (config_lib.RunConfig, agent_cls.config_cls):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            options = set(typing.get_args(kind)) - {type(None)} or {kind}
            out[f.name] = int if options == {int} else float if options <= {int, float} else None
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dimension(name: str, spec: Any) -> tuple[Dimension | None, list[str]]:
    """A ``Dimension`` from one entry of a space file, or the problems that prevent it."""
    if not isinstance(spec, Mapping):
        return None, [f"{name}: expected a mapping such as {{type: float, low: 0.1, high: 1}}"]
    problems = []
    extra = sorted(set(spec) - set(SPEC_KEYS))
    if extra:
        problems.append(f"{name}: unknown key(s) {extra}; valid keys: {list(SPEC_KEYS)}")
    kind = spec.get("type")
    if kind not in TYPES:
        return None, [*problems, f"{name}: type must be one of {list(TYPES)}, got {kind!r}"]
    for flag in ("log", "one_minus"):
        if not isinstance(spec.get(flag, False), bool):
            problems.append(f"{name}: {flag} must be true or false, got {spec[flag]!r}")
    ratio_of = spec.get("ratio_of")
    if ratio_of is not None and not isinstance(ratio_of, str):
        problems.append(f"{name}: ratio_of must name a setting, got {ratio_of!r}")
    if spec.get("one_minus") and (kind != "float" or ratio_of):
        problems.append(f"{name}: one_minus is for float dimensions without ratio_of")
    if kind == "categorical":
        choices = spec.get("choices")
        wrong = sorted(k for k in ("low", "high", "log", "step") if k in spec)
        if wrong:
            problems.append(f"{name}: {wrong} are for float and int dimensions, not categorical")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{name}: categorical needs a non-empty list of choices")
            return None, problems
        labels = [_label(c) for c in choices]
        if len(set(map(repr, labels))) < len(labels):
            problems.append(f"{name}: choices repeat a value: {choices}")
        if ratio_of and not all(_number(c) for c in choices):
            problems.append(f"{name}: ratio_of needs numeric choices, got {choices}")
        dim = Dimension(name, kind, choices=tuple(choices), ratio_of=ratio_of)
        return (None if problems else dim), problems
    if "choices" in spec:
        problems.append(f"{name}: choices are for categorical dimensions, not {kind}")
    low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
    if not (_number(low) and _number(high)):
        return None, [*problems, f"{name}: {kind} needs numbers low and high"]
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        problems.append(f"{name}: int bounds must be integers, got {low} and {high}")
    if low >= high:
        problems.append(f"{name}: low ({low}) must be < high ({high})")
    if spec.get("log") and low <= 0:
        problems.append(f"{name}: log needs low > 0, got {low}")
    if step is not None and (not _number(step) or step <= 0):
        problems.append(f"{name}: step must be a positive number, got {step!r}")
    if step is not None and spec.get("log"):
        problems.append(f"{name}: step and log cannot be combined (Optuna)")
    dim = Dimension(
        name,
        kind,
        low=low,
        high=high,
        log=bool(spec.get("log", False)),
        step=step,
        one_minus=bool(spec.get("one_minus", False)),
        ratio_of=ratio_of,
    )
    return (None if problems else dim), problems


def _value_problems(dim: Dimension, agent_cls: type) -> list[str]:
    """Problems of a dimension's bounds or choices as values of its setting."""
    if dim.type == "categorical":
        values = list(dim.choices or ())
    else:
        values = [dim.low, dim.high]
        if dim.one_minus:
            values = [1.0 - v for v in values]  # type: ignore[operator]
    owner = (
        config_lib.RunConfig
        if dim.setting in config_lib.field_names(config_lib.RunConfig)
        else agent_cls.config_cls
    )
    problems = []
    for value in values:
        _, found = config_lib.build(owner, {dim.setting: value})
        # Only the setting's own problems: checks across settings compare with defaults.
        problems += [
            f"{p} (in the space's {'bounds' if dim.type != 'categorical' else 'choices'})"
            for p in found
            if p.startswith(f"{dim.setting}:")
        ]
    return problems

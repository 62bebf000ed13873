"""Check an untrusted policy folder (``policy.json`` and its weights) before anything is built.

A policy folder may come from anyone: a download from the Hugging Face Hub, a colleague's
run, a file edited by hand. ``rlkit.policy_io.load_policy`` runs these checks before it
builds a network, so that a bad folder is one ``RlkitError`` naming the field and the
fix, never TensorFlow allocating a layer of four billion units or an op error from deep
inside Keras:

- ``check_policy_fields``: every field of ``policy.json`` (type, range, known names, and
  agreement between the network spec, the action description and the Atari protocol);
- ``check_weights_file``: the arrays of ``policy.weights.h5`` (their number, shapes and
  dtypes, read from the HDF5 metadata without loading an array) against those the spec
  implies (``expected_weight_shapes``, pure arithmetic on the spec).

Nothing here unpickles, imports or runs anything named by the folder: JSON is parsed and
HDF5 metadata read.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, NoReturn

from rlkit.errors import RlkitError

# Limits far above any policy rlkit trains (the Nature CNN has 1.7M parameters, a 2x256
# MLP 70k), low enough that a policy within them builds in a few GB at most.
MAX_DESCRIPTION_BYTES = 1_000_000  # policy.json is about 1 kB, agent.json a few kB
MAX_UNITS = 65_536  # a hidden layer's width, a head's outputs, log_std_dim
MAX_LAYERS = 64  # hidden_sizes entries
MAX_OBS_RANK = 8
MAX_OBS_DIM = 65_536
MAX_OBS_SIZE = 2**24  # elements of one observation (an Atari stack has 28,224)
MAX_ATOMS = 4_096  # C51 atoms or QR quantiles
MAX_PARAMS = 2**28  # float32 parameters: 1 GiB
MAX_ARRAYS = 10_000  # arrays in a weights file
MAX_ACTION_DIMS = 65_536

# Names as they appear in file names and messages (a video is named after the agent and
# the env): letters, digits and a few separators, no "..".
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ENV_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,199}")
AGENT_TEXT = "a name of up to 64 letters, digits, '_', '.' and '-'"
ENV_TEXT = "a gymnasium id of up to 200 letters, digits, '_', '.', '/', ':' and '-'"

# The Nature CNN's convolutions (filters, kernel, stride), Mnih et al. (2015), and the
# MinAtar CNN's, Young & Tian (2019): 'valid' padding, as rlkit.networks builds them.
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
MINATAR_CONVS = ((16, 3, 1),)
DEFAULT_WIDTH = {"nature_cnn": 512, "minatar_cnn": 128}

# The Atari protocol's fields in policy.json: (type, lowest, highest) for numbers.
PROTOCOL_FIELDS: dict[str, tuple[type, float | None, float | None]] = {
    "name": (str, None, None),
    "noop_max": (int, 0, 10_000),
    "frame_skip": (int, 1, 100),
    "sticky_actions": (float, 0.0, 1.0),
    "screen_size": (list, 8, 1_024),
    "grayscale": (bool, None, None),
    "frame_stack": (int, 1, 64),
    "fire_reset": (bool, None, None),
    "life_loss_terminal": (bool, None, None),
    "clip_rewards": (bool, None, None),
}

Shape = tuple[int, ...]


def _show(value: Any) -> str:
    """``repr(value)``, cut short: a crafted file can hold a list of a million numbers."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(where: str, field: str, problem: str) -> NoReturn:
    raise RlkitError(f"{where}: {field} {problem}")


def _int(value: Any, where: str, field: str, low: int, high: int) -> int:
    """``value`` if it is an integer in [low, high] (JSON ``true`` is not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, field, f"must be an integer, got {_show(value)}")
    if not low <= value <= high:
        _fail(where, field, f"must be from {low:,} to {high:,}, got {value:,}")
    return value


def _bool(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        _fail(where, field, f"must be true or false, got {_show(value)}")
    return value


def _number(value: Any, where: str, field: str) -> float:
    """``value`` as a float if it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, field, f"must be a number, got {_show(value)}")
    if not math.isfinite(value):
        _fail(where, field, f"must be finite, got {value}")
    return float(value)


def _int_list(
    value: Any, where: str, field: str, low: int, high: int, max_len: int, min_len: int = 0
) -> list[int]:
    if not isinstance(value, list):
        _fail(where, field, f"must be a list of integers, got {_show(value)}")
    if not min_len <= len(value) <= max_len:
        _fail(where, field, f"must have {min_len} to {max_len} entries, got {len(value):,}")
    return [_int(v, where, f"{field}[{i}]", low, high) for i, v in enumerate(value)]


def _choice(value: Any, where: str, field: str, choices: tuple[str, ...] | list[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail(where, field, f"is {_show(value)}, not one of {sorted(choices)}")
    return value


def _name(value: Any, where: str, field: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        _fail(where, field, f"must be {allowed}, got {_show(value)}")
    return value


# -- policy.json ------------------------------------------------------------------------
def read_description(path: Path) -> Any:
    """The parsed JSON of ``policy.json`` (or ``agent.json``) at ``path``: any JSON value.

    Raises:
        RlkitError: if the file is larger than any policy description, or not JSON.
    """
    size = path.stat().st_size
    if size > MAX_DESCRIPTION_BYTES:
        raise RlkitError(
            f"{path} is {size:,} bytes; the descriptions rlkit writes are a few kB (at most "
            f"{MAX_DESCRIPTION_BYTES:,} are read): not one rlkit wrote"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, nesting
        raise RlkitError(f"{path} is not valid JSON: {_show(str(e))}") from None


def check_policy_fields(meta: dict[str, Any], where: str) -> None:
    """Check every field of a policy description that rlkit reads.

    The top-level keys and ``format_version`` are ``rlkit.policy_io``'s business; this
    checks ``agent``, ``env``, ``rlkit_version``, ``network`` (``check_network_spec``),
    ``action`` and ``atari_protocol``, and that they agree with each other.

    Args:
        meta: the parsed ``policy.json``.
        where: the file, for messages.

    Raises:
        RlkitError: naming the first bad field (``network.hidden_sizes[0]``, ...).
    """
    for key in ("agent", "env", "network"):
        if key not in meta:
            _fail(where, key, "is missing")
    _name(meta["agent"], where, "agent", AGENT_NAME, AGENT_TEXT)
    _name(meta["env"], where, "env", ENV_ID, ENV_TEXT)
    version = meta.get("rlkit_version", "")
    if not isinstance(version, str) or len(version) > 64:
        _fail(where, "rlkit_version", f"must be a short string, got {_show(version)}")
    spec = meta["network"]
    check_network_spec(spec, where)
    _check_action(meta.get("action"), spec, where)
    if meta.get("atari_protocol") is not None:
        _check_protocol(meta["atari_protocol"], where)


def check_network_spec(spec: Any, where: str) -> None:
    """Check a network spec (``rlkit.networks.build_network``'s input) field by field.

    Types, ranges, known kind / torso / activation / head names, settings that need
    another (``num_atoms`` without ``distributional``), observation shapes the torso
    cannot take, and the total parameter count (at most ``MAX_PARAMS``).

    Raises:
        RlkitError: naming the field, e.g. ``network.hidden_sizes[0]``.
    """
    from rlkit.networks import (
        ACTIVATIONS,
        DISTRIBUTIONAL,
        KIND_KEYS,
        NETWORKS,
        SPEC_KEYS,
        TORSOS,
    )

    if not isinstance(spec, dict):
        _fail(where, "network", f"must be an object (the network spec), got {_show(spec)}")
    for key in ("kind", "obs_shape", "num_actions"):
        if key not in spec:
            _fail(where, f"network.{key}", "is missing")
    kind = _choice(spec["kind"], where, "network.kind", sorted(NETWORKS))
    valid = SPEC_KEYS | KIND_KEYS[kind]
    unknown = set(spec) - valid
    if unknown:
        _fail(
            where,
            "network",
            f"has unknown keys {sorted(unknown)[:5]} for kind {kind!r}; valid: {sorted(valid)}",
        )
    obs_shape = _int_list(
        spec["obs_shape"], where, "network.obs_shape", 1, MAX_OBS_DIM, MAX_OBS_RANK
    )
    if math.prod(obs_shape) > MAX_OBS_SIZE:
        _fail(
            where,
            "network.obs_shape",
            f"{obs_shape} has {math.prod(obs_shape):,} elements; rlkit loads policies of at "
            f"most {MAX_OBS_SIZE:,}",
        )
    _int(spec["num_actions"], where, "network.num_actions", 1, MAX_UNITS)
    torso = _choice(spec.get("torso", "mlp"), where, "network.torso", TORSOS)
    hidden = spec.get("hidden_sizes", [64, 64])
    _int_list(hidden, where, "network.hidden_sizes", 1, MAX_UNITS, MAX_LAYERS)
    _choice(spec.get("activation", "relu"), where, "network.activation", ACTIVATIONS)
    flags = (
        "channels_first",
        "mixed_precision",
        "normalize_obs",
        "noisy",
        "share_torso",
        "sde",
        "ortho_init",
    )
    for key in flags:
        if key in spec:
            _bool(spec[key], where, f"network.{key}")
    if torso in DEFAULT_WIDTH:
        _conv_output(spec, where)  # the shape must survive the convolutions
    if spec.get("normalize_obs") and torso != "mlp":
        _fail(where, "network.normalize_obs", f"is for the mlp torso, not {torso!r}")
    if "noisy_sigma0" in spec:
        if not spec.get("noisy"):
            _fail(where, "network.noisy_sigma0", "needs noisy: true")
        if not 0 <= _number(spec["noisy_sigma0"], where, "network.noisy_sigma0") <= 1e6:
            _fail(
                where, "network.noisy_sigma0", f"must be from 0 to 1e6, got {spec['noisy_sigma0']}"
            )
    distributional = spec.get("distributional")
    if distributional is not None:
        _choice(distributional, where, "network.distributional", DISTRIBUTIONAL)
    if "num_atoms" in spec:
        if distributional is None:
            _fail(where, "network.num_atoms", "needs distributional ('c51' or 'qr')")
        _int(spec["num_atoms"], where, "network.num_atoms", 2, MAX_ATOMS)
    for key in ("v_min", "v_max"):
        if key in spec:
            if distributional != "c51":
                _fail(where, f"network.{key}", "is a setting of distributional 'c51' only")
            _number(spec[key], where, f"network.{key}")
    if distributional == "c51":
        from rlkit.networks import DEFAULT_V_RANGE

        v_min, v_max = spec.get("v_min", DEFAULT_V_RANGE[0]), spec.get("v_max", DEFAULT_V_RANGE[1])
        if v_min >= v_max:
            _fail(where, "network.v_min", f"must be below v_max, got {v_min} >= {v_max}")
    if "log_std_dim" in spec:
        _int(spec["log_std_dim"], where, "network.log_std_dim", 0, MAX_UNITS)
    if spec.get("sde") and not spec.get("log_std_dim"):
        _fail(where, "network.sde", "(gSDE) needs a Gaussian policy: network.log_std_dim > 0")
    params = sum(math.prod(shape) for shape, _ in expected_weight_shapes(spec))
    if params > MAX_PARAMS:
        _fail(
            where,
            "network",
            f"describes {params:,} parameters (from obs_shape, hidden_sizes and "
            f"num_actions); rlkit loads policies of at most {MAX_PARAMS:,}",
        )


def check_network_settings(config: Any, where: str) -> None:
    """Bound an agent config's network sizes (a checkpoint's run is rebuilt from them).

    ``rlkit.config`` checks that ``hidden_sizes`` are positive; a run folder from elsewhere
    could still ask for layers no machine holds.

    Raises:
        RlkitError: naming ``hidden_sizes[i]`` or ``num_atoms``.
    """
    hidden = getattr(config, "hidden_sizes", None)
    if hidden is not None:
        _int_list(list(hidden), where, "hidden_sizes", 1, MAX_UNITS, MAX_LAYERS)
    atoms = getattr(config, "num_atoms", None)
    if atoms is not None:
        _int(atoms, where, "num_atoms", 2, MAX_ATOMS)


BOX_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "bool")


def check_space_description(data: Any, where: str, field: str) -> None:
    """Check a space description (``rlkit.agent_io.encode_space``) before the space is made.

    Its type, and sizes within the limits of a policy: an observation of at most
    ``MAX_OBS_SIZE`` elements, at most ``MAX_UNITS`` discrete actions (per sub-action).

    Raises:
        RlkitError: naming ``field`` and the bad entry.
    """
    import numpy as np

    if not isinstance(data, dict):
        _fail(where, field, f"must be an object, got {_show(data)}")
    kind = _choice(
        data.get("type"),
        where,
        f"{field}.type",
        ("Box", "Discrete", "MultiBinary", "MultiDiscrete"),
    )
    if kind == "Discrete":
        _int(data.get("n"), where, f"{field}.n", 1, MAX_UNITS)
        _int(data.get("start", 0), where, f"{field}.start", -(2**62), 2**62)
    elif kind == "MultiBinary":
        n = data.get("n")
        sizes = [n] if not isinstance(n, list) else n
        sizes = _int_list(sizes, where, f"{field}.n", 1, MAX_ACTION_DIMS, MAX_OBS_RANK, 1)
        if math.prod(sizes) > MAX_ACTION_DIMS:
            _fail(where, f"{field}.n", f"has more than {MAX_ACTION_DIMS:,} binary actions")
    elif kind == "MultiDiscrete":
        for key in ("nvec", "start"):
            try:
                values = np.asarray(data.get(key, 0), dtype=np.int64)
            except (TypeError, ValueError, OverflowError):
                _fail(where, f"{field}.{key}", "must be a (nested) list of integers")
            if values.ndim > MAX_OBS_RANK or values.size > MAX_ACTION_DIMS:
                _fail(where, f"{field}.{key}", f"has more than {MAX_ACTION_DIMS:,} entries")
            if key == "nvec" and (values.size == 0 or values.min() < 1 or values.max() > MAX_UNITS):
                _fail(where, f"{field}.nvec", f"entries must be from 1 to {MAX_UNITS:,}")
    else:
        shape = _int_list(data.get("shape"), where, f"{field}.shape", 1, MAX_OBS_DIM, MAX_OBS_RANK)
        if math.prod(shape) > MAX_OBS_SIZE:
            _fail(where, f"{field}.shape", f"{shape} has more than {MAX_OBS_SIZE:,} elements")
        _choice(data.get("dtype"), where, f"{field}.dtype", BOX_DTYPES)


def _conv_output(spec: dict[str, Any], where: str) -> tuple[int, int, int]:
    """(height, width, channels) after a CNN torso's convolutions, checking they fit."""
    torso, shape = spec["torso"], spec["obs_shape"]
    field = "network.obs_shape"
    if len(shape) != 3:
        _fail(where, field, f"must be [H, W, C] or [C, H, W] for the {torso} torso, got {shape}")
    channels_first = spec.get("channels_first", False)
    if torso == "minatar_cnn" and channels_first:
        _fail(where, "network.channels_first", "must be false for the minatar_cnn torso")
    c, h, w = shape if channels_first else (shape[2], shape[0], shape[1])
    for filters, kernel, stride in NATURE_CONVS if torso == "nature_cnn" else MINATAR_CONVS:
        if h < kernel or w < kernel:
            smallest = 36 if torso == "nature_cnn" else 3
            _fail(
                where,
                field,
                f"{shape} is too small for the {torso} torso (at least {smallest}x{smallest})",
            )
        h, w, c = (h - kernel) // stride + 1, (w - kernel) // stride + 1, filters
    return h, w, c


def _check_action(action: Any, spec: dict[str, Any], where: str) -> None:
    """The action description (``rlkit.distributions.ActionDist.to_json``) and the spec agree."""
    from rlkit.distributions import KINDS, ActionDist

    log_std_dim = spec.get("log_std_dim", 0)
    if action is None:  # the argmax of Q-values or of a categorical policy's logits
        if log_std_dim:
            _fail(where, "network.log_std_dim", "needs a Gaussian action description (action)")
        return
    if not isinstance(action, dict):
        _fail(where, "action", f"must be an object, got {_show(action)}")
    unknown = set(action) - set(ActionDist.__dataclass_fields__)
    if unknown:
        _fail(where, "action", f"has unknown keys {sorted(unknown)[:5]}")
    for key in ("kind", "sizes"):
        if key not in action:
            _fail(where, f"action.{key}", "is missing")
    kind = _choice(action["kind"], where, "action.kind", KINDS)
    if spec["kind"] != "actor_critic":
        _fail(where, "action", f"is for actor_critic networks, not {spec['kind']!r}")
    many = kind == "multi_categorical"
    sizes = _int_list(
        action["sizes"], where, "action.sizes", 1, MAX_UNITS, MAX_ACTION_DIMS if many else 1, 1
    )
    shape = _int_list(action.get("action_shape", []), where, "action.action_shape", 1, 2**20, 8)
    flat = math.prod(shape)
    if kind == "categorical" and shape:
        _fail(where, "action.action_shape", f"must be [] for categorical actions, got {shape}")
    if kind != "categorical" and flat != (len(sizes) if many else sizes[0]):
        _fail(where, "action.action_shape", f"{shape} does not fit action.sizes {sizes}")
    if sum(sizes) != spec["num_actions"]:
        _fail(
            where,
            "network.num_actions",
            f"is {spec['num_actions']}, but action.sizes {_show(sizes)} needs {sum(sizes)} outputs",
        )
    gaussian = kind == "gaussian"
    if log_std_dim != (sizes[0] if gaussian else 0):
        _fail(
            where,
            "network.log_std_dim",
            f"is {log_std_dim}, but a {kind} policy of action.sizes {_show(sizes)} needs "
            f"{sizes[0] if gaussian else 0}",
        )
    bounds = {}
    for key in ("low", "high"):
        value = action.get(key)
        if not gaussian:
            if value is not None:
                _fail(where, f"action.{key}", f"is for gaussian actions, not {kind}")
            continue
        if not isinstance(value, list) or len(value) != sizes[0]:
            _fail(where, f"action.{key}", f"must be a list of {sizes[0]} numbers or nulls")
        bounds[key] = [None if v is None else _number(v, where, f"action.{key}") for v in value]
    squash = _bool(action.get("squash", False), where, "action.squash")
    if squash and not gaussian:
        _fail(where, "action.squash", f"is for gaussian actions, not {kind}")
    for i, (lo, hi) in enumerate(zip(bounds.get("low", []), bounds.get("high", []), strict=True)):
        if lo is not None and hi is not None and lo >= hi:
            _fail(where, f"action.low[{i}]", f"must be below action.high[{i}], got {lo} >= {hi}")
        if squash and (lo is None or hi is None):
            _fail(where, "action.squash", "needs finite action.low and action.high")


def _check_protocol(protocol: Any, where: str) -> None:
    if not isinstance(protocol, dict):
        _fail(where, "atari_protocol", f"must be an object, got {_show(protocol)}")
    unknown = set(protocol) - set(PROTOCOL_FIELDS)
    if unknown:
        _fail(where, "atari_protocol", f"has unknown keys {sorted(unknown)[:5]}")
    if "screen_size" not in protocol:
        _fail(where, "atari_protocol.screen_size", "is missing")
    for key, value in protocol.items():
        kind, low, high = PROTOCOL_FIELDS[key]
        field = f"atari_protocol.{key}"
        if kind is bool:
            _bool(value, where, field)
        elif kind is int:
            _int(value, where, field, int(low), int(high))  # type: ignore[arg-type]
        elif kind is float:
            if not low <= _number(value, where, field) <= high:  # type: ignore[operator]
                _fail(where, field, f"must be from {low} to {high}, got {value}")
        elif kind is list:
            _int_list(value, where, field, int(low), int(high), 2, 2)  # type: ignore[arg-type]
        else:
            _name(value, where, field, AGENT_NAME, AGENT_TEXT)


# -- the weights the spec implies ---------------------------------------------------------
class _Arrays:
    """The arrays of a network, in order, each with the spec fields its shape follows from."""

    def __init__(self) -> None:
        self.shapes: list[tuple[Shape, str]] = []

    def add(self, shape: Shape, fields: str) -> None:
        self.shapes.append((shape, fields))

    def dense(self, n_in: int, units: int, fields: str, bias_fields: str, noisy: bool) -> None:
        """A dense layer's kernel and bias (and a noisy layer's sigma kernel and bias)."""
        self.add((n_in, units), fields)
        self.add((units,), bias_fields)
        if noisy:
            self.add((n_in, units), f"network.noisy / {fields}")
            self.add((units,), f"network.noisy / {bias_fields}")


def expected_weight_shapes(spec: dict[str, Any]) -> list[tuple[Shape, str]]:
    """The arrays a network of this (checked) spec saves, each with the fields it follows from.

    Pure arithmetic on the spec, in the network's order: the observation statistics, the
    torso, the value torso (actor-critic with ``share_torso: false``), the heads, the
    log-std. A noisy layer has four arrays (mu and sigma of kernel and bias). Tested
    against the networks rlkit builds (``tests/test_policy_check.py``).
    """
    arrays = _Arrays()
    obs_shape = tuple(spec["obs_shape"])
    noisy = bool(spec.get("noisy", False))
    if spec.get("normalize_obs"):  # mean, var and count of the observation statistics
        fields = "network.normalize_obs / network.obs_shape"
        arrays.add(obs_shape, fields)
        arrays.add(obs_shape, fields)
        arrays.add((), "network.normalize_obs")
    features = _torso(spec, arrays, noisy)
    if spec["kind"] == "actor_critic" and not spec.get("share_torso", True):
        _torso(spec, arrays, False, "network.share_torso / ")
    actions = spec["num_actions"]
    atoms = 1
    if spec.get("distributional") is not None:
        from rlkit.networks import DEFAULT_NUM_ATOMS

        atoms = spec.get("num_atoms", DEFAULT_NUM_ATOMS[spec["distributional"]])
    per_atom = " / network.distributional / network.num_atoms" if atoms > 1 else ""
    heads = f"network.num_actions{per_atom}"
    into = f"network.hidden_sizes / {heads}"
    if spec["kind"] == "q":
        arrays.dense(features, actions * atoms, into, heads, noisy)
    elif spec["kind"] == "dueling_q":
        value = f"network.kind{per_atom}"
        arrays.dense(features, atoms, f"network.hidden_sizes / {value}", value, noisy)
        arrays.dense(features, actions * atoms, into, heads, noisy)
    else:
        arrays.dense(features, actions, into, heads, False)
        arrays.dense(features, 1, "network.hidden_sizes", "network.kind", False)
        if spec.get("sde"):  # gSDE: one log-std per (feature, action dim)
            fields = "network.sde / network.hidden_sizes / network.log_std_dim"
            arrays.add((features, spec["log_std_dim"]), fields)
        elif spec.get("log_std_dim"):
            arrays.add((spec["log_std_dim"],), "network.log_std_dim")
    return arrays.shapes


def _torso(spec: dict[str, Any], arrays: _Arrays, noisy: bool, tag: str = "") -> int:
    """Add a torso's arrays (the last dense layer noisy if ``noisy``); return its width."""
    torso = spec.get("torso", "mlp")
    hidden = list(spec.get("hidden_sizes", [64, 64]))
    if torso == "mlp":
        width = math.prod(spec["obs_shape"])
        for i, units in enumerate(hidden):
            before = "network.obs_shape" if i == 0 else f"network.hidden_sizes[{i - 1}]"
            fields = f"{tag}{before} / network.hidden_sizes[{i}]"
            last = i == len(hidden) - 1
            arrays.dense(width, units, fields, f"{tag}network.hidden_sizes[{i}]", noisy and last)
            width = units
        return width
    shape = spec["obs_shape"]
    channels = shape[0] if spec.get("channels_first", False) else shape[2]
    convs = NATURE_CONVS if torso == "nature_cnn" else MINATAR_CONVS
    for i, (filters, kernel, _) in enumerate(convs):
        fields = f"{tag}network.obs_shape (channels)" if i == 0 else f"{tag}network.torso"
        arrays.add((kernel, kernel, channels, filters), fields)
        arrays.add((filters,), f"{tag}network.torso")
        channels = filters
    h, w, c = _conv_output(spec, "")
    width = hidden[-1] if hidden else DEFAULT_WIDTH[torso]
    fields = f"{tag}network.obs_shape / network.hidden_sizes"
    arrays.dense(h * w * c, width, fields, f"{tag}network.hidden_sizes", noisy)
    return width


# -- the weights file -----------------------------------------------------------------------
def read_weight_shapes(path: Path) -> list[tuple[str, Shape]]:
    """Name and shape of every array in a ``.weights.h5`` file, from its metadata only.

    Each array must be float, stored in the file itself (no external or virtual storage)
    and hold all its bytes (a truncated or compressed file does not).

    Raises:
        RlkitError: if the file is not HDF5 (garbage, truncated, a pickle, a zip) or holds
            something rlkit does not write.
    """
    import h5py

    found: list[tuple[str, Shape]] = []
    problem = ""

    def visit(name: str, obj: Any) -> Any:
        nonlocal problem
        if not isinstance(obj, h5py.Dataset):
            return None
        nbytes = math.prod(obj.shape or ()) * obj.dtype.itemsize if obj.shape is not None else 0
        if obj.dtype.kind != "f":
            problem = f"array {name!r} has dtype {obj.dtype}, not a float dtype"
        elif obj.is_virtual or obj.external:
            problem = f"array {name!r} points at data outside the file"
        elif obj.chunks is not None:  # compression and other filters need chunks
            problem = f"array {name!r} is stored in chunks (compressed?), not as a plain array"
        elif obj.id.get_storage_size() < nbytes:
            problem = (
                f"array {name!r} of shape {list(obj.shape)} stores "
                f"{obj.id.get_storage_size():,} of its {nbytes:,} bytes"
            )
        elif len(found) >= MAX_ARRAYS:
            problem = f"the file holds more than {MAX_ARRAYS:,} arrays"
        found.append((name, tuple(int(d) for d in obj.shape)))
        return True if problem else None  # a non-None value stops the visit

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RlkitError(
            f"{path} is not a weights file rlkit can read (not HDF5, or damaged): {first[:160]}"
        ) from None
    if problem:
        raise RlkitError(f"{path} is not a weights file rlkit wrote: {problem}")
    return found


def check_weights_file(spec: dict[str, Any], path: Path, description: str) -> None:
    """Check that the weights file holds exactly the arrays the (checked) spec implies.

    Compares the multisets of shapes (the file's array names are Keras' business), and
    names the spec fields behind the first array that is missing from the file.

    Raises:
        RlkitError: if the file cannot be read, or its arrays differ in number or shape.
    """
    expected = expected_weight_shapes(spec)
    found = [shape for _, shape in read_weight_shapes(path)]
    left = list(found)
    for shape, fields in expected:
        if shape in left:
            left.remove(shape)
            continue
        raise RlkitError(
            f"{path} does not match the network described in {description}: {fields} "
            f"imply an array of shape {list(shape)} that the file lacks (the file holds "
            f"{len(found)} arrays {_shapes(found)}; the spec implies {len(expected)})"
        )
    if left:
        raise RlkitError(
            f"{path} does not match the network described in {description}: the file holds "
            f"{len(left)} more arrays than the spec implies, of shapes {_shapes(left)} "
            "(check network.noisy, network.normalize_obs, network.share_torso and "
            "network.log_std_dim)"
        )


def _shapes(shapes: list[Shape], limit: int = 8) -> str:
    text = ", ".join(str(list(s)) for s in shapes[:limit])
    return text + (f", ... ({len(shapes) - limit} more)" if len(shapes) > limit else "")

"""Untrusted policy folders: every bad field of policy.json, and bad weights files, are one
RlkitError naming the field, raised before a network is built; the CLIs exit 2."""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest

from rlkit import evaluate, export
from rlkit.distributions import ActionDist
from rlkit.envs.atari import AtariProtocol
from rlkit.errors import RlkitError
from rlkit.networks import build_network
from rlkit.policy_check import (
    MAX_PARAMS,
    PROTOCOL_FIELDS,
    check_network_spec,
    expected_weight_shapes,
    read_weight_shapes,
)
from rlkit.policy_io import load_policy, save_policy

REPO = Path(__file__).resolve().parents[1]
ENV = "CartPole-v1"

# -- the shapes the checker expects are the shapes rlkit's networks have --------------------
SPECS = {
    "q mlp": {"kind": "q", "obs_shape": [4], "num_actions": 2, "hidden_sizes": [16, 8]},
    "q no hidden layer": {"kind": "q", "obs_shape": [4], "num_actions": 2, "hidden_sizes": []},
    "q image obs flattened": {"kind": "q", "obs_shape": [3, 2], "num_actions": 2},
    "dueling c51 noisy normalized": {
        "kind": "dueling_q",
        "obs_shape": [4],
        "num_actions": 2,
        "hidden_sizes": [16, 8],
        "noisy": True,
        "distributional": "c51",
        "num_atoms": 5,
        "normalize_obs": True,
    },
    "q qr noisy, default atoms": {
        "kind": "q",
        "obs_shape": [4],
        "num_actions": 3,
        "hidden_sizes": [16],
        "noisy": True,
        "distributional": "qr",
    },
    "actor-critic gaussian, own value torso": {
        "kind": "actor_critic",
        "obs_shape": [3],
        "num_actions": 2,
        "hidden_sizes": [8],
        "share_torso": False,
        "log_std_dim": 2,
    },
    "actor-critic gaussian with gSDE": {
        "kind": "actor_critic",
        "obs_shape": [3],
        "num_actions": 2,
        "hidden_sizes": [8, 6],
        "share_torso": False,
        "log_std_dim": 2,
        "sde": True,
    },
    "nature cnn channels first": {
        "kind": "q",
        "obs_shape": [4, 36, 36],
        "num_actions": 6,
        "torso": "nature_cnn",
        "hidden_sizes": [32],
        "channels_first": True,
    },
    "nature cnn actor-critic, default width": {
        "kind": "actor_critic",
        "obs_shape": [40, 37, 3],
        "num_actions": 6,
        "torso": "nature_cnn",
        "hidden_sizes": [],
        "share_torso": False,
    },
    "minatar cnn dueling noisy": {
        "kind": "dueling_q",
        "obs_shape": [10, 10, 4],
        "num_actions": 6,
        "torso": "minatar_cnn",
        "hidden_sizes": [32],
        "noisy": True,
    },
}
# The same network made with PyTorch's init: the spec says so, nothing else changes.
SPECS["actor-critic gaussian, PyTorch's init (ortho_init false)"] = {
    **SPECS["actor-critic gaussian, own value torso"],
    "ortho_init": False,
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_expected_shapes_are_the_networks_and_the_files(name, tmp_path):
    spec = SPECS[name]
    check_network_spec(spec, "test")
    network = build_network(spec)
    expected = Counter(shape for shape, _ in expected_weight_shapes(spec))
    assert Counter(tuple(w.shape) for w in network.weights) == expected
    network.save_weights(str(tmp_path / "w.weights.h5"))
    assert Counter(shape for _, shape in read_weight_shapes(tmp_path / "w.weights.h5")) == expected


def test_protocol_fields_are_the_atari_protocols():
    assert set(PROTOCOL_FIELDS) == set(AtariProtocol.__dataclass_fields__)


# -- policy folders to corrupt ---------------------------------------------------------------
def _save(path: Path, spec: dict, **kwargs) -> Path:
    save_policy(path, build_network(spec), agent=kwargs.pop("agent", "dqn"), env_id=ENV, **kwargs)
    return path


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """Valid policy folders: a Q-MLP, a distributional noisy dueling net, a Gaussian
    actor-critic, a MultiDiscrete one and a Q-network with an Atari protocol."""
    root = tmp_path_factory.mktemp("bases")
    gaussian = ActionDist.from_space(gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    multi = ActionDist.from_space(gym.spaces.MultiDiscrete([2, 3]))
    ac = {"kind": "actor_critic", "obs_shape": [4], "hidden_sizes": [8]}
    return {
        "q": _save(
            root / "q", {"kind": "q", "obs_shape": [4], "num_actions": 2, "hidden_sizes": [8]}
        ),
        "c51": _save(root / "c51", {**SPECS["dueling c51 noisy normalized"]}, agent="rainbow"),
        "gaussian": _save(
            root / "gaussian",
            {**ac, "num_actions": 2, "log_std_dim": 2, "share_torso": False},
            agent="ppo",
            action_dist=gaussian,
        ),
        "multi": _save(root / "multi", {**ac, "num_actions": 5}, agent="a2c", action_dist=multi),
        "atari": _save(
            root / "atari",
            {"kind": "q", "obs_shape": [4], "num_actions": 2, "hidden_sizes": [8]},
            protocol=AtariProtocol(),
        ),
    }


def corrupted(base: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "policy"
    shutil.copytree(base, path)
    meta = json.loads((path / "policy.json").read_text())
    edit(meta)
    (path / "policy.json").write_text(json.dumps(meta))
    return path


def net(**changes):
    """An edit setting (or, for None, removing) keys of the network spec."""

    def edit(meta):
        for key, value in changes.items():
            if value is None:
                meta["network"].pop(key)
            else:
                meta["network"][key] = value

    return edit


def top(**changes):
    def edit(meta):
        for key, value in changes.items():
            if value is None:
                meta.pop(key)
            else:
                meta[key] = value

    return edit


def action(**changes):
    def edit(meta):
        for key, value in changes.items():
            if value is None:
                meta["action"].pop(key)
            else:
                meta["action"][key] = value

    return edit


def protocol(**changes):
    def edit(meta):
        for key, value in changes.items():
            if value is None:
                meta["atari_protocol"].pop(key)
            else:
                meta["atari_protocol"][key] = value

    return edit


HUGE = 4_000_000_000
# case -> (base, edit, what the message must name)
CORRUPTED = {
    # top-level fields
    "agent: wrong type": ("q", top(agent=3), "agent"),
    "agent: missing": ("q", top(agent=None), "agent is missing"),
    "agent: a path": ("q", top(agent="../../etc"), "agent"),
    "env: wrong type": ("q", top(env=["CartPole-v1"]), "env"),
    "env: missing": ("q", top(env=None), "env is missing"),
    "env: not an id": ("q", top(env="Cart Pole; rm -rf"), "env"),
    "rlkit_version: wrong type": ("q", top(rlkit_version=1), "rlkit_version"),
    "format_version: wrong type": ("q", top(format_version="1"), "format version"),
    "network: wrong type": ("q", top(network="mlp"), "network must be an object"),
    "network: unknown key": ("q", net(layers=3), "layers"),
    # network.kind
    "kind: unknown name": ("q", net(kind="transformer"), "network.kind"),
    "kind: wrong type": ("q", net(kind=1), "network.kind"),
    "kind: missing": ("q", net(kind=None), "network.kind is missing"),
    "kind: mismatch with the weights": ("q", net(kind="dueling_q"), "network.kind"),
    # network.obs_shape
    "obs_shape: wrong type": ("q", net(obs_shape="4"), "network.obs_shape"),
    "obs_shape: float entry": ("q", net(obs_shape=[4.0]), "network.obs_shape[0]"),
    "obs_shape: negative": ("q", net(obs_shape=[-4]), "network.obs_shape[0]"),
    "obs_shape: zero": ("q", net(obs_shape=[0]), "network.obs_shape[0]"),
    "obs_shape: huge": ("q", net(obs_shape=[HUGE]), "network.obs_shape[0]"),
    "obs_shape: too many elements": ("q", net(obs_shape=[65536, 65536]), "network.obs_shape"),
    "obs_shape: too many dims": ("q", net(obs_shape=[1] * 9), "network.obs_shape"),
    "obs_shape: missing": ("q", net(obs_shape=None), "network.obs_shape is missing"),
    "obs_shape: mismatch with the weights": ("q", net(obs_shape=[5]), "network.obs_shape"),
    # network.num_actions
    "num_actions: wrong type": ("q", net(num_actions="2"), "network.num_actions"),
    "num_actions: bool": ("q", net(num_actions=True), "network.num_actions"),
    "num_actions: negative": ("q", net(num_actions=-2), "network.num_actions"),
    "num_actions: zero": ("q", net(num_actions=0), "network.num_actions"),
    "num_actions: huge": ("q", net(num_actions=HUGE), "network.num_actions"),
    "num_actions: missing": ("q", net(num_actions=None), "network.num_actions is missing"),
    "num_actions: mismatch with the weights": ("q", net(num_actions=3), "network.num_actions"),
    # network.torso
    "torso: unknown name": ("q", net(torso="resnet"), "network.torso"),
    "torso: wrong type": ("q", net(torso=["mlp"]), "network.torso"),
    "torso: cnn on vector obs": ("q", net(torso="nature_cnn"), "network.obs_shape"),
    "torso: image too small": (
        "q",
        net(torso="nature_cnn", obs_shape=[4, 20, 20], channels_first=True),
        "network.obs_shape",
    ),
    "torso: minatar channels first": (
        "q",
        net(torso="minatar_cnn", obs_shape=[4, 10, 10], channels_first=True),
        "network.channels_first",
    ),
    # network.hidden_sizes
    "hidden_sizes: wrong type": ("q", net(hidden_sizes="64"), "network.hidden_sizes"),
    "hidden_sizes: float entry": ("q", net(hidden_sizes=[8.5]), "network.hidden_sizes[0]"),
    "hidden_sizes: negative": ("q", net(hidden_sizes=[-1, 8]), "network.hidden_sizes[0]"),
    "hidden_sizes: zero": ("q", net(hidden_sizes=[8, 0]), "network.hidden_sizes[1]"),
    "hidden_sizes: huge": ("q", net(hidden_sizes=[HUGE, 64]), "network.hidden_sizes[0]"),
    "hidden_sizes: too many layers": ("q", net(hidden_sizes=[8] * 65), "network.hidden_sizes"),
    "hidden_sizes: too many parameters": (
        "q",
        net(hidden_sizes=[65536] * 3),
        f"at most {MAX_PARAMS:,}",
    ),
    "hidden_sizes: mismatch with the weights": (
        "q",
        net(hidden_sizes=[32]),
        "network.hidden_sizes[0]",
    ),
    "hidden_sizes: extra layer": ("q", net(hidden_sizes=[8, 8]), "network.hidden_sizes[1]"),
    # network.activation and flags
    "activation: unknown name": ("q", net(activation="sigmoid"), "network.activation"),
    "activation: wrong type": ("q", net(activation=3), "network.activation"),
    "channels_first: wrong type": ("q", net(channels_first="yes"), "network.channels_first"),
    "mixed_precision: wrong type": ("q", net(mixed_precision=1), "network.mixed_precision"),
    "normalize_obs: wrong type": ("q", net(normalize_obs="true"), "network.normalize_obs"),
    "normalize_obs: mismatch with the weights": (
        "q",
        net(normalize_obs=True),
        "network.normalize_obs",
    ),
    "normalize_obs: missing for the weights": ("c51", net(normalize_obs=None), "more arrays"),
    # noisy nets
    "noisy: wrong type": ("q", net(noisy="no"), "network.noisy"),
    "noisy: mismatch with the weights": ("q", net(noisy=True), "network.noisy"),
    "noisy_sigma0: without noisy": ("q", net(noisy_sigma0=0.5), "network.noisy_sigma0"),
    "noisy_sigma0: negative": ("c51", net(noisy_sigma0=-0.5), "network.noisy_sigma0"),
    "noisy_sigma0: wrong type": ("c51", net(noisy_sigma0="0.5"), "network.noisy_sigma0"),
    "noisy_sigma0: not finite": ("c51", net(noisy_sigma0=math.inf), "network.noisy_sigma0"),
    # distributional heads
    "distributional: unknown name": ("c51", net(distributional="c52"), "network.distributional"),
    "distributional: wrong type": ("c51", net(distributional=51), "network.distributional"),
    "distributional: mismatch with the weights": (
        "q",
        net(distributional="qr"),
        "network.distributional",
    ),
    "num_atoms: wrong type": ("c51", net(num_atoms="5"), "network.num_atoms"),
    "num_atoms: negative": ("c51", net(num_atoms=-5), "network.num_atoms"),
    "num_atoms: zero": ("c51", net(num_atoms=0), "network.num_atoms"),
    "num_atoms: huge": ("c51", net(num_atoms=HUGE), "network.num_atoms"),
    "num_atoms: without distributional": ("q", net(num_atoms=51), "network.num_atoms"),
    "num_atoms: mismatch with the weights": ("c51", net(num_atoms=7), "network.num_atoms"),
    "v_min: wrong type": ("c51", net(v_min="-10"), "network.v_min"),
    "v_min: not finite": ("c51", net(v_min=-math.inf), "network.v_min"),
    "v_min: above v_max": ("c51", net(v_min=20.0), "network.v_min"),
    "v_max: for a scalar head": ("q", net(v_max=10.0), "network.v_max"),
    # actor-critic settings
    "share_torso: wrong type": ("gaussian", net(share_torso="no"), "network.share_torso"),
    "share_torso: mismatch with the weights": ("gaussian", net(share_torso=True), "more arrays"),
    "share_torso: on a q-network": ("q", net(share_torso=False), "share_torso"),
    "log_std_dim: wrong type": ("gaussian", net(log_std_dim="2"), "network.log_std_dim"),
    "log_std_dim: negative": ("gaussian", net(log_std_dim=-2), "network.log_std_dim"),
    "log_std_dim: huge": ("gaussian", net(log_std_dim=HUGE), "network.log_std_dim"),
    "log_std_dim: mismatch with the actions": (
        "gaussian",
        net(log_std_dim=3),
        "network.log_std_dim",
    ),
    "log_std_dim: without gaussian actions": ("multi", net(log_std_dim=2), "network.log_std_dim"),
    "sde: wrong type": ("gaussian", net(sde="yes"), "network.sde"),
    "ortho_init: wrong type": ("gaussian", net(ortho_init="no"), "network.ortho_init"),
    "ortho_init: on a q-network": ("q", net(ortho_init=False), "ortho_init"),
    "sde: without a gaussian policy": ("multi", net(sde=True), "network.sde"),
    "sde: mismatch with the weights (log-std [D], not [F, D])": (
        "gaussian",
        net(sde=True),
        "network.sde",
    ),
    # the action description
    "action: wrong type": ("gaussian", top(action="gaussian"), "action must be an object"),
    "action: unknown key": ("gaussian", action(code="import os"), "action has unknown keys"),
    "action: on a q-network": ("q", top(action={"kind": "gaussian", "sizes": [2]}), "action"),
    "action.kind: unknown name": ("gaussian", action(kind="beta"), "action.kind"),
    "action.kind: missing": ("gaussian", action(kind=None), "action.kind is missing"),
    "action.sizes: wrong type": ("gaussian", action(sizes="2"), "action.sizes"),
    "action.sizes: negative": ("gaussian", action(sizes=[-2]), "action.sizes[0]"),
    "action.sizes: zero": ("multi", action(sizes=[0, 3]), "action.sizes[0]"),
    "action.sizes: huge": ("multi", action(sizes=[2, HUGE]), "action.sizes[1]"),
    "action.sizes: missing": ("gaussian", action(sizes=None), "action.sizes is missing"),
    "action.sizes: mismatch with the network": ("multi", action(sizes=[2, 4]), "num_actions"),
    "action.action_shape: mismatch": ("multi", action(action_shape=[3]), "action.action_shape"),
    "action.action_shape: negative": ("multi", action(action_shape=[-2]), "action.action_shape"),
    "action.low: wrong length": ("gaussian", action(low=[-1.0]), "action.low"),
    "action.low: wrong type": ("gaussian", action(low=["a", -1.0]), "action.low"),
    "action.low: above high": ("gaussian", action(low=[2.0, -1.0]), "action.low[0]"),
    "action.high: for discrete actions": ("multi", action(high=[1.0]), "action.high"),
    "action.squash: wrong type": ("gaussian", action(squash="yes"), "action.squash"),
    "action.squash: unbounded": (
        "gaussian",
        action(squash=True, low=[None, -1.0]),
        "action.squash",
    ),
    # the Atari protocol
    "atari_protocol: wrong type": ("atari", top(atari_protocol=[84, 84]), "atari_protocol"),
    "atari_protocol: unknown key": ("atari", protocol(hack=1), "atari_protocol has unknown"),
    "atari_protocol.screen_size: missing": (
        "atari",
        protocol(screen_size=None),
        "atari_protocol.screen_size is missing",
    ),
    "atari_protocol.screen_size: wrong length": (
        "atari",
        protocol(screen_size=[84]),
        "atari_protocol.screen_size",
    ),
    "atari_protocol.screen_size: huge": (
        "atari",
        protocol(screen_size=[84, HUGE]),
        "atari_protocol.screen_size[1]",
    ),
    "atari_protocol.frame_stack: zero": ("atari", protocol(frame_stack=0), "frame_stack"),
    "atari_protocol.noop_max: negative": ("atari", protocol(noop_max=-1), "noop_max"),
    "atari_protocol.sticky_actions: above 1": ("atari", protocol(sticky_actions=2), "sticky"),
    "atari_protocol.grayscale: wrong type": ("atari", protocol(grayscale="yes"), "grayscale"),
    "atari_protocol.name: wrong type": ("atari", protocol(name=3), "atari_protocol.name"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTED))
def test_a_corrupted_policy_json_is_an_error_naming_the_field(case, bases, tmp_path, monkeypatch):
    base, edit, fragment = CORRUPTED[case]
    path = corrupted(bases[base], tmp_path, edit)
    built = []
    monkeypatch.setattr("rlkit.networks.build_network", lambda spec: built.append(spec))
    with pytest.raises(RlkitError) as info:
        load_policy(path)
    assert fragment in str(info.value)
    assert str(path / "policy") in str(info.value)  # names the file
    assert built == [], "a network was built from a bad description"


@pytest.mark.parametrize("base", ["q", "c51", "gaussian", "multi", "atari"])
def test_the_uncorrupted_bases_load(base, bases):
    policy = load_policy(bases[base])
    obs = np.zeros((3, 4), np.float32)
    assert policy(obs).shape[0] == 3


# -- policy.json that is not a description at all -----------------------------------------------
def test_a_policy_json_that_is_no_json_object(bases, tmp_path):
    path = corrupted(bases["q"], tmp_path, lambda m: None)
    desc = path / "policy.json"
    for text, fragment in [
        ("[1, 2]", "not an rlkit policy description"),
        ("[" * 100_000, "not valid JSON"),  # nesting that would overflow the parser
        ('{"format_version": 1' + "9" * 5000 + "}", "not valid JSON"),  # a 5000-digit number
        ("\udcff", "not valid JSON"),
    ]:
        desc.write_text(text, errors="surrogateescape")
        with pytest.raises(RlkitError, match=fragment):
            load_policy(path)
    desc.write_text(" " * 2_000_000 + "{}")
    with pytest.raises(RlkitError, match="2,000,002 bytes"):
        load_policy(path)


# -- weights files -------------------------------------------------------------------------
class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_bad_weights_files_are_clear_errors(bases, tmp_path):
    path = corrupted(bases["q"], tmp_path, lambda m: None)
    weights = path / "policy.weights.h5"
    good = weights.read_bytes()
    marker = tmp_path / "payload_ran"
    cases = {
        "truncated": (good[: len(good) // 2], "not a weights file rlkit can read"),
        "garbage": (os.urandom(4096), "not a weights file rlkit can read"),
        "empty": (b"", "not a weights file rlkit can read"),
        "a pickle": (pickle.dumps(Payload(marker)), "not a weights file rlkit can read"),
    }
    for name, (data, fragment) in cases.items():
        weights.write_bytes(data)
        with pytest.raises(RlkitError) as info:
            load_policy(path)
        assert fragment in str(info.value) and str(weights) in str(info.value), name
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))  # the payload is live: unpickling runs it
    assert marker.exists()
    weights.unlink()
    with pytest.raises(RlkitError, match="policy.weights.h5 is missing"):
        load_policy(path)
    weights.mkdir()  # a folder where the file should be
    with pytest.raises(RlkitError, match="policy.weights.h5 is missing"):
        load_policy(path)


def _rewrite(weights: Path, good: bytes, change) -> None:
    weights.write_bytes(good)
    with h5py.File(weights, "r+") as f:
        change(f)


def test_weights_files_rlkit_did_not_write_are_refused(bases, tmp_path):
    path = corrupted(bases["q"], tmp_path, lambda m: None)
    weights = path / "policy.weights.h5"
    good = weights.read_bytes()
    first = read_weight_shapes(weights)[0][0]  # e.g. 'layer_dense_0/vars/0'

    def replace(f, **kwargs):
        data = f[first][()]
        del f[first]
        f.create_dataset(first, **{"data": data, **kwargs})

    cases = {
        "an extra array": (lambda f: f.create_dataset("extra", data=np.zeros(3)), "more arrays"),
        "an integer array": (
            lambda f: replace(f, dtype=np.int64),
            "dtype int64, not a float dtype",
        ),
        "a compressed array": (
            lambda f: replace(f, compression="gzip", chunks=True),
            "stored in chunks (compressed?)",
        ),
        "a missing array": (lambda f: f.__delitem__(first), "the file lacks"),
        "an array without its data": (  # declared, never written: no bytes in the file
            lambda f: (f.__delitem__(first), f.create_dataset(first, shape=(4, 8), dtype="f4")),
            "stores 0 of its 128 bytes",
        ),
        "an array of another shape": (
            lambda f: (f.__delitem__(first), f.create_dataset(first, data=np.zeros((4, 9)))),
            "network.obs_shape / network.hidden_sizes[0]",
        ),
    }
    for name, (change, fragment) in cases.items():
        _rewrite(weights, good, change)
        with pytest.raises(RlkitError) as info:
            load_policy(path)
        assert fragment in str(info.value), (name, str(info.value))


def test_weights_of_another_network_are_refused(bases, tmp_path):
    path = corrupted(bases["q"], tmp_path, lambda m: None)
    shutil.copy(bases["c51"] / "policy.weights.h5", path / "policy.weights.h5")
    with pytest.raises(RlkitError, match="does not match the network described in"):
        load_policy(path)


# -- the command lines: exit 2, one line, no traceback -----------------------------------------
@pytest.mark.parametrize(
    "case",
    ["hidden_sizes: huge", "obs_shape: negative", "num_actions: mismatch with the weights"],
)
def test_evaluate_and_export_exit_2_naming_the_field(case, bases, tmp_path, capsys):
    base, edit, fragment = CORRUPTED[case]
    path = corrupted(bases[base], tmp_path, edit)
    assert evaluate.main(["--run", str(path), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err
    assert export.main([str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_evaluate_command_on_a_huge_hidden_size(bases, tmp_path):
    """What a new user tried: 4e9 units in policy.json was TensorFlow's OOM traceback, exit 1."""
    path = corrupted(bases["q"], tmp_path, net(hidden_sizes=[HUGE, 64]))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "rlkit.evaluate", "--run", str(path), "--episodes", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert lines == [
        f"error: {path / 'policy.json'}: network.hidden_sizes[0] must be from 1 to 65,536, "
        "got 4,000,000,000"
    ]
    assert "Traceback" not in done.stderr


# -- checkpoints are rebuilt from config.yaml: its network sizes are bounded too -----------------
def test_a_checkpoint_with_huge_hidden_sizes_is_refused_before_building(tmp_path, monkeypatch):
    import yaml

    from rlkit.policy_io import load_policy_from_checkpoint

    run_dir = tmp_path / "run"
    ckpt = run_dir / "checkpoints" / "step_000000000100"
    ckpt.mkdir(parents=True)
    config = {"agent": "dqn", "env": ENV, "hidden_sizes": [HUGE, 64]}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(RlkitError, match=r"config.yaml: hidden_sizes\[0\] must be from 1"):
        load_policy_from_checkpoint(ckpt)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"env": ENV}))
    with pytest.raises(RlkitError, match="config.yaml: agent is missing"):
        load_policy_from_checkpoint(ckpt)


# -- whole agents (Agent.save folders) are bounded the same way ------------------------------
@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory) -> Path:
    from rlkit.agents import DQN, DQNConfig

    env = gym.make(ENV)
    agent = DQN(env.observation_space, env.action_space, DQNConfig(hidden_sizes=(8,)), seed=0)
    return agent.save(tmp_path_factory.mktemp("agent") / "agent")


def space(key, **changes):
    def edit(meta):
        meta[key].update(changes)

    return edit


AGENT_CORRUPTED = {
    "observation_space.shape: huge": (
        space("observation_space", shape=[65536, 65536]),
        "observation_space.shape",
    ),
    "observation_space.shape: negative": (
        space("observation_space", shape=[-4]),
        "observation_space.shape[0]",
    ),
    "observation_space.dtype: unknown": (
        space("observation_space", dtype="object"),
        "observation_space.dtype",
    ),
    "observation_space: wrong type": (top(observation_space=[4]), "observation_space must be"),
    "action_space.n: huge": (space("action_space", n=HUGE), "action_space.n"),
    "action_space.n: zero": (space("action_space", n=0), "action_space.n"),
    "action_space.type: unknown": (space("action_space", type="Graph"), "action_space.type"),
    "config.hidden_sizes: huge": (
        lambda m: m["config"].update(hidden_sizes=[HUGE]),
        "hidden_sizes[0] must be from 1 to 65,536",
    ),
    "config.num_atoms: huge": (
        lambda m: m["config"].update(num_atoms=10**7),
        "num_atoms must be from 2 to 4,096",
    ),
    "config: wrong type": (top(config=[1]), "config must be an object"),
    "observation_space: missing": (top(observation_space=None), "lacks ['observation_space']"),
    "agent: wrong type": (top(agent=["dqn"]), "not an rlkit agent description"),
    "format_version: newer": (top(format_version=99), "agent format 99"),
}


@pytest.mark.parametrize("case", sorted(AGENT_CORRUPTED))
def test_a_corrupted_agent_json_is_refused_before_building(case, agent_dir, tmp_path, monkeypatch):
    from rlkit.agents import DQN, load_agent

    edit, fragment = AGENT_CORRUPTED[case]
    path = tmp_path / "agent"
    shutil.copytree(agent_dir, path)
    meta = json.loads((path / "agent.json").read_text())
    edit(meta)
    (path / "agent.json").write_text(json.dumps(meta))

    def built(*args, **kwargs):
        raise AssertionError("an agent was built from a bad description")

    monkeypatch.setattr(DQN, "__init__", built)
    with pytest.raises(RlkitError) as info:
        load_agent(path)
    assert fragment in str(info.value), str(info.value)


def test_an_agent_folder_with_bad_variables_or_rng_is_a_clear_error(agent_dir, tmp_path):
    from rlkit.agents import load_agent

    path = tmp_path / "agent"
    shutil.copytree(agent_dir, path)
    meta = json.loads((path / "agent.json").read_text())
    (path / "agent.json").write_text(json.dumps({**meta, "rng": {"bit_generator": "MT19937"}}))
    with pytest.raises(RlkitError, match="rng is not a PCG64 state"):
        load_agent(path)
    meta["config"]["hidden_sizes"] = [16]  # the variables were saved for [8]
    (path / "agent.json").write_text(json.dumps(meta))
    with pytest.raises(RlkitError, match="does not fit the agent described in"):
        load_agent(path)
    (path / "agent.json").write_text("{" * 50_000)
    with pytest.raises(RlkitError, match="not valid JSON"):
        load_agent(path)
    assert type(load_agent(agent_dir)).__name__ == "DQN"

"""``mixed_precision: auto``: bfloat16 only where the hardware runs it fast."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from rlkit import precision
from rlkit.agents.a2c import A2C
from rlkit.agents.dqn import DQN
from rlkit.config import resolve
from rlkit.errors import ConfigError

IMAGE = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)  # the smallest the Nature CNN takes
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse sse2 avx2 {extra}
bogomips\t: 4000.00
"""


@pytest.fixture
def hardware(monkeypatch):
    """Pretend the machine has (or lacks) the given CPU flags and GPUs."""

    def set_hardware(cpu_flags=(), gpu_caps=()):
        import tensorflow as tf

        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(cpu_flags))
        gpus = [f"GPU:{i}" for i in range(len(gpu_caps))]
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus)
        details = dict(zip(gpus, gpu_caps, strict=True))
        monkeypatch.setattr(
            tf.config.experimental,
            "get_device_details",
            lambda g: {"compute_capability": details[g]},
        )
        precision.fast_bfloat16.cache_clear()

    yield set_hardware
    precision.fast_bfloat16.cache_clear()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra="avx512_bf16 amx_bf16"))
    flags = precision.cpu_flags(str(path))
    assert {"avx2", "avx512_bf16", "amx_bf16"} <= flags and "bogomips" not in flags
    assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(
    ("cpu_flags", "gpu_caps", "fast", "why"),
    [
        (("avx2", "amx_bf16"), (), True, "CPU with amx_bf16"),
        (("avx2", "avx512_bf16"), (), True, "CPU with avx512_bf16"),
        (("avx2", "avx512f"), (), False, "CPU without"),
        ((), (), False, "CPU without"),
        (("amx_bf16",), ((7, 5),), False, "compute capability < 8.0"),  # a T4 decides
        ((), ((8, 0), (9, 0)), True, "8.0, 9.0"),
        ((), ((9, 0), (7, 0)), False, "compute capability < 8.0"),
    ],
)
def test_fast_bfloat16_follows_the_device_that_runs_the_ops(
    hardware, cpu_flags, gpu_caps, fast, why
):
    hardware(cpu_flags, gpu_caps)
    got, reason = precision.fast_bfloat16()
    assert got is fast and why in reason
    assert precision.use_mixed_precision("auto") is fast
    assert precision.use_mixed_precision("auto", torso="mlp") is False  # never for MLPs
    # Explicit settings are never second-guessed.
    assert precision.use_mixed_precision(True) is True
    assert precision.use_mixed_precision(False) is False


def test_describe_precision_says_what_auto_chose(hardware):
    hardware(("amx_bf16",))
    assert precision.describe_precision("auto") == (
        "bfloat16 torso, float32 heads and losses (mixed_precision: auto, CPU with amx_bf16)"
    )
    assert precision.describe_precision("auto", torso="mlp") == (
        "float32 (mixed_precision: auto, an mlp torso gains nothing from bfloat16)"
    )
    hardware(("avx2",))
    assert precision.describe_precision("auto") == (
        "float32 (mixed_precision: auto, CPU without AMX-BF16 or AVX512-BF16)"
    )
    assert precision.describe_precision(True).startswith("bfloat16 torso")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        precision.use_mixed_precision("yes")


@pytest.mark.parametrize("cls", [A2C, DQN])
@pytest.mark.parametrize("fast", [True, False])
def test_an_agent_with_auto_builds_the_network_the_hardware_calls_for(hardware, cls, fast):
    hardware(("amx_bf16",) if fast else ("avx2",))
    _, cfg = resolve(cls, "CartPole-v1", overrides={"mixed_precision": "auto"})
    assert cfg.mixed_precision == "auto"
    cfg = dataclasses.replace(cfg, hidden_sizes=(32,))
    cnn = cls(IMAGE, gym.spaces.Discrete(3), cfg, seed=0).policy_network()
    assert cnn.torso_name == "nature_cnn"
    assert cnn.mixed_precision is fast
    assert cnn.spec["mixed_precision"] is fast  # a saved policy records what ran
    # An MLP stays float32 (and keeps its numpy acting path) whatever the hardware.
    vector = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    mlp = cls(vector, gym.spaces.Discrete(2), cfg, seed=0).policy_network()
    assert mlp.mixed_precision is False and mlp.supports_numpy


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_mixed_precision_setting_takes_true_false_and_auto(value):
    _, cfg = resolve(A2C, "CartPole-v1", overrides={"mixed_precision": value})
    assert cfg.mixed_precision == value and type(cfg.mixed_precision) is type(value)


@pytest.mark.parametrize("value", ["maybe", 1, [True]])
def test_a_bad_mixed_precision_setting_names_the_choices(value):
    with pytest.raises(
        ConfigError, match=r"mixed_precision: .* is not one of \[False, True, 'auto'\]"
    ):
        resolve(A2C, "CartPole-v1", overrides={"mixed_precision": value})


def test_a_run_with_auto_prints_the_choice_saves_auto_and_resumes(tmp_path, hardware, capsys):
    import yaml

    from rlkit import train

    hardware(("amx_bf16",))
    run_dir = tmp_path / "run"
    base = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    argv = [*base, "--total-steps", "80", "--final-eval-episodes", "0"]
    assert train.main([*argv, "--set", "mixed_precision=auto"]) == 0
    out = capsys.readouterr().out
    assert "precision: float32 (mixed_precision: auto, an mlp torso gains nothing" in out
    # The run folder keeps the setting, not this machine's answer to it.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["mixed_precision"] == "auto"
    assert train.main(["--resume", str(run_dir), "--total-steps", "160", "--quiet"]) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["total_steps"] == 160


# -- the bfloat16 acting copy --------------------------------------------------------------


def _compiled(fn):
    import tensorflow as tf

    from rlkit.agents.common import CompiledStep

    return CompiledStep(fn, input_signature=[tf.TensorSpec([None, *IMAGE.shape], tf.uint8)])


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *IMAGE.shape), dtype=np.uint8)


def _first(out):
    import tensorflow as tf

    return tf.nest.flatten(out)[0].numpy()


def test_a_float32_network_acts_with_itself():
    from rlkit.networks import QNetwork

    net = QNetwork(IMAGE.shape, 3, torso="nature_cnn", channels_first=True).build_for_obs()
    assert net.acting_copy() is net


@pytest.mark.parametrize("kind", ["q", "dueling_q", "actor_critic"])
def test_the_bfloat16_acting_copy_computes_exactly_what_the_mixed_network_does(kind, tmp_path):
    from rlkit.networks import build_network

    spec = {
        "kind": kind,
        "obs_shape": list(IMAGE.shape),
        "num_actions": 3,
        "torso": "nature_cnn",
        "hidden_sizes": [32],
        "activation": "relu",
        "channels_first": True,
        "mixed_precision": True,
    }
    net = build_network(spec)
    twin = net.acting_copy()
    assert twin is not net and net.acting_copy() is twin
    torso = {v.path for layer in net.torso_layers for v in layer.weights}
    for own, copy in zip(net.weights, twin.weights, strict=True):
        assert own.dtype == "float32"
        assert copy.dtype == ("bfloat16" if own.path in torso else "float32")
    obs = _images(5)
    forward, acting = _compiled(net.call), _compiled(twin.call)
    np.testing.assert_array_equal(_first(acting(obs)), _first(forward(obs)))
    # A weight change reaches the copy at the next sync, not before.
    net.weights[0].assign(net.weights[0] * 1.5)
    assert not np.array_equal(_first(acting(obs)), _first(forward(obs)))
    net.sync_acting_copy()
    np.testing.assert_array_equal(_first(acting(obs)), _first(forward(obs)))
    # The copy is not part of the network: saved weights load into a network without one.
    assert len(net.weights) == len(build_network(spec).weights)
    net.save_weights(str(tmp_path / "w.weights.h5"))
    fresh = build_network(spec)
    fresh.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(_first(fresh(obs)), _first(net(obs)))


def _image_batch(agent, rng):
    """A random rollout (on-policy agents) or transition batch of image observations."""
    from rlkit.types import Batch, Rollout

    def floats(*shape):
        return rng.normal(size=shape).astype(np.float32)

    action = rng.integers(0, 3, (4, 2))
    zeros = np.zeros((4, 2), np.float32)
    if agent.on_policy:
        return Rollout(
            _images(8).reshape(4, 2, *IMAGE.shape), action, floats(4, 2), zeros, zeros,
            np.ones((4, 2), np.float32), _images(2, seed=9),
        )  # fmt: skip
    return Batch(
        _images(8).reshape(4, 2, *IMAGE.shape), action, floats(4, 2),
        _images(8, seed=5).reshape(4, 2, *IMAGE.shape), zeros, zeros,
        np.full((4, 2), 0.99, np.float32), np.ones((4, 2), np.float32),
        np.zeros((4, 2), np.int64),
    )  # fmt: skip


@pytest.mark.parametrize("cls", [A2C, DQN])
def test_a_mixed_precision_agent_acts_with_its_latest_weights(cls, tmp_path):
    cfg = dataclasses.replace(cls.config_cls(), mixed_precision=True, hidden_sizes=(32,))
    agent = cls(IMAGE, gym.spaces.Discrete(3), cfg, seed=0)
    net = agent.policy_network()
    assert agent.acting_network is not net
    obs = _images(6, seed=1)
    forward = _compiled(net.call)

    def acting_scores(a):
        return a.logits_and_values(obs)[0] if a.on_policy else a.q_values(obs)

    for step in range(2):
        agent.update(_image_batch(agent, np.random.default_rng(step)))
        np.testing.assert_array_equal(acting_scores(agent), _first(forward(obs)))
    assert agent._update_fn.experimental_get_tracing_count() == 1
    restored = cls.load(agent.save(tmp_path / "agent"))
    np.testing.assert_array_equal(acting_scores(restored), acting_scores(agent))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_a_bfloat16_mlp_torso_stays_within_bfloat16_steps_of_the_same_maths(activation):
    """The mixed network equals float32 maths with bfloat16 casts, to a bfloat16 step or two.

    The torso casts its input and weights to bfloat16 and keeps its matmul, bias-add and
    activation results in bfloat16; the head is float32. The same maths in float32,
    rounding where bfloat16 rounds, gives torso outputs h within one or two bfloat16 steps
    (the matmul may round its partial sums in another order); bfloat16 keeps 8 significant
    bits, so a step at |h| is 2**(floor(log2 |h|) - 7). The float32 head is linear, so
    output j may move by sum_i |H_ij| * 2 steps(h_i): a tolerance per element, from the
    precision, instead of one fixed number.
    """
    import tensorflow as tf

    from rlkit.networks import QNetwork

    def bf16(t):  # round to bfloat16, compute on in float32
        return tf.cast(tf.cast(t, tf.bfloat16), tf.float32)

    obs = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    kwargs = {"hidden_sizes": (16,), "activation": activation}
    full = QNetwork((4,), 3, **kwargs).build_for_obs()
    half = QNetwork((4,), 3, mixed_precision=True, **kwargs).build_for_obs()
    half.set_weights(full.get_weights())
    w, b, head, head_bias = full.get_weights()
    assert w.shape == (4, 16) and head.shape == (16, 3)  # torso Dense, then the Q head
    act = {"relu": tf.nn.relu, "tanh": tf.tanh}[activation]
    z = bf16(bf16(bf16(obs) @ bf16(w)) + bf16(b))  # [B, 16] pre-activation
    h = bf16(act(z)).numpy()
    expected = h @ head + head_bias  # [B, 3]
    magnitude = np.maximum(np.abs(h), np.abs(z.numpy()))  # near 0 the input's step counts
    step = 2.0 ** (np.floor(np.log2(np.maximum(magnitude, 2.0**-126))) - 7)
    tolerance = (2 * step) @ np.abs(head) + 1e-6  # [B, 3]
    got = tf.nest.flatten(half(obs))[0].numpy()
    assert got.dtype == np.float32
    assert (np.abs(got - expected) <= tolerance).all(), np.abs(got - expected) / tolerance
    plain = tf.nest.flatten(full(obs))[0].numpy()
    assert np.abs(got - plain).max() > 1e-4  # bfloat16 did change the outputs

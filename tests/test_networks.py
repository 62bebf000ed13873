"""rlkit.networks: output contracts, the dueling identity, the numpy mirror and specs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlkit.networks import (
    ActorCriticNetwork,
    DuelingQNetwork,
    QNetwork,
    build_network,
)

OBS_SHAPE = (4,)
NUM_ACTIONS = 3
BATCH = 5
MLP_CLASSES = [QNetwork, DuelingQNetwork, ActorCriticNetwork]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def make(cls, activation="relu", obs_shape=OBS_SHAPE):
    return cls(obs_shape, NUM_ACTIONS, hidden_sizes=(16, 8), activation=activation).build_for_obs()


def obs_batch(seed=1, obs_shape=OBS_SHAPE, batch=BATCH):
    return np.random.default_rng(seed).normal(size=(batch, *obs_shape)).astype(np.float32)


def outputs(net, obs):
    """The Keras call's outputs as a tuple of numpy arrays."""
    out = net(tf.constant(obs))
    out = out if isinstance(out, tuple) else (out,)
    return tuple(o.numpy() for o in out)


def numpy_outputs(net, obs):
    out = net.numpy_forward(obs)
    return out if isinstance(out, tuple) else (out,)


def randomize_weights(net, seed):
    rng = np.random.default_rng(seed)
    for v in net.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))


# -- output contracts -----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [QNetwork, DuelingQNetwork])
def test_q_networks_output_shape(cls):
    net = make(cls)
    q = net(tf.constant(obs_batch()))
    assert q.shape == (BATCH, NUM_ACTIONS)
    assert q.dtype == tf.float32
    assert np.all(np.isfinite(q.numpy()))


def test_actor_critic_output_contract():
    net = make(ActorCriticNetwork)
    out = net(tf.constant(obs_batch()))
    assert isinstance(out, tuple) and len(out) == 2
    logits, value = out
    assert logits.shape == (BATCH, NUM_ACTIONS)
    assert value.shape == (BATCH,)


def test_mlp_flattens_multi_dim_observations():
    net = make(QNetwork, obs_shape=(2, 3))
    obs = obs_batch(obs_shape=(2, 3))
    assert net(tf.constant(obs)).shape == (BATCH, NUM_ACTIONS)
    net.refresh_numpy()
    np.testing.assert_allclose(net.numpy_forward(obs), net(tf.constant(obs)).numpy(), atol=1e-5)


# -- dueling identity -----------------------------------------------------------------------


def test_dueling_identity_from_heads():
    net = make(DuelingQNetwork)
    randomize_weights(net, seed=3)  # non-trivial value and advantage heads
    obs = tf.constant(obs_batch())
    q = net(obs).numpy()  # [B, A]
    features = net.torso(obs)
    value = net.value_head(features).numpy()  # [B, 1]
    advantage = net.advantage_head(features).numpy()  # [B, A]
    assert value.shape == (BATCH, 1)
    assert advantage.shape == (BATCH, NUM_ACTIONS)
    # Q = V + A - mean_a A
    np.testing.assert_allclose(q, value + advantage - advantage.mean(-1, keepdims=True), atol=1e-5)
    # hence mean_a Q = V, while A itself is not centred
    np.testing.assert_allclose(q.mean(-1), value[:, 0], atol=1e-5)
    assert np.abs(advantage.mean(-1)).max() > 1e-3


def test_dueling_identity_from_raw_weights():
    # Rebuild the heads from their kernels and biases, independently of Keras layers.
    net = make(DuelingQNetwork)
    randomize_weights(net, seed=4)
    obs = obs_batch()
    features = net.torso(tf.constant(obs)).numpy()  # [B, F]
    value = features @ net.value_head.kernel.numpy() + net.value_head.bias.numpy()
    adv = features @ net.advantage_head.kernel.numpy() + net.advantage_head.bias.numpy()
    expected = value + adv - adv.mean(-1, keepdims=True)
    np.testing.assert_allclose(net(tf.constant(obs)).numpy(), expected, atol=1e-4)


# -- numpy mirror ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("cls", MLP_CLASSES)
def test_numpy_forward_matches_keras(cls, activation):
    net = make(cls, activation=activation)
    assert net.supports_numpy
    obs = obs_batch()
    net.refresh_numpy()
    for got, want in zip(numpy_outputs(net, obs), outputs(net, obs), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("cls", MLP_CLASSES)
def test_numpy_forward_after_weight_change(cls):
    net = make(cls, activation="elu")
    obs = obs_batch()
    net.refresh_numpy()
    before = outputs(net, obs)

    randomize_weights(net, seed=7)
    after = outputs(net, obs)
    assert not np.allclose(before[0], after[0])  # the change is visible to Keras
    # numpy_forward reads the weights of the last refresh until refreshed again
    np.testing.assert_allclose(numpy_outputs(net, obs)[0], before[0], atol=1e-5)

    net.refresh_numpy()
    for got, want in zip(numpy_outputs(net, obs), after, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)

    # refresh from values the caller already holds
    randomize_weights(net, seed=8)
    net.refresh_numpy([v.numpy() for v in net.numpy_variables()])
    for got, want in zip(numpy_outputs(net, obs), outputs(net, obs), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("cls", MLP_CLASSES)
def test_numpy_variables_cover_all_weights(cls):
    net = make(cls)
    ids = {id(v) for v in net.numpy_variables()}
    assert ids == {id(v) for v in net.weights}


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_supports_numpy_false_for_activations_without_numpy_path(activation):
    assert not make(QNetwork, activation=activation).supports_numpy


# -- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MLP_CLASSES)
def test_build_network_from_spec_reproduces_outputs(cls):
    net = make(cls, activation="tanh")
    spec = net.spec
    # JSON-serialisable, and a JSON round trip gives the same spec
    restored_spec = json.loads(json.dumps(spec))
    assert restored_spec == spec
    assert spec["kind"] == cls.kind

    clone = build_network(restored_spec)
    assert type(clone) is cls
    assert clone.spec == spec
    assert [tuple(v.shape) for v in clone.weights] == [tuple(v.shape) for v in net.weights]

    obs = obs_batch()
    clone.set_weights(net.get_weights())
    for got, want in zip(outputs(clone, obs), outputs(net, obs), strict=True):
        np.testing.assert_array_equal(got, want)


def test_spec_contents():
    net = QNetwork((4,), 2, hidden_sizes=(32,), activation="tanh").build_for_obs()
    assert net.spec == {
        "kind": "q",
        "obs_shape": [4],
        "num_actions": 2,
        "torso": "mlp",
        "hidden_sizes": [32],
        "activation": "tanh",
        "channels_first": False,
        "mixed_precision": False,
    }


def test_mixed_precision_keeps_float32_outputs_from_a_bfloat16_torso():
    # How close to float32 maths they are is checked with a tolerance derived from
    # bfloat16's precision in test_precision.py; here: float32 out, bfloat16 inside.
    import tensorflow as tf

    obs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    for cls in (QNetwork, DuelingQNetwork, ActorCriticNetwork):
        full = cls((4,), 3, hidden_sizes=(16,)).build_for_obs()
        half = cls((4,), 3, hidden_sizes=(16,), mixed_precision=True).build_for_obs()
        half.set_weights(full.get_weights())
        assert not half.supports_numpy  # the numpy copy is float32-only
        out_full = tf.nest.flatten(full(obs))
        out_half = tf.nest.flatten(half(obs))
        for a, b in zip(out_full, out_half, strict=True):
            assert b.dtype == tf.float32
            assert not np.array_equal(a.numpy(), b.numpy())  # the torso ran in bfloat16
        assert build_network(half.spec).mixed_precision


def _spec(**changes):
    spec = QNetwork(OBS_SHAPE, NUM_ACTIONS, hidden_sizes=(8,)).spec
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (_spec(dropout=0.1), "dropout"),
        # a keyword keras.Model itself accepts must still be refused by the spec check
        (_spec(name="my_net"), "name"),
        (_spec(kind="transformer"), "transformer"),
        (_spec(activation="sigmoid"), "sigmoid"),
        (_spec(torso="resnet"), "resnet"),
    ],
)
def test_build_network_rejects_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        build_network(spec)


def test_unknown_spec_key_error_lists_valid_keys():
    with pytest.raises(ValueError, match="obs_shape"):
        build_network(_spec(name="my_net"))


# -- Nature CNN -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("torso", "obs_shape", "fan_ins"),
    [
        # Nature CNN on [k, H, W] stacks: 8x8x4, 4x4x32, 3x3x64 kernels, then 7x7x64 features.
        ("nature_cnn", (4, 84, 84), [256, 512, 576, 3136, 512, 512]),
        ("minatar_cnn", (10, 10, 6), [54, 1024, 128, 128]),  # 3x3x6, then 8x8x16
    ],
)
def test_actor_critic_cnn_torsos_start_orthogonal_or_as_pytorch_does(torso, obs_shape, fan_ins):
    # As the reference A2C/PPO: every torso layer, the convolutions included, orthogonal
    # (gain sqrt 2) with zero biases; ortho_init=False: uniform in +-1/sqrt(fan_in).
    spec = {
        "kind": "actor_critic",
        "torso": torso,
        "obs_shape": list(obs_shape),
        "num_actions": 6,
        "hidden_sizes": [512 if torso == "nature_cnn" else 128],
        "channels_first": torso == "nature_cnn",
    }
    ortho = build_network(spec)
    torso_layers = [v for v in ortho.trainable_variables if "conv" in v.path or "dense" in v.path]
    for kernel in [v.numpy() for v in torso_layers if v.path.endswith("kernel")]:
        k = kernel.reshape(-1, kernel.shape[-1])  # [fan_in, filters]: orthogonal columns
        np.testing.assert_allclose(k.T @ k, 2 * np.eye(k.shape[1]), atol=1e-3)
    assert not any(v.numpy().any() for v in torso_layers if v.path.endswith("bias"))
    torch_like = build_network({**spec, "ortho_init": False})
    pairs = [v.numpy() for v in torch_like.trainable_variables]  # (kernel, bias) per layer
    assert len(pairs) == 2 * len(fan_ins)
    for kernel, bias, fan_in in zip(pairs[::2], pairs[1::2], fan_ins, strict=True):
        assert kernel.reshape(-1, kernel.shape[-1]).shape[0] == fan_in
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
        assert np.abs(bias).max() <= bound and bias.any()


def test_nature_cnn_q_network_on_uint8_frames():
    obs_shape = (4, 84, 84)
    net = QNetwork(obs_shape, 6, torso="nature_cnn", channels_first=True).build_for_obs()
    obs = np.random.default_rng(0).integers(0, 256, size=(2, *obs_shape), dtype=np.uint8)
    q = net(tf.constant(obs))
    assert q.shape == (2, 6)
    assert q.dtype == tf.float32
    assert np.all(np.isfinite(q.numpy()))
    assert not net.supports_numpy
    assert make(QNetwork).supports_numpy
    assert net.spec["torso"] == "nature_cnn" and net.spec["channels_first"] is True
    json.dumps(net.spec)


def test_the_nature_cnn_on_byte_stacks_logs_nothing_on_the_terminal():
    """A run's terminal shows no TF C++ error lines once TF is imported (the CLIs hide
    the start-up chatter; anything later would reach the user). A uint8 transpose in the
    graph used to log 'oneDNN supports DT_UINT8 only on platforms with AVX-512'."""
    import subprocess
    import sys

    code = """
from rlkit.tf_setup import import_tensorflow_quietly
import_tensorflow_quietly()
import gymnasium as gym, numpy as np
from rlkit.agents.a2c import A2C, A2CConfig
space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
agent = A2C(space, gym.spaces.Discrete(6), A2CConfig(hidden_sizes=(32,)), seed=0)
agent.act(np.zeros((3, 4, 84, 84), np.uint8), explore=True)
print("acted")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "acted" in out.stdout, out.stderr
    tf_lines = [line for line in out.stderr.splitlines() if line[:5] in ("E0000", "W0000")]
    assert not tf_lines, tf_lines

"""rlkit.numpy_mlp: the TF-free forward pass gives the Keras networks' acting outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rlkit import numpy_mlp
from rlkit.networks import build_network

MINATAR_KINDS = [
    ("q", {}),
    ("dueling_q", {"distributional": "c51", "num_atoms": 5}),
    ("q", {"distributional": "qr", "num_atoms": 5, "noisy": True}),
    ("actor_critic", {"share_torso": True}),
    ("actor_critic", {"share_torso": False}),
]
MINATAR_IDS = ["q", "dueling_c51", "noisy_qr", "actor_critic_shared", "actor_critic_separate"]


@pytest.mark.parametrize(
    "kind_extra",
    [
        ("q", {}),
        ("dueling_q", {}),
        ("actor_critic", {"share_torso": True}),
        ("actor_critic", {"share_torso": False}),
    ],
    ids=["q", "dueling_q", "actor_critic_shared", "actor_critic_separate"],
)
@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
def test_action_scores_match_the_network(kind_extra, activation):
    kind, extra = kind_extra
    keras.utils.set_random_seed(1)
    spec = {
        "kind": kind,
        "obs_shape": [3, 2],  # flattened by the torso
        "num_actions": 4,
        "hidden_sizes": [16, 8],
        "activation": activation,
        **extra,
    }
    net = build_network(spec)
    obs = np.random.default_rng(0).normal(size=(5, 3, 2)).astype(np.float32)
    params = [np.asarray(v) for v in net.numpy_variables()]
    scores = numpy_mlp.action_scores(net.spec, params, obs)  # [B, A]
    out = net(obs)
    expected = np.asarray(out[0] if isinstance(out, tuple) else out)
    assert scores.shape == (5, 4)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    # The network's own numpy path is the same code: bitwise equal.
    own = net.numpy_forward(obs)
    np.testing.assert_array_equal(scores, own[0] if isinstance(own, tuple) else own)


def test_unknown_activation_or_kind_is_an_error():
    with pytest.raises(ValueError, match="gelu"):
        numpy_mlp.activation("gelu", np.zeros(2))
    with pytest.raises(ValueError, match="cnn"):
        numpy_mlp.action_scores(
            {"kind": "cnn", "hidden_sizes": [], "activation": "relu"}, [], np.zeros((1, 2))
        )


@pytest.mark.parametrize(("shape", "kernel"), [((2, 10, 10, 4), 3), ((3, 7, 9, 2), 2)])
def test_conv2d_valid_is_keras_conv2d(shape, kernel):
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(np.float32)
    k = rng.normal(size=(kernel, kernel, shape[-1], 5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    want = tf.nn.conv2d(x, k, strides=1, padding="VALID").numpy() + b
    got = numpy_mlp.conv2d_valid(x, k, b)
    assert got.shape == (shape[0], shape[1] - kernel + 1, shape[2] - kernel + 1, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind_extra", MINATAR_KINDS, ids=MINATAR_IDS)
def test_action_scores_match_a_minatar_network(kind_extra):
    kind, extra = kind_extra
    keras.utils.set_random_seed(1)
    spec = {
        "kind": kind,
        "obs_shape": [10, 10, 3],
        "num_actions": 4,
        "torso": "minatar_cnn",
        "hidden_sizes": [32],
        **extra,
    }
    net = build_network(spec)
    assert net.supports_numpy
    obs = np.random.default_rng(0).random((5, 10, 10, 3)) < 0.3
    params = [np.asarray(v) for v in net.numpy_variables()]
    scores = numpy_mlp.action_scores(net.spec, params, obs)
    out = net(obs)
    expected = np.asarray(out[0] if isinstance(out, tuple) else out)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    own = net.numpy_forward(obs)
    if isinstance(own, tuple):  # the actor-critic's value too
        np.testing.assert_allclose(own[1], out[1].numpy(), rtol=1e-5, atol=1e-5)
        own = own[0]
    np.testing.assert_array_equal(scores, own)


def test_a_torso_without_numpy_path_is_an_error():
    spec = {"kind": "q", "torso": "nature_cnn", "hidden_sizes": [], "activation": "relu"}
    with pytest.raises(ValueError, match="nature_cnn"):
        numpy_mlp.action_scores(spec, [], np.zeros((1, 84, 84, 4)))

"""rlkit.numpy_mlp: the TF-free forward pass gives the Keras networks' acting outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rlkit import numpy_mlp
from rlkit.networks import build_network


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

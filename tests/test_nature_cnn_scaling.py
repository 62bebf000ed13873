"""The Nature CNN scales uint8 frames by 1/255 in the graph (README: "uint8 in, scaled in the
graph"), checked by value against the float computation written out."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rlkit.networks import QNetwork


def hand_made_frames() -> np.ndarray:
    """Two 4x84x84 uint8 stacks with the extremes and in-between values, no two frames alike."""
    obs = np.zeros((2, 4, 84, 84), np.uint8)
    obs[0, 0, :42] = 255  # top half white
    obs[0, 1, :, ::2] = 128  # stripes
    obs[0, 2] = np.arange(84, dtype=np.uint8)[:, None] * 3  # a ramp 0..249
    obs[0, 3, 20:60, 20:60] = 1  # a faint square
    obs[1] = 255 - obs[0]
    return obs


def test_uint8_frames_are_scaled_by_1_over_255_before_the_convolutions():
    net = QNetwork((4, 84, 84), 6, torso="nature_cnn", channels_first=True).build_for_obs()
    obs = hand_made_frames()
    got = net.torso(tf.constant(obs)).numpy()  # [2, F]
    assert got.ndim == 2 and got.shape[0] == 2

    def features(x: np.ndarray) -> np.ndarray:
        """The torso's layers on float frames [B, C, H, W], channels moved last."""
        y = tf.constant(np.transpose(x, (0, 2, 3, 1)), tf.float32)
        for layer in net.torso_layers:
            y = layer(y)
        return y.numpy()

    expected = features(obs.astype(np.float32) / 255.0)
    assert np.abs(expected).max() > 0  # the features see the frames
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Unscaled, or scaled twice, the same frames give other features: the check can fail.
    assert not np.allclose(got, features(obs.astype(np.float32)), rtol=1e-3, atol=1e-3)
    assert not np.allclose(got, features(obs.astype(np.float32) / 255.0**2), rtol=1e-3, atol=1e-3)
    # Float frames in [0, 255] go through the same scaling as bytes.
    np.testing.assert_allclose(
        net.torso(tf.constant(obs.astype(np.float32))).numpy(), got, rtol=1e-6, atol=1e-6
    )

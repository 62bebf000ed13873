"""RMSprop with PyTorch's epsilon (rlkit.optimizers), against numbers worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rlkit.optimizers import TorchRMSprop, make_optimizer


def _steps(optimizer: object, grads: list[list[float]], start: list[float]) -> list[np.ndarray]:
    w = tf.Variable(start)
    out = []
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g), w)])  # type: ignore[attr-defined]
        out.append(w.numpy().copy())
    return out


def test_steps_by_hand() -> None:
    # lr 0.1, rho 0.99, eps 0.01, w = 1, g = 0.1 twice:
    # step 1: v = 0.01 * 0.01 = 1e-4, sqrt 0.01, w = 1 - 0.1 * 0.1 / (0.01 + 0.01) = 0.5
    # step 2: v = 0.99e-4 + 1e-4 = 1.99e-4, sqrt 0.0141067, w = 0.5 - 0.01 / 0.0241067
    # = 0.5 - 0.414822 = 0.085178
    w1, w2 = _steps(TorchRMSprop(0.1, rho=0.99, epsilon=0.01), [[0.1], [0.1]], [1.0])
    np.testing.assert_allclose(w1, [0.5], rtol=1e-6)
    np.testing.assert_allclose(w2, [0.085178], rtol=1e-5)
    # Keras' RMSprop with the same epsilon puts it inside the root: 1 - 0.01 / sqrt(1e-4 +
    # 0.01) = 0.9004963, a different step (no epsilon makes the two agree for every g).
    (k1,) = _steps(keras_rmsprop := make_optimizer("rmsprop", 0.1, 0.01), [[0.1]], [1.0])
    np.testing.assert_allclose(k1, [0.9004963], rtol=1e-6)
    assert keras_rmsprop.__class__.__name__ == "RMSprop"


def test_small_gradients_are_damped_as_pytorch_does() -> None:
    # lr 1e-3, eps 1e-5. g = 1e-4: v = 1e-10, sqrt 1e-5, step = 1e-3 * 1e-4 / 2e-5 = 5e-3;
    # g = 1: v = 0.01, sqrt 0.1, step = 1e-3 / (0.1 + 1e-5) = 9.999e-3.
    (w,) = _steps(make_optimizer("rmsprop_torch", 1e-3, 1e-5), [[1e-4, 1.0]], [0.0, 0.0])
    np.testing.assert_allclose(w, [-5e-3, -1e-3 / 0.10001], rtol=1e-5)


def test_state_saves_and_restores(tmp_path: Path) -> None:
    w = tf.Variable([1.0, -2.0])
    opt = TorchRMSprop(0.05, epsilon=1e-5)
    opt.apply_gradients([(tf.constant([0.3, -0.2]), w)])
    path = tf.train.Checkpoint(w=w, opt=opt).write(str(tmp_path / "ckpt"))
    opt.apply_gradients([(tf.constant([0.1, 0.4]), w)])
    expected = w.numpy().copy()
    # A fresh optimizer restored from the checkpoint takes the same second step.
    w2 = tf.Variable([0.0, 0.0])
    opt2 = TorchRMSprop(0.05, epsilon=1e-5)
    opt2.build([w2])
    tf.train.Checkpoint(w=w2, opt=opt2).read(path).assert_consumed()
    opt2.apply_gradients([(tf.constant([0.1, 0.4]), w2)])
    np.testing.assert_array_equal(w2.numpy(), expected)
    assert opt2.get_config()["epsilon"] == pytest.approx(1e-5)

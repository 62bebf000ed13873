"""rlkit.noisy.NoisyDense: mu without noise, factorised noise with it, a reproducible stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlkit.noisy import NoisyDense, scale_noise

P, Q = 4, 3
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def built(units=Q, inputs=P, **kwargs):
    layer = NoisyDense(units, **kwargs)
    layer(tf.zeros((1, inputs)))
    return layer


def probe(inputs=P):
    """Rows e_1..e_p and a zero row: outputs are w's rows + b, then b (linear layer)."""
    return tf.constant(np.vstack([np.eye(inputs), np.zeros((1, inputs))]), tf.float32)


def effective_weights(layer, noise=True):
    """The (w, b) a call used, read back from the layer's outputs on ``probe()``."""
    out = layer(probe(layer.mu_kernel.shape[0]), noise=noise).numpy()
    return out[:-1] - out[-1], out[-1]


def test_scale_noise():
    # f(x) = sign(x) sqrt(|x|)
    got = scale_noise(tf.constant([-4.0, -0.25, 0.0, 1.0, 9.0])).numpy()
    np.testing.assert_allclose(got, [-2.0, -0.5, 0.0, 1.0, 3.0])


def test_initial_values():
    layer = built(units=50, inputs=16)
    mu_w, mu_b = layer.mu_kernel.numpy(), layer.mu_bias.numpy()
    bound = 1.0 / np.sqrt(16)  # mu ~ U(-1/sqrt(p), 1/sqrt(p))
    assert np.abs(mu_w).max() <= bound and np.abs(mu_b).max() <= bound
    assert mu_w.std() > 0.5 * bound / np.sqrt(3)  # spread over the range (U's std: b/sqrt(3))
    np.testing.assert_allclose(layer.sigma_kernel.numpy(), 0.5 / 4)  # sigma0 / sqrt(p)
    np.testing.assert_allclose(layer.sigma_bias.numpy(), 0.5 / 4)
    np.testing.assert_allclose(built(sigma0=0.1).sigma_kernel.numpy(), 0.1 / 2)
    assert [w.name for w in layer.weights] == ["mu_kernel", "sigma_kernel", "mu_bias", "sigma_bias"]


def test_without_noise_it_is_the_dense_layer_of_mu():
    layer = built(activation="relu")
    x = np.random.default_rng(0).normal(size=(5, P)).astype(np.float32)
    want = np.maximum(x @ layer.mu_kernel.numpy() + layer.mu_bias.numpy(), 0.0)
    for _ in range(2):
        np.testing.assert_allclose(layer(tf.constant(x)).numpy(), want, atol=1e-6)
    np.testing.assert_array_equal(layer.noise_state.numpy()[1], 0)  # the stream did not move


def test_noise_changes_outputs_on_every_call_one_sample_per_batch():
    layer = built()
    x = tf.ones((3, P))  # identical rows
    outs = [layer(x, noise=True).numpy() for _ in range(3)]
    for out in outs:
        np.testing.assert_array_equal(out[0], out[1])  # the batch shares one sample
        np.testing.assert_array_equal(out[0], out[2])
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])
    assert layer.noise_state.numpy()[1] == 3  # one draw per noisy call


def test_noise_is_factorised():
    # w - mu_w = sigma_w * outer(f(eps_in), f(eps_out)) and b - mu_b = sigma_b * f(eps_out)
    layer = built(units=5, inputs=6)
    for _ in range(3):
        w, b = effective_weights(layer)
        f_out = (b - layer.mu_bias.numpy()) / layer.sigma_bias.numpy()  # [q]
        ratio = (w - layer.mu_kernel.numpy()) / layer.sigma_kernel.numpy()  # [p, q]
        f_in = ratio[:, 0] / f_out[0]  # [p]
        np.testing.assert_allclose(ratio, np.outer(f_in, f_out), rtol=1e-3, atol=1e-4)


def test_effective_weight_statistics():
    # Over draws: E[w] = mu, and with f(e) = sign(e) sqrt|e|, E[f(e)] = 0 and
    # E[f(e)^2] = E|e| = sqrt(2 / pi), so std(w_ij) = sigma_ij * sqrt(E f^2 E f^2) =
    # sigma * sqrt(2 / pi) ~ 0.80 sigma, and std(b_j) = sigma_j * (2 / pi)^(1/4) ~ 0.89 sigma.
    layer = built(units=5, inputs=6)
    x = probe(6)
    draw = tf.function(lambda: layer(x, noise=True))
    outs = np.stack([draw().numpy() for _ in range(3000)])  # [n, p + 1, q]
    ws, bs = outs[:, :-1] - outs[:, -1:], outs[:, -1]
    sigma = 0.5 / np.sqrt(6)
    np.testing.assert_allclose(ws.mean(0), layer.mu_kernel.numpy(), atol=0.02)
    np.testing.assert_allclose(bs.mean(0), layer.mu_bias.numpy(), atol=0.02)
    np.testing.assert_allclose(ws.std(0), sigma * np.sqrt(2 / np.pi), rtol=0.1)
    np.testing.assert_allclose(bs.std(0), sigma * (2 / np.pi) ** 0.25, rtol=0.1)
    # the draws are N(0, 1): eps = sign(f) f^2 from f(eps_out) = (b - mu_b) / sigma_b
    eps = np.sign(bs - layer.mu_bias.numpy()) * ((bs - layer.mu_bias.numpy()) / sigma) ** 2
    assert abs(eps.mean()) < 0.05 and abs(eps.std() - 1.0) < 0.05


def test_sigma_zero_means_no_noise():
    layer = built(sigma0=0.0)
    x = tf.ones((2, P))
    np.testing.assert_array_equal(layer(x, noise=True).numpy(), layer(x).numpy())


def test_gradients_reach_mu_and_sigma_only_through_noise():
    layer = built()
    x = tf.ones((2, P))
    with tf.GradientTape(persistent=True) as tape:
        noisy = tf.reduce_sum(layer(x, noise=True) ** 2)
        plain = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(noisy, layer.trainable_weights)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    assert tape.gradient(plain, layer.sigma_kernel) is None
    assert [w.name for w in layer.trainable_weights] == [w.name for w in layer.weights]


def test_the_stream_depends_on_the_seed_only():
    x = tf.ones((1, P))
    a, b, c = built(seed=5), built(seed=5), built(seed=6)
    for _ in range(3):
        out_a = a(x, noise=True).numpy()
        np.testing.assert_array_equal(out_a, b(x, noise=True).numpy())
        assert not np.allclose(out_a, c(x, noise=True).numpy())


def test_noise_state_is_checkpointed_and_restoring_continues_the_sequence(tmp_path):
    x = tf.ones((2, P))
    layer = built()
    for _ in range(3):
        layer(x, noise=True)
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    expected = [layer(x, noise=True).numpy() for _ in range(4)]

    other = built()  # another seed and other weights
    step = tf.function(lambda: other(x, noise=True))
    assert not np.allclose(step().numpy(), expected[0])  # traced before the restore
    tf.train.Checkpoint(layer=other).read(path).assert_consumed()
    got = [step().numpy() for _ in range(2)] + [other(x, noise=True).numpy() for _ in range(2)]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)  # bitwise, in a graph and eagerly
    assert step.experimental_get_tracing_count() == 1


def test_copying_weights_leaves_the_stream_alone():
    # get_weights / set_weights (a target-network copy) carry mu and sigma only.
    a, b = built(seed=1), built(seed=2)
    a(tf.ones((1, P)), noise=True)
    assert len(a.get_weights()) == 4 and all(w.dtype == np.float32 for w in a.get_weights())
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(b.noise_state.numpy(), [2, 0])
    x = tf.ones((1, P))
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert not np.allclose(a(x, noise=True).numpy(), b(x, noise=True).numpy())


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_no_retrace_and_fresh_noise_in_a_compiled_function(jit_compile):
    layer = built()
    twin = built(seed=layer.seed)
    twin.set_weights(layer.get_weights())

    @tf.function(jit_compile=jit_compile)
    def step(x):
        return layer(x, noise=True)

    outs = [step(tf.ones((2, P))).numpy() for _ in range(5)]
    assert step.experimental_get_tracing_count() == 1
    assert len({o.tobytes() for o in outs}) == 5
    assert layer.noise_state.numpy()[1] == 5
    # The same key and counter: the same stream (XLA's sampler is not TF's, so compare
    # with a twin compiled the same way).
    twin_step = tf.function(lambda x: twin(x, noise=True), jit_compile=jit_compile)
    for out in outs:
        np.testing.assert_array_equal(twin_step(tf.ones((2, P))).numpy(), out)


def test_mixed_precision_computes_in_bfloat16_with_float32_weights():
    layer = built(dtype="mixed_bfloat16")
    out = layer(tf.ones((2, P)), noise=True)
    assert out.dtype == tf.bfloat16
    assert all(w.dtype == "float32" for w in layer.weights)


@pytest.mark.parametrize(("kwargs", "match"), [({"units": 0}, "units"), ({"sigma0": -1}, "sigma0")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoisyDense(**{"units": 2, **kwargs})


SCRIPT = """
import hashlib, numpy as np, tensorflow as tf
from rlkit.agents.common import seed_everything
from rlkit.noisy import NoisyDense
for seed in (3, 4):
    seed_everything(seed)
    layer = NoisyDense(5, activation="relu")
    x = tf.constant(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    outs = [layer(x)] + [layer(x, noise=True) for _ in range(2)]
    step = tf.function(lambda: layer(x, noise=True))
    outs += [step() for _ in range(2)]
    digest = hashlib.sha256()
    for a in layer.get_weights() + [o.numpy() for o in outs]:
        digest.update(np.ascontiguousarray(a).tobytes())
    print("digest", seed, digest.hexdigest())
"""


def test_two_processes_with_the_same_seed_draw_the_same_weights_and_noise():
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append([line for line in out.splitlines() if line.startswith("digest")])
    assert len(results[0]) == 2
    assert results[0] == results[1]  # the same seed: identical bytes in both processes
    assert results[0][0].split()[-1] != results[0][1].split()[-1]  # another seed differs

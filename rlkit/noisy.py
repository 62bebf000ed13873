"""NoisyDense: a dense layer with learned factorised Gaussian weight noise (NoisyNets)."""

from __future__ import annotations

import random
from typing import Any

import keras
import numpy as np
import tensorflow as tf

MAX_SEED = 2**31 - 1


def scale_noise(x: tf.Tensor) -> tf.Tensor:
    """f(x) = sign(x) sqrt(|x|), the factorised-noise transform of Fortunato et al. (2018)."""
    return tf.sign(x) * tf.sqrt(tf.abs(x))


class NoisyDense(keras.layers.Layer):
    """A dense layer y = x w + b whose weights are mu + sigma * noise (Fortunato et al., 2018).

    Factorised Gaussian noise: per noisy call, eps_in ``[p]`` and eps_out ``[q]`` are drawn
    from N(0, 1) (one sample for the whole batch) and
        w = mu_w + sigma_w * outer(f(eps_in), f(eps_out)),  b = mu_b + sigma_b * f(eps_out),
    with f(x) = sign(x) sqrt(|x|). Initial values: mu ~ U(-1/sqrt(p), 1/sqrt(p)) and
    sigma = sigma0 / sqrt(p). Without noise the layer is the plain dense layer of mu, which
    is what greedy acting, evaluation and exported policies use.

    The noise is a stateless function of a key and a counter: draw k of a layer is
    ``stateless_normal(seed=(key, k), alg="philox")``. The pair lives in ``noise_state``, an
    int64 ``tf.Variable`` that is not a Keras weight:

    - it is in a ``tf.train.Checkpoint`` of the layer (or of a model holding it as an
      attribute), so a restored model continues the same noise sequence bit for bit;
    - it is not in ``weights``, ``get_weights``/``set_weights`` or ``.weights.h5`` files, so
      copying weights into a target network, or Polyak-averaging them, neither copies the
      stream (the target keeps noise of its own) nor trips on an integer variable; saved
      policies, which act without noise, do not carry it.

    The key is ``seed``, or one drawn from Python's ``random`` when the layer is made (as
    Keras initializers draw theirs), so the same ``seed_everything`` gives the same weights
    and the same noise in every process. Under ``tf.function`` (with or without
    ``jit_compile``) a noisy call reads and advances the counter inside the graph: no
    retracing, fresh noise on every call. XLA and TF kernels turn the same key and counter
    into different normal samples, so a stream continues bitwise only under the same
    compilation setting.

    Args:
        units: output width q.
        activation: a Keras activation name; None for a linear layer.
        sigma0: the initial noise scale (0.5 in the paper, for factorised noise).
        seed: the key of the noise stream (and the initializers' seed); None draws one.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).
    """

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        sigma0: float = 0.5,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"NoisyDense needs units >= 1, got {units}")
        if sigma0 < 0:
            raise ValueError(f"noisy_sigma0 must be >= 0, got {sigma0}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.activation_name = activation
        self.sigma0 = float(sigma0)
        if seed is None:
            seed = random.randint(1, MAX_SEED)
        self.seed = int(seed)
        # (key, counter): a plain tf.Variable, tracked by tf.train.Checkpoint but not by Keras.
        self.noise_state = tf.Variable(
            [self.seed, 0], dtype=tf.int64, trainable=False, name="noise_state"
        )

    def build(self, input_shape: Any) -> None:
        """Create mu and sigma for ``p = input_shape[-1]`` inputs."""
        p = int(input_shape[-1])
        bound = 1.0 / np.sqrt(p)
        sigma = keras.initializers.Constant(self.sigma0 / np.sqrt(p))

        def mu(offset: int) -> keras.initializers.Initializer:
            return keras.initializers.RandomUniform(-bound, bound, seed=self.seed + offset)

        self.mu_kernel = self.add_weight((p, self.units), initializer=mu(0), name="mu_kernel")
        self.sigma_kernel = self.add_weight((p, self.units), initializer=sigma, name="sigma_kernel")
        self.mu_bias = self.add_weight((self.units,), initializer=mu(1), name="mu_bias")
        self.sigma_bias = self.add_weight((self.units,), initializer=sigma, name="sigma_bias")

    def next_noise(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Advance the stream one draw; return f(eps_in) ``[p]`` and f(eps_out) ``[q]``."""
        p = self.mu_kernel.shape[0]
        state = self.noise_state.assign_add(tf.constant([0, 1], tf.int64))  # (key, k + 1)
        eps = tf.random.stateless_normal([p + self.units], seed=state, alg="philox")
        f = scale_noise(eps)
        return f[:p], f[p:]

    def noisy_weights(self) -> tuple[tf.Tensor, tf.Tensor]:
        """One draw of the effective weights: w ``[p, q]`` and b ``[q]`` (advances the stream)."""
        f_in, f_out = self.next_noise()
        dtype = self.compute_dtype
        f_in, f_out = tf.cast(f_in, dtype), tf.cast(f_out, dtype)
        kernel = tf.cast(self.mu_kernel, dtype) + tf.cast(self.sigma_kernel, dtype) * (
            f_in[:, None] * f_out[None, :]
        )
        bias = tf.cast(self.mu_bias, dtype) + tf.cast(self.sigma_bias, dtype) * f_out
        return kernel, bias

    def call(self, inputs: tf.Tensor, noise: bool = False) -> tf.Tensor:
        """``activation(inputs @ w + b)`` ``[B, q]``, noisy weights if ``noise`` (a Python bool)."""
        if noise:
            kernel, bias = self.noisy_weights()
        else:
            kernel = tf.cast(self.mu_kernel, self.compute_dtype)
            bias = tf.cast(self.mu_bias, self.compute_dtype)
        return self.activation(tf.matmul(inputs, kernel) + bias)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        """``[..., units]``."""
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (Keras' layer config)."""
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation_name,
            "sigma0": self.sigma0,
            "seed": self.seed,
        }

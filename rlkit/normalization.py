"""Running statistics for observation and reward normalization (as SB3's VecNormalize does).

``RunningMeanStd`` keeps a mean, a variance and a count in ``tf.Variable``s, merged batch by
batch with Chan et al.'s parallel formula, so they live in checkpoints and saved policies
like any weight. ``ObservationNormalizer`` is the Keras layer a network puts in front of its
torso: ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with the statistics frozen
unless the agent's update calls ``update``. ``scaled_rewards`` divides rewards by the
running std of the discounted return, the scale VecNormalize gives rewards.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from rlkit.numpy_mlp import CLIP, EPSILON

INITIAL_COUNT = 1e-4  # VecNormalize's: the first batch all but replaces the initial 0 / 1


def merge_moments(
    mean: Any, var: Any, count: Any, batch_mean: Any, batch_var: Any, batch_count: Any
) -> tuple[Any, Any, Any]:
    """Mean, variance and count of two samples from their own (Chan et al., 1979).

    Args:
        mean: mean of the first sample.
        var: its (population) variance.
        count: its size.
        batch_mean: mean of the second sample.
        batch_var: its variance.
        batch_count: its size.

    Returns:
        ``(mean, var, count)`` of the union.
    """
    total = count + batch_count
    delta = batch_mean - mean
    new_mean = mean + delta * batch_count / total
    m2 = var * count + batch_var * batch_count + tf.square(delta) * count * batch_count / total
    return new_mean, m2 / total, total


class RunningMeanStd(keras.layers.Layer):
    """Running mean and variance of ``shape``-sized values (non-trainable weights).

    Args:
        shape: the shape of one value (``()`` for scalars).
    """

    def __init__(self, shape: tuple[int, ...] = (), **kwargs: Any) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.value_shape = tuple(shape)
        self.mean = self.add_weight(
            shape=self.value_shape, initializer="zeros", trainable=False, name="mean"
        )
        self.var = self.add_weight(
            shape=self.value_shape, initializer="ones", trainable=False, name="var"
        )
        self.count = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(INITIAL_COUNT),
            trainable=False,
            name="count",
        )

    def update(self, values: tf.Tensor, mask: tf.Tensor) -> None:
        """Merge the rows of ``values [B, *shape]`` where ``mask [B]`` is 1 into the statistics."""
        values = tf.cast(values, tf.float32)
        mask = tf.reshape(tf.cast(mask, tf.float32), [-1] + [1] * len(self.value_shape))
        n = tf.reduce_sum(mask)
        safe_n = tf.maximum(n, 1.0)
        batch_mean = tf.reduce_sum(values * mask, axis=0) / safe_n
        batch_var = tf.reduce_sum(tf.square(values - batch_mean) * mask, axis=0) / safe_n
        mean, var, count = merge_moments(self.mean, self.var, self.count, batch_mean, batch_var, n)
        keep = n > 0  # an all-masked batch changes nothing
        self.mean.assign(tf.where(keep, mean, self.mean))
        self.var.assign(tf.where(keep, var, self.var))
        self.count.assign(tf.where(keep, count, self.count))


class ObservationNormalizer(RunningMeanStd):
    """``clip((obs - mean) / sqrt(var + eps), -10, 10)`` with running statistics."""

    def call(self, obs: tf.Tensor) -> tf.Tensor:
        """Normalized observations ``[B, *shape]`` (float32)."""
        x = (tf.cast(obs, tf.float32) - self.mean) / tf.sqrt(self.var + EPSILON)
        return tf.clip_by_value(x, -CLIP, CLIP)


def discounted_returns_running(
    rewards: tf.Tensor, ends: tf.Tensor, carry: tf.Tensor, gamma: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """R_t = gamma R_{t-1} + r_t along a ``[T, N]`` rollout, restarting after episode ends.

    The running discounted return VecNormalize tracks per env (``returns * gamma +
    reward``, zeroed after a step that ends an episode), continued across rollouts by
    ``carry``.

    Args:
        rewards: ``[T, N]`` (0 on autoreset rows).
        ends: ``[T, N]`` 1 where row t ends an episode (terminated or truncated).
        carry: ``[N]`` R of each env after the previous rollout (0 where it had just ended).
        gamma: the discount.

    Returns:
        ``(R [T, N], carry for the next rollout [N])``.
    """
    starts = tf.concat([tf.zeros_like(ends[:1]), ends[:-1]], axis=0)  # R restarts from 0

    def step(previous: tf.Tensor, row: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        reward, start = row
        return gamma * previous * (1.0 - start) + reward

    returns = tf.scan(step, (rewards, starts), initializer=carry)
    return returns, returns[-1] * (1.0 - ends[-1])


class RewardScaler(keras.layers.Layer):
    """Scales rewards by the running std of the discounted return, then clips to +-10.

    Holds the return statistics and each env's running return (``carry``, resized to the
    rollout's env count when it changes) as non-trainable weights, so checkpoints keep them.

    Args:
        gamma: the discount of the return whose scale is tracked.
    """

    def __init__(self, gamma: float, **kwargs: Any) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.gamma = float(gamma)
        self.stats = RunningMeanStd(name="return_stats")
        self.carry = tf.Variable(
            tf.zeros([0]), shape=tf.TensorShape([None]), trainable=False, name="carry"
        )

    def scale(self, rewards: tf.Tensor, ends: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
        """Rewards ``[T, N]`` divided by the return std (statistics updated first).

        Args:
            rewards: ``[T, N]``.
            ends: ``[T, N]`` 1 where row t ends an episode.
            valid: ``[T, N]`` 0 on autoreset rows (left out of the statistics).
        """
        envs = tf.shape(rewards)[1]
        carry = self.carry.read_value()
        carry = tf.cond(tf.equal(tf.shape(carry)[0], envs), lambda: carry, lambda: tf.zeros([envs]))
        returns, last = discounted_returns_running(rewards * valid, ends, carry, self.gamma)
        self.carry.assign(last)
        self.stats.update(tf.reshape(returns, [-1]), tf.reshape(valid, [-1]))
        scaled = rewards / tf.sqrt(self.stats.var + EPSILON)
        return tf.clip_by_value(scaled, -CLIP, CLIP)

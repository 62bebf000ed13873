"""Forward passes of rlkit's MLP networks in plain numpy, from their spec and weights.

No TensorFlow here: ``rlkit.networks`` runs small MLPs through these functions to act
without a TF call per step, and Ray rollout workers (``rlkit.distributed``) act with them
without importing TensorFlow at all. ``params`` is the list of ``numpy_variables()`` of
the network: the observation statistics (mean, var) if it normalizes them, then
(kernel, bias) of each torso layer, then of the second (value) torso when
the network has one, then of each head, in ``head_layers()`` order, then a Gaussian
policy's log-std.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ACTIVATIONS = ("relu", "tanh", "elu")


def activation(name: str, x: np.ndarray) -> np.ndarray:
    """The hidden activation ``name`` applied to ``x``."""
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))
    raise ValueError(f"no numpy path for activation {name!r}")


EPSILON = 1e-8  # observation normalization: (x - mean) / sqrt(var + EPSILON), then
CLIP = 10.0  # clipped to +-CLIP (rlkit.normalization.ObservationNormalizer)


def normalize(obs: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """The numpy twin of ``rlkit.normalization.ObservationNormalizer``."""
    x = (np.asarray(obs, np.float32) - mean) / np.sqrt(var + np.float32(EPSILON))
    return np.clip(x, -CLIP, CLIP)


def torso(
    obs: np.ndarray,
    params: list[np.ndarray],
    hidden_sizes: tuple[int, ...] | list[int],
    activation_name: str,
    i: int = 0,
) -> tuple[np.ndarray, int]:
    """MLP features ``[B, F]`` from ``params[i:]``; also the index just after the torso."""
    x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    for _ in hidden_sizes:
        x = activation(activation_name, x @ params[i] + params[i + 1])
        i += 2
    return x, i


def dueling_q_values(value: np.ndarray, advantage: np.ndarray) -> np.ndarray:
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'): ``[B, 1]`` and ``[B, A]`` to ``[B, A]``."""
    return value + advantage - advantage.mean(axis=-1, keepdims=True)


def actor_critic_head_index(num_params: int, log_std_dim: int = 0) -> int:
    """Where an actor-critic's heads start in its params (``num_params`` arrays).

    The policy kernel and bias come first, then the value kernel and bias, then the
    Gaussian's log-std if ``log_std_dim``.
    """
    return num_params - 4 - (1 if log_std_dim else 0)


def action_scores(spec: dict[str, Any], params: list[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """What an MLP policy acts on: Q-values, or an actor-critic's policy head, ``[B, A]``.

    Args:
        spec: the network's ``spec`` (``kind``, ``hidden_sizes``, ``activation``, ...).
        params: its ``numpy_variables()`` as numpy arrays.
        obs: observations ``[B, *obs_shape]``.
    """
    sizes, act = spec["hidden_sizes"], spec["activation"]
    start = 0
    if spec.get("normalize_obs"):
        obs, start = normalize(obs, params[0], params[1]), 2
    x, i = torso(obs, params, sizes, act, start)
    kind = spec["kind"]
    if kind == "q":
        return x @ params[i] + params[i + 1]
    if kind == "dueling_q":
        return dueling_q_values(x @ params[i] + params[i + 1], x @ params[i + 2] + params[i + 3])
    if kind == "actor_critic":
        head = actor_critic_head_index(len(params), spec.get("log_std_dim", 0))
        return x @ params[head] + params[head + 1]
    raise ValueError(f"no numpy path for network kind {kind!r}")

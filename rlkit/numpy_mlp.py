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
    """Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'): ``[B, 1]`` and ``[B, A]`` to ``[B, A]``.

    Also per atom: ``[B, 1, K]`` and ``[B, A, K]`` to ``[B, A, K]`` (the mean over axis 1).
    """
    return value + advantage - advantage.mean(axis=1, keepdims=True)


def c51_support(v_min: float, v_max: float, num_atoms: int) -> np.ndarray:
    """C51's atoms ``[K]``: ``num_atoms`` evenly spaced from v_min to v_max, float32."""
    return np.linspace(v_min, v_max, num_atoms).astype(np.float32)


def expected_q(
    distributional: str, dist: np.ndarray, support: np.ndarray | None = None
) -> np.ndarray:
    """Q-values ``[B, A]`` from C51 logits (and their ``support``) or QR quantiles ``[B, A, K]``."""
    if distributional == "c51":
        e = np.exp(dist - dist.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)) @ support
    if distributional == "qr":
        return dist.mean(axis=-1)
    raise ValueError(f"unknown distributional {distributional!r}")


def q_values(
    x: np.ndarray,
    params: list[np.ndarray],
    i: int,
    *,
    dueling: bool,
    num_actions: int,
    distributional: str | None = None,
    num_atoms: int = 1,
    support: np.ndarray | None = None,
) -> np.ndarray:
    """Q-values ``[B, A]`` from torso features ``x`` and the Q head(s) in ``params[i:]``.

    The Q head (or the value and advantage heads of a dueling network) give one number
    per action, or ``num_atoms`` C51 logits / QR quantiles per action whose expectation is
    Q (C51 needs its ``support``).
    """
    b, a, k = len(x), num_actions, num_atoms
    if dueling:
        value = x @ params[i] + params[i + 1]  # [B, K]
        advantage = x @ params[i + 2] + params[i + 3]  # [B, A * K]
        if distributional is None:
            return dueling_q_values(value, advantage)
        out = dueling_q_values(value.reshape(b, 1, k), advantage.reshape(b, a, k))
    else:
        out = x @ params[i] + params[i + 1]  # [B, A * K]
        if distributional is None:
            return out
        out = out.reshape(b, a, k)
    return expected_q(distributional, out, support)


def actor_critic_head_index(num_params: int, log_std_dim: int = 0) -> int:
    """Where an actor-critic's heads start in its params (``num_params`` arrays).

    The policy kernel and bias come first, then the value kernel and bias, then the
    Gaussian's log-std if ``log_std_dim``.
    """
    return num_params - 4 - (1 if log_std_dim else 0)


def action_scores(spec: dict[str, Any], params: list[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """What an MLP policy acts on: Q-values (expected, if distributional), or logits ``[B, A]``.

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
    if kind in ("q", "dueling_q"):
        distributional = spec.get("distributional")
        num_atoms = int(spec.get("num_atoms", 1)) if distributional else 1
        support = None
        if distributional == "c51":
            support = c51_support(spec["v_min"], spec["v_max"], num_atoms)
        return q_values(
            x,
            params,
            i,
            dueling=kind == "dueling_q",
            num_actions=int(spec["num_actions"]),
            distributional=distributional,
            num_atoms=num_atoms,
            support=support,
        )
    if kind == "actor_critic":
        head = actor_critic_head_index(len(params), spec.get("log_std_dim", 0))
        return x @ params[head] + params[head + 1]
    raise ValueError(f"no numpy path for network kind {kind!r}")

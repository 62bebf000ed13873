"""Forward passes of rlkit's small networks (MLPs, the MinAtar CNN) in plain numpy.

No TensorFlow here: ``rlkit.networks`` runs small networks through these functions to act
without a TF call per step, and Ray rollout workers (``rlkit.distributed``) act with them
without importing TensorFlow at all. ``params`` is the list of ``numpy_variables()`` of
the network: the observation statistics (mean, var) if it normalizes them, then
(kernel, bias) of each torso layer with weights (the MinAtar torso: the convolution's
kernel ``[3, 3, C, 16]`` and bias, then the dense layer's), then of the second (value)
torso when the network has one, then of each head, in ``head_layers()`` order; a noisy
layer's pair is its mean weights (mu). Then, for a noisy network, (sigma kernel,
sigma bias) of each noisy layer in the same order, or a Gaussian policy's log-std.

The layers are read in order from an index ``i`` into ``params``; a ``Linear`` function
``linear(x, i)`` computes one dense layer, by default ``x @ params[i] + params[i + 1]``
(``rlkit.networks`` passes one that adds noise to the noisy layers).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ACTIVATIONS = ("relu", "tanh", "elu")
TORSOS = ("mlp", "minatar_cnn")  # the torsos with a numpy path (not the Nature CNN)
Linear = Callable[[np.ndarray, int], np.ndarray]  # (x [B, p], i) -> [B, q]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run numpy's matrix products on one BLAS thread meanwhile (the training loop's choice).

    OpenBLAS splits a product of more than ~100 rows over its threads. For these small
    networks that buys nothing, and on a busy machine the threads wait for a core: acting
    for 128 CartPole envs took ~7.5 ms a step with OpenBLAS's default threads and ~0.25 ms
    with one, and A2C trained at 12.8k env steps/s against 195k (benchmarks/README.md,
    "BLAS threads"). ``OPENBLAS_NUM_THREADS`` only works before numpy is imported, so the
    limit is set at run time (threadpoolctl) and lifted on exit. TensorFlow's own thread
    pools are not affected (``--threads`` sets those).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


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


def dense(params: list[np.ndarray]) -> Linear:
    """The plain dense layers of ``params``: ``linear(x, i) = x @ params[i] + params[i + 1]``."""

    def linear(x: np.ndarray, i: int) -> np.ndarray:
        return x @ params[i] + params[i + 1]

    return linear


def scale_noise(x: np.ndarray) -> np.ndarray:
    """f(x) = sign(x) sqrt(|x|), the factorised-noise transform (``rlkit.noisy``)."""
    return np.sign(x) * np.sqrt(np.abs(x))


def noisy_dense(
    x: np.ndarray,
    mu_w: np.ndarray,
    mu_b: np.ndarray,
    sigma_w: np.ndarray,
    sigma_b: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """A noisy dense layer ``[B, p] -> [B, q]`` with one fresh factorised-noise draw.

    Draws eps_in = ``rng.standard_normal(p, dtype=float32)``, then eps_out (``q`` of them),
    one draw for the whole batch, and computes x w + b for
    w = mu_w + sigma_w * outer(f(eps_in), f(eps_out)), b = mu_b + sigma_b * f(eps_out)
    in the factorised form, without making the ``[p, q]`` matrix:
        y = x mu_w + ((x * f(eps_in)) sigma_w) * f(eps_out) + mu_b + sigma_b * f(eps_out)
    """
    p, q = mu_w.shape
    f_in = scale_noise(rng.standard_normal(p, dtype=np.float32))  # [p]
    f_out = scale_noise(rng.standard_normal(q, dtype=np.float32))  # [q]
    return x @ mu_w + ((x * f_in) @ sigma_w) * f_out + mu_b + sigma_b * f_out


def torso(
    obs: np.ndarray,
    params: list[np.ndarray],
    hidden_sizes: tuple[int, ...] | list[int],
    activation_name: str,
    i: int = 0,
    linear: Linear | None = None,
) -> tuple[np.ndarray, int]:
    """MLP features ``[B, F]`` from ``params[i:]``; also the index just after the torso."""
    linear = linear or dense(params)
    x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    for _ in hidden_sizes:
        x = activation(activation_name, linear(x, i))
        i += 2
    return x, i


@functools.lru_cache(maxsize=16)
def im2col_index(h: int, w: int, c: int, kh: int, kw: int) -> np.ndarray:
    """For each kh x kw window of an ``[H, W, C]`` image, where its values sit in the image.

    ``[Ho * Wo, kh * kw * C]`` indices into the flattened image (Ho = H - kh + 1,
    Wo = W - kw + 1), each row in the (kh, kw, C) order of a Keras kernel's first axes.
    Made once per shape: gathering with it costs less than a new window view per call.
    """
    image = np.arange(h * w * c).reshape(h, w, c)
    windows = sliding_window_view(image, (kh, kw), axis=(0, 1))  # [Ho, Wo, C, kh, kw]
    index = windows.transpose(0, 1, 3, 4, 2).reshape(-1, kh * kw * c)
    index.flags.writeable = False
    return index


def conv2d_valid(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras' ``Conv2D`` with stride 1 and 'valid' padding, NHWC, as one matrix product.

    im2col: every k x k window of ``x`` ``[B, H, W, C]`` becomes a row ``[k * k * C]`` in
    the order of ``kernel`` ``[k, k, C, F]`` reshaped to ``[k * k * C, F]``; the output is
    ``[B, H - k + 1, W - k + 1, F]``.
    """
    kh, kw, c, f = kernel.shape
    b, h, w = x.shape[:3]
    ho, wo = h - kh + 1, w - kw + 1
    cols = x.reshape(b, -1)[:, im2col_index(h, w, c, kh, kw)]  # [B, Ho * Wo, kh * kw * C]
    cols = cols.reshape(b * ho * wo, kh * kw * c)
    return (cols @ kernel.reshape(kh * kw * c, f) + bias).reshape(b, ho, wo, f)


def minatar_torso(
    obs: np.ndarray, params: list[np.ndarray], i: int = 0, linear: Linear | None = None
) -> tuple[np.ndarray, int]:
    """MinAtar CNN features ``[B, F]`` from boolean grids ``[B, 10, 10, C]`` and ``params[i:]``.

    relu(conv 3x3 'valid') ``[B, 8, 8, 16]``, flattened in Keras' (NHWC) order, then
    relu(dense); returns the features and the index just after the torso.
    """
    linear = linear or dense(params)
    x = np.asarray(obs, dtype=np.float32)  # booleans to 0/1, no scaling
    x = np.maximum(conv2d_valid(x, params[i], params[i + 1]), 0.0)  # [B, 8, 8, 16]
    x = x.reshape(len(x), -1)  # [B, 1024]
    return np.maximum(linear(x, i + 2), 0.0), i + 4


def features(
    torso_name: str,
    obs: np.ndarray,
    params: list[np.ndarray],
    hidden_sizes: tuple[int, ...] | list[int],
    activation_name: str,
    i: int = 0,
    linear: Linear | None = None,
) -> tuple[np.ndarray, int]:
    """Features ``[B, F]`` of the torso ``torso_name`` (``"mlp"`` or ``"minatar_cnn"``).

    Also returns the index in ``params`` just after the torso.
    """
    if torso_name == "mlp":
        return torso(obs, params, hidden_sizes, activation_name, i, linear)
    if torso_name == "minatar_cnn":
        return minatar_torso(obs, params, i, linear)
    raise ValueError(f"no numpy path for torso {torso_name!r}; those with one: {TORSOS}")


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
    linear: Linear | None = None,
) -> np.ndarray:
    """Q-values ``[B, A]`` from torso features ``x`` and the Q head(s) in ``params[i:]``.

    The Q head (or the value and advantage heads of a dueling network, in that order)
    give one number per action, or ``num_atoms`` C51 logits / QR quantiles per action whose
    expectation is Q (C51 needs its ``support``).
    """
    linear = linear or dense(params)
    b, a, k = len(x), num_actions, num_atoms
    if dueling:
        value = linear(x, i)  # [B, K]
        advantage = linear(x, i + 2)  # [B, A * K]
        if distributional is None:
            return dueling_q_values(value, advantage)
        out = dueling_q_values(value.reshape(b, 1, k), advantage.reshape(b, a, k))
    else:
        out = linear(x, i)  # [B, A * K]
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
    """What a policy acts on: Q-values (expected, if distributional), or logits ``[B, A]``.

    Greedy: a noisy network's mean weights, no noise.

    Args:
        spec: the network's ``spec`` (``kind``, ``torso``, ``hidden_sizes``, ...).
        params: its ``numpy_variables()`` as numpy arrays.
        obs: observations ``[B, *obs_shape]``.
    """
    return action_scores_and_features(spec, params, obs)[0]


def action_scores_and_features(
    spec: dict[str, Any], params: list[np.ndarray], obs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``action_scores`` and the torso's features ``[B, F]`` they were computed from.

    gSDE's exploration noise scales with an actor-critic's policy features.
    """
    sizes, act = spec["hidden_sizes"], spec["activation"]
    start = 0
    if spec.get("normalize_obs"):
        obs, start = normalize(obs, params[0], params[1]), 2
    x, i = features(spec.get("torso", "mlp"), obs, params, sizes, act, start)
    kind = spec["kind"]
    if kind in ("q", "dueling_q"):
        distributional = spec.get("distributional")
        num_atoms = int(spec.get("num_atoms", 1)) if distributional else 1
        support = None
        if distributional == "c51":
            support = c51_support(spec["v_min"], spec["v_max"], num_atoms)
        scores = q_values(
            x,
            params,
            i,
            dueling=kind == "dueling_q",
            num_actions=int(spec["num_actions"]),
            distributional=distributional,
            num_atoms=num_atoms,
            support=support,
        )
        return scores, x
    if kind == "actor_critic":
        head = actor_critic_head_index(len(params), spec.get("log_std_dim", 0))
        return x @ params[head] + params[head + 1], x
    raise ValueError(f"no numpy path for network kind {kind!r}")

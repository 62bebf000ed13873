"""Action distributions of the policy-gradient agents, one per kind of gymnasium action space.

An ``ActionDist`` is the JSON-able description of how a policy network's outputs become
actions:

================  ===================  ==============================================
action space      kind                 network outputs ``params [B, P]``
================  ===================  ==============================================
``Discrete(A)``   ``categorical``      logits, P = A
``MultiDiscrete`` ``multi_categorical`` logits of each sub-action, P = sum(nvec)
``MultiBinary(D)`` ``bernoulli``       logits, P = D
``Box`` (D dims)  ``gaussian``         means, P = D; a learned state-independent log-std
================  ===================  ==============================================

A Gaussian policy may instead explore with gSDE (generalized state-dependent exploration,
Raffin et al., 2022, as Stable-Baselines3's ``use_sde``): the log-std is a matrix ``[F, D]``
over the policy's F last hidden features phi(s), an exploration matrix ``M [F, D]`` with
entries ~ N(0, exp(log_std)^2) is drawn per env and kept for several steps
(``StateDependentNoise``), and the action is ``mu(s) + phi(s) M``: the noise varies smoothly
with the state instead of step by step, which suits physical systems (motors integrate
white noise away). Given phi(s), the action is Gaussian with std
``sigma_d(s) = sqrt(sum_f phi_f(s)^2 exp(2 log_std[f, d]))``; that is the distribution
learned from, with phi(s) held fixed (no gradient through the features into the std).

Inside compiled updates ``log_prob_entropy`` builds the ``tfp.distributions`` of each kind
(and, for a tanh-squashed Gaussian, adds the change-of-variables correction by hand).
Acting uses the numpy twin (``sample``/``mode``), which needs no TensorFlow: small MLP
policies act without a TF call per step, and Ray workers act without importing TF.

Actions of a Gaussian policy: by default the sample itself is what the agent stores and
learns from, and the runner clips what it sends to the env to the space's bounds
(``clip_to_space``; an infinite bound is no bound). With ``squash`` the sample u goes
through ``low + (tanh(u) + 1) (high - low) / 2``, always inside the bounds, and the
stored action is that squashed one (its log-probability includes the log-det of the
transform). The deterministic action is the mode: the most likely action per
(sub-)categorical, ``logit > 0`` per binary, the mean for a Gaussian (clipped or squashed).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.errors import IncompatibleEnvError
from rlkit.policies import sample_categorical

KINDS = ("categorical", "multi_categorical", "bernoulli", "gaussian")
# A squashed action at the bound itself has an infinite pre-image: log-probabilities are
# computed for actions at most this far inside [-1, 1] (in the squashed scale).
SQUASH_EPS = 1e-6
LOG_STD_BOUNDS = (-20.0, 2.0)  # the Gaussian's std is clamped to [2e-9, 7.4] when used
SDE_VARIANCE_EPS = 1e-6  # gSDE: added to sigma_d(s)^2, which is 0 where the features are


@dataclasses.dataclass(frozen=True)
class ActionDist:
    """How a policy's network outputs become actions of one action space.

    Attributes:
        kind: one of ``KINDS``.
        sizes: categories per sub-action (``categorical``: ``(A,)``,
            ``multi_categorical``: ``nvec``), or the number of binary/continuous dims.
        action_shape: the shape of one action as the env takes it.
        low: ``gaussian``: lower bounds per (flattened) dim, None where unbounded.
        high: ``gaussian``: upper bounds per dim, None where unbounded.
        squash: ``gaussian``: tanh-squash samples into the bounds instead of clipping.
    """

    kind: str
    sizes: tuple[int, ...]
    action_shape: tuple[int, ...] = ()
    low: tuple[float | None, ...] | None = None
    high: tuple[float | None, ...] | None = None
    squash: bool = False

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_space(
        cls, space: gym.spaces.Space, *, squash: bool = False, agent: str = ""
    ) -> ActionDist:
        """The distribution for ``space``.

        Args:
            space: the single-env action space.
            squash: tanh-squash a ``Box`` policy's samples into the bounds.
            agent: the agent's name, for error messages.

        Raises:
            IncompatibleEnvError: for spaces no policy-gradient agent handles (``Dict``,
                ``Tuple``, ``Text``, ...), a ``Discrete`` space not starting at 0, or
                ``squash`` with an unbounded ``Box``.
        """
        who = agent or "a policy-gradient agent"
        if isinstance(space, gym.spaces.Discrete):
            if int(space.start) != 0:
                raise IncompatibleEnvError(
                    f"{who} needs Discrete actions numbered from 0, but the env's space starts "
                    f"at {space.start}"
                )
            return cls("categorical", (int(space.n),))
        if isinstance(space, gym.spaces.MultiDiscrete):
            if np.any(np.asarray(space.start) != 0):
                raise IncompatibleEnvError(
                    f"{who} needs MultiDiscrete actions numbered from 0, but the env's space "
                    f"starts at {space.start}"
                )
            nvec = tuple(int(n) for n in np.asarray(space.nvec).ravel())
            return cls("multi_categorical", nvec, tuple(space.shape))
        if isinstance(space, gym.spaces.MultiBinary):
            dims = int(np.prod(space.shape))
            return cls("bernoulli", (dims,), tuple(space.shape))
        if isinstance(space, gym.spaces.Box):
            if not np.issubdtype(space.dtype, np.floating):
                raise IncompatibleEnvError(
                    f"{who} needs a float Box action space, but the env's has dtype {space.dtype}"
                )
            low = tuple(_bound(v) for v in np.asarray(space.low, np.float64).ravel())
            high = tuple(_bound(v) for v in np.asarray(space.high, np.float64).ravel())
            if squash and (None in low or None in high):
                raise IncompatibleEnvError(
                    f"squash_actions needs finite action bounds, but the env's are "
                    f"[{space.low}, {space.high}]; set squash_actions=false"
                )
            return cls("gaussian", (len(low),), tuple(space.shape), low, high, bool(squash))
        raise IncompatibleEnvError(
            f"{who} cannot act in the action space {space}: no rlkit agent handles it; "
            "a2c, ppo and reinforce take "
            "Discrete, MultiDiscrete, MultiBinary and Box actions, the DQN family Discrete "
            "ones (flatten Dict/Tuple actions with a wrapper of your own)"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able description (``from_json`` reads it back)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionDist:
        """The distribution ``to_json`` described.

        Raises:
            ValueError: if the description is not one ``to_json`` writes.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) - names or data.get("kind") not in KINDS:
            raise ValueError(f"not an action distribution description: {data!r}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    # -- sizes -----------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Width of the policy head: logits or means."""
        return int(sum(self.sizes))

    @property
    def log_std_dim(self) -> int:
        """Size of the learned log-std (Gaussian), 0 otherwise."""
        return self.sizes[0] if self.kind == "gaussian" else 0

    @property
    def action_dtype(self) -> np.dtype:
        """Dtype of stored actions: int64 (discrete kinds) or float32 (Gaussian)."""
        return np.dtype(np.float32 if self.kind == "gaussian" else np.int64)

    @property
    def bounded(self) -> bool:
        """Whether a Gaussian's actions have finite bounds in every dim."""
        return self.kind == "gaussian" and None not in (self.low or ()) + (self.high or ())

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low = np.array([-np.inf if v is None else v for v in self.low or ()], np.float32)
        high = np.array([np.inf if v is None else v for v in self.high or ()], np.float32)
        return low, high

    # -- numpy: acting ----------------------------------------------------------------------
    def sample(
        self,
        params: np.ndarray,
        rng: np.random.Generator,
        log_std: np.ndarray | None = None,
        features: np.ndarray | None = None,
        noise: np.ndarray | None = None,
    ) -> np.ndarray:
        """Sample one action per row of ``params [B, P]`` (the action the agent stores).

        Args:
            params: the policy head's outputs.
            rng: the generator to draw from.
            log_std: the Gaussian's learned log-std: ``[D]``, or ``[F, D]`` with gSDE.
            features: gSDE: the policy features phi(s) ``[B, F]``.
            noise: gSDE: each row's exploration matrix ``[B, F, D]``
                (``StateDependentNoise``); without it, a fresh independent draw from
                N(mu(s), sigma(s)^2), the distribution the policy learns.

        Returns:
            ``[B, *action_shape]`` actions, ``action_dtype``.
        """
        params = np.asarray(params, np.float32)
        if self.kind == "categorical":
            return sample_categorical(params, rng)
        if self.kind == "multi_categorical":
            blocks = np.split(params, np.cumsum(self.sizes)[:-1], axis=-1)
            actions = np.stack([sample_categorical(b, rng) for b in blocks], axis=-1)
            return actions.reshape(len(params), *self.action_shape)
        if self.kind == "bernoulli":
            p = 1.0 / (1.0 + np.exp(-params))
            actions = (rng.random(params.shape) < p).astype(np.int64)
            return actions.reshape(len(params), *self.action_shape)
        if noise is not None:
            u = params + np.einsum("bf,bfd->bd", np.asarray(features, np.float32), noise)
        else:
            std = gaussian_std(log_std, features)
            u = params + std * rng.standard_normal(params.shape, dtype=np.float32)
        return self._to_actions(u)

    def mode(self, params: np.ndarray) -> np.ndarray:
        """The most likely action of each row (the mean for a Gaussian), ready for the env."""
        params = np.asarray(params, np.float32)
        if self.kind == "categorical":
            return np.argmax(params, axis=-1)
        if self.kind == "multi_categorical":
            blocks = np.split(params, np.cumsum(self.sizes)[:-1], axis=-1)
            actions = np.stack([np.argmax(b, axis=-1) for b in blocks], axis=-1)
            return actions.reshape(len(params), *self.action_shape)
        if self.kind == "bernoulli":
            return (params > 0).astype(np.int64).reshape(len(params), *self.action_shape)
        actions = self._to_actions(params)
        if not self.squash:
            low, high = self._bounds()
            actions = np.clip(
                actions, low.reshape(self.action_shape), high.reshape(self.action_shape)
            )
        return actions

    def _to_actions(self, u: np.ndarray) -> np.ndarray:
        """Gaussian samples ``[B, D]`` as actions ``[B, *action_shape]`` (squashed if asked)."""
        if self.squash:
            low, high = self._bounds()
            y = np.clip(np.tanh(u), -1.0 + SQUASH_EPS, 1.0 - SQUASH_EPS)
            u = low + (y + 1.0) * 0.5 * (high - low)
        return u.astype(np.float32).reshape(len(u), *self.action_shape)

    # -- TensorFlow: learning ----------------------------------------------------------------
    def log_prob_entropy(
        self, params: Any, actions: Any, log_std: Any = None, features: Any = None
    ) -> tuple[Any, Any]:
        """``(log pi(a|s) [B], entropy [B])`` of stored actions, inside a compiled update.

        Args:
            params: the policy head's outputs ``[B, P]`` (float32).
            actions: stored actions ``[B, *action_shape]``.
            log_std: the Gaussian's learned log-std: ``[D]``, or ``[F, D]`` with gSDE.
            features: gSDE: the policy features ``[B, F]`` (no gradient flows into them
                from here).

        Returns:
            The log-probabilities and the entropies. A squashed Gaussian has no closed-form
            entropy: its entry is ``-log pi(a|s)`` of the given actions, a one-sample
            estimate (as Stable-Baselines3 does).
        """
        import tensorflow as tf
        import tensorflow_probability as tfp

        from rlkit.losses import categorical_log_prob

        tfd = tfp.distributions
        batch = tf.shape(params)[0]
        if self.kind == "categorical":
            return categorical_log_prob(params, actions), tfd.Categorical(logits=params).entropy()
        if self.kind == "multi_categorical":
            flat = tf.reshape(actions, [batch, len(self.sizes)])
            blocks = tf.split(params, list(self.sizes), axis=-1)
            log_pi = tf.add_n([categorical_log_prob(b, flat[:, k]) for k, b in enumerate(blocks)])
            entropy = tf.add_n([tfd.Categorical(logits=b).entropy() for b in blocks])
            return log_pi, entropy
        if self.kind == "bernoulli":
            flat = tf.reshape(tf.cast(actions, tf.int32), [batch, self.sizes[0]])
            dist = tfd.Independent(tfd.Bernoulli(logits=params), reinterpreted_batch_ndims=1)
            return dist.log_prob(flat), dist.entropy()
        log_std = tf.clip_by_value(log_std, *LOG_STD_BOUNDS)
        if features is None:
            scale = tf.exp(log_std) * tf.ones_like(params)
        else:
            phi = tf.stop_gradient(tf.cast(features, tf.float32))
            scale = tf.sqrt(tf.square(phi) @ tf.exp(2.0 * log_std) + SDE_VARIANCE_EPS)
        normal = tfd.Independent(tfd.Normal(loc=params, scale=scale), reinterpreted_batch_ndims=1)
        flat = tf.reshape(tf.cast(actions, tf.float32), [batch, self.sizes[0]])
        if not self.squash:
            return normal.log_prob(flat), normal.entropy()
        low, high = (tf.constant(b) for b in self._bounds())
        y = tf.clip_by_value(
            (flat - low) / (high - low) * 2.0 - 1.0, -1.0 + SQUASH_EPS, 1.0 - SQUASH_EPS
        )
        u = tf.atanh(y)
        log_pi = normal.log_prob(u) - squash_log_det(u, high - low)
        return log_pi, -log_pi

    def tf_mode(self, params: Any) -> Any:
        """The deterministic action of each row in TensorFlow (what exported policies serve)."""
        import tensorflow as tf

        batch = tf.shape(params)[0]
        shape = tf.concat([[batch], tf.constant(self.action_shape, tf.int32)], 0)
        if self.kind == "categorical":
            return tf.argmax(params, axis=-1, output_type=tf.int64)
        if self.kind == "multi_categorical":
            blocks = tf.split(params, list(self.sizes), axis=-1)
            modes = [tf.argmax(b, axis=-1, output_type=tf.int64) for b in blocks]
            return tf.reshape(tf.stack(modes, axis=-1), shape)
        if self.kind == "bernoulli":
            return tf.reshape(tf.cast(params > 0, tf.int64), shape)
        low, high = (tf.constant(b) for b in self._bounds())
        if self.squash:
            actions = low + (tf.tanh(params) + 1.0) * 0.5 * (high - low)
        else:
            actions = tf.clip_by_value(params, low, high)
        return tf.reshape(actions, shape)


def gaussian_std(log_std: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """The Gaussian's std: ``[D]`` from a log-std ``[D]``, or ``[B, D]`` with gSDE.

    With gSDE the log-std is ``[F, D]`` and ``features`` ``[B, F]`` (see the module docstring).
    """
    log_std = np.clip(np.asarray(log_std, np.float32), *LOG_STD_BOUNDS)
    if features is None:
        return np.exp(log_std)
    variance = np.square(np.asarray(features, np.float32)) @ np.exp(2.0 * log_std)
    return np.sqrt(variance + np.float32(SDE_VARIANCE_EPS))


class StateDependentNoise:
    """gSDE's exploration matrices, one ``[F, D]`` per env, and when to draw new ones.

    The matrices are drawn (entries ~ N(0, exp(log_std)^2), from the agent's generator)
    before the first step, every ``sample_freq`` steps after that (-1: never), and after
    every ``reset`` (the agent resets after each update, so each rollout explores with
    matrices of its own weights, as Stable-Baselines3 does).

    Args:
        sample_freq: steps between draws, or -1 for one draw per rollout.
    """

    def __init__(self, sample_freq: int = -1) -> None:
        if sample_freq == 0 or sample_freq < -1:
            raise ValueError(f"sample_freq must be -1 or >= 1, got {sample_freq}")
        self.sample_freq = int(sample_freq)
        self.matrices: np.ndarray | None = None  # [N, F, D]
        self.steps = 0  # steps since the last reset

    def reset(self) -> None:
        """Draw new matrices before the next step."""
        self.matrices, self.steps = None, 0

    def __call__(self, log_std: np.ndarray, num_envs: int, rng: np.random.Generator) -> np.ndarray:
        """The matrices ``[num_envs, F, D]`` for this step (drawing new ones when due)."""
        due = self.sample_freq > 0 and self.steps % self.sample_freq == 0
        if self.matrices is None or len(self.matrices) != num_envs or due:
            std = gaussian_std(log_std)  # [F, D]: each matrix entry's std
            shape = (num_envs, *std.shape)
            self.matrices = std * rng.standard_normal(shape, dtype=np.float32)
        self.steps += 1
        return self.matrices


def squash_log_det(u: Any, width: Any) -> Any:
    """``sum_d log |d a_d / d u_d|`` of ``a = low + (tanh(u) + 1) width / 2``, per row.

    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), which stays finite for large |u|,
    plus log(width / 2) per dim.

    Args:
        u: pre-squash values ``[B, D]``.
        width: ``high - low`` ``[D]``.

    Returns:
        ``[B]``.
    """
    import tensorflow as tf

    log_dtanh = 2.0 * (math.log(2.0) - u - tf.nn.softplus(-2.0 * u))
    return tf.reduce_sum(log_dtanh + tf.math.log(width / 2.0), axis=-1)


def clip_to_space(space: gym.spaces.Space, actions: np.ndarray) -> np.ndarray:
    """Actions clipped to a ``Box`` space's bounds (what the env receives); others unchanged."""
    if isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        return np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
    return actions


def _bound(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None

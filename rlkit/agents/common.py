"""Helpers shared by agents: space checks, network specs, the compiled update and seeding."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.errors import IncompatibleEnvError
from rlkit.precision import use_mixed_precision


def require_discrete_actions(agent: str, action_space: gym.spaces.Space) -> int:
    """Return the number of actions, or raise if the action space is not ``Discrete``."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise IncompatibleEnvError(
            f"{agent} needs a Discrete action space, but the env has {action_space}; "
            "use --agent ppo, a2c or reinforce, which take Box, MultiDiscrete and "
            "MultiBinary actions too"
        )
    if int(action_space.start) != 0:
        raise IncompatibleEnvError(
            f"{agent} needs actions numbered from 0, but the env's Discrete space starts at "
            f"{action_space.start}"
        )
    return int(action_space.n)


def require_box_observations(agent: str, observation_space: gym.spaces.Space) -> tuple[int, ...]:
    """Return the observation shape, or raise if observations are not a ``Box`` array."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise IncompatibleEnvError(
            f"{agent} needs Box (array) observations, but the env has {observation_space}; "
            "flatten them first, e.g. with gymnasium.wrappers.FlattenObservation"
        )
    return tuple(observation_space.shape)


def network_spec(
    kind: str,
    observation_space: gym.spaces.Box,
    num_actions: int,
    hidden_sizes: tuple[int, ...],
    activation: str,
    mixed_precision: bool | str = False,
    **extra: Any,
) -> dict[str, Any]:
    """Spec for ``rlkit.networks.build_network``: the torso that fits the observations.

    The Nature CNN for uint8 image stacks, MinAtar's small CNN for boolean grids, else an
    MLP.

    ``mixed_precision`` is the agent's setting (``auto`` is resolved here, for the torso
    and this machine: see ``rlkit.precision``); ``extra`` holds keys of one network kind
    (``share_torso`` for actor-critic).
    """
    shape = tuple(observation_space.shape)
    dtype = np.dtype(observation_space.dtype)
    image = len(shape) == 3 and dtype == np.uint8
    grid = len(shape) == 3 and dtype == np.bool_  # MinAtar: [10, 10, C] boolean channels
    torso = "nature_cnn" if image else "minatar_cnn" if grid else "mlp"
    return {
        "kind": kind,
        "obs_shape": list(shape),
        "num_actions": num_actions,
        "torso": torso,
        "hidden_sizes": list(hidden_sizes),
        "activation": activation,
        # FrameStackObservation stacks on axis 0: [k, H, W] with k < H.
        "channels_first": bool(image and shape[0] < shape[-1]),
        "mixed_precision": use_mixed_precision(mixed_precision, torso),
        **extra,
    }


class FiniteGuard:
    """Applies a gradient step only if its loss and gradient norm are finite, and counts skips.

    Used inside a compiled update: a NaN or Inf (an exploding loss, a bad reward, a
    division by zero in a custom loss) skips the optimizer step, so the weights and the
    optimizer's moments stay as they were, and the skip is counted in two variables the
    update returns as metrics: ``train/skipped_updates`` (in total) and
    ``train/consecutive_skips`` (since the last good step; the loop stops the run when it
    reaches ``RunConfig.max_bad_updates``).
    """

    def __init__(self) -> None:
        import tensorflow as tf

        self.skipped = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_updates")
        self.consecutive = tf.Variable(0, dtype=tf.int64, trainable=False, name="consecutive")

    def apply(
        self, optimizer: Any, grads: list[Any], variables: list[Any], loss: Any, max_norm: float
    ) -> tuple[Any, Any]:
        """Clip ``grads`` to ``max_norm`` and apply them if finite; return ``(norm, applied)``."""
        import tensorflow as tf

        grads, norm = tf.clip_by_global_norm(grads, max_norm)
        finite = tf.math.is_finite(loss) & tf.math.is_finite(norm)

        def step() -> tf.Tensor:
            optimizer.apply(grads, variables)
            self.consecutive.assign(0)
            return tf.constant(True)

        def skip() -> tf.Tensor:
            self.skipped.assign_add(1)
            self.consecutive.assign_add(1)
            return tf.constant(False)

        return norm, tf.cond(finite, step, skip)

    def metrics(self) -> dict[str, Any]:
        """The counters as metrics (tensors inside the compiled update)."""
        return {
            "train/skipped_updates": self.skipped.read_value(),
            "train/consecutive_skips": self.consecutive.read_value(),
        }


class CompiledStep:
    """A ``tf.function`` traced once, at construction, and called through that one trace.

    Calling the concrete function directly skips ``tf.function``'s per-call argument
    binding and signature matching, which on small networks costs as much as the maths
    (0.6 of 1.4 ms per A2C update on CartPole). Inputs are cast to the signature's dtypes.

    Args:
        fn: the Python function to compile.
        input_signature: one ``tf.TensorSpec`` per argument, batch dims ``None``.
        jit_compile: compile with XLA.
        lazy: trace on the first call instead of now.
    """

    def __init__(
        self, fn: Any, input_signature: list[Any], jit_compile: bool = False, lazy: bool = False
    ) -> None:
        import tensorflow as tf

        self.function = tf.function(fn, input_signature=input_signature, jit_compile=jit_compile)
        self._dtypes = [spec.dtype.as_numpy_dtype for spec in input_signature]
        # lazy: trace on first call (for paths an agent may never take, e.g. acting in TF
        # when the numpy copy of a small MLP acts instead).
        self._concrete = None if lazy else self.function.get_concrete_function()

    @property
    def concrete(self) -> Any:
        """The one concrete function (traced now if it was lazy)."""
        if self._concrete is None:
            self._concrete = self.function.get_concrete_function()
        return self._concrete

    def __call__(self, *arrays: Any) -> Any:
        """Run the compiled step on numpy arrays (or tensors)."""
        import tensorflow as tf

        return self.concrete(
            *[tf.constant(np.asarray(a, d)) for a, d in zip(arrays, self._dtypes, strict=True)]
        )

    def experimental_get_tracing_count(self) -> int:
        """How many times the function was traced (1 unless something forced a retrace)."""
        return self.function.experimental_get_tracing_count()


def polyak_update(online: list[Any], target: list[Any], tau: Any) -> None:
    """Move target variables towards online ones: target <- tau * online + (1 - tau) * target."""
    for o, t in zip(online, target, strict=True):
        t.assign(tau * o + (1.0 - tau) * t)


class CompiledUpdate:
    """An agent's learning step, compiled once from a ``NamedTuple`` batch spec.

    ``spec`` is the batch type (``Batch``, ``Rollout``, or one of your own) holding a
    ``tf.TensorSpec`` for each field the step reads, batch dims ``None``, and None for the
    fields it ignores (those are not sent). ``step`` receives the same type with tensors
    (None where the spec has None) and returns its metrics; around it this adds what
    every update does the same way: the finite-guard's counters as metrics, the refresh of
    the network's acting copy inside the compiled call, and of its numpy copy (small MLPs
    act in numpy) after it.

    Args:
        step: ``batch -> {metric name: scalar tensor}``, traced once, here.
        spec: the batch type with a ``TensorSpec`` or None per field.
        network: the policy network the step trains (its acting copies follow).
        guard: the ``FiniteGuard`` the step applies its gradients through.
        jit_compile: compile with XLA.
    """

    def __init__(
        self,
        step: Callable[[Any], dict[str, Any]],
        spec: Any,
        network: Any,
        guard: FiniteGuard,
        jit_compile: bool = False,
    ) -> None:
        self.network = network
        kind = type(spec)
        self._fields = [name for name, s in zip(spec._fields, spec, strict=True) if s is not None]
        used = set(self._fields)

        def traced(*tensors: Any) -> tuple[dict[str, Any], list[Any]]:
            given = dict(zip(self._fields, tensors, strict=True))
            batch = kind(*(given[name] if name in used else None for name in kind._fields))
            metrics = step(batch)
            metrics.update(guard.metrics())
            network.sync_acting_copy()
            return metrics, network.numpy_weight_outputs()

        self._step = CompiledStep(
            traced, [s for s in spec if s is not None], jit_compile=jit_compile
        )

    def __call__(self, batch: Any) -> dict[str, float]:
        """Run the step on a batch of numpy arrays; return its metrics.

        Scalars come back as floats, anything else (per-sample outputs such as new
        priorities) as numpy arrays.
        """
        metrics, weights = self._step(*(getattr(batch, name) for name in self._fields))
        if self.network.supports_numpy:
            self.network.refresh_numpy(weights)
        return {k: float(v) if v.shape.rank == 0 else v.numpy() for k, v in metrics.items()}

    def experimental_get_tracing_count(self) -> int:
        """How many times the step was traced (1 unless something forced a retrace)."""
        return self._step.experimental_get_tracing_count()


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python's ``random``, numpy's global generator and TensorFlow/Keras.

    Args:
        seed: the run's seed.
        deterministic: also turn on TF's op determinism (process-wide), so that the same
            seed and settings give the same weights. Free on CPU here (measured); on GPU
            some kernels get slower.
    """
    import keras
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    # A seeded global generator (checkpoints save its state; with op determinism TF
    # refuses to create an unseeded one).
    tf.random.set_global_generator(tf.random.Generator.from_seed(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()

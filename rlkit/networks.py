"""Keras networks with a stated output contract: Q-values, dueling Q-values, actor-critic.

Every network takes a batch of observations ``[B, *obs_shape]`` and returns either
Q-values ``[B, A]`` (``QNetwork``, ``DuelingQNetwork``) or ``(logits [B, A], value [B])``
(``ActorCriticNetwork``). The Q-networks can be distributional (C51 logits or QR-DQN
quantiles ``[B, A, K]`` from ``distribution``, Q-values their expectation) and noisy
(``rlkit.noisy.NoisyDense`` in the fully connected layers, noise on request).
A network is fully described by a JSON-able ``spec`` dict, so a saved policy is rebuilt from
that description plus a ``.weights.h5`` file, with no pickle involved.

Small networks (MLPs and the MinAtar CNN, noisy or not) also run as plain numpy
(``numpy_forward``): acting on a handful of CartPole observations costs ~0.5 ms as a TF
call but ~20 us in numpy, and per-step calls, not the maths, decide the speed of
small-network agents. The numpy path reads the same weights.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rlkit import numpy_mlp
from rlkit.noisy import NoisyDense
from rlkit.normalization import ObservationNormalizer

ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "silu")
TORSOS = ("mlp", "nature_cnn", "minatar_cnn")
DISTRIBUTIONAL = ("c51", "qr")
# Atoms of C51 (Bellemare et al., 2017) and quantiles of QR-DQN (Dabney et al., 2018).
DEFAULT_NUM_ATOMS = {"c51": 51, "qr": 200}
DEFAULT_V_RANGE = (-10.0, 10.0)  # C51's support on Atari
DEFAULT_NOISY_SIGMA0 = 0.5  # factorised NoisyNets (Fortunato et al., 2018)


def default_torso(obs_shape: tuple[int, ...]) -> str:
    """Pick the torso for an observation shape: the Nature CNN for images, else an MLP."""
    return "nature_cnn" if len(obs_shape) == 3 else "mlp"


def apply_layer(layer: keras.layers.Layer, x: tf.Tensor, noise: bool) -> tf.Tensor:
    """``layer(x)``, asking a ``NoisyDense`` layer for noisy weights if ``noise``."""
    return layer(x, noise=noise) if isinstance(layer, NoisyDense) else layer(x)


class _NumpyCache:
    """Numpy copies of a network's weights for ``numpy_forward``, and where its sigmas are."""

    __slots__ = ("params", "sigma_at")

    def __init__(self) -> None:
        self.params: list[np.ndarray] | None = None
        # index of a noisy layer's mu kernel in params -> index of its sigma kernel
        self.sigma_at: dict[int, int] | None = None


class _ActingCopy:
    """Holds a mixed-precision network's bfloat16 twin (out of Keras' and checkpoints' sight)."""

    __slots__ = ("network",)

    def __init__(self) -> None:
        self.network: Network | None = None


# CNN torsos' convolutions: (filters, kernel size, stride), 'valid' padding, ReLU.
MINATAR_CONVS = ((16, 3, 1),)  # Young & Tian (2019)
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # Mnih et al. (2015)


def fan_in_uniform(fan_in: int) -> tuple[Any, Any]:
    """PyTorch's default init of a linear layer: kernel and bias uniform in +-1/sqrt(fan_in).

    The kernel's is Keras' variance scaling (scale 1/3, fan-in, uniform): its bound
    sqrt(3 x scale / fan_in) is the same 1/sqrt(fan_in).
    """
    bound = 1.0 / float(np.sqrt(fan_in))
    return (
        keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        keras.initializers.RandomUniform(-bound, bound),
    )


class Network(keras.Model):
    """Base class: a torso (MLP, Nature CNN or MinAtar CNN) shared by the heads of a subclass.

    Args:
        obs_shape: shape of one observation. Image observations are ``[H, W, C]`` or
            ``[C, H, W]`` stacks of uint8 frames; they are scaled to [0, 1] in the graph.
            MinAtar observations are ``[10, 10, C]`` booleans, taken as 0/1.
        num_actions: number of discrete actions.
        torso: ``"mlp"``, ``"nature_cnn"`` or ``"minatar_cnn"``.
        hidden_sizes: MLP layer widths (for the CNN torsos: the final dense width).
        activation: activation of hidden layers.
        channels_first: for image observations, whether the stack axis comes first
            (gymnasium's ``FrameStackObservation`` gives ``[k, H, W]``).
        noisy: make the torso's last dense layer a ``NoisyDense`` (subclasses make their
            heads noisy too); Q-networks only.
        noisy_sigma0: the noisy layers' initial noise scale (default 0.5).
    """

    kind: str = "base"

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        num_actions: int,
        torso: str = "mlp",
        hidden_sizes: tuple[int, ...] = (64, 64),
        activation: str = "relu",
        channels_first: bool = False,
        mixed_precision: bool = False,
        bfloat16_weights: bool = False,
        normalize_obs: bool = False,
        noisy: bool = False,
        noisy_sigma0: float | None = None,
        **kwargs: Any,
    ) -> None:
        _check_noisy(noisy, noisy_sigma0)
        if torso == "minatar_cnn" and (len(obs_shape) != 3 or channels_first):
            raise ValueError(
                f"the minatar_cnn torso takes channels-last observations [10, 10, C], got "
                f"shape {tuple(obs_shape)} with channels_first={channels_first}"
            )
        super().__init__(**kwargs)
        self.noisy = noisy
        self.noisy_sigma0 = DEFAULT_NOISY_SIGMA0 if noisy_sigma0 is None else float(noisy_sigma0)
        self.mixed_precision = bool(mixed_precision)
        # bfloat16 needs no loss scaling and runs fast on CPUs with AMX/AVX512-BF16 and on
        # recent GPUs; the heads stay float32 (see the subclasses). ``bfloat16_weights``
        # (internal, for ``acting_copy``) stores the torso's weights in bfloat16 as well.
        self._torso_dtype = None
        # The twin's initial weights are overwritten at once (and Orthogonal has no bfloat16).
        self._zero_init = bool(bfloat16_weights)
        if mixed_precision:
            policy = "bfloat16" if bfloat16_weights else "mixed_bfloat16"
            self._torso_dtype = keras.DTypePolicy(policy)
        if torso not in TORSOS:
            raise ValueError(f"unknown torso {torso!r}; choose one of {TORSOS}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.num_actions = int(num_actions)
        self.torso_name = torso
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.activation_name = activation
        self.channels_first = bool(channels_first)
        self.torso_layers = self._make_torso()
        # Running observation statistics in front of the torso (``normalize_obs``): frozen
        # unless the agent's update calls ``update_obs_stats``, saved with the weights.
        self.obs_normalizer: ObservationNormalizer | None = None
        if normalize_obs:
            if torso != "mlp":
                raise ValueError("normalize_obs is for vector observations (the MLP torso)")
            self.obs_normalizer = ObservationNormalizer(self.obs_shape, name="obs_normalizer")
        # A plain holder: a list set directly on a Keras layer would be wrapped and tracked
        # element by element on every refresh, which costs more than the numpy forward pass.
        self._np_cache = _NumpyCache()
        self._acting = _ActingCopy()

    def torso_initializers(self, fan_in: int) -> tuple[Any, Any]:
        """New (kernel, bias) initializers for one torso layer of ``fan_in`` inputs.

        A dense layer's or a convolution's (fan-in: kernel height x width x input
        channels). Keras' Glorot uniform and zeros here; zeros for a bfloat16 acting twin
        (``acting_copy``), whose weights are copied in at once. New objects per layer,
        made when the layer is: a Keras initializer draws its seed from Python's
        ``random`` when it is created, so one made at import time (before
        ``seed_everything``) would give different weights in every process.
        """
        if self._zero_init:
            return "zeros", "zeros"
        return "glorot_uniform", "zeros"

    def _make_torso(self, prefix: str = "") -> list[keras.layers.Layer]:
        layers = self._torso_layers(prefix)
        for layer in layers:
            # tf.train.Checkpoint follows attributes, not Keras 3's tracked lists: name each
            # layer as an attribute too, or its weights would be missing from checkpoints.
            setattr(self, f"layer_{layer.name}", layer)
        return layers

    def noisy_dense(self, units: int, activation: str | None, name: str, dtype: Any) -> NoisyDense:
        """A ``NoisyDense`` layer with this network's ``noisy_sigma0``."""
        return NoisyDense(units, activation, self.noisy_sigma0, name=name, dtype=dtype)

    def _torso_layers(self, prefix: str) -> list[keras.layers.Layer]:
        # With ``noisy``, the last dense layer of the torso is a NoisyDense: the fully
        # connected layer after the convolutions, as in Rainbow (Hessel et al., 2018), and
        # for an MLP its last hidden layer (the earlier ones play the convolutions' part).
        dtype = self._torso_dtype
        if self.torso_name == "mlp":
            layers = []
            for i, h in enumerate(self.hidden_sizes):
                name = f"{prefix}dense_{i}"
                if self.noisy and i == len(self.hidden_sizes) - 1:
                    layers.append(self.noisy_dense(h, self.activation_name, name, dtype))
                    continue
                fan_in = self.hidden_sizes[i - 1] if i else int(np.prod(self.obs_shape))
                kernel, bias = self.torso_initializers(fan_in)
                layers.append(
                    keras.layers.Dense(
                        h,
                        activation=self.activation_name,
                        kernel_initializer=kernel,
                        bias_initializer=bias,
                        name=name,
                        dtype=dtype,
                    )
                )
            return layers
        # Young & Tian (2019): one 16x3x3/1 convolution ('valid'), then 128 units.
        # Mnih et al. (2015): 32x8x8/4, 64x4x4/2, 64x3x3/1, then a 512 dense layer.
        convs_spec = MINATAR_CONVS if self.torso_name == "minatar_cnn" else NATURE_CONVS
        if self.torso_name == "nature_cnn" and self.channels_first:
            c, h, w = self.obs_shape
        else:
            h, w, c = self.obs_shape
        convs = []
        for j, (filters, size, stride) in enumerate(convs_spec):
            kernel, bias = self.torso_initializers(size * size * c)
            convs.append(
                keras.layers.Conv2D(
                    filters,
                    size,
                    stride,
                    activation="relu",
                    kernel_initializer=kernel,
                    bias_initializer=bias,
                    name=f"{prefix}conv_{j}",
                    dtype=dtype,
                )
            )
            h, w, c = (h - size) // stride + 1, (w - size) // stride + 1, filters
        width = self.feature_width()
        name = f"{prefix}dense_0"
        if self.noisy:
            dense = self.noisy_dense(width, "relu", name, dtype)
        else:
            kernel, bias = self.torso_initializers(h * w * c)
            dense = keras.layers.Dense(
                width,
                activation="relu",
                kernel_initializer=kernel,
                bias_initializer=bias,
                name=name,
                dtype=dtype,
            )
        return [*convs, keras.layers.Flatten(name=f"{prefix}flatten", dtype=dtype), dense]

    def feature_width(self) -> int:
        """F, the width of the torso's features (what the heads read)."""
        if self.torso_name == "mlp":
            return self.hidden_sizes[-1] if self.hidden_sizes else int(np.prod(self.obs_shape))
        default = 128 if self.torso_name == "minatar_cnn" else 512
        return self.hidden_sizes[-1] if self.hidden_sizes else default

    # -- description -------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        """A JSON-able description from which ``build_network`` rebuilds this network."""
        return {
            "kind": self.kind,
            "obs_shape": list(self.obs_shape),
            "num_actions": self.num_actions,
            "torso": self.torso_name,
            "hidden_sizes": list(self.hidden_sizes),
            "activation": self.activation_name,
            "channels_first": self.channels_first,
            "mixed_precision": self.mixed_precision,
            **({"normalize_obs": True} if self.obs_normalizer is not None else {}),
            **({"noisy": True, "noisy_sigma0": self.noisy_sigma0} if self.noisy else {}),
        }

    def build_for_obs(self) -> Network:
        """Create the variables by calling the network once on a dummy batch."""
        self(tf.zeros((1, *self.obs_shape), tf.float32))
        return self

    # -- graph ----------------------------------------------------------------------------
    def torso(
        self, obs: tf.Tensor, layers: list[keras.layers.Layer] | None = None, noise: bool = False
    ) -> tf.Tensor:
        """Features ``[B, F]`` from observations ``[B, *obs_shape]`` (default: the torso).

        ``noise`` (a Python bool) asks the noisy layers, if any, for noisy weights.
        """
        if self.torso_name == "minatar_cnn":
            x = tf.cast(obs, tf.float32)  # booleans to 0/1, no scaling
        elif self.torso_name == "nature_cnn":
            # uint8 frames are scaled in the graph, so the buffer keeps them as bytes.
            x = tf.cast(obs, tf.float32) / 255.0
            if self.channels_first:  # [B, C, H, W] -> [B, H, W, C]
                # Floats, not bytes: TF's oneDNN build has no uint8 transpose (it logs an
                # error line and falls back to Eigen); timed the same either way (A2C and
                # DQN updates and acting on Space Invaders stacks, within noise).
                x = tf.transpose(x, [0, 2, 3, 1])
        else:
            if self.obs_normalizer is not None:
                obs = self.obs_normalizer(obs)
            x = tf.reshape(tf.cast(obs, tf.float32), (-1, int(np.prod(self.obs_shape))))
        for layer in self.torso_layers if layers is None else layers:
            x = apply_layer(layer, x, noise)
        return x

    # -- numpy mirror ---------------------------------------------------------------------
    @property
    def supports_numpy(self) -> bool:
        """Whether ``numpy_forward`` is available.

        For float32 networks (no mixed precision) with an MLP torso of a numpy activation
        or the MinAtar CNN torso (ReLU whatever ``activation`` says); noisy or not.
        """
        if self.mixed_precision:
            return False
        if self.torso_name == "mlp":
            return self.activation_name in numpy_mlp.ACTIVATIONS
        return self.torso_name in numpy_mlp.TORSOS

    def refresh_numpy(self, values: list[Any] | None = None) -> None:
        """Copy the current weights for ``numpy_forward``; call after every weight change.

        Args:
            values: the tensors of ``numpy_variables()`` if the caller already has them
                (a compiled update step returns them, which saves one read per variable).
        """
        if values is None:
            values = self.numpy_variables()
        self._np_cache.params = [np.asarray(v, dtype=np.float32) for v in values]

    def _numpy_inputs(self, obs: np.ndarray, params: list[np.ndarray]) -> tuple[np.ndarray, int]:
        """Observations as the torso sees them (normalized if asked), and its first param."""
        if self.obs_normalizer is None:
            return obs, 0
        return numpy_mlp.normalize(obs, params[0], params[1]), 2

    def _numpy_torso(
        self,
        obs: np.ndarray,
        params: list[np.ndarray],
        i: int = 0,
        linear: numpy_mlp.Linear | None = None,
    ) -> tuple[np.ndarray, int]:
        """Torso features of observations as the torso sees them (``_numpy_inputs``).

        Reads the torso from ``params[i:]``; returns the features and the index after it.
        """
        return numpy_mlp.features(
            self.torso_name, obs, params, self.hidden_sizes, self.activation_name, i, linear
        )

    def _weight_layers(self) -> list[keras.layers.Layer]:
        """The layers with weights, in the order the numpy path reads them."""
        layers = [*self.torso_layers, *self.extra_torso_layers(), *self.head_layers()]
        return [layer for layer in layers if layer.weights]  # not Flatten

    def numpy_variables(self) -> list[tf.Variable]:
        """What the numpy path reads, in order (``rlkit.numpy_mlp``'s ``params``).

        The observation statistics (mean, var) if they are normalized, then (kernel, bias)
        of each torso and head layer with weights: a convolution's kernel is
        ``[kh, kw, C, F]``, a noisy layer's pair is its mean weights (mu_kernel, mu_bias).
        Then (sigma_kernel, sigma_bias) of each noisy layer, in the same order: only
        ``numpy_forward(obs, noise_rng)`` reads them, so greedy readers (``action_scores``)
        can ignore everything after the heads.
        """
        layers = self._weight_layers()
        stats = self.obs_normalizer
        noisy = [layer for layer in layers if isinstance(layer, NoisyDense)]
        return (
            ([stats.mean, stats.var] if stats is not None else [])
            + [v for layer in layers for v in _mean_weights(layer)]
            + [v for layer in noisy for v in (layer.sigma_kernel, layer.sigma_bias)]
        )

    def _numpy_noisy_linear(self, params: list[np.ndarray], rng: np.random.Generator) -> Any:
        """``numpy_mlp.Linear`` adding one draw of noise from ``rng`` to each noisy layer.

        Raises:
            ValueError: if the network has no noisy layers.
        """
        if not self.noisy:
            raise ValueError("noise_rng is for noisy networks; this one has no noisy layers")
        sigma_at = self._np_cache.sigma_at
        if sigma_at is None:  # the layout of numpy_variables(), found once
            layers = self._weight_layers()
            i = 2 if self.obs_normalizer is not None else 0
            j = i + 2 * len(layers)  # the first sigma pair
            sigma_at = {}
            for layer in layers:
                if isinstance(layer, NoisyDense):
                    sigma_at[i], j = j, j + 2
                i += 2
            self._np_cache.sigma_at = sigma_at

        def linear(x: np.ndarray, k: int) -> np.ndarray:
            s = sigma_at.get(k)
            if s is None:
                return x @ params[k] + params[k + 1]
            return numpy_mlp.noisy_dense(x, params[k], params[k + 1], params[s], params[s + 1], rng)

        return linear

    def update_obs_stats(self, obs: tf.Tensor, mask: tf.Tensor) -> None:
        """Merge observations ``[B, *obs_shape]`` (rows where ``mask`` is 1) into the statistics."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(obs, mask)

    def numpy_weight_outputs(self) -> list[tf.Tensor]:
        """Inside a compiled update: the new weights for the numpy copy.

        ``numpy_variables()``, or none without a numpy path (the Nature CNN).
        """
        return [tf.identity(v) for v in self.numpy_variables()] if self.supports_numpy else []

    def head_layers(self) -> list[keras.layers.Layer]:
        """Head layers, in the order ``numpy_forward`` reads their weights."""
        raise NotImplementedError

    def extra_torso_layers(self) -> list[keras.layers.Layer]:
        """Layers of a second torso, if the network has one (read after the first)."""
        return []

    # -- acting copy ----------------------------------------------------------------------
    def acting_copy(self) -> Network:
        """The network to act with: this one, or for mixed precision a bfloat16-weight twin.

        A mixed-precision layer keeps float32 weights and casts them to bfloat16 on every
        call, which for the small batches of acting costs more than the arithmetic (A2C's
        Nature CNN on 8 observations: 1.66 ms per forward pass, 1.37 ms with the weights
        already in bfloat16; measured side by side). The twin holds the torso's weights in
        bfloat16 (the heads stay float32), computes exactly what this network computes (the
        same casts, done once), and is refreshed by ``sync_acting_copy``: compiled update
        steps call it after the optimizer step, ``Agent.after_restore`` after a checkpoint
        loads. Its variables are not this network's: they are in no checkpoint or saved
        policy.
        """
        if not self.mixed_precision:
            return self
        if self._acting.network is None:
            twin = type(self)(**_constructor_kwargs(self.spec), bfloat16_weights=True)
            self._acting.network = twin.build_for_obs()
            if self.built:
                self.sync_acting_copy()
        return self._acting.network

    def sync_acting_copy(self) -> None:
        """Copy the weights into the acting twin, if there is one (eagerly or in a graph)."""
        twin = self._acting.network
        if twin is None:
            return
        for dst, src in zip(twin.weights, self.weights, strict=True):
            dst.assign(tf.cast(src, dst.dtype))

    def numpy_params(self) -> list[np.ndarray]:
        """Weights for the numpy path, fetched on first use after ``refresh_numpy``."""
        if self._np_cache.params is None:
            self.refresh_numpy()
        return self._np_cache.params  # type: ignore[return-value]


class QValueNetwork(Network):
    """Base of the Q-networks: per action a Q-value, or a C51 / QR-DQN distribution.

    Output contract: ``call(obs, noise=False)`` gives Q-values ``[B, A]`` whatever the
    head, so acting, evaluation and export treat every Q-network alike; the distributional
    heads give ``distribution(obs, noise=False)`` ``[B, A, K]`` as well, Q being its
    expectation:

    - C51 (Bellemare et al., 2017): logits over the fixed support ``support`` (K atoms
      evenly spaced in [v_min, v_max]); Q = sum_k softmax(logits)_k z_k.
    - QR-DQN (Dabney et al., 2018): K quantiles at the levels (2k + 1) / (2K);
      Q = their mean.

    With ``noisy``, every head layer (and the torso's last dense layer) is a
    ``NoisyDense``; ``noise=True`` draws fresh noise for that call (one sample per layer,
    shared by the batch), ``noise=False`` uses the mean weights.

    Args:
        *args: ``Network`` arguments.
        distributional: ``"c51"``, ``"qr"``, or None for scalar Q-values.
        num_atoms: C51 atoms or QR quantiles (default 51 for C51, 200 for QR).
        v_min: the C51 support's lowest atom (default -10).
        v_max: its highest atom (default 10).
        **kwargs: ``Network`` keyword arguments.

    Raises:
        ValueError: for an unknown ``distributional``, ``num_atoms`` < 2, ``v_min`` >=
            ``v_max``, or a setting given for a head that has no use for it.
    """

    def __init__(
        self,
        *args: Any,
        distributional: str | None = None,
        num_atoms: int | None = None,
        v_min: float | None = None,
        v_max: float | None = None,
        **kwargs: Any,
    ) -> None:
        num_atoms, v_range = _check_distributional(distributional, num_atoms, v_min, v_max)
        super().__init__(*args, **kwargs)
        self.distributional = distributional
        self.num_atoms = num_atoms  # 1 for scalar Q-values
        self.v_min, self.v_max = v_range if v_range is not None else (None, None)
        self._np_support = None
        self.support: tf.Tensor | None = None
        if distributional == "c51":
            self._np_support = numpy_mlp.c51_support(self.v_min, self.v_max, num_atoms)
            self.support = tf.constant(self._np_support)  # [K]

    def head_dense(self, units: int, name: str) -> keras.layers.Layer:
        """A float32 head layer: dense, or noisy dense with ``noisy``."""
        # Heads compute in float32 even under a mixed-precision policy: TD targets,
        # distributions and losses need it.
        if self.noisy:
            return self.noisy_dense(units, None, name, "float32")
        return keras.layers.Dense(units, name=name, dtype="float32")

    @property
    def spec(self) -> dict[str, Any]:
        """The base spec plus the distributional settings, if any."""
        spec = super().spec
        if self.distributional is not None:
            spec["distributional"] = self.distributional
            spec["num_atoms"] = self.num_atoms
        if self.distributional == "c51":
            spec["v_min"], spec["v_max"] = self.v_min, self.v_max
        return spec

    def heads(self, features: tf.Tensor, noise: bool) -> tf.Tensor:
        """Q-values ``[B, A]`` or the distribution ``[B, A, K]`` from torso features."""
        raise NotImplementedError

    def call(self, obs: tf.Tensor, noise: bool = False) -> tf.Tensor:
        """Return Q-values ``[B, A]`` (noisy weights if ``noise``, a Python bool)."""
        out = self.heads(self.torso(obs, noise=noise), noise)
        return out if self.distributional is None else self.q_from_distribution(out)

    def distribution(self, obs: tf.Tensor, noise: bool = False) -> tf.Tensor:
        """C51 logits or QR quantiles ``[B, A, K]`` (noisy weights if ``noise``).

        Raises:
            ValueError: if the network has a scalar Q head.
        """
        if self.distributional is None:
            raise ValueError(
                "this Q-network is not distributional (its spec has no distributional)"
            )
        return self.heads(self.torso(obs, noise=noise), noise)

    def q_from_distribution(self, dist: tf.Tensor) -> tf.Tensor:
        """Q-values ``[B, A]`` from a ``distribution`` output ``[B, A, K]`` (no second pass)."""
        if self.distributional == "c51":
            return tf.reduce_sum(tf.nn.softmax(dist) * self.support, axis=-1)
        if self.distributional == "qr":
            return tf.reduce_mean(dist, axis=-1)
        raise ValueError("this Q-network is not distributional (its spec has no distributional)")

    def _split_atoms(self, out: tf.Tensor, actions: int) -> tf.Tensor:
        """``[B, actions * K]`` to ``[B, actions, K]`` for distributional heads."""
        if self.distributional is None:
            return out
        return tf.reshape(out, (-1, actions, self.num_atoms))

    def numpy_forward(
        self, obs: np.ndarray, noise_rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Q-values ``[B, A]`` computed in numpy with the weights of the last refresh.

        Args:
            obs: observations ``[B, *obs_shape]``.
            noise_rng: for a noisy network, draw fresh noise from this generator: each
                noisy layer, in the order the forward pass calls them (the torso's, then
                the value head's and the advantage head's, or the Q head's), draws
                eps_in ``[p]`` then eps_out ``[q]`` from it, one draw for the whole batch
                (``numpy_mlp.noisy_dense``). This is a noise stream of its own: the
                layers' TF stream (``NoisyDense.noise_state``, which the learning update
                draws from) is neither read nor advanced. None: the mean weights, as
                ``call(obs, noise=False)``.

        Raises:
            ValueError: if ``noise_rng`` is given to a network without noisy layers.
        """
        p = self.numpy_params()
        linear = None if noise_rng is None else self._numpy_noisy_linear(p, noise_rng)
        obs, i = self._numpy_inputs(obs, p)
        x, i = self._numpy_torso(obs, p, i, linear)
        return numpy_mlp.q_values(
            x,
            p,
            i,
            dueling=self.kind == "dueling_q",
            num_actions=self.num_actions,
            distributional=self.distributional,
            num_atoms=self.num_atoms,
            support=self._np_support,
            linear=linear,
        )


class QNetwork(QValueNetwork):
    """Q-values ``[B, A]`` (or a distribution per action) from a torso and a linear head."""

    kind = "q"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.q_head = self.head_dense(self.num_actions * self.num_atoms, "q")

    def heads(self, features: tf.Tensor, noise: bool) -> tf.Tensor:
        """Q-values ``[B, A]``, or logits / quantiles ``[B, A, K]``."""
        return self._split_atoms(apply_layer(self.q_head, features, noise), self.num_actions)

    def head_layers(self) -> list[keras.layers.Layer]:
        """The Q head."""
        return [self.q_head]


class DuelingQNetwork(QValueNetwork):
    """Dueling architecture (Wang et al., 2016): Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a').

    Distributional heads duel per atom, as in Rainbow (Hessel et al., 2018): C51 logits
    l(s, a) = l_V(s) + l_A(s, a) - mean_a' l_A(s, a') (then the softmax over atoms), and
    QR quantiles theta(s, a) = theta_V(s) + theta_A(s, a) - mean_a' theta_A(s, a').
    """

    kind = "dueling_q"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.value_head = self.head_dense(self.num_atoms, "value")
        self.advantage_head = self.head_dense(self.num_actions * self.num_atoms, "advantage")

    def heads(self, features: tf.Tensor, noise: bool) -> tf.Tensor:
        """Q-values ``[B, A]``, or logits / quantiles ``[B, A, K]``."""
        value = self._split_atoms(apply_layer(self.value_head, features, noise), 1)  # [B, 1(, K)]
        advantage = self._split_atoms(
            apply_layer(self.advantage_head, features, noise), self.num_actions
        )  # [B, A(, K)]
        return value + advantage - tf.reduce_mean(advantage, axis=1, keepdims=True)

    def head_layers(self) -> list[keras.layers.Layer]:
        """Value head, then advantage head."""
        return [self.value_head, self.advantage_head]


class ActorCriticNetwork(Network):
    """A policy head (logits ``[B, A]``) and a value head (``[B]``) on a shared torso.

    With ``share_torso=False`` the value head gets a torso of its own (same shape), so the
    value loss, often much larger than the policy loss, does not shape the policy's features.
    ``ortho_init`` (default) initialises every layer orthogonally (torso, convolutions
    included, with gain sqrt 2; the heads as below) with zero biases, as the reference PPO
    and A2C implementations do; ``ortho_init=False`` gives them PyTorch's default init.
    """

    kind = "actor_critic"

    def torso_initializers(self, fan_in: int) -> tuple[Any, Any]:
        """A torso layer's (kernel, bias) initializers.

        Orthogonal kernels with gain sqrt(2) (Saxe et al., 2014), usual for policy
        gradients, and zero biases; with ``ortho_init=False`` PyTorch's default for a
        linear layer (``fan_in_uniform``), as rl-zoo3's ``ortho_init=False`` presets have.
        """
        if self._zero_init:  # a bfloat16 acting twin: its weights are copied in at once
            return "zeros", "zeros"
        if self.ortho_init:
            return keras.initializers.Orthogonal(float(np.sqrt(2.0))), "zeros"
        return fan_in_uniform(fan_in)

    def head_initializers(self, gain: float) -> tuple[Any, Any]:
        """A head's (kernel, bias) initializers: orthogonal with ``gain`` and zeros.

        With ``ortho_init=False``: ``fan_in_uniform`` of the torso's feature width.
        """
        if self.ortho_init:
            return keras.initializers.Orthogonal(gain), "zeros"
        return fan_in_uniform(self.feature_width())

    def __init__(
        self,
        *args: Any,
        share_torso: bool = True,
        log_std_dim: int = 0,
        log_std_init: float = 0.0,
        sde: bool = False,
        ortho_init: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("noisy"):
            raise ValueError("noisy layers are for Q-networks (kind 'q' or 'dueling_q')")
        if not isinstance(sde, bool) or (sde and not log_std_dim):
            raise ValueError("sde (gSDE) is for Gaussian policies: it needs log_std_dim > 0")
        if not isinstance(ortho_init, bool):
            raise ValueError(f"ortho_init must be true or false, got {ortho_init!r}")
        # Read by torso_initializers while the base class builds the torso.
        self.ortho_init = ortho_init
        super().__init__(*args, **kwargs)
        self.share_torso = bool(share_torso)
        # A Gaussian policy's state-independent log-std (``log_std_dim`` > 0): one learned
        # number per action dim, as in the PPO paper and the reference implementations.
        # With ``sde`` (gSDE, Raffin et al., 2022) it is a matrix ``[F, D]`` over the policy
        # torso's F features instead: the std of action dim d in state s is
        # sqrt(sum_f features_f(s)^2 exp(2 log_std[f, d])).
        self.log_std_dim = int(log_std_dim)
        self.sde = sde
        self.log_std = None
        if self.log_std_dim:
            shape = (self.feature_width(), self.log_std_dim) if sde else (self.log_std_dim,)
            self.log_std = self.add_weight(
                shape=shape,
                initializer=keras.initializers.Constant(float(log_std_init)),
                name="log_std",
                dtype="float32",
            )
        self.value_torso_layers = [] if self.share_torso else self._make_torso("value_")
        # Small policy-head init keeps the first policy near uniform (Andrychowicz et al., 2021).
        kernel, bias = self.head_initializers(0.01)
        self.policy_head = keras.layers.Dense(
            self.num_actions,
            kernel_initializer=kernel,
            bias_initializer=bias,
            name="logits",
            dtype="float32",
        )
        kernel, bias = self.head_initializers(1.0)
        self.value_head = keras.layers.Dense(
            1, kernel_initializer=kernel, bias_initializer=bias, name="value", dtype="float32"
        )

    @property
    def spec(self) -> dict[str, Any]:
        """The base spec plus ``share_torso`` (and ``log_std_dim`` for Gaussian policies)."""
        spec = {**super().spec, "share_torso": self.share_torso}
        if self.log_std_dim:
            spec["log_std_dim"] = self.log_std_dim
        if self.sde:
            spec["sde"] = True
        if not self.ortho_init:
            spec["ortho_init"] = False
        return spec

    def call(self, obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Return ``(policy parameters [B, A], value [B])``: logits, or a Gaussian's means."""
        params, value, _ = self.call_with_features(obs)
        return params, value

    def call_with_features(self, obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(policy parameters [B, A], value [B], policy features [B, F])``.

        The features are what the policy head reads (gSDE's noise scales with them).
        """
        x = self.torso(obs)
        x_v = x if self.share_torso else self.torso(obs, self.value_torso_layers)
        value = tf.squeeze(self.value_head(x_v), axis=-1)
        return self.policy_head(x), value, tf.cast(x, tf.float32)

    def head_layers(self) -> list[keras.layers.Dense]:
        """Policy head, then value head."""
        return [self.policy_head, self.value_head]

    def extra_torso_layers(self) -> list[keras.layers.Layer]:
        """The value torso when it is not shared."""
        return self.value_torso_layers

    def numpy_variables(self) -> list[tf.Variable]:
        """The layers' (kernel, bias) pairs, then the log-std if the policy is Gaussian."""
        return super().numpy_variables() + ([self.log_std] if self.log_std_dim else [])

    def numpy_log_std(self) -> np.ndarray | None:
        """The Gaussian's log-std ``[D]`` as of the last numpy refresh (None if not Gaussian)."""
        return self.numpy_params()[-1] if self.log_std_dim else None

    def numpy_forward(
        self, obs: np.ndarray, value: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(logits [B, A], value [B])`` computed in numpy (value None if not asked for)."""
        logits, value_out, _ = self.numpy_forward_features(obs, value)
        return logits, value_out

    def numpy_forward_features(
        self, obs: np.ndarray, value: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``numpy_forward`` plus the policy features ``[B, F]`` (the policy head's input)."""
        p = self.numpy_params()
        head = numpy_mlp.actor_critic_head_index(len(p), self.log_std_dim)
        obs, start = self._numpy_inputs(obs, p)
        x, value_torso_start = self._numpy_torso(obs, p, start)
        logits = x @ p[head] + p[head + 1]
        if not value:
            return logits, None, x
        x_v = x if self.share_torso else self._numpy_torso(obs, p, value_torso_start)[0]
        return logits, (x_v @ p[head + 2] + p[head + 3])[:, 0], x


NETWORKS: dict[str, type[Network]] = {
    cls.kind: cls for cls in (QNetwork, DuelingQNetwork, ActorCriticNetwork)
}
SPEC_KEYS = frozenset(
    {
        "kind",
        "obs_shape",
        "num_actions",
        "torso",
        "hidden_sizes",
        "activation",
        "channels_first",
        "mixed_precision",
        "normalize_obs",
    }
)
Q_KEYS = frozenset({"distributional", "num_atoms", "v_min", "v_max", "noisy", "noisy_sigma0"})
KIND_KEYS = {
    "actor_critic": frozenset({"share_torso", "log_std_dim", "sde", "ortho_init"}),
    "q": Q_KEYS,
    "dueling_q": Q_KEYS,
}


def build_network(spec: dict[str, Any]) -> Network:
    """Build (and create the variables of) a network from its ``spec``.

    Raises:
        ValueError: if the spec has unknown keys or an unknown kind, torso or activation.
    """
    missing = {"kind", "obs_shape", "num_actions"} - set(spec)
    if missing:
        raise ValueError(f"network spec lacks {sorted(missing)}")
    valid = SPEC_KEYS | KIND_KEYS.get(spec.get("kind"), frozenset())
    unknown = set(spec) - valid
    if unknown:
        raise ValueError(
            f"network spec has unknown keys {sorted(unknown)} for kind {spec.get('kind')!r}; "
            f"valid: {sorted(valid)}"
        )
    kind = spec.get("kind")
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[kind](**_constructor_kwargs(spec)).build_for_obs()


def _constructor_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """A network class's keyword arguments from its (JSON-able) spec."""
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    kwargs["obs_shape"] = tuple(kwargs["obs_shape"])
    kwargs["hidden_sizes"] = tuple(kwargs.get("hidden_sizes", (64, 64)))
    return kwargs


def _mean_weights(layer: keras.layers.Layer) -> tuple[Any, Any]:
    """(kernel, bias) of a layer: a noisy layer's mean weights (mu)."""
    if isinstance(layer, NoisyDense):
        return layer.mu_kernel, layer.mu_bias
    return layer.kernel, layer.bias


def _check_noisy(noisy: Any, noisy_sigma0: Any) -> None:
    """Raise ValueError unless ``noisy`` is a bool and ``noisy_sigma0`` fits it."""
    if not isinstance(noisy, bool):
        raise ValueError(f"noisy must be true or false, got {noisy!r}")
    if noisy_sigma0 is None:
        return
    if not noisy:
        raise ValueError("noisy_sigma0 is a setting of noisy layers: set noisy to true or drop it")
    if isinstance(noisy_sigma0, bool) or not isinstance(noisy_sigma0, (int, float)):
        raise ValueError(f"noisy_sigma0 must be a number, got {noisy_sigma0!r}")
    if not np.isfinite(noisy_sigma0) or noisy_sigma0 < 0:
        raise ValueError(f"noisy_sigma0 must be >= 0, got {noisy_sigma0}")


def _check_distributional(
    distributional: Any, num_atoms: Any, v_min: Any, v_max: Any
) -> tuple[int, tuple[float, float] | None]:
    """Validate a Q head's settings; return its atom count (1 if scalar) and C51's range.

    Raises:
        ValueError: naming the bad value and what would fit.
    """
    if distributional is None:
        given = [
            n
            for n, v in (("num_atoms", num_atoms), ("v_min", v_min), ("v_max", v_max))
            if v is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} need a distributional head: set distributional to "
                f"'c51' or 'qr', or drop them"
            )
        return 1, None
    if distributional not in DISTRIBUTIONAL:
        raise ValueError(
            f"unknown distributional {distributional!r}; choose one of {DISTRIBUTIONAL} "
            "(or leave it out for scalar Q-values)"
        )
    if num_atoms is None:
        num_atoms = DEFAULT_NUM_ATOMS[distributional]
    if isinstance(num_atoms, bool) or not isinstance(num_atoms, (int, np.integer)) or num_atoms < 2:
        raise ValueError(f"num_atoms must be an integer >= 2, got {num_atoms!r}")
    if distributional == "qr":
        if v_min is not None or v_max is not None:
            raise ValueError(
                "v_min and v_max are C51 settings (QR-DQN learns where its quantiles are): "
                "drop them"
            )
        return int(num_atoms), None
    v_min = DEFAULT_V_RANGE[0] if v_min is None else v_min
    v_max = DEFAULT_V_RANGE[1] if v_max is None else v_max
    for name, v in (("v_min", v_min), ("v_max", v_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if v_min >= v_max:
        raise ValueError(f"C51 needs v_min < v_max, got v_min={v_min} and v_max={v_max}")
    return int(num_atoms), (float(v_min), float(v_max))

"""rlkit.networks, Rainbow parts: C51 / QR heads, noisy layers, the MinAtar torso, specs."""

from __future__ import annotations

import copy
import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rlkit import export, numpy_mlp
from rlkit.networks import DuelingQNetwork, QNetwork, build_network
from rlkit.noisy import NoisyDense
from rlkit.policy_io import load_policy, save_policy

NUM_ACTIONS = 3
BATCH = 5
MLP = {"torso": "mlp", "obs_shape": [4], "hidden_sizes": [16, 8]}
MINATAR = {"torso": "minatar_cnn", "obs_shape": [10, 10, 4], "hidden_sizes": [32]}
HEADS = {
    None: {},
    "c51": {"distributional": "c51", "num_atoms": 11, "v_min": -5.0, "v_max": 5.0},
    "qr": {"distributional": "qr", "num_atoms": 7},
}
COMBINATIONS = list(
    itertools.product(["q", "dueling_q"], list(HEADS), [False, True], ["mlp", "minatar_cnn"])
)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def spec_for(kind="q", head=None, noisy=False, torso="mlp", **changes):
    spec = {"kind": kind, "num_actions": NUM_ACTIONS, **(MLP if torso == "mlp" else MINATAR)}
    spec["torso"] = torso
    spec.update(HEADS[head])
    if noisy:
        spec["noisy"] = True
    spec.update(changes)
    return spec


def obs_for(spec, seed=1, batch=BATCH):
    rng = np.random.default_rng(seed)
    shape = (batch, *spec["obs_shape"])
    if spec["torso"] == "minatar_cnn":
        return rng.random(shape) < 0.3  # MinAtar's boolean grids
    return rng.normal(size=shape).astype(np.float32)


def randomize_weights(net, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    for v in net.weights:
        v.assign(scale * rng.normal(size=v.shape).astype(np.float32))


def combo_id(c):
    kind, head, noisy, torso = c
    return f"{kind}-{head or 'scalar'}-{'noisy' if noisy else 'plain'}-{torso}"


COMBO_IDS = [combo_id(c) for c in COMBINATIONS]


# -- output contracts -----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "head", "noisy", "torso"), COMBINATIONS, ids=COMBO_IDS)
def test_shapes_and_the_expectation_for_every_combination(kind, head, noisy, torso):
    spec = spec_for(kind, head, noisy, torso)
    net = build_network(spec)
    assert type(net) is (QNetwork if kind == "q" else DuelingQNetwork)
    obs = tf.constant(obs_for(spec))
    q = net(obs)
    assert q.shape == (BATCH, NUM_ACTIONS) and q.dtype == tf.float32
    np.testing.assert_array_equal(net(obs).numpy(), q.numpy())  # no noise: deterministic
    noisy_q = [net(obs, noise=True).numpy() for _ in range(2)]
    if noisy:
        assert not np.allclose(noisy_q[0], q.numpy()) and not np.allclose(*noisy_q)
    else:
        np.testing.assert_array_equal(noisy_q[0], q.numpy())  # nothing to be noisy
    if head is None:
        assert net.support is None
        with pytest.raises(ValueError, match="not distributional"):
            net.distribution(obs)
        return
    k = spec["num_atoms"]
    dist = net.distribution(obs)
    assert dist.shape == (BATCH, NUM_ACTIONS, k) and dist.dtype == tf.float32
    # Q is the expectation of the distribution, in TF and worked out here in numpy.
    np.testing.assert_allclose(net.q_from_distribution(dist).numpy(), q.numpy(), atol=1e-6)
    d = dist.numpy()
    if head == "c51":
        support = np.linspace(-5.0, 5.0, k)
        np.testing.assert_allclose(net.support.numpy(), support, atol=1e-6)
        probs = np.exp(d) / np.exp(d).sum(-1, keepdims=True)
        expected = (probs * support).sum(-1)
    else:
        assert net.support is None
        expected = d.mean(-1)
    np.testing.assert_allclose(q.numpy(), expected, atol=1e-5)
    if noisy:  # the same expectation holds for a noisy call's own distribution
        dist_noisy = net.distribution(obs, noise=True)
        assert not np.allclose(dist_noisy.numpy(), d)


def test_c51_expectation_by_hand():
    # Two atoms z = [-1, 1], logits [0, ln 3] -> probs [1/4, 3/4] -> Q = -1/4 + 3/4 = 0.5
    net = build_network(spec_for("q", "c51", num_atoms=2, v_min=-1.0, v_max=1.0))
    logits = tf.constant([[[0.0, np.log(3.0)]] * NUM_ACTIONS], tf.float32)
    np.testing.assert_allclose(net.q_from_distribution(logits).numpy(), [[0.5] * 3], atol=1e-6)


def test_qr_expectation_by_hand():
    net = build_network(spec_for("q", "qr", num_atoms=3))
    quantiles = tf.constant([[[-1.0, 0.0, 4.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    # means: 3 / 3 = 1, 6 / 3 = 2, 0
    np.testing.assert_allclose(net.q_from_distribution(quantiles).numpy(), [[1.0, 2.0, 0.0]])


@pytest.mark.parametrize("head", ["c51", "qr"])
def test_dueling_heads_duel_per_atom(head):
    net = build_network(spec_for("dueling_q", head))
    randomize_weights(net, seed=3, scale=0.3)
    obs = tf.constant(obs_for(net.spec))
    features = net.torso(obs)
    k = net.num_atoms
    value = net.value_head(features).numpy().reshape(BATCH, 1, k)
    advantage = net.advantage_head(features).numpy().reshape(BATCH, NUM_ACTIONS, k)
    # logits (C51) or quantiles (QR): V + A - mean_a A, atom by atom
    expected = value + advantage - advantage.mean(1, keepdims=True)
    np.testing.assert_allclose(net.distribution(obs).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(net.distribution(obs).numpy().mean(1), value[:, 0], atol=1e-5)


def test_scalar_heads_are_unchanged():
    # No new keys: the same layers, weights and outputs as before distributional heads.
    for kind, n_weights in (("q", 6), ("dueling_q", 8)):
        net = build_network(spec_for(kind))
        assert len(net.weights) == n_weights
        assert set(net.spec) == {
            "kind", "obs_shape", "num_actions", "torso", "hidden_sizes", "activation",
            "channels_first", "mixed_precision",
        }  # fmt: skip
        assert net.num_atoms == 1 and net.distributional is None and not net.noisy


# -- noisy layers ---------------------------------------------------------------------------


def noisy_layer_names(net):
    layers = [*net.torso_layers, *net.head_layers()]
    return [layer.name for layer in layers if isinstance(layer, NoisyDense)]


def test_where_the_noisy_layers_sit():
    # The torso's last dense layer and every head; earlier MLP layers and convolutions stay.
    assert noisy_layer_names(build_network(spec_for("q", "c51", True))) == ["dense_1", "q"]
    assert noisy_layer_names(build_network(spec_for("dueling_q", None, True, "minatar_cnn"))) == [
        "dense_0",
        "value",
        "advantage",
    ]
    nature = build_network(
        spec_for("q", "qr", True, torso="nature_cnn", obs_shape=[4, 36, 36], channels_first=True)
    )
    assert noisy_layer_names(nature) == ["dense_0", "q"]
    obs = np.random.default_rng(0).integers(0, 256, (2, 4, 36, 36), dtype=np.uint8)
    assert nature.distribution(tf.constant(obs), noise=True).shape == (2, NUM_ACTIONS, 7)
    linear = build_network(spec_for("q", None, True, hidden_sizes=[]))
    assert noisy_layer_names(linear) == ["q"]
    sigma = build_network(spec_for("q", None, True, noisy_sigma0=0.1)).q_head.sigma_kernel
    np.testing.assert_allclose(sigma.numpy(), 0.1 / np.sqrt(8))  # sigma0 / sqrt(p), p = 8


@pytest.mark.parametrize("torso", ["mlp", "minatar_cnn"])
def test_noisy_networks_act_greedily_in_numpy_with_the_mean_weights(torso):
    net = build_network(spec_for("dueling_q", "c51", True, torso))
    randomize_weights(net, seed=3, scale=0.2)
    assert net.supports_numpy
    variables = net.numpy_variables()
    assert {id(v) for v in variables} == {id(v) for v in net.weights}  # sigmas too
    assert len(net.numpy_weight_outputs()) == len(variables)
    # mu pairs in layer order, then the sigma pairs of the noisy layers in the same order
    noisy = [layer for layer in [*net.torso_layers, *net.head_layers()] if layer.weights]
    noisy = [layer for layer in noisy if isinstance(layer, NoisyDense)]
    assert [v.name for v in variables[-2 * len(noisy) :]] == ["sigma_kernel", "sigma_bias"] * 3
    assert variables[-6] is noisy[0].sigma_kernel and variables[-1] is noisy[-1].sigma_bias
    net.refresh_numpy()
    obs = obs_for(net.spec)
    want = net(tf.constant(obs), noise=False).numpy()
    np.testing.assert_allclose(net.numpy_forward(obs), want, rtol=1e-5, atol=1e-5)
    # Ray workers and saved policies: greedy from the spec and params, sigmas ignored
    got = numpy_mlp.action_scores(net.spec, net.numpy_params(), obs)
    np.testing.assert_array_equal(got, net.numpy_forward(obs))


def test_noise_rng_needs_noisy_layers():
    net = build_network(spec_for("q", "c51"))
    with pytest.raises(ValueError, match="noisy"):
        net.numpy_forward(obs_for(net.spec), noise_rng=np.random.default_rng(0))


def explicit_noisy_forward(net, obs, rng):
    """Q-values of ``net`` with one noise draw from ``rng``, through TF: a plain copy of the
    network whose weights are w = mu + sigma * outer(f(eps_in), f(eps_out)) and
    b = mu_b + sigma_b * f(eps_out), eps_in then eps_out drawn per noisy layer in call order."""
    spec = {k: v for k, v in net.spec.items() if k not in ("noisy", "noisy_sigma0")}
    plain = build_network(spec)

    def f(x):
        return np.sign(x) * np.sqrt(np.abs(x))

    for src, dst in zip(
        [*net.torso_layers, *net.head_layers()],
        [*plain.torso_layers, *plain.head_layers()],
        strict=True,
    ):
        if not src.weights:
            continue
        if not isinstance(src, NoisyDense):
            dst.set_weights(src.get_weights())
            continue
        p, q = src.mu_kernel.shape
        f_in = f(rng.standard_normal(p, dtype=np.float32))
        f_out = f(rng.standard_normal(q, dtype=np.float32))
        w = src.mu_kernel.numpy() + src.sigma_kernel.numpy() * np.outer(f_in, f_out)
        b = src.mu_bias.numpy() + src.sigma_bias.numpy() * f_out
        dst.set_weights([w, b])
    return plain(tf.constant(obs)).numpy()


@pytest.mark.parametrize("torso", ["mlp", "minatar_cnn"])
@pytest.mark.parametrize("head", [None, "c51", "qr"])
@pytest.mark.parametrize("kind", ["q", "dueling_q"])
def test_numpy_noisy_forward_draws_factorised_noise_from_the_generator(kind, head, torso):
    net = build_network(spec_for(kind, head, True, torso))
    randomize_weights(net, seed=4, scale=0.2)
    net.refresh_numpy()
    obs = obs_for(net.spec)
    stream = net.q_head if kind == "q" else net.value_head
    counter = stream.noise_state.numpy().copy()
    rng = np.random.default_rng(7)
    want = explicit_noisy_forward(net, obs, copy.deepcopy(rng))
    got = net.numpy_forward(obs, noise_rng=rng)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    again = net.numpy_forward(obs, noise_rng=rng)
    assert not np.allclose(again, got)  # fresh noise every call
    same = np.random.default_rng(7)  # the same seed, the same noise
    np.testing.assert_array_equal(net.numpy_forward(obs, noise_rng=same), got)
    np.testing.assert_array_equal(net.numpy_forward(obs, noise_rng=same), again)
    assert not np.allclose(got, net.numpy_forward(obs))  # the noise changes Q
    # one draw shared by the batch: each row is what it gets alone
    alone = net.numpy_forward(obs[2:3], noise_rng=np.random.default_rng(7))
    np.testing.assert_allclose(alone, got[2:3], rtol=1e-5, atol=1e-5)
    # the layers' TF stream (the learning update's) is neither read nor advanced
    np.testing.assert_array_equal(stream.noise_state.numpy(), counter)


def test_gradients_reach_sigma_through_noisy_calls_only():
    net = build_network(spec_for("dueling_q", "qr", True))
    obs = tf.constant(obs_for(net.spec))
    sigmas = [v for v in net.trainable_variables if "sigma" in v.path]
    assert len(sigmas) == 6  # dense_1, value and advantage: kernel and bias each
    with tf.GradientTape(persistent=True) as tape:
        noisy = tf.reduce_sum(net.distribution(obs, noise=True) ** 2)
        plain = tf.reduce_sum(net.distribution(obs) ** 2)
    assert all(g is not None for g in tape.gradient(noisy, sigmas))
    assert all(g is None for g in tape.gradient(plain, sigmas))


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_a_compiled_noisy_step_traces_once(jit_compile):
    net = build_network(spec_for("dueling_q", "c51", True))
    obs = tf.constant(obs_for(net.spec))

    @tf.function(jit_compile=jit_compile)
    def step(obs):
        return net.distribution(obs, noise=True), net(obs, noise=True), net(obs)

    outs = [step(obs) for _ in range(4)]
    assert step.experimental_get_tracing_count() == 1
    assert len({o[0].numpy().tobytes() for o in outs}) == 4  # fresh noise every call
    assert len({o[2].numpy().tobytes() for o in outs}) == 1  # the mean weights: no noise


def test_a_restored_network_continues_the_noise_sequence(tmp_path):
    spec = spec_for("q", "qr", True, "minatar_cnn")
    net = build_network(spec)
    obs = tf.constant(obs_for(spec))
    for _ in range(3):
        net(obs, noise=True)
    path = tf.train.Checkpoint(net=net).write(str(tmp_path / "ckpt"))
    expected = [net.distribution(obs, noise=True).numpy() for _ in range(3)]

    clone = build_network(spec)  # other weights, other noise keys
    tf.train.Checkpoint(net=clone).read(path).assert_consumed()
    for want in expected:
        np.testing.assert_array_equal(clone.distribution(obs, noise=True).numpy(), want)


def test_online_and_target_copies_share_weights_not_noise():
    spec = spec_for("q", "c51", True)
    online, target = build_network(spec), build_network(spec)
    target.set_weights(online.get_weights())  # what the agents do at the start
    obs = tf.constant(obs_for(spec))
    np.testing.assert_array_equal(online(obs).numpy(), target(obs).numpy())
    assert not np.allclose(online(obs, noise=True).numpy(), target(obs, noise=True).numpy())
    for o, t in zip(online.variables, target.variables, strict=True):  # Polyak works
        assert o.dtype == "float32"
        t.assign(0.5 * o + 0.5 * t)


def test_mixed_precision_noisy_distributional_network():
    spec = spec_for("dueling_q", "c51", True, "minatar_cnn", mixed_precision=True)
    net = build_network(spec)
    obs = tf.constant(obs_for(spec))
    assert net.distribution(obs, noise=True).dtype == tf.float32
    assert net(obs, noise=True).dtype == tf.float32
    twin = net.acting_copy()
    assert twin is not net and twin.spec == net.spec
    full = build_network({**spec, "mixed_precision": False})
    full.set_weights(net.get_weights())
    # bfloat16 torso: about 3 significant digits
    np.testing.assert_allclose(twin(obs).numpy(), full(obs).numpy(), rtol=0.05, atol=0.05)


# -- numpy mirror ---------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("head", ["c51", "qr"])
@pytest.mark.parametrize("kind", ["q", "dueling_q"])
def test_numpy_path_equals_tf_path(kind, head, activation):
    net = build_network(spec_for(kind, head, activation=activation))
    randomize_weights(net, seed=5, scale=0.5)
    assert net.supports_numpy
    obs = obs_for(net.spec)
    net.refresh_numpy()
    want = net(tf.constant(obs)).numpy()
    np.testing.assert_allclose(net.numpy_forward(obs), want, rtol=1e-5, atol=1e-5)
    # Ray workers act from the spec and the numpy weights alone.
    got = numpy_mlp.action_scores(net.spec, net.numpy_params(), obs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert {id(v) for v in net.numpy_variables()} == {id(v) for v in net.weights}


def test_numpy_path_with_normalized_observations():
    net = build_network(spec_for("dueling_q", "c51", normalize_obs=True))
    net.obs_normalizer.mean.assign([1.0, -1.0, 0.5, 0.0])
    net.obs_normalizer.var.assign([4.0, 1.0, 0.25, 9.0])
    obs = obs_for(net.spec)
    net.refresh_numpy()
    want = net(tf.constant(obs)).numpy()
    np.testing.assert_allclose(net.numpy_forward(obs), want, rtol=1e-5, atol=1e-5)
    got = numpy_mlp.action_scores(net.spec, net.numpy_params(), obs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_numpy_c51_expectation_is_stable_for_large_logits():
    # exp(200) overflows float32; probs [1/4, 3/4] as with logits [0, ln 3]
    logits = np.array([[[200.0, 200.0 + np.log(3.0)]]], np.float32)
    got = numpy_mlp.expected_q("c51", logits, np.array([-1.0, 1.0], np.float32))
    np.testing.assert_allclose(got, [[0.5]], atol=1e-4)


# -- MinAtar torso --------------------------------------------------------------------------


def test_minatar_torso_layers_and_boolean_inputs():
    net = build_network(spec_for("q", torso="minatar_cnn", hidden_sizes=[]))  # -> 128 units
    conv, flatten, dense = net.torso_layers
    assert conv.kernel.shape == (3, 3, 4, 16) and conv.strides == (1, 1)
    assert conv.padding == "valid"
    assert dense.kernel.shape == (8 * 8 * 16, 128)  # 10x10 -> 8x8 after a 'valid' 3x3
    assert build_network(spec_for("q", torso="minatar_cnn")).torso_layers[-1].units == 32
    grids = obs_for(net.spec)
    assert grids.dtype == bool
    # booleans are taken as 0/1 floats, not scaled
    as_float = net(tf.constant(grids.astype(np.float32))).numpy()
    np.testing.assert_array_equal(net(tf.constant(grids)).numpy(), as_float)
    features = net.torso(tf.constant(grids)).numpy()
    x = grids.astype(np.float32)
    k, b = conv.kernel.numpy(), conv.bias.numpy()
    first = np.zeros((BATCH, 8, 8, 16), np.float32)
    for i, j in itertools.product(range(8), range(8)):
        first[:, i, j] = np.einsum("bhwc,hwcf->bf", x[:, i : i + 3, j : j + 3], k) + b
    hidden = np.maximum(first, 0).reshape(BATCH, -1) @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(features, np.maximum(hidden, 0), rtol=1e-4, atol=1e-4)
    assert net.supports_numpy
    params = [v.numpy() for v in net.numpy_variables()]
    got, end = numpy_mlp.minatar_torso(grids, params)
    np.testing.assert_allclose(got, np.maximum(hidden, 0), rtol=1e-4, atol=1e-4)
    assert end == 4  # conv kernel and bias, dense kernel and bias: the Q head is next


def randomize_by_fan_in(net, seed):
    """Random weights of a realistic scale: kernels N(0, 1 / fan_in), biases N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    for v in net.weights:
        scale = 1 / np.sqrt(np.prod(v.shape[:-1])) if len(v.shape) > 1 else 0.1
        v.assign(scale * rng.normal(size=v.shape).astype(np.float32))


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("noisy", [False, True], ids=["plain", "noisy"])
@pytest.mark.parametrize("head", [None, "c51", "qr"])
@pytest.mark.parametrize("kind", ["q", "dueling_q"])
def test_minatar_numpy_path_equals_tf_path(kind, head, noisy, batch):
    spec = spec_for(kind, head, noisy, "minatar_cnn", hidden_sizes=[128])
    spec["obs_shape"] = [10, 10, 6]  # Space Invaders' channels
    net = build_network(spec)
    randomize_by_fan_in(net, seed=batch)
    assert net.supports_numpy
    obs = obs_for(net.spec, seed=batch, batch=batch)
    net.refresh_numpy()
    want = net(tf.constant(obs)).numpy()
    got = net.numpy_forward(obs)
    assert got.shape == (batch, NUM_ACTIONS) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(numpy_mlp.action_scores(net.spec, net.numpy_params(), obs), got)
    # the compiled update's copy is the same list, in the same order
    outputs = [np.asarray(v) for v in net.numpy_weight_outputs()]
    for a, b in zip(outputs, net.numpy_params(), strict=True):
        np.testing.assert_array_equal(a, b)


# -- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "head", "noisy", "torso"), COMBINATIONS, ids=COMBO_IDS)
def test_spec_round_trip_through_a_weights_file(kind, head, noisy, torso, tmp_path):
    net = build_network(spec_for(kind, head, noisy, torso))
    spec = json.loads(json.dumps(net.spec))
    assert spec == net.spec
    path = str(tmp_path / "net.weights.h5")
    net.save_weights(path)
    clone = build_network(spec)
    assert clone.spec == spec
    clone.load_weights(path)
    obs = tf.constant(obs_for(spec))
    np.testing.assert_array_equal(clone(obs).numpy(), net(obs).numpy())
    if head is not None:
        np.testing.assert_array_equal(
            clone.distribution(obs).numpy(), net.distribution(obs).numpy()
        )


def test_spec_contents():
    c51 = build_network(spec_for("dueling_q", "c51", True, noisy_sigma0=0.4)).spec
    assert {k: c51[k] for k in ("distributional", "num_atoms", "v_min", "v_max")} == {
        "distributional": "c51",
        "num_atoms": 11,
        "v_min": -5.0,
        "v_max": 5.0,
    }
    assert c51["noisy"] is True and c51["noisy_sigma0"] == 0.4
    qr = build_network(spec_for("q", "qr")).spec
    assert qr["distributional"] == "qr" and qr["num_atoms"] == 7
    assert "v_min" not in qr and "noisy" not in qr
    # defaults: 51 atoms on [-10, 10] for C51, 200 quantiles for QR, sigma0 0.5
    c51 = build_network({**spec_for("q"), "distributional": "c51", "noisy": True}).spec
    assert (c51["num_atoms"], c51["v_min"], c51["v_max"], c51["noisy_sigma0"]) == (
        51,
        -10.0,
        10.0,
        0.5,
    )
    assert build_network({**spec_for("q"), "distributional": "qr"}).spec["num_atoms"] == 200
    # explicit "absent" values are accepted
    plain = build_network({**spec_for("q"), "distributional": None, "noisy": False})
    assert plain.spec == build_network(spec_for("q")).spec


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"distributional": "iqn"}, r"unknown distributional 'iqn'.*'c51', 'qr'"),
        ({"distributional": "c51", "v_min": 1.0, "v_max": 1.0}, r"v_min < v_max.*v_min=1\.0"),
        ({"distributional": "c51", "v_min": 2.0, "v_max": -2.0}, "v_min < v_max"),
        ({"distributional": "c51", "v_max": float("inf")}, "v_max must be a finite number"),
        ({"distributional": "c51", "num_atoms": 1}, "num_atoms must be an integer >= 2, got 1"),
        ({"distributional": "qr", "num_atoms": 0}, "num_atoms must be an integer >= 2"),
        ({"distributional": "qr", "num_atoms": 5.5}, "num_atoms must be an integer >= 2"),
        ({"distributional": "qr", "num_atoms": True}, "num_atoms must be an integer >= 2"),
        ({"distributional": "qr", "v_min": -1.0}, "v_min and v_max are C51 settings"),
        ({"num_atoms": 51}, "num_atoms need a distributional head"),
        ({"v_min": -1.0, "v_max": 1.0}, "v_min, v_max need a distributional head"),
        ({"noisy_sigma0": 0.5}, "noisy_sigma0 is a setting of noisy layers"),
        ({"noisy": True, "noisy_sigma0": -0.1}, "noisy_sigma0 must be >= 0"),
        ({"noisy": "yes"}, "noisy must be true or false"),
        ({"torso": "minatar_cnn", "obs_shape": [40]}, "minatar_cnn torso takes channels-last"),
        (
            {"torso": "minatar_cnn", "obs_shape": [4, 10, 10], "channels_first": True},
            "channels_first=True",
        ),
        ({"kind": "actor_critic", "noisy": True}, r"unknown keys \['noisy'\]"),
        ({"kind": "actor_critic", "distributional": "c51"}, r"unknown keys \['distributional'\]"),
    ],
)
def test_bad_specs_raise_clear_errors(changes, match):
    with pytest.raises(ValueError, match=match):
        build_network({**spec_for("q"), **changes})


def test_actor_critic_refuses_noisy_layers():
    from rlkit.networks import ActorCriticNetwork

    with pytest.raises(ValueError, match="noisy layers are for Q-networks"):
        ActorCriticNetwork((4,), 2, noisy=True)


# -- saved policies and exports -------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [spec_for("dueling_q", "c51", True), spec_for("q", "qr", True, "minatar_cnn")],
    ids=["dueling-c51-noisy-mlp", "q-qr-noisy-minatar"],
)
def test_a_noisy_distributional_policy_exports_its_greedy_q_without_noise(spec, tmp_path):
    net = build_network(spec)
    obs = obs_for(spec, batch=16)
    for _ in range(2):
        net(tf.constant(obs), noise=True)  # the stream has moved: exports must not care
    run_dir = tmp_path / "run"
    save_policy(run_dir / "policy", net, agent="rainbow", env_id="Test-v0")
    policy = load_policy(run_dir)
    want = net(tf.constant(obs)).numpy()
    assert policy.network.supports_numpy  # a loaded policy acts in numpy, with mu
    np.testing.assert_allclose(policy.scores(obs), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(policy(obs), want.argmax(-1))
    assert export.main([str(run_dir), "--out", str(tmp_path / "out")]) == 0
    served = tf.saved_model.load(str(tmp_path / "out" / "saved_model"))
    serve = served.signatures["serving_default"]
    dtype = tf.bool if spec["torso"] == "minatar_cnn" else tf.float32
    assert serve.structured_input_signature[1]["obs"].dtype == dtype
    results = [serve(obs=tf.constant(obs)) for _ in range(2)]
    for result in results:  # noise-free, so the same every call
        np.testing.assert_allclose(result["scores"].numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(result["action"].numpy(), want.argmax(-1))
    np.testing.assert_array_equal(load_policy(tmp_path / "out")(obs), want.argmax(-1))

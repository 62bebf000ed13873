"""PPO: the loss against hand-worked numbers, and the update's epochs, early stop, annealing,
masking and determinism; every policy-gradient agent on every kind of action space."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from rlkit import losses
from rlkit.agents import A2C, PPO, A2CConfig, PPOConfig, Reinforce, ReinforceConfig, load_agent
from rlkit.distributed.acting import ActingPolicy, take_snapshot
from rlkit.errors import NumericalError
from rlkit.types import Rollout

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
SPACES = {
    "discrete": gym.spaces.Discrete(3),
    "box": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    "multi_discrete": gym.spaces.MultiDiscrete([2, 3]),
    "multi_binary": gym.spaces.MultiBinary(3),
}


def t(values):
    return tf.constant(values, tf.float32)


# -- the loss by hand --------------------------------------------------------------------------
def ppo_terms(clip_range_vf=None, extra_row=None):
    """Rows: ratio 1.5 with A = 1, ratio 0.5 with A = -1 (both clipped at eps = 0.2)."""
    rows = [
        # log_pi, old, adv, V, old V, G, H, mask
        (math.log(1.5), 0.0, 1.0, 2.0, 1.0, 3.0, 1.0, 1.0),
        (math.log(0.5), 0.0, -1.0, 0.0, 1.0, 0.0, 2.0, 1.0),
    ]
    if extra_row is not None:
        rows.append(extra_row)
    cols = [t(list(c)) for c in zip(*rows, strict=True)]
    return losses.ppo_loss(*cols, 0.2, clip_range_vf, 0.5, 0.01, normalize_advantage=False)


def test_ppo_loss_by_hand():
    loss, terms = ppo_terms()
    # min(1.5 * 1, 1.2 * 1) = 1.2 and min(0.5 * -1, 0.8 * -1) = -0.8: policy loss -0.2.
    np.testing.assert_allclose(terms["policy_loss"].numpy(), -0.2, rtol=1e-6)
    np.testing.assert_allclose(terms["value_loss"].numpy(), 0.5, rtol=1e-6)  # (1 + 0) / 2
    np.testing.assert_allclose(terms["entropy"].numpy(), 1.5, rtol=1e-6)
    np.testing.assert_allclose(loss.numpy(), -0.2 + 0.5 * 0.5 - 0.01 * 1.5, rtol=1e-6)
    # KL estimate: (r - 1) - log r per row: 0.094535 and 0.193147.
    kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    np.testing.assert_allclose(terms["approx_kl"].numpy(), kl, rtol=1e-5)
    np.testing.assert_allclose(terms["clip_fraction"].numpy(), 1.0)


def test_ppo_value_clipping_by_hand():
    _, terms = ppo_terms(clip_range_vf=0.5)
    # V' = old V + clip(V - old V, +-0.5) = [1.5, 0.5]; ((3 - 1.5)^2 + (0 - 0.5)^2) / 2.
    np.testing.assert_allclose(terms["value_loss"].numpy(), 1.25, rtol=1e-6)


def test_ppo_loss_ignores_masked_rows():
    crazy = (5.0, -3.0, 100.0, -50.0, 7.0, 1e3, 9.0, 0.0)
    loss, terms = ppo_terms(extra_row=crazy)
    ref_loss, ref_terms = ppo_terms()
    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-6)
    for key in ref_terms:
        np.testing.assert_allclose(terms[key].numpy(), ref_terms[key].numpy(), rtol=1e-6)


def test_explained_variance_by_hand():
    # Var[target] = 42/27, Var[residual [0, 0, 1]] = 6/27: 1 - 6/42.
    ev = losses.explained_variance(t([1, 2, 3]), t([1, 2, 4]), t([1, 1, 1]))
    np.testing.assert_allclose(ev.numpy(), 1 - 6 / 42, rtol=1e-6)
    assert losses.explained_variance(t([1, 1]), t([2, 2]), t([1, 1])).numpy() == 1.0


# -- the update ------------------------------------------------------------------------------
def rollout(rng, space, steps=6, envs=4):
    """A ``[T, N]`` rollout with one terminated episode and its autoreset row per env pair."""
    shape = (steps, envs)
    actions = np.stack([np.stack([space.sample() for _ in range(envs)]) for _ in range(steps)])
    if isinstance(space, gym.spaces.Box):  # unclipped samples, as the agent stores them
        actions = (actions * 1.5).astype(np.float32)
    terminated = np.zeros(shape, np.float32)
    valid = np.ones(shape, np.float32)
    for e in range(0, envs, 2):
        terminated[2, e], valid[3, e] = 1.0, 0.0
    obs = rng.normal(size=(*shape, 3)).astype(np.float32)
    reward = rng.normal(size=shape).astype(np.float32)
    return Rollout(
        obs,
        actions.astype(np.float32 if isinstance(space, gym.spaces.Box) else np.int64),
        reward,
        terminated,
        np.zeros(shape, np.float32),
        valid,
        rng.normal(size=(envs, 3)).astype(np.float32),
    )


def make_ppo(seed=0, space=SPACES["discrete"], **overrides):
    config = PPOConfig(**{"hidden_sizes": (16, 16), "n_epochs": 3, "batch_size": 8, **overrides})
    space.seed(seed)
    return PPO(OBS, space, config, seed=seed)


def weights(agent):
    return [v.numpy().copy() for v in agent.network.trainable_variables]


def test_update_runs_every_epoch_and_minibatch_in_one_compiled_call():
    agent = make_ppo(space=SPACES["box"])
    rng = np.random.default_rng(0)
    for steps, envs in [(6, 4), (5, 3), (8, 2)]:  # 24 rows: 3 minibatches of 8; 15: 8 + 7
        metrics = agent.update(rollout(rng, SPACES["box"], steps, envs))
        assert metrics["train/minibatch_steps"] == 3 * math.ceil(steps * envs / 8)
    assert agent._update_fn.experimental_get_tracing_count() == 1
    expected = {"approx_kl", "clip_fraction", "explained_variance", "entropy", "std", "loss"}
    assert {f"train/{k}" for k in expected} <= set(metrics)
    assert int(agent.updates.numpy()) == 3  # one per update call


def test_target_kl_stops_the_epochs_early():
    rng = np.random.default_rng(1)
    data = rollout(rng, SPACES["discrete"])
    full = make_ppo(learning_rate=0.05).update(data)
    stopped = make_ppo(learning_rate=0.05, target_kl=1e-9).update(data)
    assert full["train/minibatch_steps"] == 9
    # The first minibatch is still the collecting policy (KL 0): one step, then a stop.
    assert stopped["train/minibatch_steps"] == 1


def test_annealing_follows_the_run_budget():
    agent = make_ppo(learning_rate=1e-3, clip_range=0.2, anneal_lr=True, anneal_clip_range=True)
    agent.set_horizon(1000)

    class Full:
        ready = True

        def pop(self, last_obs):
            return rollout(np.random.default_rng(2), SPACES["discrete"])

    metrics = agent.update(agent.next_batch(Full(), 750, None, {}))
    np.testing.assert_allclose(metrics["train/learning_rate"], 2.5e-4, rtol=1e-5)
    np.testing.assert_allclose(metrics["train/clip_range"], 0.05, rtol=1e-5)
    fixed = make_ppo()
    fixed.set_horizon(1000)
    metrics = fixed.update(fixed.next_batch(Full(), 750, None, {}))
    np.testing.assert_allclose(metrics["train/learning_rate"], 3e-4, rtol=1e-5)


@pytest.mark.parametrize("cls", [A2C, Reinforce], ids=lambda c: c.name)
def test_a2c_and_reinforce_anneal_the_learning_rate_over_the_run(cls):
    config_cls = A2CConfig if cls is A2C else ReinforceConfig
    data = rollout(np.random.default_rng(2), SPACES["discrete"])

    class Full:
        ready = True

        def pop(self, last_obs):
            return data

    annealed = cls(OBS, SPACES["discrete"], config_cls(learning_rate=1e-3, anneal_lr=True))
    annealed.set_horizon(1000)
    # A constant rate of 1e-3 x (1 - 750 / 1000) from the same weights: the same step.
    fixed = cls(OBS, SPACES["discrete"], config_cls(learning_rate=2.5e-4))
    fixed.network.set_weights(annealed.network.get_weights())
    metrics = annealed.update(annealed.next_batch(Full(), 750, None, {}))
    np.testing.assert_allclose(metrics["train/learning_rate"], 2.5e-4, rtol=1e-6)
    assert "train/learning_rate" not in fixed.update(data)
    for x, y in zip(weights(annealed), weights(fixed), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)


def test_autoreset_rows_do_not_change_the_update():
    rng = np.random.default_rng(3)
    data = rollout(rng, SPACES["discrete"])
    other = data._replace(
        reward=np.where(data.valid == 0, 1e3, data.reward).astype(np.float32),
        action=np.where(data.valid == 0, 2, data.action).astype(np.int64),
    )
    a, b = make_ppo(), make_ppo()
    b.network.set_weights(a.network.get_weights())
    a.update(data)
    b.update(other)
    for x, y in zip(weights(a), weights(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_minibatch_order_follows_the_seed():
    data = rollout(np.random.default_rng(4), SPACES["discrete"])
    runs, start = {}, make_ppo(seed=0).network.get_weights()
    for name, seed in [("a", 0), ("again", 0), ("b", 1)]:
        agent = make_ppo(seed=seed)
        agent.network.set_weights(start)  # the same weights: only the minibatch order differs
        agent.update(data)
        runs[name] = weights(agent)
    assert all(np.array_equal(x, y) for x, y in zip(runs["a"], runs["again"], strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(runs["a"], runs["b"], strict=True))


def test_the_xla_update_equals_the_plain_one_given_the_same_minibatch_order(monkeypatch):
    """``jit_compile``: the dynamic minibatch slices (a smaller last one), ``target_kl``'s
    early stop and the Gaussian head compile with XLA and give the plain update's numbers.

    XLA's stateless RNG draws other permutations than TF's kernel for the same key, so a
    ``jit_compile`` run shuffles otherwise than a plain one of the same seed (each is
    reproducible); both get the same permutations here, to compare the maths alone.
    """

    def same_uniform(shape, seed, **kwargs):
        # i * 7919 mod 1009 (a prime above the rows drawn): distinct values, so no ties.
        i = tf.range(tf.reduce_prod(shape), dtype=tf.int64) * 7919 + seed[1] * 31
        return tf.reshape(tf.cast(i % 1009, tf.float32) / 1009.0, shape)

    monkeypatch.setattr(tf.random, "stateless_uniform", same_uniform)
    settings = {"space": SPACES["box"], "n_epochs": 4, "batch_size": 4, "learning_rate": 0.01}
    settings["target_kl"] = 1e-4
    plain, xla = make_ppo(**settings), make_ppo(jit_compile=True, **settings)
    xla.network.set_weights(plain.network.get_weights())
    rng = np.random.default_rng(7)
    steps = []
    for shape in [(5, 3), (7, 1), (4, 2)]:  # 15 and 7 rows: a last minibatch of 3
        data = rollout(rng, SPACES["box"], *shape)
        want, got = plain.update(data), xla.update(data)
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-3, atol=1e-5, err_msg=key)
        steps.append((got["train/minibatch_steps"], 4 * math.ceil(shape[0] * shape[1] / 4)))
    assert any(taken < full for taken, full in steps), steps  # target_kl stopped one early
    for x, y in zip(weights(plain), weights(xla), strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
    assert xla._update_fn.experimental_get_tracing_count() == 1


# -- every policy-gradient agent on every action space -------------------------------------------
def make_pg(cls, space, seed=0):
    config_cls = {A2C: A2CConfig, PPO: PPOConfig, Reinforce: ReinforceConfig}[cls]
    extra = {"n_epochs": 2, "batch_size": 8} if cls is PPO else {}
    return cls(OBS, space, config_cls(hidden_sizes=(16,), **extra), seed=seed)


@pytest.mark.parametrize("kind", sorted(SPACES))
@pytest.mark.parametrize("cls", [A2C, PPO, Reinforce], ids=lambda c: c.name)
def test_every_agent_acts_learns_and_reloads_on_every_action_space(cls, kind, tmp_path):
    space = SPACES[kind]
    agent = make_pg(cls, space)
    rng = np.random.default_rng(5)
    obs = rng.normal(size=(64, 3)).astype(np.float32)
    for explore in (True, False):
        actions = agent.act(obs, explore=explore)
        assert actions.shape == (64, *space.shape)
        assert actions.dtype == agent.dist.action_dtype
        if not explore or kind != "box":  # samples of a Box policy are stored unclipped
            assert all(space.contains(np.asarray(a, space.dtype)) for a in actions)
    data = rollout(rng, space)
    if cls is Reinforce:  # whole episodes: every column ends in its last row
        data = data._replace(terminated=_ends(6, 4), valid=np.ones((6, 4), np.float32))
    before = weights(agent)
    metrics = agent.update(data)
    assert all(np.isfinite(v) for v in metrics.values())
    assert not all(np.array_equal(x, y) for x, y in zip(before, weights(agent), strict=True))
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    np.testing.assert_array_equal(loaded.act(obs, explore=False), agent.act(obs, explore=False))
    assert loaded.action_space == agent.action_space


def _ends(steps, envs):
    terminated = np.zeros((steps, envs), np.float32)
    terminated[-1] = 1.0
    return terminated


def test_box_policy_learns_its_log_std_and_reports_it():
    agent = make_pg(PPO, SPACES["box"])
    agent.network.log_std.assign([-1.0, 0.5])
    metrics = agent.update(rollout(np.random.default_rng(6), SPACES["box"]))
    np.testing.assert_allclose(
        metrics["train/std"], (math.exp(-1.0) + math.exp(0.5)) / 2, rtol=1e-2
    )
    assert not np.allclose(agent.network.log_std.numpy(), [-1.0, 0.5])


def test_log_std_init_sets_the_first_std():
    config = PPOConfig(hidden_sizes=(8,), log_std_init=-2.0)
    agent = PPO(OBS, SPACES["box"], config, seed=0)
    np.testing.assert_allclose(agent.log_std(), [-2.0, -2.0])


@pytest.mark.parametrize("cls", [A2C, PPO, Reinforce], ids=lambda c: c.name)
def test_ortho_init_false_gives_pytorch_default_init_and_reloads(cls, tmp_path):
    # rl-zoo3's ortho_init=False: every linear layer as PyTorch makes it, kernel and bias
    # uniform in +-1/sqrt(fan_in); the default stays orthogonal with zero biases.
    config_cls = {A2C: A2CConfig, PPO: PPOConfig, Reinforce: ReinforceConfig}[cls]
    box = SPACES["box"]
    plain = cls(OBS, box, config_cls(hidden_sizes=(64, 32), share_torso=False), seed=0)
    torch_like = cls(
        OBS, box, config_cls(hidden_sizes=(64, 32), share_torso=False, ortho_init=False), seed=0
    )
    fan_in = {"dense_0": 3, "dense_1": 64, "logits": 32, "value": 32}
    checked = 0
    for layer in torch_like.network.layers:
        name = layer.name.removeprefix("value_")
        if name not in fan_in:
            continue
        bound = 1 / math.sqrt(fan_in[name])
        for w in (layer.kernel.numpy(), layer.bias.numpy()):
            assert np.abs(w).max() <= bound
            if w.size >= 32:  # spread over the range, not squeezed near 0 or at the bounds
                assert 0.5 * bound < np.abs(w).max() and np.std(w) > 0.4 * bound
        checked += 1
    assert checked == 6  # two torsos of two layers, two heads
    for layer in plain.network.layers:
        if layer.name in ("dense_1", "value_dense_1"):
            k = layer.kernel.numpy()  # [64, 32]: orthonormal columns times sqrt(2)
            np.testing.assert_allclose(k.T @ k, 2 * np.eye(32), atol=1e-4)
            assert not layer.bias.numpy().any()
    assert torch_like.network.spec["ortho_init"] is False
    assert "ortho_init" not in plain.network.spec
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    torch_like.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    np.testing.assert_array_equal(
        loaded.act(obs, explore=False), torch_like.act(obs, explore=False)
    )


def test_ray_workers_sample_as_the_agent_does():
    for kind in ("box", "multi_discrete", "multi_binary"):
        agent = make_pg(A2C, SPACES[kind], seed=3)
        policy = ActingPolicy(take_snapshot(agent), np.random.default_rng(11))
        agent.rng = np.random.default_rng(11)
        obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
        np.testing.assert_allclose(policy(obs, 0), agent.act(obs, explore=True), rtol=1e-5)


def test_a_non_finite_gaussian_action_is_never_returned():
    agent = make_pg(A2C, SPACES["box"])
    with pytest.raises(NumericalError, match="non-finite action"):
        agent.act(np.full((2, 3), np.nan, np.float32), explore=True)


def test_infinite_action_bounds_are_said_once(caplog):
    with caplog.at_level("WARNING"):
        make_pg(PPO, gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    assert sum("infinite bounds" in r.getMessage() for r in caplog.records) == 1

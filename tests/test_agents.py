"""Agent tests over the registry: hand-made batches, one trace, checkpoints, exact targets.

Agents never read envs or buffers, so every test here hands them arrays built by hand
(``Batch`` for the DQN family, ``Rollout`` for A2C and REINFORCE) and checks the metrics,
the weights or the targets against numbers worked out in the comments or recomputed in
numpy from the same network.
"""

from __future__ import annotations

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

from rlkit import losses
from rlkit.agents import (
    A2C,
    AGENTS,
    DQN,
    DoubleDQN,
    DuelingDQN,
    PolicyGradient,
    Reinforce,
    load_agent,
)
from rlkit.agents.common import polyak_update
from rlkit.errors import IncompatibleEnvError, RlkitError
from rlkit.networks import DuelingQNetwork, QNetwork
from rlkit.types import Batch, Rollout

_env = gym.make("CartPole-v1")
OBS_SPACE, ACTION_SPACE = _env.observation_space, _env.action_space
_env.close()
OBS_DIM, NUM_ACTIONS = OBS_SPACE.shape[0], int(ACTION_SPACE.n)

NAMES = sorted(AGENTS)
DQN_NAMES = ["dqn", "double_dqn", "dueling_dqn"]


# -- helpers ---------------------------------------------------------------------------------


def make_agent(name: str, seed: int = 0, **overrides):
    """A small agent for CartPole's spaces; ``seed`` fixes the initial weights."""
    cls = AGENTS[name]
    keras.utils.set_random_seed(seed)
    config = cls.config_cls(hidden_sizes=(16, 16), **overrides)
    return cls(OBS_SPACE, ACTION_SPACE, config, seed=seed)


def obs_batch(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=(*shape, OBS_DIM)).astype(np.float32)


def make_batch(rng: np.random.Generator, shape: tuple[int, ...]) -> Batch:
    """Random transitions with leading dims ``shape`` ([B] or [G, B]), some terminated."""
    terminated = (rng.random(shape) < 0.3).astype(np.float32)
    return Batch(
        obs=obs_batch(rng, *shape),
        action=rng.integers(0, NUM_ACTIONS, shape).astype(np.int64),
        reward=rng.normal(size=shape).astype(np.float32),
        next_obs=obs_batch(rng, *shape),
        terminated=terminated,
        truncated=(rng.random(shape) < 0.1).astype(np.float32),
        discount=np.float32(0.99) * (1.0 - terminated),
        weights=np.ones(shape, np.float32),
        indices=np.arange(int(np.prod(shape))).reshape(shape),
    )


def make_rollout(
    rng: np.random.Generator, steps: int, envs: int, ends: list[tuple[int, int, str]] | None = None
) -> Rollout:
    """A ``[T, N]`` rollout laid out as the runner makes it with NEXT_STEP autoreset.

    ``ends`` lists ``(t, n, "terminated" | "truncated")``: row t of env n ends an episode
    and row t + 1 (if inside the rollout) is the autoreset row: valid 0, reward 0, its obs
    the episode's true final observation. Random ends if ``ends`` is None.
    """
    shape = (steps, envs)
    terminated, truncated = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    valid = np.ones(shape, np.float32)
    reward = rng.normal(size=shape).astype(np.float32)
    if ends is None:
        ends = []
        for n in range(envs):
            t = 0
            while t < steps:
                if rng.random() < 0.3:
                    ends.append((t, n, "terminated" if rng.random() < 0.5 else "truncated"))
                    t += 2
                else:
                    t += 1
    for t, n, kind in ends:
        (terminated if kind == "terminated" else truncated)[t, n] = 1.0
        if t + 1 < steps:
            valid[t + 1, n] = 0.0
            reward[t + 1, n] = 0.0
    return Rollout(
        obs=obs_batch(rng, *shape),
        action=rng.integers(0, NUM_ACTIONS, shape).astype(np.int64),
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        valid=valid,
        last_obs=obs_batch(rng, envs),
    )


def make_episodes(
    rng: np.random.Generator,
    lengths: list[int],
    kinds: list[str] | None = None,
    rewards: list[list[float]] | None = None,
) -> Rollout:
    """Whole episodes as the columns of a padded ``[L, E]`` rollout (``EpisodeBuffer`` layout)."""
    steps, count = max(lengths), len(lengths)
    kinds = kinds or ["terminated" if rng.random() < 0.5 else "truncated" for _ in lengths]
    shape = (steps, count)
    obs = np.zeros((*shape, OBS_DIM), np.float32)
    action = np.zeros(shape, np.int64)
    reward, terminated, truncated, valid = (np.zeros(shape, np.float32) for _ in range(4))
    for e, (n, kind) in enumerate(zip(lengths, kinds, strict=True)):
        obs[:n, e] = obs_batch(rng, n)
        action[:n, e] = rng.integers(0, NUM_ACTIONS, n)
        reward[:n, e] = rewards[e] if rewards else rng.normal(size=n)
        (terminated if kind == "terminated" else truncated)[n - 1, e] = 1.0
        valid[:n, e] = 1.0
    return Rollout(obs, action, reward, terminated, truncated, valid, obs_batch(rng, count))


def hand_made_data(name: str, rng: np.random.Generator, shape: tuple[int, ...]):
    """Data for one ``update`` of agent ``name``: [B] / [G, B] batch, [T, N] / [L, E] rollout."""
    if not AGENTS[name].on_policy:
        return make_batch(rng, shape)
    if issubclass(AGENTS[name], Reinforce):
        steps, count = shape
        lengths = [int(rng.integers(1, steps + 1)) for _ in range(count)]
        lengths[0] = steps
        return make_episodes(rng, lengths)
    return make_rollout(rng, *shape)


def trainable_values(agent) -> list[np.ndarray]:
    return [v.numpy().copy() for v in agent.policy_network().trainable_variables]


def checkpoint_values(agent) -> dict[str, list[np.ndarray]]:
    """Every variable reachable from ``checkpoint_items()``: models, optimizer slots, counters."""
    out = {}
    for key, item in agent.checkpoint_items().items():
        variables = [item] if isinstance(item, tf.Variable) else list(item.variables)
        out[key] = [np.array(v.numpy()) for v in variables]
    return out


def network_scores(agent, obs: np.ndarray) -> np.ndarray:
    """The Keras network's action scores: Q-values, or logits for actor-critic nets."""
    out = agent.policy_network()(tf.constant(obs))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def set_constant_outputs(network, head_biases: dict[str, list[float]]) -> None:
    """Zero every weight, then set head biases: the network outputs those biases everywhere."""
    for v in network.variables:
        v.assign(tf.zeros_like(v))
    for head, bias in head_biases.items():
        getattr(network, head).bias.assign(np.asarray(bias, np.float32))
    network.refresh_numpy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def update_at(agent, weights: list[np.ndarray], data) -> dict[str, float]:
    """Metrics of one update from the given weights (metrics are computed before the step)."""
    agent.policy_network().set_weights(weights)
    return agent.update(data)


# -- registry, acting ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=NAMES)
def agent(request):
    """One small agent per registry name, shared by the generic tests (one trace each).

    The tests using it only assert things that hold whatever the others did before.
    """
    return make_agent(request.param)


def test_registry_names_and_kinds():
    # The shipped agents are discovered (every module of rlkit.agents is scanned).
    assert {"dqn", "double_dqn", "dueling_dqn", "reinforce", "a2c"} <= set(AGENTS)
    for name, cls in AGENTS.items():
        assert cls.name == name
        assert cls.on_policy == issubclass(cls, PolicyGradient)
    assert "policy_gradient" not in AGENTS and PolicyGradient not in AGENTS.values()
    assert AGENTS["dqn"] is DQN and AGENTS["double_dqn"] is DoubleDQN
    assert AGENTS["dueling_dqn"] is DuelingDQN and AGENTS["reinforce"] is Reinforce
    assert AGENTS["a2c"] is A2C


def test_act_returns_valid_int_actions(agent):
    rng = np.random.default_rng(0)
    for n in (1, 5):
        for explore in (True, False):
            actions = agent.act(obs_batch(rng, n), explore=explore)
            assert isinstance(actions, np.ndarray)
            assert actions.shape == (n,)
            assert np.issubdtype(actions.dtype, np.integer)
            assert all(ACTION_SPACE.contains(int(a)) for a in actions)
    # Exploring agents take both actions on a large batch (epsilon ~1, or sampling); noisy
    # nets draw one noise sample per call for the whole batch, so over a few calls.
    calls = 20 if getattr(agent.config, "noisy", False) else 1
    taken = {a for _ in range(calls) for a in agent.act(obs_batch(rng, 200), explore=True)}
    assert taken == {0, 1}


def test_network_kinds(agent):
    if agent.on_policy:
        assert agent.policy_network() is agent.network
        return
    assert agent.policy_network() is agent.q_network
    dueling = agent.name in ("dueling_dqn", "rainbow")
    for net in (agent.q_network, agent.target_network):
        assert isinstance(net, DuelingQNetwork) == dueling
        assert isinstance(net, QNetwork) == (not dueling)


# -- one update on a hand-made batch -------------------------------------------------------


def test_update_on_hand_made_batch(agent):
    rng = np.random.default_rng(1)
    if agent.name in ("a2c", "ppo"):
        # Env 0 terminates at t=1 (t=2 autoreset), env 1 is truncated at t=3 (t=4 autoreset),
        # env 2 starts on an autoreset row.
        data = make_rollout(rng, 6, 3, [(1, 0, "terminated"), (3, 1, "truncated")])
        data.valid[0, 2] = 0.0
        assert data.valid.sum() == 6 * 3 - 3
        cases = [(data, 1)]
    elif agent.name == "reinforce":
        cases = [(make_episodes(rng, [4, 2, 3], ["terminated", "truncated", "terminated"]), 1)]
    else:
        cases = [(make_batch(rng, (8,)), 1), (make_batch(rng, (3, 8)), 3)]
    obs = obs_batch(rng, 32)
    for data, steps in cases:
        before, before_updates = trainable_values(agent), int(agent.updates.numpy())
        scores_before = network_scores(agent, obs)
        metrics = agent.update(data)
        assert isinstance(metrics, dict)
        assert {"train/loss", "train/grad_norm"} <= set(metrics)
        for key, value in metrics.items():
            assert isinstance(key, str)
            assert type(value) is float, key
            assert np.isfinite(value), key
        assert int(agent.updates.numpy()) == before_updates + steps
        after = trainable_values(agent)
        assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
        assert not np.array_equal(scores_before, network_scores(agent, obs))
        if not agent.on_policy:
            assert metrics["train/updates"] == before_updates + steps
            assert metrics["train/epsilon"] == agent.epsilon


def test_update_traces_once(agent):
    rng = np.random.default_rng(2)
    if agent.on_policy:
        shapes = [(int(rng.integers(1, 7)), int(rng.integers(1, 5))) for _ in range(22)]
    else:
        shapes = [
            (int(rng.integers(1, 10)),)
            if i % 2
            else (int(rng.integers(1, 4)), int(rng.integers(1, 10)))
            for i in range(22)
        ]
    assert len(set(shapes)) > 10
    before = int(agent.updates.numpy())
    for shape in shapes:
        metrics = agent.update(hand_made_data(agent.name, rng, shape))
        assert all(np.isfinite(v) for v in metrics.values())
    steps = 22 if agent.on_policy else sum(s[0] if len(s) == 2 else 1 for s in shapes)
    assert int(agent.updates.numpy()) == before + steps
    assert agent._update_fn.experimental_get_tracing_count() == 1


# -- checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name, tmp_path):
    agent = make_agent(name, seed=0)
    rng = np.random.default_rng(3)
    shape = (5, 3) if agent.on_policy else (2, 8)
    agent.update(hand_made_data(name, rng, shape))
    agent.act(obs_batch(rng, 7), explore=True)  # moves the exploration schedule (DQN)
    agent.before_checkpoint()
    path = tf.train.Checkpoint(**agent.checkpoint_items()).save(str(tmp_path / "ckpt"))
    saved = checkpoint_values(agent)
    assert int(saved["updates"][0]) == (1 if agent.on_policy else 2)

    fresh = make_agent(name, seed=1)
    fresh_values = checkpoint_values(fresh)
    assert saved.keys() == fresh_values.keys()
    for key in saved:  # different before, or the test proves nothing
        assert len(saved[key]) == len(fresh_values[key]), key
        pairs = zip(saved[key], fresh_values[key], strict=True)
        assert any(not np.array_equal(a, b) for a, b in pairs), key

    status = tf.train.Checkpoint(**fresh.checkpoint_items()).restore(path)
    status.assert_consumed()
    fresh.after_restore()
    restored = checkpoint_values(fresh)
    for key in saved:
        for i, (a, b) in enumerate(zip(saved[key], restored[key], strict=True)):
            np.testing.assert_array_equal(b, a, err_msg=f"{key} variable {i}")
    # Optimizer slots are among the restored variables (Adam: 2, RMSprop: 1 per weight).
    assert len(saved["optimizer"]) > len(agent.policy_network().trainable_variables)
    obs = obs_batch(rng, 64)
    np.testing.assert_array_equal(fresh.act(obs, explore=False), agent.act(obs, explore=False))
    if not agent.on_policy:
        assert fresh.epsilon == agent.epsilon < 1.0


@pytest.mark.parametrize("name", NAMES)
def test_network_checkpoint_holds_every_weight(name, tmp_path):
    network = make_agent(name).policy_network()
    path = tf.train.Checkpoint(network=network).save(str(tmp_path / "net"))
    shapes = sorted(tuple(s) for n, s in tf.train.list_variables(path) if n.startswith("network/"))
    # Noisy layers' noise streams are checkpointed (resume continues them) but are not
    # weights (copies to the target network or a saved policy leave them out).
    streams = [
        layer.noise_state for layer in network._flatten_layers() if hasattr(layer, "noise_state")
    ]
    assert shapes == sorted(tuple(v.shape) for v in [*network.variables, *streams])


@pytest.mark.parametrize("name", ["dqn", "a2c"])
def test_greedy_actions_follow_restored_weights_after_acting(name, tmp_path):
    agent = make_agent(name, seed=0)
    obs = obs_batch(np.random.default_rng(4), 256)
    path = tf.train.Checkpoint(**agent.checkpoint_items()).save(str(tmp_path / "ckpt"))
    fresh = make_agent(name, seed=1)
    if np.array_equal(fresh.act(obs, explore=False), agent.act(obs, explore=False)):
        pytest.fail("precondition: the two agents should act differently before the restore")
    tf.train.Checkpoint(**fresh.checkpoint_items()).restore(path)
    fresh.after_restore()
    keras_greedy = np.argmax(network_scores(fresh, obs), axis=-1)
    if not np.array_equal(keras_greedy, agent.act(obs, explore=False)):
        pytest.fail("precondition: the Keras network itself was not restored")
    np.testing.assert_array_equal(fresh.act(obs, explore=False), keras_greedy)


def test_checkpoint_restores_the_exploration_schedule(tmp_path):
    agent = make_agent("dqn", exploration_steps=100, exploration_final_eps=0.1)
    agent.act(obs_batch(np.random.default_rng(5), 50), explore=True)
    if agent.epsilon != pytest.approx(0.55):  # 1 + (50 / 100) * (0.1 - 1)
        pytest.fail(f"precondition: epsilon {agent.epsilon} after 50 steps")
    agent.before_checkpoint()
    path = tf.train.Checkpoint(**agent.checkpoint_items()).save(str(tmp_path / "ckpt"))
    fresh = make_agent("dqn", exploration_steps=100, exploration_final_eps=0.1)
    tf.train.Checkpoint(**fresh.checkpoint_items()).restore(path)
    fresh.after_restore()
    assert fresh.epsilon == pytest.approx(0.55)


# -- numpy acting path ---------------------------------------------------------------------


def test_numpy_acting_path_equals_keras_network(agent):
    rng = np.random.default_rng(6)
    obs = 3.0 * obs_batch(rng, 256)
    for _ in range(2):  # trained weights: the mirror must follow updates, not just the init
        shape = (4, 2) if agent.on_policy else (16,)
        agent.update(hand_made_data(agent.name, rng, shape))
        scores = network_scores(agent, obs)
        np.testing.assert_array_equal(agent.act(obs, explore=False), np.argmax(scores, axis=-1))
        if agent.on_policy:
            logits, values = agent.logits_and_values(obs)
            _, keras_values = agent.network(tf.constant(obs))
            np.testing.assert_allclose(values, keras_values.numpy(), rtol=1e-5, atol=1e-5)
        else:
            logits = agent.q_values(obs)
        np.testing.assert_allclose(logits, scores, rtol=1e-5, atol=1e-5)


# -- DQN family ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DQN_NAMES)
def test_dqn_hard_target_update_every_period(name):
    agent = make_agent(name, target_update_period=3, tau=1.0, learning_rate=1e-2)
    rng = np.random.default_rng(7)
    initial = [v.numpy() for v in agent.q_network.variables]
    for step in range(1, 8):
        agent.update(make_batch(rng, (8,)))
        online = [v.numpy() for v in agent.q_network.variables]
        target = [v.numpy() for v in agent.target_network.variables]
        same = all(np.array_equal(o, t) for o, t in zip(online, target, strict=True))
        assert same == (step in (3, 6)), f"after update {step}"
        if step < 3:
            for i, t in zip(initial, target, strict=True):
                np.testing.assert_array_equal(t, i)
    if name != "dqn":
        return
    # Fused steps count one by one: G=3 in one call reaches the period too.
    fused = make_agent(name, target_update_period=3, tau=1.0, learning_rate=1e-2)
    fused.update(make_batch(rng, (3, 8)))
    for o, t in zip(fused.q_network.variables, fused.target_network.variables, strict=True):
        np.testing.assert_array_equal(o.numpy(), t.numpy())


@pytest.mark.parametrize("tau", [0.5, 0.25])
def test_dqn_polyak_target_update(tau):
    agent = make_agent("dqn", target_update_period=1, tau=tau, learning_rate=1e-2)
    rng = np.random.default_rng(8)
    target = [v.numpy() for v in agent.target_network.variables]
    for _ in range(2):
        agent.update(make_batch(rng, (8,)))
        online = [v.numpy() for v in agent.q_network.variables]
        # target <- tau * online + (1 - tau) * target, from the weights after the gradient step
        expected = [tau * o + (1 - tau) * t for o, t in zip(online, target, strict=True)]
        target = [v.numpy() for v in agent.target_network.variables]
        assert any(not np.array_equal(o, t) for o, t in zip(online, target, strict=True))
        for e, t in zip(expected, target, strict=True):
            np.testing.assert_allclose(t, e, rtol=1e-6, atol=1e-7)


def test_double_dqn_target_with_known_q_values():
    # Online Q(s', .) = [1, 0] and target Q(s', .) = [3, 5] for every s' (zero weights, biases
    # set). gamma = 0.5, rewards [1, 0], row 1 terminated:
    #   DQN:        y = [1 + 0.5 * max(3, 5), 0] = [3.5, 0]
    #   Double DQN: y = [1 + 0.5 * Q_target(s', argmax Q_online(s') = 0), 0] = [2.5, 0]
    # With actions [0, 1], Q(s, a) = [1, 0]; the mse loss 0.5 * (y - Q(s, a))^2 averages to
    #   DQN:        (0.5 * 2.5^2 + 0) / 2 = 1.5625;   Double DQN: (0.5 * 1.5^2 + 0) / 2 = 0.5625
    batch = Batch(
        obs=obs_batch(np.random.default_rng(9), 2),
        action=np.array([0, 1], np.int64),
        reward=np.array([1.0, 0.0], np.float32),
        next_obs=obs_batch(np.random.default_rng(10), 2),
        terminated=np.array([0.0, 1.0], np.float32),
        truncated=np.zeros(2, np.float32),
        discount=np.array([0.5, 0.0], np.float32),  # gamma * (1 - terminated)
        weights=np.ones(2, np.float32),
        indices=np.arange(2),
    )
    for cls, y, loss in ((DQN, [3.5, 0.0], 1.5625), (DoubleDQN, [2.5, 0.0], 0.5625)):
        agent = make_agent(cls.name, gamma=0.5, loss="mse")
        set_constant_outputs(agent.q_network, {"q_head": [1.0, 0.0]})
        set_constant_outputs(agent.target_network, {"q_head": [3.0, 5.0]})
        target = agent.next_state_target(
            tf.constant(batch.reward),
            tf.constant(0.5 * (1.0 - batch.terminated)),
            tf.constant(batch.next_obs),
        )
        np.testing.assert_allclose(target.numpy(), y, rtol=1e-6)
        metrics = agent.update(batch)
        assert metrics["train/loss"] == pytest.approx(loss, rel=1e-6)
        assert metrics["train/q_mean"] == pytest.approx(0.5, rel=1e-6)


def test_double_dqn_target_uses_online_argmax():
    rng = np.random.default_rng(11)
    double, plain = make_agent("double_dqn", seed=0), make_agent("dqn", seed=0)
    other = make_agent("dqn", seed=1)
    for agent in (double, plain):  # same online net, a target net that disagrees with it
        agent.q_network.set_weights(double.q_network.get_weights())
        agent.target_network.set_weights(other.q_network.get_weights())
    next_obs = 3.0 * obs_batch(rng, 64)
    r_t = tf.constant(rng.normal(size=64).astype(np.float32))
    discount_t = tf.constant((0.9 * (rng.random(64) > 0.2)).astype(np.float32))
    q_online = double.q_network(tf.constant(next_obs))
    q_target = double.target_network(tf.constant(next_obs))
    disagree = np.argmax(q_online.numpy(), -1) != np.argmax(q_target.numpy(), -1)
    assert disagree.sum() >= 5

    y_double = double.next_state_target(r_t, discount_t, tf.constant(next_obs)).numpy()
    y_plain = plain.next_state_target(r_t, discount_t, tf.constant(next_obs)).numpy()
    expected = losses.double_q_learning_target(r_t, discount_t, q_target, q_online).numpy()
    np.testing.assert_allclose(y_double, expected, rtol=1e-6)
    np.testing.assert_allclose(
        y_plain, (r_t + discount_t * tf.reduce_max(q_target, -1)).numpy(), rtol=1e-6
    )
    bootstrapped = discount_t.numpy() > 0
    assert np.all(y_double[disagree & bootstrapped] < y_plain[disagree & bootstrapped])
    np.testing.assert_allclose(y_double[~disagree], y_plain[~disagree], rtol=1e-6)


@pytest.mark.parametrize("n", [1, 5])
def test_epsilon_schedule_reaches_final_value(n):
    agent = make_agent(
        "dqn", exploration_initial_eps=1.0, exploration_final_eps=0.0, exploration_steps=20
    )
    rng = np.random.default_rng(12)
    assert agent.epsilon == 1.0
    obs = obs_batch(rng, n)
    for _ in range(10 // n):
        agent.act(obs, explore=True)
    assert agent.epsilon == pytest.approx(0.5, rel=1e-12)  # 1 + (10 / 20) * (0 - 1)
    agent.act(obs_batch(rng, 3), explore=False)  # greedy acting is not exploration
    assert agent.epsilon == pytest.approx(0.5, rel=1e-12)
    for _ in range(10 // n):
        agent.act(obs, explore=True)
    assert agent.epsilon == 0.0
    # Epsilon 0: exploring actions are the greedy ones, and it stays there.
    many = obs_batch(rng, 100)
    np.testing.assert_array_equal(agent.act(many, explore=True), agent.act(many, explore=False))
    assert agent.epsilon == 0.0


# -- A2C -------------------------------------------------------------------------------------


def a2c_metrics_by_hand(agent: A2C, data: Rollout) -> dict[str, float]:
    """A2C's loss terms recomputed in numpy from the Keras network's outputs."""
    cfg = agent.config
    steps, envs = data.reward.shape
    flat = np.concatenate([data.obs.reshape(steps * envs, OBS_DIM), data.last_obs])
    logits, values = (x.numpy() for x in agent.network(tf.constant(flat)))
    values = values.reshape(steps + 1, envs)
    v_tm1, v_t = values[:-1], values[1:]  # v_t[t] = V(obs[t + 1]), V(last_obs) at the end
    discount = cfg.gamma * (1.0 - data.terminated)
    cont = discount * (1.0 - data.truncated)
    adv = np.zeros((steps, envs))
    next_adv = np.zeros(envs)
    for t in reversed(range(steps)):
        delta = data.reward[t] + discount[t] * v_t[t] - v_tm1[t]
        adv[t] = next_adv = delta + cfg.gae_lambda * cont[t] * next_adv
    logp_all = log_softmax(logits[: steps * envs].reshape(steps, envs, -1))
    logp = np.take_along_axis(logp_all, data.action[..., None], -1)[..., 0]
    entropy = -(np.exp(logp_all) * logp_all).sum(-1)
    valid = data.valid

    def mean(x):
        return float((x * valid).sum() / valid.sum())

    out = {
        "train/policy_loss": -mean(logp * adv),
        "train/value_loss": mean(adv**2),  # (A + V - V)^2
        "train/entropy": mean(entropy),
    }
    out["train/loss"] = (
        out["train/policy_loss"]
        + cfg.vf_coef * out["train/value_loss"]
        - cfg.ent_coef * out["train/entropy"]
    )
    return out


def test_a2c_three_step_rollout_by_hand():
    # Zero weights and value bias 2: V(s) = 2 everywhere, logits 0 (pi uniform, log pi = -log 2,
    # entropy log 2). gamma = 0.5, lambda = 1, rewards [1, 2, 3], no episode end:
    #   delta = r + 0.5 * 2 - 2 = [0, 1, 2];  A_2 = 2, A_1 = 1 + 0.5 * 2 = 2, A_0 = 0 + 0.5 * 2 = 1
    #   policy_loss = log 2 * mean(A) = log 2 * 5 / 3;  value_loss = mean(A^2) = 9 / 3 = 3
    agent = make_agent("a2c", gamma=0.5, gae_lambda=1.0, ent_coef=0.01, vf_coef=0.5)
    set_constant_outputs(agent.network, {"policy_head": [0.0, 0.0], "value_head": [2.0]})
    rng = np.random.default_rng(15)
    data = make_rollout(rng, 3, 1, ends=[])
    data.reward[:, 0] = [1.0, 2.0, 3.0]
    metrics = agent.update(data)
    log2 = np.log(2.0)
    assert metrics["train/policy_loss"] == pytest.approx(log2 * 5 / 3, rel=1e-5)
    assert metrics["train/value_loss"] == pytest.approx(3.0, rel=1e-5)
    assert metrics["train/entropy"] == pytest.approx(log2, rel=1e-5)
    assert metrics["train/loss"] == pytest.approx(log2 * 5 / 3 + 1.5 - 0.01 * log2, rel=1e-5)

    # Truncated at t=1, t=2 the autoreset row (reward 7 must be ignored), V = 2 still:
    #   delta_1 = 2 + 0.5 * V(obs_2) - 2 = 1 (bootstraps), A_1 = 1 (no continuation past the end)
    #   delta_0 = 1 + 1 - 2 = 0, A_0 = 0 + 0.5 * A_1 = 0.5
    #   policy_loss = log 2 * (0.5 + 1) / 2 = 0.75 log 2;  value_loss = (0.25 + 1) / 2 = 0.625
    set_constant_outputs(agent.network, {"policy_head": [0.0, 0.0], "value_head": [2.0]})
    data = make_rollout(rng, 3, 1, ends=[(1, 0, "truncated")])
    data.reward[:, 0] = [1.0, 2.0, 7.0]
    metrics = agent.update(data)
    assert metrics["train/policy_loss"] == pytest.approx(0.75 * log2, rel=1e-5)
    assert metrics["train/value_loss"] == pytest.approx(0.625, rel=1e-5)

    # Terminated instead: delta_1 = 2 - 2 = 0, A = [0, 0]: both losses are 0.
    set_constant_outputs(agent.network, {"policy_head": [0.0, 0.0], "value_head": [2.0]})
    data = make_rollout(rng, 3, 1, ends=[(1, 0, "terminated")])
    data.reward[:, 0] = [1.0, 2.0, 7.0]
    metrics = agent.update(data)
    assert metrics["train/policy_loss"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["train/value_loss"] == pytest.approx(0.0, abs=1e-6)


def test_a2c_invalid_rows_and_bootstrapping():
    agent = make_agent("a2c", gamma=0.9, gae_lambda=0.95, ent_coef=0.01)
    weights = agent.network.get_weights()
    rng = np.random.default_rng(17)
    # Env 0: terminated at t=1 (t=2 autoreset); env 1: truncated at t=2 (t=3 autoreset) and
    # terminated on the last row; env 2 starts on an autoreset row, is truncated on the last.
    ends = [(1, 0, "terminated"), (2, 1, "truncated"), (4, 1, "terminated"), (4, 2, "truncated")]
    base = make_rollout(rng, 5, 3, ends)
    base.valid[0, 2] = 0.0
    ref = update_at(agent, weights, base)

    def changed(**rows):
        out = Rollout(*(np.array(x, copy=True) for x in base))
        for field, (t, n, value) in rows.items():
            getattr(out, field)[t, n] = value
        return update_at(agent, weights, out)

    # Reward and action of autoreset rows are not transitions: every metric stays.
    for t, n in [(2, 0), (3, 1), (0, 2)]:
        other = changed(reward=(t, n, 100.0), action=(t, n, 1 - base.action[t, n]))
        for key in ref:
            assert other[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-7), (t, n, key)
    # A terminated row does not bootstrap: its successor's obs (the final obs) is unused.
    other = changed(obs=(2, 0, np.full(OBS_DIM, 5.0, np.float32)))
    for key in ref:
        assert other[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-7), key
    # A truncated row bootstraps from V(final obs), the obs of the autoreset row after it.
    other = changed(obs=(3, 1, np.full(OBS_DIM, 5.0, np.float32)))
    assert other["train/value_loss"] != pytest.approx(ref["train/value_loss"], rel=1e-4)
    # And the numbers are the numpy ones.
    agent.network.set_weights(weights)
    expected = a2c_metrics_by_hand(agent, base)
    for key, value in expected.items():
        assert ref[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


# -- REINFORCE -------------------------------------------------------------------------------


def reinforce_batch(rng: np.random.Generator) -> Rollout:
    # Episode 0: rewards [1, 2, 3], terminated. Episode 1: rewards [1, 1], truncated, then a
    # padding row (valid 0).
    return make_episodes(
        rng, [3, 2], ["terminated", "truncated"], rewards=[[1.0, 2.0, 3.0], [1.0, 1.0]]
    )


def test_reinforce_return_mean_by_hand():
    # gamma = 0.5, no baseline (the truncated episode bootstraps from 0):
    #   episode 0: G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75
    #   episode 1: G_1 = 1, G_0 = 1 + 0.5 * 1 = 1.5
    #   mean over the 5 valid rows = (2.75 + 3.5 + 3 + 1.5 + 1) / 5 = 2.35
    agent = make_agent("reinforce", gamma=0.5, baseline=False, normalize_returns=False)
    weights = agent.network.get_weights()
    data = reinforce_batch(np.random.default_rng(18))
    returns = np.array([[2.75, 1.5], [3.5, 1.0], [3.0, 0.0]])
    logits, _ = agent.network(tf.constant(data.obs.reshape(-1, OBS_DIM)))
    logp = np.take_along_axis(
        log_softmax(logits.numpy().reshape(3, 2, -1)), data.action[..., None], -1
    )[..., 0]
    expected_policy_loss = -(logp * returns * data.valid).sum() / 5
    ref = update_at(agent, weights, data)
    assert ref["train/return_mean"] == pytest.approx(2.35, rel=1e-6)
    assert ref["train/policy_loss"] == pytest.approx(expected_policy_loss, rel=1e-5)
    assert ref["train/loss"] == pytest.approx(expected_policy_loss, rel=1e-5)

    # Padding rows change nothing: not their reward, action, obs or flags.
    padded = Rollout(*(np.array(x, copy=True) for x in data))
    padded.reward[2, 1] = 50.0
    padded.action[2, 1] = 1 - data.action[2, 1]
    padded.obs[2, 1] = 4.0
    other = update_at(agent, weights, padded)
    for key in ref:
        assert other[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-7), key


def test_reinforce_normalized_returns_by_hand():
    agent = make_agent("reinforce", gamma=0.5, baseline=False, normalize_returns=True)
    data = reinforce_batch(np.random.default_rng(19))
    returns = np.array([[2.75, 1.5], [3.5, 1.0], [3.0, 0.0]])  # as in the test above
    g = returns[data.valid == 1]
    assert sorted(g.tolist()) == [1.0, 1.5, 2.75, 3.0, 3.5]
    # Standardised over the 5 valid rows (population std), padding excluded.
    weights = (returns - g.mean()) / (g.std() + 1e-8)
    logits, _ = agent.network(tf.constant(data.obs.reshape(-1, OBS_DIM)))
    logp = np.take_along_axis(
        log_softmax(logits.numpy().reshape(3, 2, -1)), data.action[..., None], -1
    )[..., 0]
    metrics = agent.update(data)
    assert metrics["train/return_mean"] == pytest.approx(2.35, rel=1e-6)
    assert metrics["train/policy_loss"] == pytest.approx(
        -(logp * weights * data.valid).sum() / 5, rel=1e-4, abs=1e-6
    )


def test_reinforce_baseline_bootstraps_truncated_episodes():
    # V(s) = 2 everywhere: the truncated episode 1 bootstraps from V(final obs) = 2:
    #   episode 1: G_1 = 1 + 0.5 * 2 = 2, G_0 = 1 + 0.5 * 2 = 2; episode 0 as before (terminated)
    #   mean = (2.75 + 3.5 + 3 + 2 + 2) / 5 = 2.65
    #   value_loss = mean((G - 2)^2) = (0.5625 + 2.25 + 1 + 0 + 0) / 5 = 0.7625
    agent = make_agent("reinforce", gamma=0.5, baseline=True, normalize_returns=False)
    set_constant_outputs(agent.network, {"policy_head": [0.0, 0.0], "value_head": [2.0]})
    metrics = agent.update(reinforce_batch(np.random.default_rng(20)))
    assert metrics["train/return_mean"] == pytest.approx(2.65, rel=1e-6)
    assert metrics["train/value_loss"] == pytest.approx(0.7625, rel=1e-6)
    # policy_loss = -mean(log(1/2) * (G - V)) = log 2 * (0.75 + 1.5 + 1 + 0 + 0) / 5
    assert metrics["train/policy_loss"] == pytest.approx(np.log(2) * 3.25 / 5, rel=1e-5)


# -- incompatible spaces ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_incompatible_spaces_raise_helpful_errors(name):
    cls = AGENTS[name]
    config = cls.config_cls(hidden_sizes=(8,))
    if cls.on_policy:  # policy gradients take every action space but Dict / Tuple ones
        bad_actions = gym.spaces.Dict({"a": ACTION_SPACE})
        fragments = ["no rlkit agent handles it", "Dict", "ppo"]
    else:  # the DQN family: Discrete only, and the error names the agents that can
        bad_actions = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        fragments = ["needs a Discrete action space", "Box", "ppo"]
    with pytest.raises(IncompatibleEnvError) as info:
        cls(OBS_SPACE, bad_actions, config)
    assert cls.__name__ in str(info.value)
    assert all(f in str(info.value) for f in fragments), str(info.value)
    # The same check without building anything (what the CLI asks first).
    with pytest.raises(IncompatibleEnvError, match=fragments[0]):
        cls.check_action_space(bad_actions)
    cls.check_action_space(ACTION_SPACE)

    dict_obs = gym.spaces.Dict({"position": OBS_SPACE, "goal": OBS_SPACE})
    with pytest.raises(IncompatibleEnvError, match="FlattenObservation") as info:
        cls(dict_obs, ACTION_SPACE, config)
    assert cls.__name__ in str(info.value) and "Box" in str(info.value)

    with pytest.raises(IncompatibleEnvError, match="start"):
        cls(OBS_SPACE, gym.spaces.Discrete(3, start=1), config)
    assert issubclass(IncompatibleEnvError, TypeError)


@pytest.mark.parametrize("name", ["dqn", "a2c"])
def test_agent_save_and_load_round_trip(name, tmp_path):
    agent = make_agent(name, seed=0)
    rng = np.random.default_rng(9)
    agent.update(hand_made_data(name, rng, (5, 3) if agent.on_policy else (2, 8)))
    agent.act(obs_batch(rng, 5), explore=True)
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")  # any agent; its class is read from the folder
    assert type(loaded) is type(agent) and loaded.config == agent.config
    same = type(agent).load(tmp_path / "agent")  # DQN.load(path), as in SB3
    assert type(same) is type(agent)
    other = DQN if agent.on_policy else A2C
    with pytest.raises(RlkitError, match="load_agent"):
        other.load(tmp_path / "agent")
    for a, b in zip(
        agent.policy_network().get_weights(), loaded.policy_network().get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    obs = obs_batch(rng, 32)
    np.testing.assert_array_equal(loaded.act(obs, explore=True), agent.act(obs, explore=True))
    assert int(loaded.updates.numpy()) == int(agent.updates.numpy())


# -- polyak_update (rlkit.agents.common: it assigns variables) ------------------------------


def test_polyak_update_tau_one_copies_exactly():
    online = [tf.Variable([0.1, 1.0 / 3.0, -7.25]), tf.Variable([[1e-7, 123.456]])]
    target = [tf.Variable([5.0, 6.0, 7.0]), tf.Variable([[-1.0, 2.0]])]
    polyak_update(online, target, tf.constant(1.0))
    for o, t in zip(online, target, strict=True):
        np.testing.assert_array_equal(t.numpy(), o.numpy())


@pytest.mark.parametrize("tau", [0.1, tf.constant(0.1)])
def test_polyak_update_tau_point_one(tau):
    online = [tf.Variable([1.0, 2.0]), tf.Variable([[10.0]])]
    target = [tf.Variable([5.0, 6.0]), tf.Variable([[0.0]])]
    polyak_update(online, target, tau)
    # 0.1 * 1 + 0.9 * 5 = 4.6; 0.1 * 2 + 0.9 * 6 = 5.6; 0.1 * 10 + 0.9 * 0 = 1.0
    np.testing.assert_allclose(target[0].numpy(), [4.6, 5.6], rtol=1e-6)
    np.testing.assert_allclose(target[1].numpy(), [[1.0]], rtol=1e-6)
    # the online variables are untouched
    np.testing.assert_array_equal(online[0].numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(online[1].numpy(), [[10.0]])


def test_polyak_update_length_mismatch_raises():
    with pytest.raises(ValueError):
        polyak_update([tf.Variable(1.0)], [], 0.5)

"""rlkit.policies: schedules, greedy / epsilon-greedy / categorical acting rules."""

from __future__ import annotations

import numpy as np
import pytest

from rlkit.policies import (
    CategoricalPolicy,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    LinearSchedule,
    sample_categorical,
)

NUM_ACTIONS = 4


# Q-values depend on the observation: the greedy action is obs[:, 0] % 4.
def q_values(obs):
    return np.eye(NUM_ACTIONS, dtype=np.float32)[obs[:, 0].astype(int) % NUM_ACTIONS]


def softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


# -- LinearSchedule -------------------------------------------------------------------------


def test_linear_schedule():
    s = LinearSchedule(initial=1.0, final=0.1, duration=100)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)  # 1 + 0.5 * (0.1 - 1) = 0.55
    assert s(25) == pytest.approx(0.775)  # 1 + 0.25 * (0.1 - 1) = 0.775
    assert s(100) == pytest.approx(0.1)
    assert s(250) == pytest.approx(0.1)  # flat past the end
    assert s(-5) == pytest.approx(1.0)  # clamped before the start


def test_linear_schedule_increasing():
    s = LinearSchedule(initial=0.0, final=2.0, duration=4)
    assert [s(t) for t in range(6)] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.0])


def test_linear_schedule_zero_duration_is_final():
    s = LinearSchedule(initial=1.0, final=0.05, duration=0)
    assert s(0) == pytest.approx(0.05)
    assert s(10) == pytest.approx(0.05)


# -- GreedyPolicy ---------------------------------------------------------------------------


def test_greedy_policy():
    policy = GreedyPolicy(q_values)
    obs = np.array([[0.0], [1.0], [2.0], [3.0], [5.0]])
    np.testing.assert_array_equal(policy(obs), [0, 1, 2, 3, 1])


def test_greedy_policy_ties_pick_first():
    policy = GreedyPolicy(lambda obs: np.array([[1.0, 3.0, 3.0], [-1.0, -1.0, -2.0]]))
    np.testing.assert_array_equal(policy(np.zeros((2, 1))), [1, 0])


# -- EpsilonGreedyPolicy --------------------------------------------------------------------


def test_epsilon_zero_is_greedy():
    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, lambda step: 0.0, np.random.default_rng(0))
    obs = np.arange(200, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(policy(obs), np.arange(200) % NUM_ACTIONS)


def test_epsilon_one_is_uniform():
    # Every observation has greedy action 0, so any non-zero counts elsewhere are exploration.
    n = 40_000
    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, lambda step: 1.0, np.random.default_rng(1))
    actions = policy(np.zeros((n, 1), np.float32))
    counts = np.bincount(actions, minlength=NUM_ACTIONS)
    assert counts.shape == (NUM_ACTIONS,)
    expected = n / NUM_ACTIONS
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # chi-square with 3 degrees of freedom: P(chi2 > 30) ~ 1e-6
    assert chi2 < 30.0, counts
    np.testing.assert_allclose(counts / n, 0.25, atol=0.02)


def test_epsilon_half_mixes_greedy_and_uniform():
    # P(greedy action 0) = (1 - eps) + eps / A = 0.5 + 0.125 = 0.625; others eps / A = 0.125
    n = 40_000
    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, lambda step: 0.5, np.random.default_rng(2))
    freq = np.bincount(policy(np.zeros((n, 1))), minlength=NUM_ACTIONS) / n
    np.testing.assert_allclose(freq, [0.625, 0.125, 0.125, 0.125], atol=0.015)


def test_epsilon_greedy_advances_step_and_reads_schedule_before():
    seen = []

    def epsilon(step):
        seen.append(step)
        return 0.0

    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, epsilon, np.random.default_rng(0))
    assert policy.step == 0
    policy(np.zeros((5, 1)))
    assert policy.step == 5
    policy(np.zeros((3, 1)))
    assert policy.step == 8
    assert seen == [0, 5]


def test_epsilon_greedy_follows_linear_schedule():
    # epsilon goes 1 -> 0 over 10 steps; a call of 10 observations at step 0 is all random,
    # one at step >= 10 all greedy.
    schedule = LinearSchedule(1.0, 0.0, 10)
    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, schedule, np.random.default_rng(3))
    obs = np.zeros((2000, 1))
    first = policy(obs)  # eps(0) = 1
    assert len(np.unique(first)) == NUM_ACTIONS
    second = policy(obs)  # eps(2000) = 0
    np.testing.assert_array_equal(second, 0)


def test_epsilon_greedy_same_seed_same_actions():
    def run(seed):
        policy = EpsilonGreedyPolicy(
            q_values, NUM_ACTIONS, LinearSchedule(1.0, 0.1, 500), np.random.default_rng(seed)
        )
        obs = np.arange(100, dtype=np.float32)[:, None]
        return np.concatenate([policy(obs) for _ in range(5)])

    np.testing.assert_array_equal(run(42), run(42))
    assert not np.array_equal(run(42), run(43))


def test_epsilon_greedy_actions_in_range_and_shape():
    policy = EpsilonGreedyPolicy(q_values, NUM_ACTIONS, lambda step: 0.3, np.random.default_rng(0))
    actions = policy(np.arange(64, dtype=np.float32)[:, None])
    assert actions.shape == (64,)
    assert np.issubdtype(actions.dtype, np.integer)
    assert actions.min() >= 0 and actions.max() < NUM_ACTIONS


# -- sample_categorical / CategoricalPolicy ------------------------------------------------


def test_sample_categorical_matches_softmax():
    n = 20_000
    logits = np.array([[0.0, 1.0, 2.0], [np.log(0.7), np.log(0.2), np.log(0.1)]])
    # softmax([0, 1, 2]) = [1, e, e^2] / (1 + e + e^2) = [0.090, 0.245, 0.665]
    probs = softmax(logits)
    np.testing.assert_allclose(probs[0], [0.0900, 0.2447, 0.6652], atol=1e-3)
    np.testing.assert_allclose(probs[1], [0.7, 0.2, 0.1], atol=1e-9)
    rng = np.random.default_rng(123)
    for row in range(2):
        samples = sample_categorical(np.tile(logits[row], (n, 1)), rng)
        assert samples.shape == (n,)
        freq = np.bincount(samples, minlength=3) / n
        # binomial std <= sqrt(0.25 / 20000) = 0.0035; allow ~4 std
        np.testing.assert_allclose(freq, probs[row], atol=0.015)


def test_sample_categorical_respects_each_row():
    # rows with near one-hot logits pick their own action
    logits = np.full((3, 5), -1e9)
    logits[0, 4] = logits[1, 0] = logits[2, 2] = 0.0
    actions = sample_categorical(logits, np.random.default_rng(0))
    np.testing.assert_array_equal(actions, [4, 0, 2])


def test_categorical_policy():
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))

    def logits_fn(obs):
        return logits[obs[:, 0].astype(int)]

    obs = np.repeat(np.array([[0.0], [1.0]]), 10_000, axis=0)  # 10k rows of each
    actions = CategoricalPolicy(logits_fn, np.random.default_rng(5))(obs)
    assert actions.shape == (20_000,)
    freq0 = np.bincount(actions[:10_000], minlength=3) / 10_000
    freq1 = np.bincount(actions[10_000:], minlength=3) / 10_000
    np.testing.assert_allclose(freq0, [0.5, 0.25, 0.25], atol=0.02)
    np.testing.assert_allclose(freq1, [0.1, 0.1, 0.8], atol=0.02)

    again = CategoricalPolicy(logits_fn, np.random.default_rng(5))(obs)
    np.testing.assert_array_equal(actions, again)


def test_greedy_policy_on_logits_is_mode():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0]])
    np.testing.assert_array_equal(GreedyPolicy(lambda obs: logits)(np.zeros((2, 1))), [1, 0])

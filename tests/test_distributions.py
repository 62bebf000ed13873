"""Action distributions: log-probabilities and entropies against numbers worked out by hand,
numpy sampling against the distributions' moments, modes, spaces and bad input."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from rlkit.distributions import ActionDist, clip_to_space
from rlkit.errors import IncompatibleEnvError

LOG_2PI = math.log(2 * math.pi)


def log_prob_entropy(dist, params, actions, log_std=None):
    log_pi, entropy = dist.log_prob_entropy(
        tf.constant(params, tf.float32),
        tf.constant(actions),
        None if log_std is None else tf.constant(log_std, tf.float32),
    )
    return log_pi.numpy(), entropy.numpy()


# -- by hand ---------------------------------------------------------------------------------
def test_gaussian_log_prob_and_entropy_by_hand():
    dist = ActionDist.from_space(gym.spaces.Box(-1.0, 1.0, (2,)))
    # Dim 0: N(0.5, 2) at 1.5 (clipped for the env, but learned from unclipped);
    # dim 1: N(0, 1) at 0.
    log_pi, entropy = log_prob_entropy(
        dist, [[0.5, 0.0]], np.array([[1.5, 0.0]], np.float32), [math.log(2.0), 0.0]
    )
    dim0 = -0.5 * (1.0 / 2.0) ** 2 - math.log(2.0) - 0.5 * LOG_2PI  # -1.737086
    dim1 = -0.5 * LOG_2PI  # -0.918939
    np.testing.assert_allclose(log_pi, [dim0 + dim1], rtol=1e-6)
    h = 0.5 * (1.0 + LOG_2PI)  # entropy of N(0, 1): 1.418939
    np.testing.assert_allclose(entropy, [h + math.log(2.0) + h], rtol=1e-6)


def test_squashed_gaussian_log_prob_includes_the_log_det_by_hand():
    dist = ActionDist.from_space(gym.spaces.Box(-2.0, 2.0, (1,)), squash=True)
    # a = 1.0 in [-2, 2] is y = 0.5 in [-1, 1], u = atanh(0.5) = 0.549306.
    # log |da/du| = log(1 - 0.5^2) + log(4 / 2) = -0.287682 + 0.693147 = 0.405465.
    log_pi, entropy = log_prob_entropy(dist, [[0.0]], np.array([[1.0]], np.float32), [0.0])
    u = math.atanh(0.5)
    expected = (-0.5 * u * u - 0.5 * LOG_2PI) - (math.log(0.75) + math.log(2.0))  # -1.475272
    np.testing.assert_allclose(log_pi, [expected], rtol=1e-5)
    np.testing.assert_allclose(entropy, -log_pi, rtol=1e-6)  # the one-sample estimate


def test_squashed_log_prob_stays_finite_at_the_bounds():
    dist = ActionDist.from_space(gym.spaces.Box(-1.0, 1.0, (2,)), squash=True)
    log_pi, _ = log_prob_entropy(dist, [[0.0, 0.0]], np.array([[1.0, -1.0]], np.float32), [0, 0])
    assert np.isfinite(log_pi).all()


def test_multi_categorical_log_prob_and_entropy_by_hand():
    dist = ActionDist.from_space(gym.spaces.MultiDiscrete([2, 3]))
    # Sub-action 0: probs [0.25, 0.75]; sub-action 1: uniform over 3.
    params = [[0.0, math.log(3.0), 0.0, 0.0, 0.0]]
    log_pi, entropy = log_prob_entropy(dist, params, np.array([[1, 2]], np.int64))
    np.testing.assert_allclose(log_pi, [math.log(0.75) + math.log(1 / 3)], rtol=1e-6)
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # 0.562335
    np.testing.assert_allclose(entropy, [h0 + math.log(3.0)], rtol=1e-6)


def test_bernoulli_log_prob_and_entropy_by_hand():
    dist = ActionDist.from_space(gym.spaces.MultiBinary(2))
    # p = sigmoid(0) = 0.5 and sigmoid(ln 3) = 0.75; actions [1, 0].
    log_pi, entropy = log_prob_entropy(dist, [[0.0, math.log(3.0)]], np.array([[1, 0]], np.int64))
    np.testing.assert_allclose(log_pi, [math.log(0.5) + math.log(0.25)], rtol=1e-6)
    h1 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    np.testing.assert_allclose(entropy, [math.log(2.0) + h1], rtol=1e-6)


def test_categorical_keeps_its_log_softmax():
    dist = ActionDist.from_space(gym.spaces.Discrete(3))
    params = [[0.0, math.log(2.0), math.log(5.0)]]
    log_pi, entropy = log_prob_entropy(dist, params, np.array([2], np.int64))
    np.testing.assert_allclose(log_pi, [math.log(5 / 8)], rtol=1e-6)
    p = np.array([1, 2, 5]) / 8
    np.testing.assert_allclose(entropy, [-(p * np.log(p)).sum()], rtol=1e-6)


# -- numpy sampling --------------------------------------------------------------------------
def test_gaussian_samples_have_the_policy_moments_and_are_not_clipped():
    dist = ActionDist.from_space(gym.spaces.Box(-1.0, 1.0, (2,)))
    params = np.tile([[0.9, -0.3]], (40_000, 1)).astype(np.float32)
    actions = dist.sample(params, np.random.default_rng(0), np.log([0.5, 0.1]))
    assert actions.shape == (40_000, 2) and actions.dtype == np.float32
    np.testing.assert_allclose(actions.mean(0), [0.9, -0.3], atol=0.01)
    np.testing.assert_allclose(actions.std(0), [0.5, 0.1], rtol=0.02)
    assert actions[:, 0].max() > 1.0  # what is learned from is the unclipped sample


def test_squashed_samples_stay_inside_the_bounds():
    box = gym.spaces.Box(np.float32([0.0, -3.0]), np.float32([1.0, 3.0]))
    dist = ActionDist.from_space(box, squash=True)
    actions = dist.sample(np.zeros((5000, 2), np.float32), np.random.default_rng(1), [1.0, 1.0])
    assert (actions[:, 0] > 0).all() and (actions[:, 0] < 1).all()
    assert (np.abs(actions[:, 1]) < 3).all() and actions[:, 1].std() > 1.0


def test_multi_categorical_and_bernoulli_sample_their_probabilities():
    rng = np.random.default_rng(2)
    multi = ActionDist.from_space(gym.spaces.MultiDiscrete([2, 3]))
    params = np.tile([[0.0, math.log(3.0), 0.0, math.log(2.0), 0.0]], (30_000, 1))
    actions = multi.sample(params, rng)
    assert actions.shape == (30_000, 2) and actions.dtype == np.int64
    np.testing.assert_allclose(np.bincount(actions[:, 0]) / 30_000, [0.25, 0.75], atol=0.01)
    np.testing.assert_allclose(np.bincount(actions[:, 1]) / 30_000, [0.25, 0.5, 0.25], atol=0.01)
    binary = ActionDist.from_space(gym.spaces.MultiBinary([2, 2]))
    actions = binary.sample(np.tile([[0.0, math.log(3.0), -math.log(3.0), 5.0]], (30_000, 1)), rng)
    assert actions.shape == (30_000, 2, 2)
    np.testing.assert_allclose(
        actions.reshape(-1, 4).mean(0), [0.5, 0.75, 0.25, 1 / (1 + math.exp(-5))], atol=0.01
    )


# -- modes -----------------------------------------------------------------------------------
CASES = {
    "categorical": (gym.spaces.Discrete(3), [[0.1, 2.0, -1.0]], [1]),
    "multi_categorical": (gym.spaces.MultiDiscrete([2, 3]), [[1.0, 0.0, 0.0, 0.0, 3.0]], [[0, 2]]),
    "bernoulli": (gym.spaces.MultiBinary(3), [[0.5, -0.5, 2.0]], [[1, 0, 1]]),
    "gaussian": (gym.spaces.Box(-1.0, 1.0, (3,)), [[0.5, -2.0, 3.0]], [[0.5, -1.0, 1.0]]),
    "squashed": (gym.spaces.Box(-2.0, 2.0, (1,)), [[0.0]], [[0.0]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mode_in_numpy_and_tensorflow(case):
    space, params, expected = CASES[case]
    dist = ActionDist.from_space(space, squash=case == "squashed")
    np.testing.assert_allclose(dist.mode(np.array(params)), expected, atol=1e-6)
    np.testing.assert_allclose(
        dist.tf_mode(tf.constant(params, tf.float32)).numpy(), expected, atol=1e-6
    )
    assert space.contains(np.asarray(dist.mode(np.array(params))[0], space.dtype))


# -- spaces and bad input ----------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_json_round_trip(case):
    space = CASES[case][0]
    dist = ActionDist.from_space(space, squash=case == "squashed")
    assert ActionDist.from_json(dist.to_json()) == dist


def test_infinite_bounds_are_kept_as_no_bounds():
    dist = ActionDist.from_space(gym.spaces.Box(-np.inf, np.inf, (2,)))
    assert not dist.bounded
    assert ActionDist.from_json(dist.to_json()) == dist
    np.testing.assert_array_equal(dist.mode(np.array([[1e6, -1e6]])), [[1e6, -1e6]])


@pytest.mark.parametrize(
    ("space", "squash", "fragment"),
    [
        (gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), False, "no rlkit agent handles it"),
        (gym.spaces.Discrete(3, start=1), False, "numbered from 0"),
        (gym.spaces.Box(-np.inf, np.inf, (2,)), True, "squash_actions needs finite"),
        (gym.spaces.Box(0, 5, (2,), np.int64), False, "float Box"),
    ],
)
def test_spaces_it_cannot_handle(space, squash, fragment):
    with pytest.raises(IncompatibleEnvError, match=fragment):
        ActionDist.from_space(space, squash=squash)


def test_from_json_rejects_what_it_did_not_write():
    for junk in ({"kind": "beta", "sizes": [2]}, {"kind": "gaussian", "sizes": [1], "x": 1}, []):
        with pytest.raises(ValueError, match="not an action distribution"):
            ActionDist.from_json(junk)


def test_clip_to_space_clips_box_actions_only():
    box = gym.spaces.Box(-1.0, 2.0, (2,))
    np.testing.assert_array_equal(clip_to_space(box, np.array([[-5.0, 5.0]])), [[-1.0, 2.0]])
    actions = np.array([7])
    assert clip_to_space(gym.spaces.Discrete(3), actions) is actions

"""rlkit.losses against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rlkit import losses


def f32(x):
    return tf.constant(x, dtype=tf.float32)


# -- q_learning_target --------------------------------------------------------------------


def test_q_learning_target_by_hand():
    r_t = f32([1.0, 0.5, -1.0])
    discount_t = f32([0.9, 0.0, 0.5])  # row 1 terminated: gamma * (1 - 1) = 0
    q_t = f32([[2.0, 3.0], [10.0, 20.0], [-4.0, -2.0]])
    y = losses.q_learning_target(r_t, discount_t, q_t)
    expected = [
        3.7,  # y = 1 + 0.9 * max(2, 3) = 1 + 2.7 = 3.7
        0.5,  # y = 0.5 + 0 * max(10, 20) = 0.5 (termination: no bootstrap)
        -2.0,  # y = -1 + 0.5 * max(-4, -2) = -1 - 1 = -2
    ]
    assert y.shape == (3,)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


def test_q_learning_target_stops_gradient():
    q_t = tf.Variable([[2.0, 3.0]])
    with tf.GradientTape() as tape:
        y = losses.q_learning_target(f32([1.0]), f32([0.9]), q_t)
    assert tape.gradient(y, q_t) is None


# -- double_q_learning_target -------------------------------------------------------------


def test_double_q_learning_target_by_hand():
    r_t = f32([1.0, 0.5, 2.0])
    discount_t = f32([0.9, 0.9, 0.0])
    q_t_value = f32([[2.0, 3.0], [1.0, 4.0], [5.0, 6.0]])  # target network
    q_t_selector = f32([[5.0, 1.0], [0.0, 7.0], [9.0, 0.0]])  # online network
    y = losses.double_q_learning_target(r_t, discount_t, q_t_value, q_t_selector)
    expected = [
        2.8,  # online argmax = 0 (5 > 1); y = 1 + 0.9 * q_value[0] = 1 + 0.9 * 2 = 2.8
        4.1,  # online argmax = 1 (7 > 0); y = 0.5 + 0.9 * q_value[1] = 0.5 + 3.6 = 4.1
        2.0,  # terminated: y = 2 + 0 * q_value[0] = 2
    ]
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)
    # Row 0: online argmax (0) differs from target argmax (1), so plain Q-learning gives
    # 1 + 0.9 * max(2, 3) = 3.7 != 2.8; row 1 agrees (both pick action 1): 4.1.
    y_q = losses.q_learning_target(r_t, discount_t, q_t_value)
    np.testing.assert_allclose(y_q.numpy(), [3.7, 4.1, 2.0], rtol=1e-6)
    assert abs(float(y[0]) - float(y_q[0])) > 0.5


def test_double_q_learning_target_stops_gradient():
    q_value = tf.Variable([[2.0, 3.0]])
    q_selector = tf.Variable([[5.0, 1.0]])
    with tf.GradientTape(persistent=True) as tape:
        y = losses.double_q_learning_target(f32([1.0]), f32([0.9]), q_value, q_selector)
    assert tape.gradient(y, q_value) is None
    assert tape.gradient(y, q_selector) is None


# -- huber ----------------------------------------------------------------------------------


def test_huber_by_hand_delta_one():
    x = f32([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5])
    expected = [
        2.5,  # |x| = 3 > 1: 1 * (3 - 0.5 * 1) = 2.5
        0.5,  # boundary |x| = 1: 0.5 * 1^2 = 0.5 = 1 * (1 - 0.5) (both branches agree)
        0.125,  # 0.5 * 0.5^2 = 0.125
        0.0,  # 0.5 * 0^2 = 0
        0.125,  # 0.5 * 0.5^2 = 0.125
        0.5,  # boundary: 0.5 * 1^2 = 0.5
        2.0,  # |x| = 2.5 > 1: 1 * (2.5 - 0.5) = 2.0
    ]
    np.testing.assert_allclose(losses.huber(x).numpy(), expected, rtol=1e-6)


def test_huber_by_hand_delta_two():
    x = f32([1.0, -2.0, 3.0])
    expected = [
        0.5,  # |x| = 1 < 2: 0.5 * 1^2 = 0.5
        2.0,  # boundary |x| = 2: 0.5 * 2^2 = 2 = 2 * (2 - 0.5 * 2)
        4.0,  # |x| = 3 > 2: 2 * (3 - 0.5 * 2) = 2 * 2 = 4
    ]
    np.testing.assert_allclose(losses.huber(x, delta=2.0).numpy(), expected, rtol=1e-6)


def test_huber_gradient():
    x = tf.Variable([-3.0, -0.5, 0.0, 0.5, 1.0, 2.5])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(losses.huber(x))
    grad = tape.gradient(y, x)
    expected = [
        -1.0,  # outside: d/dx delta * (|x| - delta / 2) = delta * sign(x) = -1
        -0.5,  # inside: d/dx 0.5 x^2 = x = -0.5
        0.0,  # x = 0
        0.5,  # x = 0.5
        1.0,  # boundary: x = delta * sign(x) = 1 (continuous)
        1.0,  # outside: delta * sign(2.5) = 1 (clipped)
    ]
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-6)


# -- td_loss --------------------------------------------------------------------------------

Q_TM1 = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
A_TM1 = [2, 0]
TARGET = [3.5, 1.0]
# q_a = [q[0, 2], q[1, 0]] = [3, 4]; td_error = target - q_a = [3.5 - 3, 1 - 4] = [0.5, -3]


@pytest.mark.parametrize("action_dtype", [tf.int32, tf.int64])
def test_td_loss_huber_by_hand(action_dtype):
    loss, td = losses.td_loss(f32(Q_TM1), tf.constant(A_TM1, action_dtype), f32(TARGET))
    np.testing.assert_allclose(td.numpy(), [0.5, -3.0], rtol=1e-6)
    # huber(0.5) = 0.5 * 0.25 = 0.125; huber(-3) = 3 - 0.5 = 2.5; mean = 2.625 / 2 = 1.3125
    np.testing.assert_allclose(float(loss), 1.3125, rtol=1e-6)
    assert loss.shape == ()


def test_td_loss_mse_by_hand():
    loss, td = losses.td_loss(f32(Q_TM1), tf.constant(A_TM1), f32(TARGET), kind="mse")
    np.testing.assert_allclose(td.numpy(), [0.5, -3.0], rtol=1e-6)
    # 0.5 * 0.5^2 = 0.125; 0.5 * 3^2 = 4.5; mean = 4.625 / 2 = 2.3125
    np.testing.assert_allclose(float(loss), 2.3125, rtol=1e-6)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # d/dq_a mean(0.5 (y - q_a)^2) = -(y - q_a) / B: row 0: -0.5 / 2 = -0.25 at a = 2;
        # row 1: -(-3) / 2 = 1.5 at a = 0; zero for the actions not taken.
        ("mse", [[0.0, 0.0, -0.25], [1.5, 0.0, 0.0]]),
        # huber clips the error to [-1, 1]: row 0: -0.5 / 2 = -0.25; row 1: -(-1) / 2 = 0.5.
        ("huber", [[0.0, 0.0, -0.25], [0.5, 0.0, 0.0]]),
    ],
)
def test_td_loss_gradient_only_on_taken_action(kind, expected):
    q_tm1 = tf.Variable(Q_TM1)
    with tf.GradientTape() as tape:
        loss, _ = losses.td_loss(q_tm1, tf.constant(A_TM1), f32(TARGET), kind=kind)
    np.testing.assert_allclose(tape.gradient(loss, q_tm1).numpy(), expected, rtol=1e-6)


def test_td_loss_importance_weights_by_hand():
    weights = f32([2.0, 0.5])
    loss, td = losses.td_loss(f32(Q_TM1), tf.constant(A_TM1), f32(TARGET), weights=weights)
    np.testing.assert_allclose(td.numpy(), [0.5, -3.0], rtol=1e-6)  # errors are unweighted
    # (2 * huber(0.5) + 0.5 * huber(-3)) / 2 = (2 * 0.125 + 0.5 * 2.5) / 2 = 1.5 / 2 = 0.75
    np.testing.assert_allclose(float(loss), 0.75, rtol=1e-6)
    # weights of one change nothing, bit for bit
    ones, _ = losses.td_loss(f32(Q_TM1), tf.constant(A_TM1), f32(TARGET), weights=f32([1, 1]))
    plain, _ = losses.td_loss(f32(Q_TM1), tf.constant(A_TM1), f32(TARGET))
    assert float(ones) == float(plain)


# -- discounted_returns --------------------------------------------------------------------


def test_discounted_returns_by_hand():
    # gamma = 0.9. Column 0: an episode ends after t = 1 (discount 0), a new one runs
    # on past the rollout and bootstraps from 10. Column 1: no episode end, bootstrap 2.
    r_t = f32([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])  # [T=3, N=2]
    discount_t = f32([[0.9, 0.9], [0.0, 0.9], [0.9, 0.9]])
    bootstrap = f32([10.0, 2.0])
    g = losses.discounted_returns(r_t, discount_t, bootstrap)
    expected = [
        # col 0: G_0 = 1 + 0.9 * G_1 = 1 + 1.8 = 2.8
        # col 1: G_0 = 0 + 0.9 * 2.52 = 2.268
        [2.8, 2.268],
        # col 0: G_1 = 2 + 0 * G_2 = 2 (episode end: nothing from the next episode)
        # col 1: G_1 = 0 + 0.9 * 2.8 = 2.52
        [2.0, 2.52],
        # col 0: G_2 = 3 + 0.9 * 10 = 12
        # col 1: G_2 = 1 + 0.9 * 2 = 2.8
        [12.0, 2.8],
    ]
    assert g.shape == (3, 2)
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-6)


# -- generalized_advantage_estimation ------------------------------------------------------
# gamma = 0.5, T = 3, N = 2.
# Column 0: the first episode is *truncated* after t = 1 (time limit): discount_1 = gamma, so
#   step 1 still bootstraps from v_t[1] = 4 (the true final observation), but continue_1 = 0
#   so nothing from the episode starting at t = 2 leaks back. The new episode bootstraps
#   from v_t[2] = 5 at the end of the rollout.
# Column 1: the episode *terminates* at t = 0 (discount_0 = 0, continue_0 = 0; v_t[0] = 7 is
#   ignored); the next episode runs to the end and bootstraps from v_t[2] = 6.
GAE_R = [[1.0, 3.0], [1.0, 0.0], [1.0, 2.0]]
GAE_V_TM1 = [[1.0, 2.0], [2.0, 1.0], [3.0, 2.0]]
GAE_V_T = [[2.0, 7.0], [4.0, 2.0], [5.0, 6.0]]
GAE_DISCOUNT = [[0.5, 0.0], [0.5, 0.5], [0.5, 0.5]]
GAE_CONTINUE = [[0.5, 0.0], [0.0, 0.5], [0.5, 0.5]]
# delta_t = r_t + discount_t * v_t - v_tm1:
#   col 0: d0 = 1 + 0.5 * 2 - 1 = 1;  d1 = 1 + 0.5 * 4 - 2 = 1;  d2 = 1 + 0.5 * 5 - 3 = 0.5
#   col 1: d0 = 3 + 0 * 7 - 2 = 1;    d1 = 0 + 0.5 * 2 - 1 = 0;  d2 = 2 + 0.5 * 6 - 2 = 3


def gae(lambda_, r=GAE_R):
    return losses.generalized_advantage_estimation(
        f32(r), f32(GAE_V_TM1), f32(GAE_V_T), f32(GAE_DISCOUNT), f32(GAE_CONTINUE), lambda_
    ).numpy()


def test_gae_lambda_zero_is_one_step_td_error():
    # A_t = delta_t (the lambda * continue * A_{t+1} term vanishes)
    expected = [[1.0, 1.0], [1.0, 0.0], [0.5, 3.0]]
    np.testing.assert_allclose(gae(0.0), expected, rtol=1e-6)


def test_gae_lambda_one_by_hand():
    # A_t = delta_t + 1 * continue_t * A_{t+1}
    expected = [
        # col 0: A0 = 1 + 0.5 * A1 = 1 + 0.5 * 1 = 1.5
        # col 1: A0 = 1 + 0 * A1 = 1 (termination: A1 = 1.5 does not leak)
        [1.5, 1.0],
        # col 0: A1 = 1 + 0 * A2 = 1 (truncation: A2 does not leak)
        # col 1: A1 = 0 + 0.5 * 3 = 1.5
        [1.0, 1.5],
        # A2 = delta_2 (nothing after the rollout): 0.5, 3
        [0.5, 3.0],
    ]
    np.testing.assert_allclose(gae(1.0), expected, rtol=1e-6)


def test_gae_lambda_half_by_hand():
    # A_t = delta_t + 0.5 * continue_t * A_{t+1}
    expected = [
        # col 0: A0 = 1 + 0.5 * 0.5 * 1 = 1.25;  col 1: A0 = 1 + 0.5 * 0 * 0.75 = 1
        [1.25, 1.0],
        # col 0: A1 = 1 + 0.5 * 0 * 0.5 = 1;  col 1: A1 = 0 + 0.5 * 0.5 * 3 = 0.75
        [1.0, 0.75],
        [0.5, 3.0],
    ]
    np.testing.assert_allclose(gae(0.5), expected, rtol=1e-6)
    np.testing.assert_allclose(gae(tf.constant(0.5)), expected, rtol=1e-6)


def test_gae_lambda_one_equals_discounted_returns_minus_values():
    # With lambda = 1, A_t = G_t - v_tm1. discounted_returns cannot bootstrap mid-rollout,
    # so the truncated step's bootstrap is folded into its reward: r'_1 = 1 + 0.5 * 4 = 3.
    # col 0: G2 = 1 + 0.5 * 5 = 3.5; G1 = 3 + 0 * G2 = 3; G0 = 1 + 0.5 * 3 = 2.5
    #        G - v = [2.5 - 1, 3 - 2, 3.5 - 3] = [1.5, 1, 0.5]
    # col 1: G2 = 2 + 0.5 * 6 = 5; G1 = 0 + 0.5 * 5 = 2.5; G0 = 3 + 0 * 2.5 = 3
    #        G - v = [3 - 2, 2.5 - 1, 5 - 2] = [1, 1.5, 3]
    r_folded = f32([[1.0, 3.0], [3.0, 0.0], [1.0, 2.0]])
    g = losses.discounted_returns(r_folded, f32(GAE_CONTINUE), f32(GAE_V_T[-1]))
    np.testing.assert_allclose(g.numpy(), [[2.5, 3.0], [3.0, 2.5], [3.5, 5.0]], rtol=1e-6)
    np.testing.assert_allclose(gae(1.0), g.numpy() - np.array(GAE_V_TM1), rtol=1e-6)


def test_gae_lambda_one_identity_random_rollout():
    # A random consistent rollout: v_t[t] = v_tm1[t + 1] inside an episode, terminations only
    # (discount = continue), so GAE(1) = discounted_returns(r, discount, v_t[-1]) - v_tm1.
    rng = np.random.default_rng(0)
    t_len, n, gamma = 20, 4, 0.97
    values = rng.normal(size=(t_len + 1, n)).astype(np.float32)
    r = rng.normal(size=(t_len, n)).astype(np.float32)
    terminated = (rng.random((t_len, n)) < 0.2).astype(np.float32)
    discount = gamma * (1.0 - terminated)
    v_tm1, v_t = values[:-1], values[1:]
    adv = losses.generalized_advantage_estimation(
        f32(r), f32(v_tm1), f32(v_t), f32(discount), f32(discount), 1.0
    )
    g = losses.discounted_returns(f32(r), f32(discount), f32(v_t[-1]))
    np.testing.assert_allclose(adv.numpy(), g.numpy() - v_tm1, rtol=1e-5, atol=1e-5)


def test_gae_nothing_leaks_across_episode_boundary():
    # Changing the rewards of the episodes that start after each boundary (col 0 from t = 2,
    # col 1 from t = 1) must not change the advantages before the boundary.
    base = gae(0.9)
    r = np.array(GAE_R)
    r[2, 0] += 100.0
    r[1:, 1] -= 50.0
    changed = gae(0.9, r=r.tolist())
    np.testing.assert_allclose(changed[:2, 0], base[:2, 0], rtol=1e-6)
    np.testing.assert_allclose(changed[:1, 1], base[:1, 1], rtol=1e-6)
    assert not np.allclose(changed[2, 0], base[2, 0])


# -- masked_mean ----------------------------------------------------------------------------


def test_masked_mean_by_hand():
    x = f32([[1.0, 2.0], [3.0, 4.0]])
    mask = f32([[1.0, 0.0], [1.0, 1.0]])
    # (1 + 3 + 4) / 3 = 8 / 3
    np.testing.assert_allclose(float(losses.masked_mean(x, mask)), 8.0 / 3.0, rtol=1e-6)


def test_masked_mean_all_zero_mask_is_zero():
    x = f32([1.0, 2.0, 3.0])
    # sum(x * 0) / max(0, 1) = 0
    assert float(losses.masked_mean(x, tf.zeros_like(x))) == 0.0


# -- policy_gradient_loss ------------------------------------------------------------------


def test_categorical_log_prob_by_hand_and_as_tfp():
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([2, 2, 2]) is uniform over 3 actions
    logits = tf.constant([[0.0, float(np.log(3.0)), -1e9], [2.0, 2.0, 2.0]])
    actions = tf.constant([1, 2], tf.int64)
    got = losses.categorical_log_prob(logits, actions).numpy()
    np.testing.assert_allclose(got, [np.log(0.75), -np.log(3.0)], rtol=1e-6)
    # the same numbers as tfp's Categorical (what the agents used before)
    import tensorflow_probability as tfp

    want = tfp.distributions.Categorical(logits=logits).log_prob(actions).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)  # bitwise: the golden A2C runs


def test_policy_gradient_loss_by_hand_and_gradients():
    log_prob = tf.Variable([-1.0, -2.0, -0.5])
    advantage = tf.Variable([2.0, 3.0, 4.0])
    mask = f32([1.0, 1.0, 0.0])
    with tf.GradientTape(persistent=True) as tape:
        loss = losses.policy_gradient_loss(log_prob, advantage, mask)
    # -((-1 * 2) + (-2 * 3)) / 2 = -(-8) / 2 = 4; the masked third entry does not count
    np.testing.assert_allclose(float(loss), 4.0, rtol=1e-6)
    # d loss / d log_prob = -advantage * mask / sum(mask) = [-2 / 2, -3 / 2, 0]
    np.testing.assert_allclose(tape.gradient(loss, log_prob).numpy(), [-1.0, -1.5, 0.0], rtol=1e-6)
    # advantages are constants: no gradient flows into them
    grad_adv = tape.gradient(loss, advantage)
    assert grad_adv is None or not np.any(grad_adv.numpy())


def test_masked_standardize_ignores_masked_entries():
    x = tf.constant([1.0, 2.0, 3.0, 100.0])
    mask = tf.constant([1.0, 1.0, 1.0, 0.0])
    # mean over the mask = (1 + 2 + 3) / 3 = 2; var = (1 + 0 + 1) / 3 = 2/3; std = 0.81650
    out = losses.masked_standardize(x, mask).numpy()
    std = np.sqrt(2.0 / 3.0)
    np.testing.assert_allclose(out, [-1 / std, 0.0, 1 / std, 98 / std], rtol=1e-5)


# -- a2c_loss -------------------------------------------------------------------------------

# One env, two steps, gamma 0.5, no episode end, lambda 1:
#   delta_0 = r_0 + 0.5 V(s_1) - V(s_0) = 1 + 0.5 * 2 - 1 = 1
#   delta_1 = r_1 + 0.5 V(s_2) - V(s_1) = 0 + 0.5 * 3 - 2 = -0.5
#   A_1 = -0.5;  A_0 = delta_0 + 1 * 0.5 * A_1 = 0.75;  G = A + V = [1.75, 1.5]
A2C_ARGS = {
    "log_pi_a_tm1": [[-0.5], [-1.0]],
    "entropy_tm1": [[0.6], [0.4]],
    "v_tm1": [[1.0], [2.0]],
    "v_t": [[2.0], [3.0]],
    "r_t": [[1.0], [0.0]],
    "discount_t": [[0.5], [0.5]],
    "continue_t": [[0.5], [0.5]],
    "mask_tm1": [[1.0], [1.0]],
}


def test_a2c_loss_by_hand():
    args = {k: f32(v) for k, v in A2C_ARGS.items()}
    loss, terms = losses.a2c_loss(**args, lambda_=1.0, vf_coef=0.5, ent_coef=0.1)
    # policy: -mean(log pi * A) = -(-0.5 * 0.75 + -1 * -0.5) / 2 = -0.0625
    # value: mean((G - V)^2) = (0.75^2 + 0.5^2) / 2 = 0.40625;  entropy: (0.6 + 0.4) / 2 = 0.5
    # loss = -0.0625 + 0.5 * 0.40625 - 0.1 * 0.5 = 0.090625
    np.testing.assert_allclose(float(terms["policy_loss"]), -0.0625, rtol=1e-6)
    np.testing.assert_allclose(float(terms["value_loss"]), 0.40625, rtol=1e-6)
    np.testing.assert_allclose(float(terms["entropy"]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(loss), 0.090625, rtol=1e-6)


def test_a2c_loss_gradients_by_hand():
    args = {k: tf.Variable(v) for k, v in A2C_ARGS.items() if k in ("log_pi_a_tm1", "v_tm1", "v_t")}
    with tf.GradientTape() as tape:
        rest = {k: f32(v) for k, v in A2C_ARGS.items() if k not in args}
        loss, _ = losses.a2c_loss(**args, **rest, lambda_=1.0, vf_coef=0.5, ent_coef=0.1)
    g_log_pi, g_v_tm1, g_v_t = tape.gradient(loss, list(args.values()))
    # d/d log pi = -A / 2 = [-0.375, 0.25] (advantages are constants)
    np.testing.assert_allclose(g_log_pi.numpy(), [[-0.375], [0.25]], rtol=1e-6)
    # only the value loss reaches V(s_tm1): 0.5 * 2 (V - G) / 2 = [1 - 1.75, 2 - 1.5] / 2
    np.testing.assert_allclose(g_v_tm1.numpy(), [[-0.375], [0.25]], rtol=1e-6)
    assert g_v_t is None  # the bootstrap values are held constant


def test_a2c_loss_normalized_advantages_by_hand():
    args = {k: f32(v) for k, v in A2C_ARGS.items()}
    _, terms = losses.a2c_loss(
        **args, lambda_=1.0, vf_coef=0.5, ent_coef=0.1, normalize_advantage=True
    )
    # A = [0.75, -0.5]: mean 0.125, std 0.625, so A' = [1, -1]
    # policy: -(-0.5 * 1 + -1 * -1) / 2 = -0.25; the value loss keeps the raw returns
    np.testing.assert_allclose(float(terms["policy_loss"]), -0.25, rtol=1e-5)
    np.testing.assert_allclose(float(terms["value_loss"]), 0.40625, rtol=1e-6)


# -- reinforce_loss -------------------------------------------------------------------------

# Two episodes as the columns of [L=3, E=2], gamma 0.5. Episode 0: three steps, terminated.
# Episode 1: two steps, then a time limit (truncated on row 1); row 2 is padding (mask 0).
REINFORCE_ARGS = {
    "log_pi_a_tm1": [[-0.5, -1.0], [-1.0, -0.5], [-2.0, -3.0]],
    "entropy_tm1": [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
    "v_tm1": [[1.0, 2.0], [1.0, 1.0], [0.0, 9.0]],
    "v_last": [5.0, 4.0],  # V of each episode's final observation
    "r_t": [[1.0, 1.0], [1.0, 2.0], [1.0, 0.0]],
    "discount_t": [[0.5, 0.5], [0.5, 0.5], [0.0, 0.5]],  # 0.5 * (1 - terminated)
    "truncated_t": [[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
    "mask_tm1": [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]],
}


def test_reinforce_loss_without_baseline_by_hand():
    args = {k: f32(v) for k, v in REINFORCE_ARGS.items()}
    loss, terms = losses.reinforce_loss(
        **args, baseline=False, vf_coef=0.5, ent_coef=0.1, normalize=False
    )
    # No baseline: nothing bootstraps. Episode 0: G = [1 + 0.5 * 1.5, 1 + 0.5 * 1, 1]
    # = [1.75, 1.5, 1]; episode 1: G = [1 + 0.5 * 2, 2 + 0.5 * 0] = [2, 2].
    # policy: -(-0.5 * 1.75 - 1 * 1.5 - 2 * 1 - 1 * 2 - 0.5 * 2) / 5 = 7.375 / 5 = 1.475
    # value (reported, weight 0): (0.75^2 + 0.5^2 + 1^2 + 0^2 + 1^2) / 5 = 2.8125 / 5 = 0.5625
    # loss = 1.475 - 0.1 * 0.5 = 1.425;  mean return = 8.25 / 5 = 1.65
    np.testing.assert_allclose(float(terms["policy_loss"]), 1.475, rtol=1e-6)
    np.testing.assert_allclose(float(terms["value_loss"]), 0.5625, rtol=1e-6)
    np.testing.assert_allclose(float(terms["entropy"]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(terms["return_mean"]), 1.65, rtol=1e-6)
    np.testing.assert_allclose(float(loss), 1.425, rtol=1e-6)


def test_reinforce_loss_with_baseline_by_hand():
    args = {k: f32(v) for k, v in REINFORCE_ARGS.items()}
    loss, terms = losses.reinforce_loss(
        **args, baseline=True, vf_coef=0.5, ent_coef=0.1, normalize=False
    )
    # The cut episode 1 bootstraps from V(final obs) = 4: G = [1 + 0.5 * 4, 2 + 0.5 * 4]
    # = [3, 4]; episode 0 (terminated) is unchanged: [1.75, 1.5, 1].
    # G - V = [0.75, 0.5, 1] and [3 - 2, 4 - 1] = [1, 3]
    # policy: -(-0.5 * 0.75 - 1 * 0.5 - 2 * 1 - 1 * 1 - 0.5 * 3) / 5 = 5.375 / 5 = 1.075
    # value: (0.75^2 + 0.5^2 + 1 + 1 + 9) / 5 = 11.8125 / 5 = 2.3625
    # loss = 1.075 + 0.5 * 2.3625 - 0.1 * 0.5 = 2.20625;  mean return = 11.25 / 5 = 2.25
    np.testing.assert_allclose(float(terms["policy_loss"]), 1.075, rtol=1e-6)
    np.testing.assert_allclose(float(terms["value_loss"]), 2.3625, rtol=1e-6)
    np.testing.assert_allclose(float(terms["return_mean"]), 2.25, rtol=1e-6)
    np.testing.assert_allclose(float(loss), 2.20625, rtol=1e-6)


def test_reinforce_loss_normalized_weights_by_hand():
    args = {k: f32(v) for k, v in REINFORCE_ARGS.items()}
    _, terms = losses.reinforce_loss(
        **args, baseline=False, vf_coef=0.5, ent_coef=0.0, normalize=True
    )
    # G = [1.75, 1.5, 1, 2, 2]: mean 1.65, variance (0.01 + 0.0225 + 0.4225 + 0.1225 * 2) / 5
    # = 0.14, so G' = (G - 1.65) / sqrt(0.14)
    g = (np.array([1.75, 1.5, 1.0, 2.0, 2.0]) - 1.65) / np.sqrt(0.14)
    log_pi = np.array([-0.5, -1.0, -2.0, -1.0, -0.5])
    np.testing.assert_allclose(float(terms["policy_loss"]), -np.mean(log_pi * g), rtol=1e-5)

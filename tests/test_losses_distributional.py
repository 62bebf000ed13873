"""rlkit.losses, C51 and QR-DQN parts, against numbers worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from rlkit import losses


def f32(x):
    return tf.constant(x, dtype=tf.float32)


SUPPORT3 = [-1.0, 0.0, 1.0]  # v_min = -1, v_max = 1, dz = 1
SUPPORT5 = [-2.0, -1.0, 0.0, 1.0, 2.0]  # dz = 1


def project(support, probs, r, discount):
    return losses.categorical_projection(f32(support), f32(probs), f32(r), f32(discount)).numpy()


# -- categorical_projection -----------------------------------------------------------------


def test_projection_splits_mass_between_neighbours():
    # Tz = 0.5 + 0.5 * [-1, 0, 1] = [0, 0.5, 1]
    # atom -1 (p 0.2) lands on 0: all to atom 0           -> [0, 0.2, 0]
    # atom 0 (p 0.5) lands on 0.5: half to 0, half to 1   -> [0, 0.25, 0.25]
    # atom 1 (p 0.3) lands on 1: all to atom 1            -> [0, 0, 0.3]
    # total [0, 0.45, 0.55]
    got = project(SUPPORT3, [[0.2, 0.5, 0.3]], [0.5], [0.5])
    np.testing.assert_allclose(got, [[0.0, 0.45, 0.55]], atol=1e-6)


def test_projection_of_atoms_landing_exactly_on_atoms():
    got = project(
        SUPPORT5,
        [[0.1, 0.2, 0.3, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]],
        [1.0, 1.0],
        [1.0, 0.5],
    )
    # row 0: Tz = 1 + [-2, -1, 0, 1, 2] = [-1, 0, 1, 2, 3 -> clipped to 2]: a shift by one
    #   atom, [0, 0.1, 0.2, 0.3, 0.4 + 0]
    # row 1: Tz = 1 + 0.5 * [-2, -1, 0, 1, 2] = [0, 0.5, 1, 1.5, 2]
    #   0 (p 0.1) -> atom 0: 0.1;  0.5 (p 0.2) -> 0.1 to atom 0, 0.1 to atom 1
    #   1 (p 0.3) -> atom 1: 0.3;  1.5 (p 0.4) -> 0.2 to atom 1, 0.2 to atom 2
    #   2 (p 0) -> nothing.  [.., 0: 0.2, 1: 0.1 + 0.3 + 0.2 = 0.6, 2: 0.2]
    expected = [[0.0, 0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.2, 0.6, 0.2]]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_projection_clips_at_both_ends():
    probs = [[0.2, 0.5, 0.3]] * 3
    got = project(SUPPORT3, probs, [-5.0, 5.0, 0.0], [1.0, 1.0, 2.0])
    expected = [
        [1.0, 0.0, 0.0],  # Tz = -5 + [-1, 0, 1] = [-6, -5, -4]: all clipped to v_min = -1
        [0.0, 0.0, 1.0],  # Tz = [4, 5, 6]: all clipped to v_max = 1
        [0.2, 0.5, 0.3],  # Tz = [-2, 0, 2] -> [-1, 0, 1]: the ends clipped back onto themselves
    ]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_projection_with_discount_zero_is_the_reward_alone():
    probs = [[0.2, 0.5, 0.3]] * 3
    got = project(SUPPORT3, probs, [0.3, -0.8, 7.0], [0.0, 0.0, 0.0])
    expected = [
        [0.0, 0.7, 0.3],  # all mass at 0.3: 1 - 0.3 = 0.7 to atom 0, 0.3 to atom 1
        [0.8, 0.2, 0.0],  # at -0.8: 1 - 0.2 = 0.8 to atom -1, 0.2 to atom 0
        [0.0, 0.0, 1.0],  # at clip(7) = 1
    ]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_projection_keeps_mass_and_mean_on_a_51_atom_support():
    rng = np.random.default_rng(0)
    support = np.linspace(-10.0, 10.0, 51).astype(np.float32)
    probs = rng.dirichlet(np.ones(51), size=64).astype(np.float32)
    r = rng.uniform(-1.0, 1.0, 64).astype(np.float32)
    discount = rng.uniform(0.0, 0.5, 64).astype(np.float32)
    got = project(support, probs, r, discount)
    assert got.shape == (64, 51)
    assert got.min() >= 0.0
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    # Tz stays inside [-6, 6], so nothing is clipped and the hat-kernel split keeps the
    # mean: sum_i m_i z_i = sum_j p_j (r + discount z_j) = r + discount E[Z].
    np.testing.assert_allclose(got @ support, r + discount * (probs @ support), atol=1e-4)


def test_projection_stops_gradient():
    probs = tf.Variable([[0.2, 0.5, 0.3]])
    with tf.GradientTape() as tape:
        m = losses.categorical_projection(f32(SUPPORT3), probs, f32([0.5]), f32([0.5]))
    assert tape.gradient(m, probs) is None


# -- c51_target -----------------------------------------------------------------------------

# Logits log(p) so that softmax gives back p: action 0 has p = [0.6, 0.3, 0.1] (E[Z] = -0.5),
# action 1 has p = [0.2, 0.5, 0.3] (E[Z] = 0.1).
LOGITS_T = np.log([[[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]] * 2).astype(np.float32)  # [2, 2, 3]


def test_c51_target_projects_the_selected_actions_distribution():
    selector = f32([[-0.5, 0.1], [-0.5, 0.1]])  # the target net's own E[Z]: action 1 in both
    got = losses.c51_target(f32(SUPPORT3), f32([0.5, 0.3]), f32([0.5, 0.0]), LOGITS_T, selector)
    expected = [
        [0.0, 0.45, 0.55],  # action 1 with r = 0.5, discount 0.5: as worked out above
        [0.0, 0.7, 0.3],  # terminal: all at r = 0.3
    ]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_c51_target_with_another_selector_double():
    selector = f32([[3.0, 1.0], [3.0, 1.0]])  # e.g. the online net prefers action 0
    got = losses.c51_target(f32(SUPPORT3), f32([0.5, 0.3]), f32([0.5, 0.0]), LOGITS_T, selector)
    # row 0, action 0 (p [0.6, 0.3, 0.1]) at Tz = [0, 0.5, 1]:
    #   0.6 -> atom 0; 0.3 -> 0.15 + 0.15; 0.1 -> atom 1: [0, 0.75, 0.25]
    expected = [[0.0, 0.75, 0.25], [0.0, 0.7, 0.3]]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)


def test_c51_target_stops_gradient():
    logits = tf.Variable(LOGITS_T)
    with tf.GradientTape() as tape:
        m = losses.c51_target(
            f32(SUPPORT3), f32([0.5, 0.3]), f32([0.5, 0.0]), logits, f32([[0, 1]] * 2)
        )
    assert tape.gradient(m, logits) is None


# -- categorical_td_loss --------------------------------------------------------------------

# Logits log(p): row 0 action 1 has p = [0.25, 0.25, 0.5], row 1 action 0 p = [0.5, 0.25, 0.25].
LOGITS_TM1 = np.log(
    [[[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]], [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]]]
).astype(np.float32)
A_TM1 = [1, 0]
TARGET_PROBS = [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]
# row 0: -(0.5 ln 0.25 + 0.5 ln 0.5) = 0.5 * 1.3862944 + 0.5 * 0.6931472 = 1.0397208
# row 1: -(1 * ln 0.5) = 0.6931472
CE = [1.0397208, 0.6931472]


@pytest.mark.parametrize("action_dtype", [tf.int32, tf.int64])
def test_categorical_td_loss_by_hand(action_dtype):
    loss, per_item = losses.categorical_td_loss(
        f32(LOGITS_TM1), tf.constant(A_TM1, action_dtype), f32(TARGET_PROBS)
    )
    np.testing.assert_allclose(per_item.numpy(), CE, rtol=1e-6)
    np.testing.assert_allclose(float(loss), (1.0397208 + 0.6931472) / 2, rtol=1e-6)  # 0.866434
    assert loss.shape == () and per_item.shape == (2,)


def test_categorical_td_loss_importance_weights_by_hand():
    loss, per_item = losses.categorical_td_loss(
        f32(LOGITS_TM1), tf.constant(A_TM1), f32(TARGET_PROBS), weights=f32([2.0, 0.5])
    )
    # (2 * 1.0397208 + 0.5 * 0.6931472) / 2 = (2.0794416 + 0.3465736) / 2 = 1.2130076
    np.testing.assert_allclose(float(loss), 1.2130076, rtol=1e-6)
    np.testing.assert_allclose(per_item.numpy(), CE, rtol=1e-6)  # priorities: unweighted


def test_categorical_td_loss_gradient_by_hand():
    logits = tf.Variable(LOGITS_TM1)
    target = tf.Variable(TARGET_PROBS)
    with tf.GradientTape(persistent=True) as tape:
        loss, _ = losses.categorical_td_loss(logits, tf.constant(A_TM1), target)
    grad = tape.gradient(loss, logits).numpy()
    # d CE / d logits = softmax - target, divided by B = 2 for the mean, on the taken action:
    # row 0, action 1: ([0.25, 0.25, 0.5] - [0, 0.5, 0.5]) / 2 = [0.125, -0.125, 0]
    # row 1, action 0: ([0.5, 0.25, 0.25] - [1, 0, 0]) / 2 = [-0.25, 0.125, 0.125]
    expected = [[[0, 0, 0], [0.125, -0.125, 0]], [[-0.25, 0.125, 0.125], [0, 0, 0]]]
    np.testing.assert_allclose(grad, expected, atol=1e-6)
    assert tape.gradient(loss, target) is None


# -- qr_target ------------------------------------------------------------------------------

QUANTILES_T = f32([[[1.0, 3.0], [0.0, 2.0]], [[1.0, 3.0], [0.0, 2.0]]])  # [B=2, A=2, N=2]


def test_qr_target_by_hand():
    r_t, discount_t = f32([1.0, 0.5]), f32([0.5, 0.0])
    own = f32([[2.0, 1.0], [2.0, 1.0]])  # the target net's means: action 0 (2 > 1)
    got = losses.qr_target(r_t, discount_t, QUANTILES_T, own)
    expected = [
        [1.5, 2.5],  # 1 + 0.5 * [1, 3]
        [0.5, 0.5],  # terminal: the reward, N times
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    other = f32([[0.0, 5.0], [0.0, 5.0]])  # another selector (double): action 1
    got = losses.qr_target(r_t, discount_t, QUANTILES_T, other)
    np.testing.assert_allclose(got.numpy(), [[1.0, 2.0], [0.5, 0.5]], rtol=1e-6)  # 1 + 0.5 [0, 2]


def test_qr_target_stops_gradient():
    quantiles = tf.Variable(QUANTILES_T)
    with tf.GradientTape() as tape:
        y = losses.qr_target(f32([1.0, 0.5]), f32([0.5, 0.0]), quantiles, f32([[1, 0]] * 2))
    assert tape.gradient(y, quantiles) is None


# -- quantile_huber_loss --------------------------------------------------------------------


def test_quantile_midpoints():
    np.testing.assert_allclose(losses.quantile_midpoints(2).numpy(), [0.25, 0.75])
    np.testing.assert_allclose(losses.quantile_midpoints(4).numpy(), [0.125, 0.375, 0.625, 0.875])


# N = 2: tau = [0.25, 0.75]; u_ij = target_j - theta_i; rho = |tau_i - 1{u < 0}| huber(u)
THETA = [[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]
TARGET = [[1.0, 3.0], [1.0, 1.0], [-3.0, 0.5]]
# row 0: i = 0 (theta 0, tau .25): u = [1, 3], huber = [0.5, 2.5], weight 0.25 both
#          -> [0.125, 0.625], mean 0.375
#        i = 1 (theta 2, tau .75): u = [-1, 1], huber = [0.5, 0.5], weights [0.25, 0.75]
#          -> [0.125, 0.375], mean 0.25;          sum over i: 0.625
# row 1: every u = 0 -> 0
# row 2: i = 0 (tau .25): u = [-3, 0.5], huber = [2.5, 0.125], weights [0.75, 0.25]
#          -> [1.875, 0.03125], mean 0.953125
#        i = 1 (tau .75): weights [0.25, 0.75] -> [0.625, 0.09375], mean 0.359375
#          sum: 1.3125
PER_ITEM = [0.625, 0.0, 1.3125]


def test_quantile_huber_loss_by_hand():
    loss, per_item = losses.quantile_huber_loss(f32(THETA), f32(TARGET))
    np.testing.assert_allclose(per_item.numpy(), PER_ITEM, rtol=1e-6)
    np.testing.assert_allclose(float(loss), 1.9375 / 3, rtol=1e-6)  # mean of the rows
    assert loss.shape == () and per_item.shape == (3,)


def test_quantile_huber_loss_importance_weights_by_hand():
    loss, per_item = losses.quantile_huber_loss(f32(THETA), f32(TARGET), weights=f32([1, 5, 2]))
    # (1 * 0.625 + 5 * 0 + 2 * 1.3125) / 3 = 3.25 / 3
    np.testing.assert_allclose(float(loss), 3.25 / 3, rtol=1e-6)
    np.testing.assert_allclose(per_item.numpy(), PER_ITEM, rtol=1e-6)


def test_quantile_huber_loss_other_kappas_by_hand():
    theta, target = f32(THETA[:1]), f32(TARGET[:1])
    # kappa = 2: huber_2(1) = 0.5, huber_2(3) = 2 * (3 - 1) = 4; divided by kappa: 0.25, 2
    #   i = 0: 0.25 * [0.25, 2] = [0.0625, 0.5], mean 0.28125
    #   i = 1: u = [-1, 1]: [0.25 * 0.25, 0.75 * 0.25] = [0.0625, 0.1875], mean 0.125
    #   sum 0.40625
    loss, _ = losses.quantile_huber_loss(theta, target, kappa=2.0)
    np.testing.assert_allclose(float(loss), 0.40625, rtol=1e-6)
    # kappa = 0, the pinball loss |tau - 1{u < 0}| |u|:
    #   i = 0: 0.25 * [1, 3] -> mean 0.5;  i = 1: [0.25 * 1, 0.75 * 1] -> mean 0.5;  sum 1.0
    loss, _ = losses.quantile_huber_loss(theta, target, kappa=0.0)
    np.testing.assert_allclose(float(loss), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="kappa"):
        losses.quantile_huber_loss(theta, target, kappa=-1.0)


def test_quantile_huber_loss_with_more_targets_than_quantiles():
    # N = 2, N' = 3: target [1, 3, -1]
    # i = 0 (tau .25): u = [1, 3, -1] -> [0.25 * 0.5, 0.25 * 2.5, 0.75 * 0.5], mean 1.125 / 3
    # i = 1 (tau .75): u = [-1, 1, -3] -> [0.25 * 0.5, 0.75 * 0.5, 0.25 * 2.5], mean 1.125 / 3
    # sum: 0.75
    loss, per_item = losses.quantile_huber_loss(f32([[0.0, 2.0]]), f32([[1.0, 3.0, -1.0]]))
    np.testing.assert_allclose(per_item.numpy(), [0.75], rtol=1e-6)


def test_quantile_huber_loss_gradient_by_hand():
    theta = tf.Variable([[0.0, 2.0]])
    target = tf.Variable([[1.0, 3.0]])
    with tf.GradientTape(persistent=True) as tape:
        loss, _ = losses.quantile_huber_loss(theta, target)
    # d rho_ij / d theta_i = -|tau_i - 1{u < 0}| huber'(u_ij), averaged over j:
    # i = 0: u = [1, 3], huber' = [1, 1] (clipped at kappa): -(0.25 + 0.25) / 2 = -0.25
    # i = 1: u = [-1, 1], huber' = [-1, 1]: -(0.25 * -1 + 0.75 * 1) / 2 = -0.25
    np.testing.assert_allclose(tape.gradient(loss, theta).numpy(), [[-0.25, -0.25]], atol=1e-6)
    assert tape.gradient(loss, target) is None


# -- in a compiled update -------------------------------------------------------------------


def test_the_losses_compile_with_xla_and_agree_with_eager():
    rng = np.random.default_rng(0)
    b, a, k = 6, 3, 11
    support = f32(np.linspace(-5.0, 5.0, k))
    logits_tm1, logits_t = f32(rng.normal(size=(b, a, k))), f32(rng.normal(size=(b, a, k)))
    theta_tm1, theta_t = f32(rng.normal(size=(b, a, k))), f32(rng.normal(size=(b, a, k)))
    selector, actions = f32(rng.normal(size=(b, a))), tf.constant(rng.integers(0, a, b))
    r_t, discount_t = f32(rng.normal(size=b)), f32(rng.uniform(0, 1, b))
    weights = f32(rng.uniform(0.5, 1.5, b))

    def both(logits_tm1, logits_t, theta_tm1, theta_t, selector, actions, r_t, discount_t):
        target = losses.c51_target(support, r_t, discount_t, logits_t, selector)
        c51, _ = losses.categorical_td_loss(logits_tm1, actions, target, weights)
        theta_a = tf.gather(theta_tm1, tf.cast(actions, tf.int32), axis=1, batch_dims=1)
        y = losses.qr_target(r_t, discount_t, theta_t, selector)
        qr, _ = losses.quantile_huber_loss(theta_a, y, weights=weights)
        return tf.stack([c51, qr])

    args = (logits_tm1, logits_t, theta_tm1, theta_t, selector, actions, r_t, discount_t)
    eager = both(*args).numpy()
    compiled = tf.function(both, jit_compile=True)(*args).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5)
    assert np.all(np.isfinite(eager))

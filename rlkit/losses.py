"""Pure TensorFlow loss maths: scalar and distributional TD losses, returns, GAE, policy losses.

Names follow rlax/trfl: ``_tm1`` is time t-1 (where the action was taken), ``_t`` is time t
(the next state). Every function is a pure function of tensors (no variables, no agent
settings read), so each is tested against numbers worked out by hand in
``tests/test_losses.py`` (the C51 and QR-DQN ones in ``tests/test_losses_distributional.py``).
"""

from __future__ import annotations

import tensorflow as tf

TD_LOSSES = ("huber", "mse")


def q_learning_target(r_t: tf.Tensor, discount_t: tf.Tensor, q_t: tf.Tensor) -> tf.Tensor:
    """One-step Q-learning target, y = r_t + discount_t * max_a q_t[a].

    Args:
        r_t: rewards ``[B]``.
        discount_t: ``gamma * (1 - terminated)``, ``[B]``; zero stops bootstrapping.
        q_t: target-network Q-values of the next state ``[B, A]``.

    Returns:
        Targets ``[B]`` (gradients stopped).
    """
    return tf.stop_gradient(r_t + discount_t * tf.reduce_max(q_t, axis=-1))


def double_q_learning_target(
    r_t: tf.Tensor, discount_t: tf.Tensor, q_t_value: tf.Tensor, q_t_selector: tf.Tensor
) -> tf.Tensor:
    """Double Q-learning target (van Hasselt et al., 2016).

    y = r_t + discount_t * q_t_value[argmax_a q_t_selector[a]]: the online network picks the
    action, the target network values it, which removes max-operator overestimation.

    Args:
        r_t: rewards ``[B]``.
        discount_t: ``gamma * (1 - terminated)``, ``[B]``.
        q_t_value: target-network Q-values of the next state ``[B, A]``.
        q_t_selector: online-network Q-values of the next state ``[B, A]``.

    Returns:
        Targets ``[B]`` (gradients stopped).
    """
    best = tf.argmax(q_t_selector, axis=-1, output_type=tf.int32)  # [B]
    value = tf.gather(q_t_value, best, axis=-1, batch_dims=1)  # [B]
    return tf.stop_gradient(r_t + discount_t * value)


def huber(x: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """Elementwise Huber loss: 0.5 x^2 for |x| <= delta, else delta (|x| - 0.5 delta)."""
    abs_x = tf.abs(x)
    quadratic = tf.minimum(abs_x, delta)
    return 0.5 * quadratic**2 + delta * (abs_x - quadratic)


def td_loss(
    q_tm1: tf.Tensor,
    a_tm1: tf.Tensor,
    target: tf.Tensor,
    kind: str = "huber",
    weights: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean TD loss of the taken actions' Q-values against fixed targets.

    L = mean_i w_i * l(target_i - q_tm1[i, a_tm1[i]]), l the Huber or squared loss.

    Args:
        q_tm1: online Q-values ``[B, A]``.
        a_tm1: actions taken ``[B]`` (int).
        target: TD targets ``[B]``.
        kind: ``"huber"`` (delta 1) or ``"mse"`` (0.5 x^2).
        weights: importance weights ``[B]`` (prioritized replay); None weighs all as 1.

    Returns:
        ``(loss [], td_error [B])``.
    """
    if kind not in TD_LOSSES:
        raise ValueError(f"unknown TD loss {kind!r}; choose one of {TD_LOSSES}")
    q_a = tf.gather(q_tm1, tf.cast(a_tm1, tf.int32), axis=-1, batch_dims=1)  # [B]
    td_error = target - q_a
    per_item = huber(td_error) if kind == "huber" else 0.5 * tf.square(td_error)
    if weights is not None:
        per_item = weights * per_item
    return tf.reduce_mean(per_item), td_error


# -- distributional RL: C51 and QR-DQN ------------------------------------------------------


def categorical_projection(
    support: tf.Tensor, probs_t: tf.Tensor, r_t: tf.Tensor, discount_t: tf.Tensor
) -> tf.Tensor:
    """Project the distribution of r_t + discount_t * Z onto a fixed support (C51).

    Bellemare et al. (2017): atom z_j with probability p_j moves to
    Tz_j = clip(r_t + discount_t * z_j, v_min, v_max), and its mass is split between the
    two atoms around Tz_j in proportion to closeness. Written as one sum over a "hat"
    kernel (Rowland et al., 2018):
        m_i = sum_j p_j * max(0, 1 - |Tz_j - z_i| / dz),  dz = (v_max - v_min) / (K - 1),
    which gives an atom that lands exactly on z_i all of its mass (no special case for
    the lower and upper neighbour being the same atom). With discount_t = 0 every atom
    lands on clip(r_t), so the target is r_t's own projection.

    Args:
        support: the atoms z ``[K]``, evenly spaced from v_min = z_0 to v_max = z_{K-1}.
        probs_t: probabilities over the atoms of the next state's chosen action ``[B, K]``.
        r_t: rewards ``[B]``.
        discount_t: ``gamma**n * (1 - terminated)``, ``[B]``.

    Returns:
        Projected probabilities ``[B, K]`` (each row sums to that of ``probs_t``;
        gradients stopped).
    """
    support = tf.convert_to_tensor(support, tf.float32)
    v_min, v_max = support[0], support[-1]
    dz = (v_max - v_min) / tf.cast(tf.shape(support)[0] - 1, tf.float32)
    moved = r_t[:, None] + discount_t[:, None] * support[None, :]  # [B, K] (index j)
    moved = tf.clip_by_value(moved, v_min, v_max)
    distance = tf.abs(moved[:, None, :] - support[None, :, None])  # [B, K_i, K_j]
    share = tf.maximum(0.0, 1.0 - distance / dz)  # how much of atom j goes to atom i
    return tf.stop_gradient(tf.reduce_sum(share * probs_t[:, None, :], axis=-1))  # [B, K]


def c51_target(
    support: tf.Tensor,
    r_t: tf.Tensor,
    discount_t: tf.Tensor,
    logits_t: tf.Tensor,
    q_t_selector: tf.Tensor,
) -> tf.Tensor:
    """The C51 target distribution: the projected distribution of the best next action.

    a* = argmax_a q_t_selector[a]; target = Phi(r_t + discount_t * Z_t(a*)), with Z_t's
    probabilities softmax(logits_t[a*]) and Phi the ``categorical_projection``. Pass the
    target network's own expected Q-values as ``q_t_selector`` for C51 (Bellemare et al.,
    2017), the online network's for the double-Q variant used by Rainbow.

    Args:
        support: the atoms ``[K]``.
        r_t: rewards ``[B]``.
        discount_t: ``gamma**n * (1 - terminated)``, ``[B]``.
        logits_t: target-network logits of the next state ``[B, A, K]``.
        q_t_selector: Q-values ``[B, A]`` that choose the next action.

    Returns:
        Target probabilities ``[B, K]`` (gradients stopped).
    """
    best = tf.argmax(q_t_selector, axis=-1, output_type=tf.int32)  # [B]
    probs_t = tf.nn.softmax(tf.gather(logits_t, best, axis=1, batch_dims=1))  # [B, K]
    return categorical_projection(support, probs_t, r_t, discount_t)


def categorical_td_loss(
    logits_tm1: tf.Tensor,
    a_tm1: tf.Tensor,
    target_probs: tf.Tensor,
    weights: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Cross-entropy of the taken actions' distributions against fixed target distributions.

    l_b = -sum_i m_i log softmax(logits_tm1[b, a_tm1[b]])_i,  L = mean_b w_b l_b.

    Args:
        logits_tm1: online logits ``[B, A, K]``.
        a_tm1: actions taken ``[B]`` (int).
        target_probs: projected target probabilities ``[B, K]`` (``c51_target``).
        weights: importance weights ``[B]`` (prioritized replay); None weighs all as 1.

    Returns:
        ``(loss [], per_item [B])``: ``per_item`` is the unweighted cross-entropy (what a
        prioritized replay takes as the new priority).
    """
    logits_a = tf.gather(logits_tm1, tf.cast(a_tm1, tf.int32), axis=1, batch_dims=1)  # [B, K]
    target_probs = tf.stop_gradient(target_probs)
    per_item = -tf.reduce_sum(target_probs * tf.nn.log_softmax(logits_a), axis=-1)  # [B]
    weighted = per_item if weights is None else weights * per_item
    return tf.reduce_mean(weighted), per_item


def qr_target(
    r_t: tf.Tensor, discount_t: tf.Tensor, quantiles_t: tf.Tensor, q_t_selector: tf.Tensor
) -> tf.Tensor:
    """The QR-DQN target quantiles: r_t + discount_t * theta_t(a*), a* = argmax q_t_selector.

    Dabney et al. (2018). Pass the target network's own Q-values (mean of its quantiles)
    as ``q_t_selector`` for QR-DQN, the online network's for the double-Q variant.

    Args:
        r_t: rewards ``[B]``.
        discount_t: ``gamma**n * (1 - terminated)``, ``[B]``.
        quantiles_t: target-network quantiles of the next state ``[B, A, N]``.
        q_t_selector: Q-values ``[B, A]`` that choose the next action.

    Returns:
        Target quantiles ``[B, N]`` (gradients stopped).
    """
    best = tf.argmax(q_t_selector, axis=-1, output_type=tf.int32)  # [B]
    theta = tf.gather(quantiles_t, best, axis=1, batch_dims=1)  # [B, N]
    return tf.stop_gradient(r_t[:, None] + discount_t[:, None] * theta)


def quantile_midpoints(num_quantiles: int) -> tf.Tensor:
    """The quantile levels tau_i = (2i + 1) / (2N), i = 0..N-1, that QR-DQN fits ``[N]``."""
    return (2.0 * tf.range(num_quantiles, dtype=tf.float32) + 1.0) / (2.0 * num_quantiles)


def quantile_huber_loss(
    quantiles_tm1: tf.Tensor,
    target: tf.Tensor,
    kappa: float = 1.0,
    weights: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Quantile Huber loss of the taken actions' quantiles against target quantiles (QR-DQN).

    Dabney et al. (2018), with tau_i = (2i + 1) / (2N) and, for every pair of a predicted
    quantile i and a target quantile j, u_ij = target_j - theta_i:
        rho_ij = |tau_i - 1{u_ij < 0}| * huber_kappa(u_ij) / kappa
        l_b = sum_i mean_j rho_ij,  L = mean_b w_b l_b.
    Sum over the predicted quantiles, mean over the targets: each predicted quantile has
    its own regression problem whose loss is an expectation over the (equally likely)
    target samples, and the N problems are added, as in the paper's equation (10) and in
    SB3-contrib's QR-DQN (Dopamine's as well). ``kappa = 0`` gives the plain quantile
    regression (pinball) loss |tau_i - 1{u < 0}| * |u|.

    Args:
        quantiles_tm1: online quantiles of the taken actions ``[B, N]``.
        target: target quantiles ``[B, N']`` (``qr_target``).
        kappa: the Huber threshold (1 in the paper), or 0.
        weights: importance weights ``[B]`` (prioritized replay); None weighs all as 1.

    Returns:
        ``(loss [], per_item [B])``: ``per_item`` is the unweighted loss of each row.
    """
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    tau = quantile_midpoints(quantiles_tm1.shape[-1])  # [N]
    u = tf.stop_gradient(target)[:, None, :] - quantiles_tm1[:, :, None]  # [B, N, N']
    below = tf.cast(u < 0.0, tf.float32)
    scale = huber(u, kappa) / kappa if kappa > 0 else tf.abs(u)
    rho = tf.abs(tau[None, :, None] - below) * scale  # [B, N, N']
    per_item = tf.reduce_sum(tf.reduce_mean(rho, axis=-1), axis=-1)  # [B]
    weighted = per_item if weights is None else weights * per_item
    return tf.reduce_mean(weighted), per_item


def reverse_recursion(x_t: tf.Tensor, c_t: tf.Tensor, y_last: tf.Tensor) -> tf.Tensor:
    """Solve y_t = x_t + c_t * y_{t+1} backwards in time, with y_T = y_last.

    The recursion is the upper-bidiagonal system (I - S) y = b, with c_t on S's
    superdiagonal and b = x plus c_{T-1} y_last in the last row, so it is one batched
    back-substitution (``triangular_solve``) instead of a T-step ``tf.scan`` loop: the
    same arithmetic, a handful of ops (this halves the cost of a small A2C update).

    Args:
        x_t: ``[T, N]``.
        c_t: ``[T, N]``.
        y_last: ``[N]``.

    Returns:
        y ``[T, N]``.
    """
    x = tf.transpose(x_t)  # [N, T]
    c = tf.transpose(c_t)  # [N, T]
    steps = tf.shape(x)[1]
    b = x + tf.one_hot(steps - 1, steps, dtype=x.dtype) * (c * y_last[:, None])  # [N, T]
    system = tf.eye(steps, dtype=x.dtype) - tf.linalg.diag(c[:, :-1], k=1)  # [N, T, T]
    y = tf.linalg.triangular_solve(system, b[..., None], lower=False)  # [N, T, 1]
    return tf.transpose(y[..., 0])


def discounted_returns(r_t: tf.Tensor, discount_t: tf.Tensor, bootstrap: tf.Tensor) -> tf.Tensor:
    """Discounted returns G_t = r_t + discount_t * G_{t+1}, with G_T = bootstrap.

    Args:
        r_t: rewards ``[T, N]``.
        discount_t: ``gamma`` where the episode goes on after step t and 0 where it ended,
            ``[T, N]``.
        bootstrap: value of the state after the last step ``[N]`` (zeros for complete
            episodes).

    Returns:
        Returns ``[T, N]``.
    """
    return reverse_recursion(r_t, discount_t, bootstrap)


def generalized_advantage_estimation(
    r_t: tf.Tensor,
    v_tm1: tf.Tensor,
    v_t: tf.Tensor,
    discount_t: tf.Tensor,
    continue_t: tf.Tensor,
    lambda_: float | tf.Tensor,
) -> tf.Tensor:
    """GAE(lambda) advantages (Schulman et al., 2016) over a ``[T, N]`` rollout.

    delta_t = r_t + discount_t * v_t - v_tm1
    A_t = delta_t + lambda * continue_t * A_{t+1}

    ``discount_t`` (``gamma * (1 - terminated)``) decides whether the next state's value
    counts: a truncated step still bootstraps from the true final observation. ``continue_t``
    is ``gamma`` if the episode goes on after step t and 0 if it ended either way, so no
    advantage leaks across an episode boundary.

    Args:
        r_t: rewards ``[T, N]``.
        v_tm1: values of the states where the actions were taken ``[T, N]``.
        v_t: values of the next states ``[T, N]`` (true final observation at episode ends).
        discount_t: ``[T, N]`` as above.
        continue_t: ``[T, N]`` as above.
        lambda_: the GAE mixing parameter in [0, 1].

    Returns:
        Advantages ``[T, N]``; returns for the value loss are ``advantages + v_tm1``.
    """
    delta = r_t + discount_t * v_t - v_tm1  # [T, N]
    return reverse_recursion(delta, lambda_ * continue_t, tf.zeros_like(delta[0]))


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (0 if there are none)."""
    return tf.reduce_sum(x * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def masked_standardize(x: tf.Tensor, mask: tf.Tensor, eps: float = 1e-8) -> tf.Tensor:
    """(x - mean) / (std + eps) with mean and std taken over the entries where mask is 1."""
    mean = masked_mean(x, mask)
    std = tf.sqrt(masked_mean(tf.square(x - mean), mask))
    return (x - mean) / (std + eps)


def categorical_log_prob(logits: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
    """The log-probability log pi(a|s) of a categorical policy: ``log_softmax(logits)[a]``.

    The same arithmetic as ``tfp.distributions.Categorical(logits).log_prob(a)`` under TF's
    op determinism (log-softmax, then a gather), without the NaN constant TF adds there for
    out-of-range labels, which ``tf.debugging.enable_check_numerics`` (``--check-numerics``)
    reports as a fault on every update. Actions come from the agent, so always in range.

    Args:
        logits: ``[B, A]``.
        actions: ``[B]`` (int).

    Returns:
        ``[B]``.
    """
    return tf.gather(tf.nn.log_softmax(logits), tf.cast(actions, tf.int32), batch_dims=1)


def policy_gradient_loss(log_prob: tf.Tensor, advantage: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Policy-gradient surrogate -E[log pi(a|s) * A], advantages treated as constants."""
    return -masked_mean(log_prob * tf.stop_gradient(advantage), mask)


def a2c_loss(
    log_pi_a_tm1: tf.Tensor,
    entropy_tm1: tf.Tensor,
    v_tm1: tf.Tensor,
    v_t: tf.Tensor,
    r_t: tf.Tensor,
    discount_t: tf.Tensor,
    continue_t: tf.Tensor,
    mask_tm1: tf.Tensor,
    lambda_: float,
    vf_coef: float,
    ent_coef: float,
    normalize_advantage: bool = False,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The advantage actor-critic loss of a ``[T, N]`` rollout (Mnih et al., 2016).

    A_t = GAE(lambda) of delta_t = r_t + discount_t V(s_t) - V(s_tm1) (values held
    constant; see ``generalized_advantage_estimation``), G_t = A_t + V(s_tm1), and
        L = -mean[log pi(a_tm1|s_tm1) A_t] + vf_coef mean[(G_t - V(s_tm1))^2]
            - ent_coef mean[H(pi(.|s_tm1))],
    the means over the rows where ``mask_tm1`` is 1.

    Args:
        log_pi_a_tm1: log-probabilities of the actions taken ``[T, N]``.
        entropy_tm1: policy entropies ``[T, N]``.
        v_tm1: values of the states acted in ``[T, N]`` (the value loss trains them).
        v_t: values of the next states ``[T, N]`` (gradients stopped).
        r_t: rewards ``[T, N]``.
        discount_t: ``gamma * (1 - terminated)`` ``[T, N]``.
        continue_t: ``discount_t * (1 - truncated)`` ``[T, N]``: 0 where the episode ended.
        mask_tm1: 1 on real rows, 0 on autoreset rows ``[T, N]``.
        lambda_: the GAE parameter.
        vf_coef: value loss weight.
        ent_coef: entropy bonus weight.
        normalize_advantage: standardise the advantages over the masked rows.

    Returns:
        ``(loss [], {"policy_loss", "value_loss", "entropy"})``.
    """
    v_t = tf.stop_gradient(v_t)
    advantages = generalized_advantage_estimation(
        r_t, tf.stop_gradient(v_tm1), v_t, discount_t, continue_t, lambda_
    )  # [T, N]
    returns = advantages + tf.stop_gradient(v_tm1)
    if normalize_advantage:
        advantages = masked_standardize(advantages, mask_tm1)
    policy_loss = policy_gradient_loss(log_pi_a_tm1, advantages, mask_tm1)
    value_loss = masked_mean(tf.square(returns - v_tm1), mask_tm1)
    entropy = masked_mean(entropy_tm1, mask_tm1)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def reinforce_loss(
    log_pi_a_tm1: tf.Tensor,
    entropy_tm1: tf.Tensor,
    v_tm1: tf.Tensor,
    v_last: tf.Tensor,
    r_t: tf.Tensor,
    discount_t: tf.Tensor,
    truncated_t: tf.Tensor,
    mask_tm1: tf.Tensor,
    baseline: bool,
    vf_coef: float,
    ent_coef: float,
    normalize: bool = True,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The REINFORCE loss (Williams, 1992) of whole episodes laid out as ``[L, E]`` columns.

    G_t = r_t + discount_t G_{t+1} within each episode; after its last step G is V(final
    obs) if the baseline is learned and a time limit cut the episode, else 0. With
    b = V if ``baseline`` else 0:
        L = -mean[log pi(a_tm1|s_tm1) (G_t - b(s_tm1))]
            + [baseline] vf_coef mean[(G_t - V(s_tm1))^2] - ent_coef mean[H(pi(.|s_tm1))],
    the means over the rows where ``mask_tm1`` is 1; ``normalize`` standardises
    G_t - b(s_tm1) first. Padding rows after an episode's end (mask 0) carry its
    bootstrap up to the last step unchanged.

    Args:
        log_pi_a_tm1: log-probabilities of the actions taken ``[L, E]``.
        entropy_tm1: policy entropies ``[L, E]``.
        v_tm1: values of the states acted in ``[L, E]``.
        v_last: value of each episode's final observation ``[E]`` (gradients stopped).
        r_t: rewards ``[L, E]``.
        discount_t: ``gamma * (1 - terminated)`` ``[L, E]``.
        truncated_t: 1 on the row where a time limit cut the episode ``[L, E]``.
        mask_tm1: 1 on the episode's rows, 0 on padding ``[L, E]``.
        baseline: subtract V and train it (else V is unused: its loss weighs 0).
        vf_coef: value loss weight (with the baseline).
        ent_coef: entropy bonus weight.
        normalize: standardise the policy-gradient weights over the masked rows.

    Returns:
        ``(loss [], {"policy_loss", "value_loss", "entropy", "return_mean"})``.
    """
    # A 0/1 factor rather than a branch: the value head gets (zero) gradients either way.
    use_baseline = 1.0 if baseline else 0.0
    v_last = tf.stop_gradient(v_last)
    cut = tf.reduce_max(truncated_t, axis=0)  # [E]: 1 where a time limit ended the episode
    bootstrap = use_baseline * cut * v_last
    discount_t = mask_tm1 * discount_t + (1.0 - mask_tm1)  # padding: carry G unchanged
    returns = discounted_returns(r_t * mask_tm1, discount_t, bootstrap)  # [L, E]
    weights = returns - use_baseline * tf.stop_gradient(v_tm1)
    if normalize:
        weights = masked_standardize(weights, mask_tm1)
    policy_loss = policy_gradient_loss(log_pi_a_tm1, weights, mask_tm1)
    value_loss = masked_mean(tf.square(returns - v_tm1), mask_tm1)
    entropy = masked_mean(entropy_tm1, mask_tm1)
    loss = policy_loss + use_baseline * vf_coef * value_loss - ent_coef * entropy
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "return_mean": masked_mean(returns, mask_tm1),
    }
    return loss, metrics


def ppo_loss(
    log_pi: tf.Tensor,
    old_log_pi: tf.Tensor,
    advantages: tf.Tensor,
    values: tf.Tensor,
    old_values: tf.Tensor,
    returns: tf.Tensor,
    entropy: tf.Tensor,
    mask: tf.Tensor,
    clip_range: float | tf.Tensor,
    clip_range_vf: float | tf.Tensor | None,
    vf_coef: float,
    ent_coef: float,
    normalize_advantage: bool = True,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The PPO-clip loss of one minibatch (Schulman et al., 2017), as Stable-Baselines3 has it.

    With r = exp(log pi - old log pi) and A the (optionally standardised) advantages:
        policy loss  = -mean[min(r A, clip(r, 1 - eps, 1 + eps) A)]
        value loss   = mean[(G - V')^2], V' = old V + clip(V - old V, -eps_vf, eps_vf)
                       (V' = V when ``clip_range_vf`` is None)
        L = policy loss + vf_coef value loss - ent_coef mean[H]
    every mean over the rows where ``mask`` is 1. Also returned: the approximate KL
    divergence mean[(r - 1) - log r] (Schulman's low-variance estimator of KL(old||new))
    and the fraction of rows whose ratio was clipped.

    Args:
        log_pi: log-probabilities of the actions under the current policy ``[B]``.
        old_log_pi: the same under the policy that collected the rollout ``[B]``.
        advantages: GAE advantages ``[B]``.
        values: V(s) of the current value function ``[B]``.
        old_values: V(s) when the rollout was collected ``[B]``.
        returns: value targets, advantages + old values ``[B]``.
        entropy: policy entropies ``[B]``.
        mask: 1 on real rows, 0 on autoreset rows ``[B]``.
        clip_range: epsilon of the ratio clip.
        clip_range_vf: the value clip, or None for no clipping.
        vf_coef: value loss weight.
        ent_coef: entropy bonus weight.
        normalize_advantage: standardise the advantages over this minibatch's rows.

    Returns:
        ``(loss [], {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"})``.
    """
    advantages = tf.stop_gradient(advantages)
    if normalize_advantage:
        advantages = masked_standardize(advantages, mask)
    log_ratio = log_pi - tf.stop_gradient(old_log_pi)
    ratio = tf.exp(log_ratio)
    clipped = tf.clip_by_value(ratio, 1.0 - clip_range, 1.0 + clip_range)
    policy_loss = -masked_mean(tf.minimum(ratio * advantages, clipped * advantages), mask)
    if clip_range_vf is not None:
        values = old_values + tf.clip_by_value(values - old_values, -clip_range_vf, clip_range_vf)
    value_loss = masked_mean(tf.square(tf.stop_gradient(returns) - values), mask)
    mean_entropy = masked_mean(entropy, mask)
    loss = policy_loss + vf_coef * value_loss - ent_coef * mean_entropy
    approx_kl = masked_mean(tf.stop_gradient((ratio - 1.0) - log_ratio), mask)
    clip_fraction = masked_mean(tf.cast(tf.abs(ratio - 1.0) > clip_range, tf.float32), mask)
    return loss, {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": mean_entropy,
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


def explained_variance(predicted: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """1 - Var[target - predicted] / Var[target] over the masked entries.

    1 means the prediction explains the target, 0 no better than its mean, negative worse.
    Where Var[target] is 0 the result is 1 (a division without a NaN, which
    ``--check-numerics`` would report as a fault).
    """
    var_target = masked_mean(tf.square(target - masked_mean(target, mask)), mask)
    residual = target - predicted
    var_residual = masked_mean(tf.square(residual - masked_mean(residual, mask)), mask)
    return 1.0 - tf.math.divide_no_nan(var_residual, var_target)

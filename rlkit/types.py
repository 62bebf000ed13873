"""Typed batches of arrays that flow between runner, buffers and agents."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Transition(NamedTuple):
    """One vector-env step from N envs, as the runner hands it to a buffer.

    ``valid`` is False for the rows of envs that were resetting on this step (gymnasium's
    NEXT_STEP autoreset): there ``obs`` is the previous episode's final observation,
    ``next_obs`` the new episode's first one, and nothing else is a real transition.
    """

    obs: np.ndarray  # [N, *obs_shape]
    action: np.ndarray  # [N, *action_shape]
    reward: np.ndarray  # [N] float32
    next_obs: np.ndarray  # [N, *obs_shape], the true final observation when the episode ended
    terminated: np.ndarray  # [N] bool: the MDP ended, do not bootstrap
    truncated: np.ndarray  # [N] bool: cut by a time limit, bootstrap from next_obs
    valid: np.ndarray  # [N] bool: False on autoreset rows


class Batch(NamedTuple):
    """A sampled minibatch of transitions; leading dims are [B] or [G, B] for G fused steps.

    ``discount`` is the factor of the bootstrap value in the TD target,
    y = reward + discount * max_a Q(next_obs, a), with discount = gamma**n * (1 - terminated)
    for an n-step transition (n = 1 for plain replay; ``reward`` is then the discounted sum
    of the n rewards). So a storage that makes n-step or other multi-step transitions needs
    no change in any agent.
    """

    obs: np.ndarray  # [..., *obs_shape]
    action: np.ndarray  # [...]
    reward: np.ndarray  # [...] float32
    next_obs: np.ndarray  # [..., *obs_shape]
    terminated: np.ndarray  # [...] float32 (1.0 where the episode terminated)
    truncated: np.ndarray  # [...] float32
    discount: np.ndarray  # [...] float32: gamma**n * (1 - terminated)
    weights: np.ndarray  # [...] float32 importance weights (ones for uniform replay)
    indices: np.ndarray  # [...] int64 positions in the storage (for new priorities)


class Rollout(NamedTuple):
    """An on-policy rollout of T steps from N envs, ready for a policy-gradient update."""

    obs: np.ndarray  # [T, N, *obs_shape]
    action: np.ndarray  # [T, N]
    reward: np.ndarray  # [T, N] float32
    terminated: np.ndarray  # [T, N] float32
    truncated: np.ndarray  # [T, N] float32
    valid: np.ndarray  # [T, N] float32, 0.0 on autoreset rows (excluded from every loss)
    last_obs: np.ndarray  # [N, *obs_shape] observation after the last row, for bootstrapping


# With NEXT_STEP autoreset the observation after row t is always obs[t + 1] (or last_obs):
# after an episode ends, the next row's obs *is* the true final observation (that row is
# the invalid autoreset row), so truncation can bootstrap from it without a separate array.


class EpisodeStats(NamedTuple):
    """Returns and lengths of the episodes that finished since the last pop."""

    returns: np.ndarray  # [E] float64, undiscounted episode returns
    lengths: np.ndarray  # [E] int64

"""Proportional prioritized replay (Schaul et al. 2016) on the frame-once replay ring.

``SumTree`` holds one priority per (row, env) slot of the ring and samples slots in
proportion to them; ``PrioritizedReplayBuffer`` keeps it in step with ``ReplayBuffer``:

    p_i  = (|delta_i| + eps) ** alpha            (update_priorities; new rows: max p so far)
    P(i) = p_i / sum_j p_j                       (stratified: one draw per 1/B of the mass)
    w_i  = (N * P(i)) ** -beta / max_j w_j       (max over the batch)

Exactly the transitions that uniform sampling may draw carry mass (see "Sampleable rows"
in ``rlkit.replay``): a row's leaf is 0 while it is written and waits for its n-step
window, gets the max priority when it becomes sampleable (if valid), and goes back to 0
when it becomes stack history of a wrapped ring or is overwritten. ``update_priorities``
never gives mass to a slot that is not sampleable at the time.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.replay import ReplayBuffer
from rlkit.types import Batch, Transition


class SumTree:
    """Sums of ``size`` non-negative float64 leaves, for sampling leaves by their value.

    Layout (no power of two needed): ``2 * size`` float64 nodes; node 1 is the root, node
    ``i`` has the children ``2i`` and ``2i + 1``, and leaf ``j`` is node ``size + j``
    (node 0 is unused). This is a full binary tree for any ``size``: every node
    ``j >= 2`` has the parent ``j // 2 <= size - 1``, an internal node, and every internal
    node ``i < size`` has both children (``2i + 1 <= 2 size - 1``). Its leaves lie at one
    depth or at two adjacent ones (when ``size`` is not a power of two). Each internal
    node holds ``left + right`` (float64) of its children's current values, so rebuilding
    the tree from its leaves gives the same nodes bit for bit.

    ``find(u)`` walks down from the root: left if ``u < left``, else right with
    ``u - left``. In exact arithmetic it returns leaf ``j`` for ``u`` in
    ``[C_j, C_j + v_j)``, ``C_j`` the sum of the leaves left of ``j`` in the tree's
    left-to-right order, so ``u`` uniform in ``[0, total)`` picks ``j`` with probability
    ``v_j / total``. (That order is not the index order when leaves lie at two depths,
    which proportional sampling does not care about.) Rounding can make the walk end on a
    leaf of value 0; such walks are redone going right only into subtrees with mass.

    ``max_value`` is the largest value ever set (``initial_max`` before): new
    transitions enter at it.

    Args:
        size: number of leaves (>= 1).
        initial_max: ``max_value`` before any value is set.
    """

    def __init__(self, size: int, initial_max: float = 1.0) -> None:
        if size < 1:
            raise ValueError(f"a SumTree needs at least one leaf, got size={size}")
        self.size = int(size)
        self.max_value = float(initial_max)
        self._tree = np.zeros(2 * self.size)
        self._depth = (2 * self.size - 1).bit_length() - 1  # depth of the deepest leaves
        self._shallow = self.size.bit_length() - 1  # depth of the shallowest leaves
        # Ancestors of a leaf, levels 1 .. depth - 1 up (the root is recomputed last).
        self._shifts = np.arange(1, max(self._depth, 1))[:, None]  # [depth - 1, 1]

    @property
    def total(self) -> float:
        """Sum of all leaves."""
        return float(self._tree[1])

    @property
    def leaves(self) -> np.ndarray:
        """The ``[size]`` leaf values (a read-only view)."""
        view = self._tree[self.size :]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        """Bytes of the node array: 16 per leaf."""
        return self._tree.nbytes

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Values of the leaves ``indices`` (any shape)."""
        return self._tree[np.asarray(indices) + self.size]

    def set(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves ``indices`` to ``values`` (same size; flattened), then their ancestors.

        An index given more than once takes its last value (last write wins). Parents
        are recomputed from their two children, one tree level at a time for all updated
        leaves together; a parent reached from two leaves is written twice with the same
        sum, so no de-duplication is needed above the leaves. A node's last recomputation
        comes after its children's (see ``_update_ancestors``).

        Raises:
            ValueError: for indices outside ``[0, size)``, sizes that differ, or values
                that are negative, NaN or infinite.
        """
        idx = np.asarray(indices).reshape(-1)
        vals = np.asarray(values, np.float64).reshape(-1)
        if idx.shape != vals.shape:
            raise ValueError(
                f"SumTree.set got {idx.size} indices but {vals.size} values; give one each"
            )
        if idx.size == 0:
            return
        if idx.dtype.kind not in "iu":
            raise ValueError(f"SumTree indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64, copy=False)
        if idx.min() < 0 or idx.max() >= self.size:
            raise ValueError(
                f"SumTree index out of range [0, {self.size}): {idx.min()}..{idx.max()}"
            )
        if not np.isfinite(vals).all() or vals.min() < 0:
            raise ValueError(
                "SumTree values must be finite and >= 0, got "
                f"{vals[~np.isfinite(vals) | (vals < 0)][:5].tolist()}"
            )
        if idx.size > 1:  # keep the last occurrence of each index: the first in reverse
            idx, last = np.unique(idx[::-1], return_index=True)
            vals = vals[::-1][last]
        self._assign(idx, vals)

    def _assign(self, indices: np.ndarray, values: np.ndarray) -> None:
        """``set`` without its checks: distinct int64 indices in range, values >= 0 ``[K]``."""
        nodes = indices + self.size
        self._tree[nodes] = values
        self.max_value = max(self.max_value, float(values.max()))
        self._update_ancestors(nodes)

    def _update_ancestors(self, nodes: np.ndarray) -> None:
        """Recompute every ancestor of ``nodes`` (leaf nodes) from its children.

        Step ``s`` recomputes the ancestors ``s`` levels above each leaf. Leaves lie at
        depths ``D`` or ``D - 1``, so steps ``1 .. D - 1`` reach every ancestor but the
        root from the deep ones (and the root itself from the shallow ones, possibly
        before its other child is done); the root is then recomputed once more, last.
        A node's last recomputation comes from its deepest updated leaf, one step after
        its children's last ones, so it always adds their final values.
        """
        tree = self._tree
        ancestors = nodes >> self._shifts  # [depth - 1, B]
        left = ancestors << 1
        right = left + 1
        for a, lft, rgt in zip(ancestors, left, right, strict=True):
            tree[a] = tree[lft] + tree[rgt]
        if self.size > 1:
            tree[1] = tree[2] + tree[3]

    def load(self, leaves: np.ndarray, max_value: float) -> None:
        """Replace every leaf by ``leaves`` (``[size]``) and rebuild the sums bottom up.

        Raises:
            ValueError: for another number of leaves, or negative / non-finite values.
        """
        leaves = np.asarray(leaves, np.float64).reshape(-1)
        if leaves.size != self.size:
            raise ValueError(f"SumTree.load got {leaves.size} leaves, expected {self.size}")
        if not np.isfinite(leaves).all() or (leaves < 0).any():
            raise ValueError("SumTree leaves must be finite and >= 0")
        tree, n = self._tree, self.size
        tree[0] = 0.0
        tree[n:] = leaves
        for depth in range(self._depth - 1, -1, -1):  # internal nodes, one level at a time
            a, b = 1 << depth, min(2 << depth, n)
            if a < b:
                tree[a:b] = tree[2 * a : 2 * b : 2] + tree[2 * a + 1 : 2 * b : 2]
        self.max_value = float(max_value)

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Leaf indices whose cumulative-sum intervals hold ``prefix_sums`` (``[B]``).

        All ``B`` queries walk down together, one tree level per step. Each returned leaf
        has a value > 0; a prefix sum at or above ``total`` gives the last leaf (in the
        tree's order) with mass.

        Raises:
            ValueError: if the tree holds no mass.
        """
        if not self._tree[1] > 0:
            raise ValueError("SumTree.find on a tree whose leaves are all zero")
        u = np.array(prefix_sums, np.float64).reshape(-1)  # a copy: walked down in place
        tree, n = self._tree, self.size
        node = np.ones(u.size, np.int64)
        for _ in range(self._shallow):  # every node above this depth is internal
            node <<= 1
            left = tree[node]
            right = u >= left
            u -= left * right
            node += right
        if self._depth > self._shallow:  # leaves at two depths: internal nodes step once more
            inner = np.flatnonzero(node < n)
            if inner.size:
                child = node[inner] << 1
                left = tree[child]
                node[inner] = child + (u[inner] >= left)
        empty = tree[node] <= 0  # only after rounding, or a prefix sum >= total
        if empty.any():
            node[empty] = self._find_into_mass(np.asarray(prefix_sums).reshape(-1)[empty])
        return node - n

    def _find_into_mass(self, prefix_sums: np.ndarray) -> np.ndarray:
        """``find``'s walk (node indices), never stepping into a subtree of zero mass."""
        tree, n = self._tree, self.size
        u = np.array(prefix_sums, np.float64)
        node = np.ones(u.size, np.int64)
        for _ in range(self._depth):
            inner = node < n
            child = np.where(inner, node << 1, 0)
            left, right = tree[child], tree[child + 1]
            go_right = inner & (u >= left) & (right > 0)
            u -= np.where(go_right, left, 0.0)
            node = np.where(inner, child + go_right, node)
        return node


class PrioritizedReplayBuffer(ReplayBuffer):
    """``ReplayBuffer`` sampled in proportion to priorities (proportional PER).

    Usage::

        buffer = PrioritizedReplayBuffer(capacity, num_envs, obs_space, act_space,
                                         n_step=3, gamma=0.99, alpha=0.6, eps=1e-6)
        buffer.add(transition)
        batch = buffer.sample(32, num_batches=4, beta=0.4)          # [4, 32] arrays
        buffer.update_priorities(batch.indices, np.abs(td_errors))   # [4, 32] ok

    Args:
        capacity, num_envs, observation_space, action_space, frame_stack, padding, seed,
        check_memory, gamma, n_step: as for ``ReplayBuffer``.
        alpha: how much prioritization is used, in ``[0, 1]`` (0: uniform).
        eps: added to ``|priority|`` (> 0) so that no sampleable transition has zero mass.

    Raises:
        ValueError: for ``alpha`` outside ``[0, 1]``, ``eps <= 0``, or what
            ``ReplayBuffer`` refuses.
    """

    _extra_bytes_per_transition = 16  # the SumTree: 2 float64 nodes a slot

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        *,
        frame_stack: int = 1,
        padding: str = "reset",
        seed: int | None = None,
        check_memory: bool = True,
        gamma: float = 1.0,
        n_step: int = 1,
        alpha: float = 0.6,
        eps: float = 1e-6,
    ) -> None:
        if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0 <= alpha <= 1):
            raise ValueError(
                f"alpha must be a number in [0, 1] (0: uniform, 1: fully proportional), "
                f"got {alpha!r}; 0.6 is the usual choice"
            )
        if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and 0 < eps < math.inf):
            raise ValueError(
                f"eps must be a positive number (it keeps every sampleable transition's "
                f"priority above zero), got {eps!r}; 1e-6 is the usual choice"
            )
        super().__init__(
            capacity,
            num_envs,
            observation_space,
            action_space,
            frame_stack=frame_stack,
            padding=padding,
            seed=seed,
            check_memory=check_memory,
            gamma=gamma,
            n_step=n_step,
        )
        self.alpha = float(alpha)
        self.eps = float(eps)
        self._tree = SumTree(self.capacity)  # leaf row * num_envs + env: Batch.indices

    # -- properties ------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays, the sum tree included (+16 a transition)."""
        return super().nbytes + self._tree.nbytes

    @property
    def priorities(self) -> np.ndarray:
        """``[rows, num_envs]`` sampling masses ``p = (|priority| + eps)**alpha`` (read-only).

        Zero exactly where ``sampleable_mask()`` is False.
        """
        return self._tree.leaves.reshape(self.rows, self.num_envs)

    @property
    def max_priority(self) -> float:
        """The mass new transitions get: the largest ``p`` so far (1.0 at first)."""
        return self._tree.max_value

    # -- writing ---------------------------------------------------------------------------
    def add(self, transition: Transition) -> None:
        """Store one vector step, then bring the sampling masses in step with it.

        Raises:
            ValueError: as ``ReplayBuffer.add``.
        """
        super().add(transition)
        oldest, low, count = self._sampleable_range()
        written = (self._cursor - 1) % self.rows
        rows = [np.array([written])]  # written: no successor stored yet
        masses = [np.zeros((1, self.num_envs))]
        if low:  # a wrapped ring: its k - 1 oldest rows are stack history only
            rows.append((oldest + np.arange(low)) % self.rows)
            masses.append(np.zeros((low, self.num_envs)))
        if count:  # the newest sampleable row became sampleable with this add
            ready = (oldest + low + count - 1) % self.rows
            rows.append(np.array([ready]))
            valid = self._arrays["valid"][ready]
            masses.append(np.where(valid, self._tree.max_value, 0.0)[None])
        row = np.concatenate(rows)  # distinct rows: no slot is set twice
        slots = row[:, None] * self.num_envs + np.arange(self.num_envs)  # [R, N]
        self._tree._assign(slots.reshape(-1), np.concatenate(masses).reshape(-1))

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set ``p = (|priority| + eps)**alpha`` for the slots ``indices`` of a batch.

        ``indices`` are ``Batch.indices`` (any shape, e.g. ``[G, B]``; flattened), with one
        priority each (typically ``|TD error|``). A slot given twice takes its last
        priority. Slots that are not sampleable now (overwritten, stack history, invalid)
        keep zero mass: their priorities are dropped. A slot overwritten by a new
        transition that became sampleable since it was sampled cannot be told apart
        and takes the priority; the usual loop (sample, update, update priorities, with no
        ``add`` in between) never does that.

        Raises:
            ValueError: for sizes that differ, indices outside ``[0, capacity)`` or that
                are not integers, or priorities that are NaN or infinite.
        """
        idx = np.asarray(indices).reshape(-1)
        prio = np.asarray(priorities, np.float64).reshape(-1)
        if idx.shape != prio.shape:
            raise ValueError(
                f"update_priorities got {idx.size} indices but {prio.size} priorities; pass "
                "batch.indices and one priority per sampled transition"
            )
        if idx.size == 0:
            return
        if idx.dtype.kind not in "iu":
            raise ValueError(f"indices must be integers (batch.indices), got dtype {idx.dtype}")
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise ValueError(
                f"indices must lie in [0, {self.capacity}) (batch.indices of this buffer), "
                f"got {idx.min()}..{idx.max()}"
            )
        if not np.isfinite(prio).all():
            raise ValueError(
                "priorities must be finite, got "
                f"{prio[~np.isfinite(prio)][:5].tolist()}: a NaN or Inf TD error would stop "
                "this transition (or every one) from being sampled correctly"
            )
        rows, envs = np.divmod(idx, self.num_envs)
        keep = self._is_sampleable(rows, envs)
        self._tree.set(idx[keep], (np.abs(prio[keep]) + self.eps) ** self.alpha)

    # -- sampling --------------------------------------------------------------------------
    def can_sample(self) -> bool:
        """Whether at least one sampleable transition is stored."""
        return self._tree.total > 0

    def sample(self, batch_size: int, num_batches: int | None = None, beta: float = 0.4) -> Batch:
        """Sample transitions in proportion to their priorities, with importance weights.

        Each batch of ``B`` is stratified: draw ``j`` is uniform in the ``j``-th of ``B``
        equal parts of the total mass. ``weights = (N * P(i))**-beta / max_j w_j`` with the
        max over the transitions of the same ``[B]`` batch (Schaul et al.'s practice), so
        ``N`` and the total cancel: ``w_i = (min_j p_j / p_i)**beta``, at most 1.

        Args:
            batch_size: transitions per batch (B).
            num_batches: if given (G), return ``[G, B, ...]`` arrays of G batches, each
                stratified and normalized on its own.
            beta: importance-sampling exponent in ``[0, 1]`` (1: full correction).

        Returns:
            A ``Batch`` as ``ReplayBuffer.sample`` returns it, with the weights.

        Raises:
            ValueError: for ``beta`` outside ``[0, 1]``.
            RuntimeError: if no transition can be sampled yet.
        """
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1] (1: full correction), got {beta!r}")
        total = self._tree.total
        if not total > 0:
            raise RuntimeError("the replay buffer holds no complete transition yet; add more first")
        groups = num_batches or 1
        segment = total / batch_size
        u = (np.arange(batch_size) + self._rng.random((groups, batch_size))) * segment
        slots = self._tree.find(u.reshape(-1))  # [G * B]
        p = self._tree.get(slots).reshape(groups, batch_size)  # [G, B]
        weights = (p.min(axis=1, keepdims=True) / p) ** beta  # [G, B]
        rows, envs = np.divmod(slots, self.num_envs)
        batch = self._batch(rows, envs, weights.reshape(-1).astype(np.float32))
        if num_batches is None:
            return batch
        return Batch(*(x.reshape(num_batches, batch_size, *x.shape[1:]) for x in batch))

    # -- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """``ReplayBuffer.state()`` plus the masses of the rows written and the max.

        ``array/priority`` is ``[count, num_envs]`` float64 (a view, like the other
        arrays); the internal sums are not saved: ``restore`` rebuilds them bit for bit.
        """
        state = super().state()
        state["array/priority"] = self.priorities[: self._count]
        state["priority_max"] = self._tree.max_value
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load what ``state()`` returned (same capacity, envs and spaces).

        A state without priorities (from a uniform ``ReplayBuffer``) gives every
        sampleable transition the priority 1. Masses of slots that are not sampleable in
        this buffer (its ``n_step`` differs from the saving one's) are dropped, and
        sampleable slots without mass get the max priority.

        Raises:
            ValueError: as ``ReplayBuffer.restore``, or for priorities of another shape
                or with negative or non-finite values.
        """
        saved = state.get("array/priority")
        if saved is not None:
            saved = np.asarray(saved)
            count = int(state["count"])
            if (
                saved.ndim != 2
                or saved.shape[0] not in (count, self.rows)
                or saved.shape[1] != self.num_envs
                or saved.dtype != np.float64
            ):
                raise ValueError(
                    f"replay state 'priority' has shape {saved.shape} {saved.dtype}, expected "
                    f"{(count, self.num_envs)} float64: it comes from a buffer of another size"
                )
            if not np.isfinite(saved).all() or (saved < 0).any():
                raise ValueError("replay state 'priority' holds negative or non-finite values")
        super().restore(state)
        leaves = np.zeros(self.capacity)
        top = float(state.get("priority_max", 1.0))
        if saved is not None:
            leaves[: saved.size] = saved.reshape(-1)
        mask = self.sampleable_mask().reshape(-1)
        leaves[~mask] = 0.0
        leaves[mask & (leaves == 0)] = top
        self._tree.load(leaves, top)

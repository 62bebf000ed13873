"""Tests of rlkit.prioritized: the sum tree against brute force, and prioritized replay.

The buffer's contract: exactly the transitions uniform sampling may draw carry mass, new
ones at the max priority; draws follow ``P(i) = p_i / sum p``; weights are
``(N P(i))**-beta`` over their batch's max; a checkpoint resumes bit for bit.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from replay_streams import RandomStreams, check_against_reference, reference_n_step

from rlkit.prioritized import PrioritizedReplayBuffer, SumTree
from rlkit.replay import ReplayBuffer
from rlkit.types import Transition

ACTIONS = gym.spaces.Discrete(4)
SCALAR = gym.spaces.Box(0, 10_000, (1,), np.int32)

# -- the sum tree ------------------------------------------------------------------------------


def in_order_leaves(size: int) -> list[int]:
    """Leaves of the heap-shaped tree, left to right (what ``find`` walks through)."""
    order: list[int] = []
    stack = [1]
    while stack:
        node = stack.pop()
        if node >= size:
            order.append(node - size)
        else:
            stack += [2 * node + 1, 2 * node]
    return order


def brute_find(values: np.ndarray, order: list[int], u: float) -> int | None:
    """The leaf whose interval holds ``u``, or None if ``u`` is within 1e-9 of a boundary."""
    low = 0.0
    for leaf in order:
        high = low + float(values[leaf])
        if values[leaf] > 0 and low <= u < high:
            near = min(u - low, high - u) < 1e-9 * max(high, 1.0)
            return None if near else leaf
        low = high
    return None


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13, 64, 100, 1000])
def test_sum_tree_against_brute_force(size):
    rng = np.random.default_rng(size)
    tree = SumTree(size)
    reference = np.zeros(size)
    order = in_order_leaves(size)
    assert sorted(order) == list(range(size))
    if size & (size - 1) == 0:
        assert order == list(range(size))  # a power of two: leaves in index order
    for _ in range(60):
        k = int(rng.integers(1, 12))
        idx = rng.integers(0, size, k)
        values = rng.random(k) * 10 * (rng.random(k) < 0.7)  # some zeros
        tree.set(idx, values)
        for i, v in zip(idx.tolist(), values.tolist(), strict=True):
            reference[i] = v  # one at a time, in order: the last write wins
        assert np.array_equal(tree.leaves, reference)
        nodes = tree._tree
        inner = np.arange(1, size)
        # Every internal node is exactly the sum of its children's current values ...
        assert np.array_equal(nodes[inner], nodes[2 * inner] + nodes[2 * inner + 1])
        assert tree.total == pytest.approx(reference.sum(), rel=1e-12, abs=1e-12)
        # ... so a tree rebuilt from the leaves is the same, bit for bit.
        rebuilt = SumTree(size)
        rebuilt.load(reference, tree.max_value)
        assert np.array_equal(rebuilt._tree[1:], nodes[1:])
        if tree.total == 0:
            with pytest.raises(ValueError, match="all zero"):
                tree.find(np.array([0.0]))
            continue
        u = rng.random(64) * tree.total
        found = tree.find(u)
        assert (reference[found] > 0).all()
        for q, leaf in zip(u.tolist(), found.tolist(), strict=True):
            expected = brute_find(reference, order, q)
            if expected is not None:
                assert leaf == expected, (q, leaf, expected)
        # Prefix sums at interval boundaries, at the total and beyond land on mass.
        edges = np.cumsum(reference[order])
        edge_leaves = tree.find(np.concatenate([[0.0], edges, [tree.total * 2]]))
        assert (reference[edge_leaves] > 0).all()


def test_sum_tree_repeated_indices_last_write_wins():
    tree = SumTree(5)
    tree.set(np.array([3, 1, 3, 3, 1]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert tree.leaves.tolist() == [0.0, 5.0, 0.0, 4.0, 0.0]
    assert tree.total == 9.0
    assert tree.max_value == 5.0  # the largest value set, even one overwritten at once


def test_sum_tree_max_is_a_running_max():
    tree = SumTree(4, initial_max=1.0)
    tree.set(np.array([0]), np.array([0.5]))
    assert tree.max_value == 1.0
    tree.set(np.array([1]), np.array([3.0]))
    tree.set(np.array([1]), np.array([0.1]))
    assert tree.max_value == 3.0


def test_sum_tree_find_frequencies():
    tree = SumTree(6)
    tree.set(np.arange(6), np.array([1.0, 0.0, 2.0, 3.0, 0.0, 4.0]))
    u = (np.arange(100_000) + 0.5) / 100_000 * tree.total  # evenly spread
    counts = np.bincount(tree.find(u), minlength=6)
    assert counts.tolist() == [10_000, 0, 20_000, 30_000, 0, 40_000]


def test_sum_tree_errors():
    tree = SumTree(4)
    with pytest.raises(ValueError, match="at least one leaf"):
        SumTree(0)
    with pytest.raises(ValueError, match="out of range"):
        tree.set(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.set(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.set(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="2 indices but 1 values"):
        tree.set(np.array([0, 1]), np.array([1.0]))
    with pytest.raises(ValueError, match="integers"):
        tree.set(np.array([0.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="expected 4"):
        tree.load(np.ones(3), 1.0)
    assert tree.nbytes == 2 * 4 * 8


# -- helpers for the buffer --------------------------------------------------------------------


def scalar_per(capacity: int = 100, **kw) -> PrioritizedReplayBuffer:
    kw.setdefault("seed", 0)
    return PrioritizedReplayBuffer(capacity, 1, SCALAR, ACTIONS, **kw)


def add(buffer, obs, next_obs, reward=0.0, *, terminated=False, truncated=False, valid=True):
    buffer.add(
        Transition(
            np.array([[obs]], np.int32),
            np.array([0]),
            np.array([reward], np.float32),
            np.array([[next_obs]], np.int32),
            np.array([terminated]),
            np.array([truncated]),
            np.array([valid]),
        )
    )


def fill_chain(buffer, count: int, start: int = 0) -> None:
    """``count`` adds of one never-ending episode: obs t -> t + 1."""
    for t in range(start, start + count):
        add(buffer, t, t + 1, float(t))


def per_from_streams(streams: RandomStreams, rows: int, **kw) -> PrioritizedReplayBuffer:
    return PrioritizedReplayBuffer(
        rows * streams.num_envs,
        streams.num_envs,
        streams.observation_space,
        ACTIONS,
        frame_stack=streams.stack,
        padding=streams.padding,
        **kw,
    )


# -- sampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_sampling_frequencies_follow_priorities(alpha):
    buffer = scalar_per(alpha=alpha, seed=1)
    fill_chain(buffer, 21)  # 20 sampleable transitions: obs 0..19
    priorities = np.arange(1.0, 21.0)
    buffer.update_priorities(np.arange(20), priorities)
    mass = (priorities + buffer.eps) ** alpha
    probability = mass / mass.sum()
    draws = 100 * 200
    counts = np.zeros(20)
    for _ in range(100):
        batch = buffer.sample(200)
        counts += np.bincount(batch.obs[:, 0], minlength=20)
    expected = draws * probability
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 19 degrees of freedom: mean 19, sd 6.2 for independent draws; stratified draws vary
    # less still. 80 is ten standard deviations out.
    assert chi2 < 80, (chi2, counts, expected)
    assert counts.min() > 0


def test_importance_weights_worked_by_hand():
    # alpha 0.5, priorities 1 and 4: p = 1 and 2, P = 1/3 and 2/3, N = 2.
    # beta 1: (N P)^-1 = 1.5 and 0.75; over the max 1.5: 1.0 and 0.5.
    # beta 0.5: 1.5^0.5 = 1.2247, 0.75^0.5 = 0.8660; over the max: 1.0 and 0.7071.
    buffer = scalar_per(alpha=0.5, eps=1e-12)
    fill_chain(buffer, 3)  # obs 0 and 1 are sampleable
    buffer.update_priorities(np.array([0, 1]), np.array([1.0, 4.0]))
    for beta, light in [(1.0, 0.5), (0.5, 0.5**0.5), (0.0, 1.0)]:
        batch = buffer.sample(8, num_batches=5, beta=beta)
        assert batch.weights.dtype == np.float32 and batch.weights.shape == (5, 8)
        for obs, weights in zip(batch.obs[..., 0], batch.weights, strict=True):
            # A batch of 8 stratified draws holds both (each has >= 2/8 of the mass).
            assert set(obs.tolist()) == {0, 1}
            expected = np.where(obs == 0, 1.0, light)
            np.testing.assert_allclose(weights, expected, rtol=1e-6)


def test_weights_equal_the_formula_with_n_and_p():
    streams = RandomStreams(3, 4, "zero", seed=4)
    buffer = per_from_streams(streams, 20, seed=2, n_step=3, gamma=0.9)
    for _ in range(70):
        buffer.add(streams.step())
    rng = np.random.default_rng(0)
    batch = buffer.sample(16)
    buffer.update_priorities(batch.indices, rng.exponential(size=16))
    mass = buffer.priorities.reshape(-1)
    n = int(buffer.sampleable_mask().sum())
    probability = mass / mass.sum()
    for beta in (0.4, 1.0):
        batch = buffer.sample(16, num_batches=3, beta=beta)
        for indices, weights in zip(batch.indices, batch.weights, strict=True):
            raw = (n * probability[indices]) ** -beta
            np.testing.assert_allclose(weights, raw / raw.max(), rtol=1e-6)


def test_new_rows_enter_at_the_max_priority():
    buffer = scalar_per(alpha=0.5)
    fill_chain(buffer, 4)  # obs 0..2 sampleable
    assert buffer.max_priority == 1.0
    assert buffer.priorities[:4, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    buffer.update_priorities(np.array([1]), np.array([16.0]))
    top = (16.0 + buffer.eps) ** 0.5
    assert buffer.max_priority == top
    buffer.update_priorities(np.array([1]), np.array([0.0]))  # lower again: max stays
    assert buffer.max_priority == top
    fill_chain(buffer, 2, start=4)  # obs 3 and 4 become sampleable
    assert buffer.priorities[3:5, 0].tolist() == [top, top]
    assert buffer.priorities[1, 0] == buffer.eps**0.5


def test_alpha_zero_is_uniform_with_unit_weights():
    buffer = scalar_per(alpha=0.0)
    fill_chain(buffer, 11)
    buffer.update_priorities(np.arange(10), np.arange(10.0) * 100)
    assert (buffer.priorities[:10] == 1.0).all()
    assert (buffer.sample(64, beta=1.0).weights == 1.0).all()


def test_samples_equal_the_n_step_reference():
    # Prioritized draws go through the same batch maths: compare with the reference.
    streams = RandomStreams(3, 4, "reset", seed=8)
    rows, n_step, gamma = 9, 3, 0.8
    buffer = per_from_streams(streams, rows, seed=5, n_step=n_step, gamma=gamma)
    rng = np.random.default_rng(3)
    log = []
    for _ in range(60):
        log.append(streams.step())
        buffer.add(log[-1])
        expected = reference_n_step(log, rows, 4, n_step, gamma)
        if not expected:
            assert not buffer.can_sample()
            continue
        batch = buffer.sample(32, beta=0.5)
        check_against_reference(batch, expected, len(log), rows, 3)
        buffer.update_priorities(batch.indices, rng.exponential(size=32))


# -- which rows carry mass ---------------------------------------------------------------------


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize(("num_envs", "stack", "padding"), [(3, 4, "zero"), (2, 1, "reset")])
def test_mass_set_equals_the_uniform_sampleable_set(n_step, num_envs, stack, padding):
    streams = RandomStreams(num_envs, stack, padding, seed=n_step + stack)
    rows = stack + n_step + 3
    buffer = per_from_streams(streams, rows, seed=0, n_step=n_step)
    uniform = ReplayBuffer(
        rows * num_envs,
        num_envs,
        streams.observation_space,
        ACTIONS,
        frame_stack=stack,
        padding=padding,
        n_step=n_step,
    )
    rng = np.random.default_rng(1)
    log = []
    for step in range(15 * rows):  # wraps fifteen times
        log.append(streams.step())
        buffer.add(log[-1])
        uniform.add(log[-1])
        # Independently of both buffers: the reference's sampleable (add, env) pairs.
        total = len(log)
        expected = {(a % rows, e) for a, e in reference_n_step(log, rows, stack, n_step, 1.0)}
        mask = uniform.sampleable_mask()
        assert {tuple(x) for x in np.argwhere(mask).tolist()} == expected, total
        assert np.array_equal(buffer.priorities > 0, mask), f"after {total} adds"
        assert buffer.can_sample() == bool(expected)
        if step % 3 == 0:
            # Priorities for every slot, sampleable or not: none is resurrected.
            slots = rng.integers(0, buffer.capacity, 2 * buffer.capacity)
            buffer.update_priorities(slots, rng.exponential(size=slots.size))
            assert np.array_equal(buffer.priorities > 0, mask)
        if expected:
            batch = buffer.sample(32)
            assert mask.reshape(-1)[batch.indices].all()


def test_autoreset_cut_and_history_rows_get_no_mass_and_are_never_sampled():
    buffer = scalar_per(capacity=6, alpha=1.0)  # 6 rows, n = 1, k = 1
    add(buffer, 1, 2, terminated=True)  # row 0
    add(buffer, 2, 11, valid=False)  # row 1: autoreset row
    add(buffer, 11, 12)  # row 2: cut by the runner reset below
    add(buffer, 21, 22)  # row 3
    add(buffer, 22, 23)  # row 4
    assert buffer.priorities[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    buffer.update_priorities(np.arange(6), np.full(6, 50.0))
    assert buffer.priorities[:, 0].tolist() == [50.0 + 1e-6, 0, 0, 50.0 + 1e-6, 0, 0]
    assert set(buffer.sample(256).obs[:, 0].tolist()) == {1, 21}
    top = 50.0 + 1e-6  # the max so far: rows that become sampleable now get it
    add(buffer, 23, 24)  # row 5: the ring is full; k = 1 keeps no history rows
    add(buffer, 24, 25)  # overwrites row 0 (obs 1): its mass goes
    assert buffer.priorities[:, 0].tolist() == [0, 0, 0, top, top, top]
    buffer.update_priorities(np.array([0, 1, 2]), np.full(3, 9.0))
    assert buffer.priorities[:3, 0].tolist() == [0, 0, 0]
    assert set(buffer.sample(256).obs[:, 0].tolist()) == {21, 22, 23}


def test_history_rows_of_a_wrapped_stacked_ring_lose_their_mass():
    space = gym.spaces.Box(0, 100, (3,), np.int32)
    buffer = PrioritizedReplayBuffer(6, 1, space, ACTIONS, frame_stack=3, seed=0)

    def stack(t):
        return [max(t - 2, 0), max(t - 1, 0), t] if t else [0, 0, 0]

    for t in range(8):
        obs = np.array([stack(t)], np.int32)
        nxt = np.array([stack(t + 1)], np.int32)
        if t == 0:
            obs = np.zeros((1, 3), np.int32)
        f = np.array([False])
        buffer.add(Transition(obs, np.array([0]), np.zeros(1, np.float32), nxt, f, f, ~f))
    # 8 adds in 6 rows: adds 2..7 kept; adds 2, 3 are history, 7 waits: adds 4..6 sampleable.
    mask = buffer.sampleable_mask()[:, 0]
    assert np.flatnonzero(mask).tolist() == [0, 4, 5]  # adds 6, 4, 5
    assert np.array_equal(buffer.priorities[:, 0] > 0, mask)


# -- checkpoints, memory, errors ---------------------------------------------------------------


def save_and_load(state: dict, tmp_path) -> dict:
    """Round-trip a state as a checkpoint does: .npz arrays + JSON, no pickle."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if k not in arrays}
    np.savez(tmp_path / "replay.npz", **{k.replace("/", "__"): v for k, v in arrays.items()})
    (tmp_path / "replay.json").write_text(json.dumps(rest))
    with np.load(tmp_path / "replay.npz", allow_pickle=False) as f:
        loaded = {k.replace("__", "/"): f[k] for k in f.files}
    loaded.update(json.loads((tmp_path / "replay.json").read_text()))
    return loaded


@pytest.mark.parametrize("rows", [12, 200], ids=["wrapped", "partly-filled"])
def test_state_restore_resumes_bitwise(tmp_path, rows):
    streams = RandomStreams(2, 4, "zero", seed=6)
    kw = {"n_step": 3, "gamma": 0.9, "alpha": 0.7}
    a = per_from_streams(streams, rows, seed=1, **kw)
    b = per_from_streams(streams, rows, seed=99, **kw)
    rng = np.random.default_rng(0)
    for _ in range(40):
        a.add(streams.step())
        if a.can_sample():
            batch = a.sample(8)
            a.update_priorities(batch.indices, rng.exponential(size=8) * 3)
    state = a.state()
    assert state["array/priority"].shape == (min(40, rows), 2)
    b.restore(save_and_load(state, tmp_path))
    assert np.array_equal(a._tree._tree[1:], b._tree._tree[1:])  # every node, bit for bit
    assert a.max_priority == b.max_priority
    for _ in range(20):  # the same future: samples, weights, updates, adds
        x, y = a.sample(16, num_batches=2, beta=0.6), b.sample(16, num_batches=2, beta=0.6)
        for u, v in zip(x, y, strict=True):
            assert u.dtype == v.dtype and np.array_equal(u, v)
        td = rng.exponential(size=(2, 16))
        a.update_priorities(x.indices, td)
        b.update_priorities(y.indices, td)
        tr = streams.step()
        a.add(tr)
        b.add(tr)
    assert np.array_equal(a._tree._tree[1:], b._tree._tree[1:])


def test_restore_from_a_uniform_state_gives_unit_priorities():
    streams = RandomStreams(2, 1, "reset", seed=1)
    uniform = ReplayBuffer(30, 2, streams.observation_space, ACTIONS)
    for _ in range(20):
        uniform.add(streams.step())
    per = per_from_streams(streams, 15)
    per.restore(uniform.state())
    mask = per.sampleable_mask()
    assert np.array_equal(per.priorities, mask.astype(float))


@pytest.mark.parametrize(("saved_n", "restored_n"), [(1, 3), (3, 1)])
def test_restore_into_another_n_step_keeps_mass_on_its_sampleable_set(saved_n, restored_n):
    streams = RandomStreams(2, 4, "reset", seed=3)
    a = per_from_streams(streams, 12, n_step=saved_n)
    b = per_from_streams(streams, 12, n_step=restored_n)
    for _ in range(30):
        a.add(streams.step())
    a.update_priorities(a.sample(8).indices, np.full(8, 5.0))
    b.restore(a.state())
    mask = b.sampleable_mask()
    assert np.array_equal(b.priorities > 0, mask)
    both = mask & a.sampleable_mask()
    assert np.array_equal(b.priorities[both], a.priorities[both])  # kept where both sample
    assert (b.priorities[mask & ~both] == a.max_priority).all()  # new ones at the max


def test_restore_rejects_priorities_of_another_shape():
    a, b = scalar_per(20), scalar_per(20)
    fill_chain(a, 5)
    state = a.state()
    with pytest.raises(ValueError, match="'priority' has shape"):
        b.restore({**state, "array/priority": np.ones((4, 1))})
    with pytest.raises(ValueError, match="negative or non-finite"):
        b.restore({**state, "array/priority": -np.ones((5, 1))})


def test_nbytes_grow_by_16_per_transition():
    atari = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    kw = {"frame_stack": 4, "check_memory": False}
    uniform = ReplayBuffer(1_000_000, 8, atari, gym.spaces.Discrete(18), **kw)
    per = PrioritizedReplayBuffer(1_000_000, 8, atari, gym.spaces.Discrete(18), **kw)
    assert per.nbytes - uniform.nbytes == 16 * 1_000_000
    assert per.nbytes == 1_000_000 * (84 * 84 + 9 + 16)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.6", True])
def test_bad_alpha_raises(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        scalar_per(alpha=alpha)


@pytest.mark.parametrize("eps", [0.0, -1e-6, float("inf")])
def test_bad_eps_raises(eps):
    with pytest.raises(ValueError, match="eps must be a positive number"):
        scalar_per(eps=eps)


def test_bad_beta_and_bad_updates_raise():
    buffer = scalar_per()
    with pytest.raises(RuntimeError, match="no complete transition"):
        buffer.sample(4)
    fill_chain(buffer, 5)
    with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
        buffer.sample(4, beta=-0.5)
    with pytest.raises(ValueError, match="2 indices but 3 priorities"):
        buffer.update_priorities(np.array([0, 1]), np.ones(3))
    with pytest.raises(ValueError, match="must be finite"):
        buffer.update_priorities(np.array([0, 1]), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        buffer.update_priorities(np.array([100]), np.ones(1))
    with pytest.raises(ValueError, match="integers"):
        buffer.update_priorities(np.array([0.0]), np.ones(1))


def test_update_priorities_takes_g_by_b_indices():
    buffer = scalar_per(alpha=1.0)
    fill_chain(buffer, 30)
    batch = buffer.sample(4, num_batches=3)
    assert batch.indices.shape == (3, 4)
    buffer.update_priorities(batch.indices, np.full((3, 4), 7.0))
    assert (buffer.priorities.reshape(-1)[batch.indices] == 7.0 + 1e-6).all()

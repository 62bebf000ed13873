"""n-step returns of rlkit.replay.ReplayBuffer, against a plain-Python reference.

The reference (``replay_streams.reference_n_step``) reads only the raw list of Transitions
a buffer was given: terminations, truncations, NEXT_STEP autoreset rows and runner resets
at random times, several env streams, frame stacks with both paddings, and rings small
enough to wrap many times. Every sampled transition must equal its reference field by
field (reward and discount exactly: both sum ``gamma**i * r`` in step order in float64),
and every sampleable transition must be drawn.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from replay_streams import (
    RandomStreams,
    check_against_reference,
    reference_n_step,
    sampleable_adds,
)

from rlkit.envs.testing import make_fake_vector_env
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner
from rlkit.types import Batch, Transition

ACTIONS = gym.spaces.Discrete(4)


def build(streams: RandomStreams, rows: int, n_step: int, gamma: float, seed: int = 0):
    return ReplayBuffer(
        rows * streams.num_envs,
        streams.num_envs,
        streams.observation_space,
        ACTIONS,
        frame_stack=streams.stack,
        padding=streams.padding,
        seed=seed,
        gamma=gamma,
        n_step=n_step,
    )


# -- random streams against the reference ----------------------------------------------------


@pytest.mark.parametrize("n_step", [1, 2, 3, 5])
@pytest.mark.parametrize(
    ("num_envs", "stack", "padding", "extra_rows"),
    [
        (3, 4, "reset", 0),  # the smallest ring: k + n rows per stream
        (3, 4, "zero", 4),
        (2, 2, "zero", 1),
        (1, 3, "reset", 9),
        (3, 1, "reset", 2),
    ],
)
def test_n_step_samples_equal_reference(n_step, num_envs, stack, padding, extra_rows):
    streams = RandomStreams(num_envs, stack, padding, seed=n_step * 100 + stack + extra_rows)
    rows = stack + n_step + extra_rows
    gamma = 0.9
    buffer = build(streams, rows, n_step, gamma, seed=n_step)
    log: list[Transition] = []
    covered_checks = 0
    for step in range(12 * rows):  # wraps about twelve times
        tr = streams.step()
        buffer.add(tr)
        log.append(tr)
        expected = reference_n_step(log, rows, stack, n_step, gamma)
        mask = buffer.sampleable_mask()
        assert mask.sum() == len(expected), f"after {len(log)} adds"
        if not expected:
            assert not buffer.can_sample()
            with pytest.raises(RuntimeError, match="no complete transition"):
                buffer.sample(4)
            continue
        assert buffer.can_sample()
        keys = check_against_reference(buffer.sample(16), expected, len(log), rows, num_envs)
        # Single draws: a batch of whole windows takes the one-gather path (k + n frames),
        # a batch with a window cut short the other (2k); a batch of 16 is nearly always
        # the second kind here, a batch of one often the first.
        for _ in range(4):
            keys |= check_against_reference(buffer.sample(1), expected, len(log), rows, num_envs)
        if step % 7 == 0:  # now and then, every sampleable transition must be drawn
            for _ in range(20):
                batch = buffer.sample(64, num_batches=2)
                keys |= check_against_reference(batch, expected, len(log), rows, num_envs)
                if keys == set(expected):
                    break
            assert keys == set(expected)
            covered_checks += 1
    assert covered_checks >= 6
    # The streams did produce every kind of window (so the test saw each case).
    steps = [e.steps for e in expected.values()]
    assert min(steps) >= 1 and max(steps) <= n_step


def test_reference_streams_hold_every_kind_of_episode_end():
    # The premise of the random test: all cases occur, in every stream.
    streams = RandomStreams(3, 4, "zero", seed=0)
    log = [streams.step() for _ in range(300)]
    terminated = sum(int(t.terminated.sum()) for t in log)
    truncated = sum(int(t.truncated.sum()) for t in log)
    autoreset = sum(int((~t.valid).sum()) for t in log)
    cuts = sum(
        int((log[a + 1].obs[e] != log[a].next_obs[e]).any())
        for a in range(len(log) - 1)
        for e in range(3)
    )
    assert terminated > 30 and truncated > 30 and autoreset > 50 and cuts > 20
    expected = reference_n_step(log, 300, 4, 5, 0.9)
    counts = np.bincount([e.steps for e in expected.values()], minlength=6)
    assert (counts[1:] > 10).all(), counts  # windows of every length 1..5
    ends = [e for e in expected.values() if e.steps < 5]
    assert any(e.terminated for e in ends) and any(e.truncated for e in ends)
    assert any(not (e.terminated or e.truncated) for e in ends)  # stopped before a cut


def test_sampleable_adds_rule():
    # 10 rows, k = 4, n = 3: before wrapping the newest 3 adds wait; after, also the 3 oldest.
    assert sampleable_adds(5, 10, 4, 3) == range(0, 2)
    assert sampleable_adds(10, 10, 4, 3) == range(3, 7)
    assert sampleable_adds(25, 10, 4, 3) == range(18, 22)


# -- hand-worked cases -------------------------------------------------------------------------


def scalar_buffer(n_step: int, gamma: float = 0.5, capacity: int = 50) -> ReplayBuffer:
    space = gym.spaces.Box(0, 1000, (1,), np.int32)
    return ReplayBuffer(capacity, 1, space, ACTIONS, seed=0, gamma=gamma, n_step=n_step)


def add(buffer, obs, next_obs, reward, *, terminated=False, truncated=False, valid=True):
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


def sampled(buffer: ReplayBuffer) -> dict[int, tuple]:
    """obs -> (reward, next_obs, discount, terminated, truncated) of everything sampled."""
    b = buffer.sample(512)
    return {
        int(b.obs[j, 0]): (
            float(b.reward[j]),
            int(b.next_obs[j, 0]),
            float(b.discount[j]),
            float(b.terminated[j]),
            float(b.truncated[j]),
        )
        for j in range(512)
    }


def test_literal_termination_stops_the_sum():
    # Rewards 1, 2 then a termination; episode 2 pays 3, 4, 5, 6. gamma 0.5, n = 3.
    buffer = scalar_buffer(3)
    add(buffer, 1, 2, 1.0)
    add(buffer, 2, 3, 2.0, terminated=True)
    add(buffer, 3, 11, 0.0, valid=False)  # autoreset row: obs 3 is the final obs
    add(buffer, 11, 12, 3.0)
    add(buffer, 12, 13, 4.0)
    add(buffer, 13, 14, 5.0)
    add(buffer, 14, 15, 6.0)
    # 7 adds, n = 3: rows 0..3 are sampleable (row 2 is the autoreset row), rows 4..6 wait.
    assert sampled(buffer) == {
        1: (1 + 0.5 * 2, 3, 0.0, 1.0, 0.0),  # 2.0: stops after the termination
        2: (2.0, 3, 0.0, 1.0, 0.0),
        11: (3 + 0.5 * 4 + 0.25 * 5, 14, 0.125, 0.0, 0.0),  # 6.25, three steps
    }


def test_literal_truncation_bootstraps_from_the_final_obs():
    buffer = scalar_buffer(3)
    add(buffer, 1, 2, 1.0)
    add(buffer, 2, 3, 2.0, truncated=True)
    add(buffer, 3, 11, 0.0, valid=False)
    add(buffer, 11, 12, 3.0)
    add(buffer, 12, 13, 4.0)
    # 5 adds: rows 0 and 1 are sampleable.
    assert sampled(buffer) == {
        1: (2.0, 3, 0.25, 0.0, 1.0),  # 1 + 0.5 * 2, bootstrap gamma**2 from obs 3
        2: (2.0, 3, 0.5, 0.0, 1.0),
    }


def test_literal_runner_reset_stops_before_the_cut_row():
    buffer = scalar_buffer(3)
    add(buffer, 1, 2, 1.0)
    add(buffer, 2, 3, 2.0)  # its successor (obs 3) is never stored: the runner resets
    add(buffer, 21, 22, 3.0)
    add(buffer, 22, 23, 4.0)
    add(buffer, 23, 24, 5.0)
    add(buffer, 24, 25, 6.0)
    add(buffer, 25, 26, 7.0)
    # Row 1 is cut, so row 0 takes one step and bootstraps from obs 2 (row 1's obs).
    assert sampled(buffer) == {
        1: (1.0, 2, 0.5, 0.0, 0.0),
        21: (3 + 0.5 * 4 + 0.25 * 5, 24, 0.125, 0.0, 0.0),  # 6.25
        22: (4 + 0.5 * 5 + 0.25 * 6, 25, 0.125, 0.0, 0.0),  # 8.0
    }


@pytest.mark.parametrize("flag", ["terminated", "truncated"])
def test_the_sum_stops_after_an_ended_row_even_if_a_valid_row_follows(flag):
    # Gymnasium streams always follow an episode end with an autoreset row (invalid), so
    # this cannot come from a runner; the rule still holds on its own: an episode end
    # ends the window, whatever the next row says.
    buffer = scalar_buffer(3)
    add(buffer, 1, 2, 1.0, **{flag: True})
    add(buffer, 2, 3, 2.0)
    add(buffer, 3, 4, 3.0)
    add(buffer, 4, 5, 4.0)
    discount = 0.0 if flag == "terminated" else 0.5
    term, trunc = (1.0, 0.0) if flag == "terminated" else (0.0, 1.0)
    assert sampled(buffer) == {1: (1.0, 2, discount, term, trunc)}


def test_rewards_of_rows_not_taken_never_leak_in():
    # An invalid row may hold anything (a restarted env's row): NaN here.
    buffer = scalar_buffer(3)
    add(buffer, 1, 2, 1.0, terminated=True)
    add(buffer, 2, 11, float("nan"), valid=False)
    add(buffer, 11, 12, float("inf"))
    add(buffer, 12, 13, 3.0)
    assert sampled(buffer) == {1: (1.0, 2, 0.0, 1.0, 0.0)}


def test_literal_stacks_with_zero_padding_n2():
    # One env, stacks of 4, zero padding, episodes of 3 steps, rewards 1, 2, 3 (the fake
    # env pays the step index); gamma 0.5, n = 2.
    envs = make_fake_vector_env(1, stack=4, padding="zero", episode_length=3, obs_shape=())
    buffer = ReplayBuffer(
        100,
        1,
        envs.single_observation_space,
        envs.single_action_space,
        frame_stack=4,
        padding="zero",
        seed=0,
        gamma=0.5,
        n_step=2,
    )
    runner = VectorRunner(envs)
    runner.reset(seed=0)
    for _ in range(7):
        buffer.add(runner.step(np.zeros(1, np.int64))[0])
    b = buffer.sample(512)
    got = {
        (tuple(b.obs[j].tolist()), tuple(b.next_obs[j].tolist()), float(b.reward[j]))
        + (float(b.discount[j]), float(b.terminated[j]))
        for j in range(512)
    }
    # Adds 0..6; add 3 is the autoreset row; n = 2 keeps adds 5 and 6 waiting.
    assert got == {
        ((0, 0, 0, 1), (0, 1, 2, 3), 1 + 0.5 * 2, 0.25, 0.0),
        ((0, 0, 1, 2), (1, 2, 3, 4), 2 + 0.5 * 3, 0.0, 1.0),  # 3.5, ends in a termination
        ((0, 1, 2, 3), (1, 2, 3, 4), 3.0, 0.0, 1.0),
        ((0, 0, 0, 101), (0, 101, 102, 103), 1 + 0.5 * 2, 0.25, 0.0),
    }


# -- compatibility, shapes, errors -------------------------------------------------------------


def test_n_step_one_is_exactly_the_default_buffer():
    streams = [RandomStreams(2, 4, "reset", seed=5) for _ in range(2)]
    a = build(streams[0], 9, 1, 0.9, seed=3)
    b = ReplayBuffer(18, 2, streams[1].observation_space, ACTIONS, frame_stack=4, seed=3, gamma=0.9)
    for _ in range(40):
        a.add(streams[0].step())
        b.add(streams[1].step())
    for _ in range(3):
        for x, y in zip(a.sample(32, num_batches=2), b.sample(32, num_batches=2), strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y)


def test_n_step_batches_shapes_read_only_and_stable():
    streams = RandomStreams(2, 4, "zero", seed=1)
    buffer = build(streams, 30, 3, 0.99)
    log = [streams.step() for _ in range(50)]
    for tr in log:
        buffer.add(tr)
    batch = buffer.sample(8, num_batches=3)
    assert batch.obs.shape == batch.next_obs.shape == (3, 8, 4, 2)
    for x in (batch.action, batch.reward, batch.discount, batch.weights, batch.indices):
        assert x.shape == (3, 8)
    assert batch.reward.dtype == batch.discount.dtype == batch.weights.dtype == np.float32
    assert batch.indices.dtype == np.int64 and (batch.weights == 1).all()
    kept = Batch(*(np.array(x) for x in batch))
    with pytest.raises(ValueError, match="read-only"):
        batch.next_obs[0, 0, 0] = 0
    for _ in range(4):
        buffer.add(streams.step())
        buffer.sample(8)
    for x, y in zip(batch, kept, strict=True):
        assert np.array_equal(x, y)
    expected = reference_n_step(log, 30, 4, 3, 0.99)
    check_against_reference(kept, expected, 50, 30, 2)


@pytest.mark.parametrize("n_step", [0, -1, 1.5, True])
def test_bad_n_step_raises(n_step):
    space = gym.spaces.Box(0, 10, (1,), np.int32)
    with pytest.raises(ValueError, match="n_step must be an integer >= 1"):
        ReplayBuffer(10, 1, space, ACTIONS, n_step=n_step)


def test_capacity_too_small_for_the_window_names_the_minimum():
    space = gym.spaces.Box(0, 10, (4, 1), np.int32)
    with pytest.raises(ValueError, match="n_step=3; use at least 14"):
        ReplayBuffer(12, 2, space, ACTIONS, frame_stack=4, n_step=3)  # 6 rows < 4 + 3
    ReplayBuffer(14, 2, space, ACTIONS, frame_stack=4, n_step=3)


def test_state_restore_keeps_n_step_samples_identical():
    streams = RandomStreams(2, 3, "reset", seed=2)
    a, b = build(streams, 12, 3, 0.9, seed=1), build(streams, 12, 3, 0.9, seed=2)
    for _ in range(40):
        a.add(streams.step())
    a.sample(5)
    b.restore(a.state())
    assert set(a.state()) == set(build(streams, 12, 1, 0.9).state())  # format unchanged
    for _ in range(3):
        for x, y in zip(a.sample(16), b.sample(16), strict=True):
            assert np.array_equal(x, y)

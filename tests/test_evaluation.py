"""Evaluation seeds: fresh per evaluation, never reused, apart from the training envs'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlkit.evaluate import EVAL_PURPOSES, evaluation_seeds, play_episodes, write_results


def test_seeds_differ_by_run_purpose_step_and_episode():
    seen: set[int] = set()
    for run_seed in (0, 1, 2**32 - 1):
        for purpose in EVAL_PURPOSES:
            for steps in (0, 1, 5_000, 2**40 - 1):
                seeds = evaluation_seeds(run_seed, purpose, steps, 50)
                assert len(set(seeds)) == 50
                assert seen.isdisjoint(seeds)
                seen.update(seeds)
    # Above every seed a training env gets (the run seed plus an env index).
    assert min(seen) >= 2**100


def test_seeds_are_reproducible():
    assert evaluation_seeds(7, "periodic", 1234, 10) == evaluation_seeds(7, "periodic", 1234, 10)
    assert evaluation_seeds(7, "final", 1234, 3) == evaluation_seeds(7, "final", 1234, 100)[:3]


@pytest.mark.parametrize(
    "args",
    [(0, "nope", 0, 1), (-1, "final", 0, 1), (2**32, "final", 0, 1), (0, "final", -1, 1)],
)
def test_bad_arguments_are_refused(args):
    with pytest.raises(ValueError):
        evaluation_seeds(*args)


def test_each_seed_starts_its_own_episode():
    # A policy that always pushes left: the return depends only on the start state.
    def left(obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.int64)

    seeds = evaluation_seeds(3, "periodic", 100, 6)
    first = play_episodes(left, "CartPole-v1", 6, seeds)
    np.testing.assert_array_equal(first, play_episodes(left, "CartPole-v1", 6, seeds))
    other = play_episodes(left, "CartPole-v1", 6, evaluation_seeds(3, "periodic", 200, 6))
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(first[2:], play_episodes(left, "CartPole-v1", 4, seeds[2:]))
    with pytest.raises(ValueError, match="3 episodes need 3 seeds"):
        play_episodes(left, "CartPole-v1", 3, seeds)


def test_results_use_the_hub_keys(tmp_path: Path):
    returns = np.array([1.0, 3.0])
    path = tmp_path / "results.json"
    write_results(path, returns, env_id="CartPole-v1", deterministic=True, seed=4)
    data = json.loads(path.read_text())
    assert list(data)[:6] == [
        "env_id",
        "mean_reward",
        "std_reward",
        "n_eval_episodes",
        "is_deterministic",
        "eval_datetime",
    ]
    assert data["env_id"] == "CartPole-v1" and data["n_eval_episodes"] == 2
    assert data["mean_reward"] == 2.0 and data["std_reward"] == 1.0
    assert data["is_deterministic"] is True and data["seed"] == 4
    assert data["eval_datetime"][:2] == "20" and "T" in data["eval_datetime"]


def test_max_frames_caps_the_recording_not_the_episode():
    def left(obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.int64)

    full: list[np.ndarray] = []
    returns = play_episodes(left, "CartPole-v1", 1, 7, record=full)
    assert returns[0] == len(full) > 3  # one frame per step
    capped: list[np.ndarray] = []
    same = play_episodes(left, "CartPole-v1", 1, 7, record=capped, max_frames=3)
    np.testing.assert_array_equal(same, returns)
    assert len(capped) == 3
    np.testing.assert_array_equal(capped[2], full[2])

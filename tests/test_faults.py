"""Injected faults: crashed, dying and hung env workers, bad observations, NaN updates.

Each test breaks one thing on purpose (``rlkit.envs.testing.FaultInjector``) and checks
that the run either recovers with consistent data or stops with a clear error.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from agent_data import agent_variables, assert_same_variables
from procs import live_workers

from rlkit.agents import get_agent_class
from rlkit.agents.common import seed_everything
from rlkit.config import resolve
from rlkit.envs.checks import CheckObservations, observation_problem
from rlkit.envs.testing import (
    CountingEnv,
    FaultInjector,
    decode_value,
    make_faulty_counting_env,
)
from rlkit.envs.vector import vectorize
from rlkit.errors import EnvSpaceError, EnvWorkerError, NumericalError
from rlkit.experiment import learn
from rlkit.runner import VectorRunner
from rlkit.types import Batch


def faulty_envs(
    mode: str, fault: str, at_step: int = 5, once_file: str | None = None, num_envs: int = 2
) -> gym.vector.VectorEnv:
    """``num_envs`` counting envs (``mode`` vectorization) that break at ``at_step``."""
    fns = [
        functools.partial(make_faulty_counting_env, fault, at_step, once_file, i)
        for i in range(num_envs)
    ]
    return vectorize(fns, mode)


def faulty_runner(mode: str, fault: str, tmp_path: Path, once: bool = True, **kwargs):
    once_file = str(tmp_path / "struck") if once else None
    make = functools.partial(faulty_envs, mode, fault, once_file=once_file)
    runner = VectorRunner(make(), rebuild_envs=make, **kwargs)
    runner.reset(seed=1)
    return runner


def step_and_check_alignment(runner: VectorRunner, steps: int) -> list[bool]:
    """Step ``steps`` times; every valid transition's reward must match its next_obs."""
    restarted = []
    for _ in range(steps):
        tr, obs = runner.step(np.zeros(runner.num_envs, np.int64))
        assert obs is tr.next_obs
        restarted.append(runner.restarted)
        for e in np.flatnonzero(tr.valid):
            # CountingEnv: the step into step t of an episode is rewarded t, and the
            # transition's obs is the step before next_obs, in the same env and episode.
            env, episode, t = decode_value(tr.next_obs[e][0])
            assert (env, tr.reward[e]) == (e, t)
            assert decode_value(tr.obs[e][0]) == (env, episode, t - 1)
    return restarted


@pytest.mark.parametrize(
    ("mode", "fault"),
    [("sync", "raise"), ("async", "raise"), ("async", "exit"), ("async", "hang")],
)
def test_a_failed_step_rebuilds_the_envs_and_data_stays_aligned(mode, fault, tmp_path, caplog):
    runner = faulty_runner(mode, fault, tmp_path, step_timeout=3.0)
    try:
        with caplog.at_level(logging.WARNING, logger="rlkit.runner"):
            restarted = step_and_check_alignment(runner, 20)
        assert restarted.count(True) == 1 and runner.restarts == 1
        assert restarted.index(True) == 4  # the 5th step of the one env that broke
        # Per env: 4 steps, the restart row, then 15 steps: an episode of 7, its
        # autoreset row and 7 more; 18 valid transitions.
        assert runner.env_steps == 2 * 18
        message = caplog.text
        assert "restart 1 of at most 3" in message
        expected = {
            "raise": "injected fault at step 5",  # the worker's own traceback
            "exit": "exit code 3) died",
            "hang": "a worker hung",
        }[fault]
        assert expected in message
        if fault == "raise" and mode == "async":
            assert "[worker traceback]" in message
    finally:
        runner.close()
    assert live_workers() == set(), "a worker (dead, hung or replaced) outlived the runner"


def test_restart_row_is_invalid_and_the_episode_in_progress_is_dropped(tmp_path):
    runner = faulty_runner("sync", "raise", tmp_path)
    for _ in range(4):
        tr, before = runner.step(np.zeros(2, np.int64))
    tr, obs = runner.step(np.zeros(2, np.int64))  # the fault
    assert runner.restarted and not tr.valid.any()
    np.testing.assert_array_equal(tr.obs, before)  # the last observation before the fault
    assert [decode_value(o[0])[2] for o in obs] == [0, 0]  # new envs, first steps
    assert runner.pop_episode_stats().returns.size == 0  # no episode finished, none counted
    runner.step(np.zeros(2, np.int64))
    assert not runner.restarted
    runner.close()


def _cartpoles_that_fail_once(once_file: str) -> gym.vector.VectorEnv:
    fns = [functools.partial(_raising_cartpole, once_file, at_step=3) for _ in range(2)]
    return vectorize(fns, "sync")


def test_rebuilt_envs_get_fresh_reproducible_seeds(tmp_path):
    """After a restart the new envs start from seeds of their own, the same in every run."""
    first_obs = []
    for attempt in ("a", "b"):
        make = functools.partial(_cartpoles_that_fail_once, str(tmp_path / attempt))
        runner = VectorRunner(make(), rebuild_envs=make)
        start = runner.reset(seed=1).copy()
        for _ in range(3):
            runner.step(np.zeros(2, np.int64))
        assert runner.restarted
        first_obs.append(runner.step(np.zeros(2, np.int64))[0].obs)  # the new envs' first
        runner.close()
        # Not the run's seed again (the same start would replay the same episodes), and
        # not one seed for both envs.
        assert not np.allclose(first_obs[-1], start, atol=1e-6)
        assert not np.allclose(first_obs[-1][0], first_obs[-1][1], atol=1e-6)
    np.testing.assert_array_equal(first_obs[0], first_obs[1])


def test_a_worker_that_keeps_failing_stops_the_run_with_its_traceback(tmp_path):
    runner = faulty_runner("async", "raise", tmp_path, once=False, max_restarts=2)
    try:
        with pytest.raises(EnvWorkerError) as info:
            step_and_check_alignment(runner, 30)
        assert "failed 3 times, more than max_env_restarts (2)" in str(info.value)
        assert "injected fault" in str(info.value)
    finally:
        runner.close()
    assert live_workers() == set()


def test_without_a_factory_a_failed_step_raises_as_it_is(tmp_path):
    runner = VectorRunner(faulty_envs("sync", "raise"))
    runner.reset(seed=0)
    with pytest.raises(RuntimeError, match="injected fault"):
        step_and_check_alignment(runner, 10)
    runner.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_observation_outside_the_space_is_a_clear_error_not_a_restart(mode, tmp_path):
    runner = faulty_runner(mode, "bad_obs", tmp_path)
    runner.envs.close()
    runner.envs = faulty_envs(mode, "bad_obs", at_step=1)  # the first step is checked
    runner.reset(seed=0)
    try:
        with pytest.raises(EnvSpaceError, match=r"outside its observation_space from step\(\)"):
            runner.step(np.zeros(2, np.int64))
        assert runner.restarts == 0
    finally:
        runner.close()


def test_observation_checks_name_the_problem():
    space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)
    ok = np.zeros((2, 3), np.float32)
    assert observation_problem(space, ok) is None
    assert "dtype is float64" in observation_problem(space, ok.astype(np.float64))
    assert "shape is (3,)" in observation_problem(space, np.zeros(3, np.float32))
    bad = ok.copy()
    bad[1, 2] = 7.0
    expected = "element[1, 2] is 7.0, outside the declared bounds [-1.0, 1.0]"
    assert expected in observation_problem(space, bad)
    bad[1, 2] = np.nan
    assert "element[1, 2] is nan" in observation_problem(space, bad)
    assert observation_problem(gym.spaces.Discrete(3), 5) == "5 is not in Discrete(3)"


def test_observation_check_steps_straight_through_after_the_first_steps():
    env = CheckObservations(CountingEnv(obs_shape=(2,)), steps=2)
    env.reset(seed=0)
    env.step(0)
    assert env.step != env.env.step
    env.step(0)
    assert env.step == env.env.step  # no wrapper cost for the rest of the run


def test_env_with_a_wrong_dtype_is_refused_on_reset():
    class Float64Env(CountingEnv):
        def reset(self, **kwargs):
            obs, info = super().reset(**kwargs)
            return obs.astype(np.float64), info

    env = CheckObservations(Float64Env(obs_shape=(2,), dtype=np.int32))
    with pytest.raises(EnvSpaceError, match="dtype is float64 but the observation_space"):
        env.reset(seed=0)


# -- numerical faults --------------------------------------------------------------------------
def nan_batch(steps: int = 1) -> Batch:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps, 8, 4)).astype(np.float32)
    reward = np.full((steps, 8), np.nan, np.float32)
    zeros = np.zeros((steps, 8), np.float32)
    ones, index = np.ones((steps, 8), np.float32), np.zeros((steps, 8), np.int64)
    return Batch(obs, np.zeros((steps, 8), np.int64), reward, obs, zeros, zeros, ones, ones, index)


def small_agent(name: str, **overrides):
    cls = get_agent_class(name)
    _, cfg = resolve(cls, "CartPole-v1", overrides={"hidden_sizes": [8], **overrides})
    env = gym.make("CartPole-v1")
    return cls(env.observation_space, env.action_space, cfg, seed=0)


def test_a_nan_update_is_skipped_counted_and_changes_nothing():
    agent = small_agent("double_dqn")
    before = [w.copy() for w in agent.q_network.get_weights()]
    target = [w.copy() for w in agent.target_network.get_weights()]
    adam = [v.numpy().copy() for v in agent.optimizer.variables]
    metrics = agent.update(nan_batch(steps=3))  # 3 fused gradient steps
    assert metrics["train/skipped_updates"] == 3 and metrics["train/consecutive_skips"] == 3
    assert metrics["train/updates"] == 0
    for a, b in zip(before, agent.q_network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(target, agent.target_network.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, v in zip(adam, agent.optimizer.variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    good = nan_batch(steps=2)._replace(reward=np.ones((2, 8), np.float32))
    metrics = agent.update(good)
    assert metrics["train/consecutive_skips"] == 0 and metrics["train/skipped_updates"] == 3
    assert metrics["train/updates"] == 2
    assert agent._update_fn.experimental_get_tracing_count() == 1


def policy_gradient_rollout(reward: np.ndarray, obs_scale: float = 1.0):
    from rlkit.types import Rollout

    steps, envs = reward.shape
    obs = (np.random.default_rng(0).normal(size=(steps, envs, 4)) * obs_scale).astype(np.float32)
    terminated = np.zeros((steps, envs), np.float32)
    terminated[-1] = 1.0  # whole episodes, for REINFORCE
    zeros = np.zeros((steps, envs), np.float32)
    valid = np.ones((steps, envs), np.float32)
    return Rollout(obs, np.zeros((steps, envs), np.int64), reward, terminated, zeros, valid, obs[0])


# PPO: 2 epochs of one minibatch (the preset's 256 rows hold these rollouts whole), so one
# update is 2 gradient steps and a bad rollout skips both.
PG_OVERRIDES = {"a2c": {}, "reinforce": {}, "ppo": {"n_epochs": 2}}


def without_rollout_count(variables: dict) -> dict:
    """PPO's ``rollouts`` counts update calls (it keys the minibatch order), skipped or not."""
    return {k: v for k, v in variables.items() if k != "rollouts"}


@pytest.mark.parametrize("name", sorted(PG_OVERRIDES))
def test_a_nan_policy_gradient_update_leaves_weights_and_optimizer_untouched(name):
    agent = small_agent(name, **PG_OVERRIDES[name])
    # One good update first, so that the optimizer's slots and step count are not zeros.
    agent.update(policy_gradient_rollout(np.ones((5, 2), np.float32)))
    before = agent_variables(agent)
    assert any(np.any(v != 0) for v in before["optimizer"][1:])
    reward = np.ones((5, 2), np.float32)
    reward[2, 1] = np.inf
    metrics = agent.update(policy_gradient_rollout(reward))
    steps = 2 if name == "ppo" else 1  # every gradient step of the update is skipped
    assert metrics.get("train/minibatch_steps", 1) == steps
    assert metrics["train/skipped_updates"] == steps
    assert metrics["train/consecutive_skips"] == steps
    after = agent_variables(agent)
    assert_same_variables(without_rollout_count(before), without_rollout_count(after))
    if name == "ppo":
        assert after["rollouts"][0] == before["rollouts"][0] + 1


# Observations this large make the gradient norm overflow float32 while the loss stays
# finite: with ReLU, value or Q errors ~s and activations ~s give weight gradients ~s**2
# (A2C, REINFORCE's baseline), or gradients ~s whose squares overflow (DQN's Huber loss).
INF_GRADIENT_SCALE = {"dqn": 1e25, "double_dqn": 1e25, "dueling_dqn": 1e25, "a2c": 1e12}
INF_GRADIENT_SCALE["rainbow"] = 1e25
INF_GRADIENT_SCALE["reinforce"] = INF_GRADIENT_SCALE["ppo"] = 1e12


@pytest.mark.parametrize("name", sorted(INF_GRADIENT_SCALE))
def test_an_inf_gradient_with_a_finite_loss_is_skipped(name):
    cls = get_agent_class(name)
    overrides = {"hidden_sizes": [8], "activation": "relu"}
    if name == "reinforce":
        overrides["baseline"] = True
    overrides.update(PG_OVERRIDES.get(name, {}))
    _, cfg = resolve(cls, "CartPole-v1", overrides=overrides)
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=0)
    scale = INF_GRADIENT_SCALE[name]
    steps = 2 if name == "ppo" else 1  # gradient steps per update
    if agent.on_policy:
        good = policy_gradient_rollout(np.ones((5, 2), np.float32))
        bad = policy_gradient_rollout(np.ones((5, 8), np.float32), obs_scale=scale)
    else:
        good = nan_batch(steps=1)._replace(reward=np.ones((1, 8), np.float32))
        obs = good.obs * np.float32(scale)
        bad = good._replace(obs=obs, next_obs=obs)
    agent.update(good)
    before = agent_variables(agent)
    metrics = agent.update(bad)
    # The fault is the one meant: a finite loss, a gradient norm that is not.
    assert np.isfinite(metrics["train/loss"]) and not np.isfinite(metrics["train/grad_norm"])
    assert metrics["train/skipped_updates"] == metrics["train/consecutive_skips"] == steps
    after = agent_variables(agent)
    assert_same_variables(without_rollout_count(before), without_rollout_count(after))
    metrics = agent.update(good)  # and the next good step is taken
    assert metrics["train/consecutive_skips"] == 0 and metrics["train/skipped_updates"] == steps


def nan_reward_run(tmp_path: Path, name: str, **overrides):
    """Train ``name`` on CartPole whose rewards turn NaN after 600 steps of each env."""
    cls = get_agent_class(name)
    settings = {
        "hidden_sizes": [16],
        "num_envs": 2,
        "total_steps": 20_000,
        "eval_every": 0,
        "stop_reward": None,
        "checkpoint_every": 500,
        "max_bad_updates": 5,
        **overrides,
    }
    if not cls.on_policy:  # 2 gradient steps per update, not the preset's 128: a fault test
        settings.update(learning_starts=100, train_frequency=8, batch_size=512, gradient_steps=2)
    run, cfg = resolve(cls, "CartPole-v1", overrides=settings)
    seed_everything(0)
    make = functools.partial(
        vectorize,
        [functools.partial(_nan_cartpole, 600) for _ in range(run.num_envs)],
        "sync",
    )
    envs = make()
    agent = cls(envs.single_observation_space, envs.single_action_space, cfg, seed=0)
    return learn(agent, "CartPole-v1", run, run_dir=tmp_path / "run", envs=envs, rebuild_envs=make)


def _nan_cartpole(at_step: int) -> gym.Env:
    return FaultInjector(gym.make("CartPole-v1"), "nan_reward", at_step=at_step)


@pytest.mark.parametrize("name", ["dqn", "a2c"])
def test_repeated_nan_updates_stop_the_run_naming_the_last_good_checkpoint(name, tmp_path):
    with pytest.raises(NumericalError) as info:
        nan_reward_run(tmp_path, name)
    message = str(info.value)
    assert re.search(r"\d+ consecutive update steps had a non-finite loss", message)
    assert "--check-numerics" in message
    assert "the last good checkpoint is" in message and "--resume" in message
    checkpoint = Path(message.split("the last good checkpoint is ")[1].split(" (")[0])
    assert checkpoint.is_dir()
    # It loads, and its weights are finite: the skipped steps never touched them.
    from rlkit.checkpoint import Checkpointer

    checkpointer = Checkpointer(tmp_path / "run")
    assert checkpointer.checkpoints()[-1] == checkpoint
    cls = get_agent_class(name)
    _, cfg = resolve(cls, "CartPole-v1", overrides={"hidden_sizes": [16]})
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=1)
    checkpointer.restore_agent(checkpoint, agent)
    weights = agent.policy_network().get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def _raising_cartpole(once_file: str, at_step: int = 300) -> gym.Env:
    return FaultInjector(gym.make("CartPole-v1"), "raise", at_step=at_step, once_file=once_file)


@pytest.mark.parametrize("name", ["a2c", "reinforce", "ppo", "dqn"])
def test_training_survives_an_env_fault_and_counts_it(name, tmp_path):
    cls = get_agent_class(name)
    settings = {"hidden_sizes": [16], "num_envs": 2, "total_steps": 1500, "eval_every": 0}
    settings["stop_reward"] = None
    if name == "ppo":  # rollouts of 32 x 2 rows: minibatches that fit, fewer epochs
        settings.update(batch_size=32, n_epochs=2)
    if not cls.on_policy:  # 2 gradient steps per update, not the preset's 128: a fault test
        settings.update(learning_starts=100, train_frequency=8, batch_size=32, gradient_steps=2)
    run, cfg = resolve(cls, "CartPole-v1", overrides=settings)
    seed_everything(0)
    once = str(tmp_path / "struck")
    make = functools.partial(
        vectorize, [functools.partial(_raising_cartpole, once) for _ in range(2)], "sync"
    )
    envs = make()
    agent = cls(envs.single_observation_space, envs.single_action_space, cfg, seed=0)
    learned = []  # what every update learned from
    update = agent.update
    # (copies: the rollout's arrays are reused for the next one)
    agent.update = lambda batch: learned.append(batch._make(map(np.copy, batch))) or update(batch)
    result = learn(
        agent, "CartPole-v1", run, run_dir=tmp_path / "run", envs=envs, rebuild_envs=make
    )
    assert result.env_restarts == 1 and result.env_steps >= 1500
    assert int(agent.updates.numpy()) > 0
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        counts = [row["time/env_restarts"] for row in csv.DictReader(f)]
    assert [float(c) for c in counts if c] == [1.0]  # logged once, at the restart
    if cls.on_policy:
        assert_rollouts_hold_no_partial_episode_from_before_a_restart(learned)


def assert_rollouts_hold_no_partial_episode_from_before_a_restart(rollouts) -> None:
    """Every rollout row learned from is a real CartPole step of the episode it is in.

    A rollout that kept what was collected before a restart would hold a valid, unfinished
    row followed by the restart row (A2C: its return would bootstrap from the new envs), or
    an episode whose first part came from the broken envs (REINFORCE).
    """
    pairs = 0
    for rollout in rollouts:
        valid = rollout.valid.astype(bool)  # [T, N]
        ended = (rollout.terminated + rollout.truncated).astype(bool)
        cut = valid[:-1] & ~valid[1:] & ~ended[:-1]
        assert not cut.any(), f"rows {np.argwhere(cut).tolist()} were cut by a restart"
        # CartPole integrates with explicit Euler steps of 0.02 s: x' = x + 0.02 * x_dot
        # and theta' = theta + 0.02 * theta_dot, for consecutive rows of one episode.
        step = valid[:-1] & valid[1:] & ~ended[:-1]
        obs = rollout.obs.astype(np.float64)
        for pos, vel in ((0, 1), (2, 3)):
            expected = obs[:-1, :, pos] + 0.02 * obs[:-1, :, vel]
            np.testing.assert_allclose(obs[1:, :, pos][step], expected[step], atol=1e-5)
        pairs += int(step.sum())
    assert pairs > 100, "too few consecutive rows to check"

"""The training loops of rlkit.loops (and rlkit.experiment.learn) on CartPole, tiny budgets.

Updates are counted by wrapping ``agent.update``; learning_starts is set beyond the budget
where a test is about the data path only, so that no update step is ever compiled.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from rlkit import loops
from rlkit.agents import A2C, DQN, A2CConfig, DQNConfig, Reinforce, ReinforceConfig
from rlkit.config import RunConfig
from rlkit.envs import make_vector_env
from rlkit.experiment import TrainResult, learn
from rlkit.logger import Logger
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner
from rlkit.types import Transition

ENV_ID = "CartPole-v1"
SMALL = {"hidden_sizes": (8,)}


def make_runner(num_envs: int = 1, max_episode_steps: int | None = None) -> VectorRunner:
    kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    return VectorRunner(make_vector_env(ENV_ID, num_envs, **kwargs))


def build(cls, runner: VectorRunner, config):
    keras.utils.set_random_seed(0)
    return cls(runner.observation_space, runner.action_space, config, seed=0)


def record_updates(agent, runner: VectorRunner | None = None) -> list[dict]:
    """Wrap ``agent.update``: each call appends the env steps so far and the batch shape."""
    calls: list[dict] = []
    update = agent.update

    def counted(batch):
        calls.append(
            {
                "env_steps": None if runner is None else runner.env_steps,
                "shape": np.shape(batch.reward),
                "valid": None if not hasattr(batch, "valid") else np.array(batch.valid),
                "terminated": np.array(batch.terminated),
                "truncated": np.array(batch.truncated),
            }
        )
        return update(batch)

    agent.update = counted
    return calls


def record_steps(runner: VectorRunner) -> list[Transition]:
    """Wrap ``runner.step``: keep a copy of every transition it hands out."""
    seen: list[Transition] = []
    step = runner.step

    def recorded(actions):
        transition, obs = step(actions)
        seen.append(Transition(*(np.array(x, copy=True) for x in transition)))
        return transition, obs

    runner.step = recorded
    return seen


def off_policy(config: DQNConfig, num_envs: int, total_steps: int, callback=None, **env_kwargs):
    runner = make_runner(num_envs, **env_kwargs)
    agent = build(DQN, runner, config)
    buffer = ReplayBuffer(
        config.buffer_size, num_envs, runner.observation_space, runner.action_space, seed=0
    )
    calls = record_updates(agent, runner)
    logger = Logger(None, total_steps, 10_000, verbose=0)
    loops.train_off_policy(agent, runner, buffer, logger, RunConfig(total_steps), callback)
    runner.close()
    return agent, runner, buffer, calls


# -- off-policy ------------------------------------------------------------------------------


def test_off_policy_update_schedule():
    # Updates at env steps 20, 24, ..., 60: (60 - 20) / 4 + 1 = 11 calls of 2 fused steps.
    config = DQNConfig(
        learning_starts=20,
        train_frequency=4,
        gradient_steps=2,
        batch_size=8,
        buffer_size=500,
        **SMALL,
    )
    agent, runner, _, calls = off_policy(config, num_envs=1, total_steps=60)
    assert runner.env_steps == 60
    assert [c["env_steps"] for c in calls] == list(range(20, 61, 4))
    assert all(c["shape"] == (2, 8) for c in calls)
    assert int(agent.updates.numpy()) == 22


def test_off_policy_fuses_overdue_updates_with_several_envs():
    # 2 envs add 2 env steps per vector step (1 while one resets): with train_frequency 1
    # an update is often 2 steps overdue, and both gradient steps go into one call.
    config = DQNConfig(
        learning_starts=10,
        train_frequency=1,
        gradient_steps=3,
        batch_size=4,
        buffer_size=200,
        **SMALL,
    )
    agent, runner, _, calls = off_policy(config, num_envs=2, total_steps=40)
    final = runner.env_steps
    assert 40 <= final <= 41
    # Every env step from 10 to the end is one train_frequency period: 3 gradient steps each.
    assert int(agent.updates.numpy()) == 3 * (final - 10 + 1)
    assert sum(c["shape"][0] for c in calls) == 3 * (final - 10 + 1)
    assert all(c["shape"][1:] == (4,) and c["shape"][0] % 3 == 0 for c in calls)
    assert any(c["shape"][0] == 6 for c in calls)  # some calls fused two periods
    assert calls[0]["env_steps"] in (10, 11)


def test_off_policy_never_adds_autoreset_rows_as_valid():
    # Episodes cut at 6 steps (and CartPole's own terminations): many autoreset rows.
    config = DQNConfig(learning_starts=10_000, buffer_size=500, **SMALL)
    runner = make_runner(2, max_episode_steps=6)
    agent = build(DQN, runner, config)
    buffer = ReplayBuffer(500, 2, runner.observation_space, runner.action_space, seed=0)
    added: list[Transition] = []
    add = buffer.add
    buffer.add = lambda t: (added.append(Transition(*(np.array(x) for x in t))), add(t))[1]
    loops.train_off_policy(agent, runner, buffer, Logger(None, 80, 10_000, 0), RunConfig(80))
    runner.close()
    assert runner.env_steps >= 80
    assert sum(int(t.valid.sum()) for t in added) == runner.env_steps
    ends = 0
    for i in range(2):
        for prev, cur in zip(added, added[1:], strict=False):
            ended = bool(prev.valid[i] and (prev.terminated[i] or prev.truncated[i]))
            ends += ended
            # The row after an episode's end is its autoreset row, and only that one.
            assert bool(cur.valid[i]) == (not ended)
            if cur.valid[i]:  # a real transition continues from the previous one
                np.testing.assert_array_equal(cur.obs[i], prev.next_obs[i])
    assert ends >= 10
    assert any(t.truncated[t.valid].any() for t in added)
    # Sampled transitions are real ones (never an autoreset row, whose obs is a final
    # observation), with the true next observation, final ones included.
    real = {tuple(t.obs[i]): t.next_obs[i] for t in added for i in range(2) if t.valid[i]}
    batch = buffer.sample(256)
    for obs, next_obs in zip(batch.obs, batch.next_obs, strict=True):
        assert tuple(obs) in real
        np.testing.assert_array_equal(next_obs, real[tuple(obs)])


def test_epsilon_schedule_counts_acting_steps():
    # exploration_steps counts acting steps over all envs, the autoreset steps included
    # (one per episode); the runner's env_steps counts only real transitions.
    config = DQNConfig(learning_starts=10_000, exploration_steps=1000, **SMALL)
    agent, runner, _, calls = off_policy(config, 1, 60, max_episode_steps=5)
    if calls or runner.episodes < 5:
        pytest.fail("precondition: no updates and several episodes")
    # Every finished episode costs one autoreset step, except a last one that ended on the
    # final step of the budget.
    assert runner.env_steps + runner.episodes - 1 <= agent.explore_policy.step
    assert agent.explore_policy.step <= runner.env_steps + runner.episodes


# -- on-policy -------------------------------------------------------------------------------


def test_on_policy_a2c_updates_once_per_rollout():
    runner = make_runner(2)
    agent = build(A2C, runner, A2CConfig(n_steps=5, **SMALL))
    calls = record_updates(agent, runner)
    steps = record_steps(runner)
    loops.train_on_policy(agent, runner, Logger(None, 40, 10_000, 0), RunConfig(40))
    runner.close()
    # The budget ends on an update: at the first full rollout that reaches 40 env steps.
    assert 40 <= runner.env_steps < 40 + 5 * 2
    assert len(steps) >= 20 and len(steps) % 5 == 0
    assert len(calls) == len(steps) // 5
    assert int(agent.updates.numpy()) == len(calls)
    assert all(c["shape"] == (5, 2) for c in calls)
    # Each rollout's valid mask is exactly the runner's, rollout by rollout.
    for k, call in enumerate(calls):
        expected = np.stack([t.valid for t in steps[5 * k : 5 * k + 5]])
        np.testing.assert_array_equal(call["valid"], expected)


def test_on_policy_reinforce_updates_on_whole_episodes():
    runner = make_runner(1, max_episode_steps=10)
    config = ReinforceConfig(episodes_per_update=2, **SMALL)
    agent = build(Reinforce, runner, config)
    calls = record_updates(agent, runner)
    logger = Logger(None, 60, 10_000, 0)
    loops.train_on_policy(agent, runner, logger, RunConfig(60))
    runner.close()
    assert runner.env_steps == 60
    assert runner.episodes >= 6
    assert len(calls) == runner.episodes // 2
    assert int(agent.updates.numpy()) == len(calls)
    lengths = []
    for call in calls:
        assert call["shape"][1] == 2
        valid = call["valid"]
        for e in range(2):
            n = int(valid[:, e].sum())
            assert valid[:n, e].all() and not valid[n:, e].any()  # padding at the end only
            # Only the last row ends the episode (a time-limit step may be both).
            assert call["terminated"][n - 1, e] or call["truncated"][n - 1, e]
            assert not call["terminated"][: n - 1, e].any()
            assert not call["truncated"][: n - 1, e].any()
            lengths.append(n)
    assert lengths == list(logger.lengths)[: len(lengths)]


# -- stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("on_policy", [False, True])
def test_callback_returning_false_stops_the_loop(on_policy):
    seen: list[int] = []

    def callback(env_steps: int) -> bool:
        seen.append(env_steps)
        return env_steps < 25

    runner = make_runner(1)
    logger = Logger(None, 1000, 10_000, 0)
    if on_policy:  # rollouts longer than the run: no update is compiled
        agent = build(A2C, runner, A2CConfig(n_steps=500, **SMALL))
        loops.train_on_policy(agent, runner, logger, RunConfig(1000), callback=callback)
    else:
        agent = build(DQN, runner, DQNConfig(learning_starts=10_000, **SMALL))
        buffer = ReplayBuffer(500, 1, runner.observation_space, runner.action_space)
        loops.train_off_policy(agent, runner, buffer, logger, RunConfig(1000), callback)
    runner.close()
    assert runner.env_steps == 25
    assert seen[-1] == 25 and seen.count(25) == 1
    assert seen == sorted(seen) and seen[0] in (0, 1)


def blas_threads() -> dict[str, int]:
    """The thread count of each BLAS library loaded (numpy's OpenBLAS in the wheels)."""
    from threadpoolctl import threadpool_info

    return {x["filepath"]: x["num_threads"] for x in threadpool_info() if x["user_api"] == "blas"}


def test_the_loop_runs_numpys_products_on_one_blas_thread_and_restores_them():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine
        before = blas_threads()
        if not before or max(before.values()) < 2:
            pytest.skip("numpy's BLAS here cannot run on 2 threads")
        inside: list[dict[str, int]] = []

        def callback(env_steps: int) -> bool:
            inside.append(blas_threads())
            return env_steps < 5

        runner = make_runner(1)
        agent = build(A2C, runner, A2CConfig(n_steps=500, **SMALL))
        logger = Logger(None, 1000, 10_000, 0)
        loops.train_on_policy(agent, runner, logger, RunConfig(1000), callback=callback)
        runner.close()
        assert inside and all(set(threads.values()) == {1} for threads in inside)
        after = blas_threads()  # lifted when training ends
        assert {lib: after[lib] for lib in before} == before


# -- learn() ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "config", "expected_updates"),
    [
        # updates at env steps 30, 40, ..., 80
        (DQN, DQNConfig(learning_starts=30, train_frequency=10, batch_size=8, **SMALL), 6),
        (A2C, A2CConfig(n_steps=8, **SMALL), None),
    ],
    ids=["dqn", "a2c"],
)
def test_learn_runs_to_the_step_budget(cls, config, expected_updates):
    runner_probe = make_runner(1)
    agent = build(cls, runner_probe, config)
    runner_probe.close()
    calls = record_updates(agent)
    result = learn(agent, ENV_ID, RunConfig(total_steps=80, seed=3))
    assert isinstance(result, TrainResult)
    if cls.on_policy:  # the budget ends on an update, at most one rollout later
        assert 80 <= result.env_steps < 80 + 8
    else:
        assert result.env_steps == 80
    assert result.episodes >= 1
    assert int(agent.updates.numpy()) == len(calls)
    if expected_updates is not None:
        assert len(calls) == expected_updates
    else:  # one rollout per 8 vector steps; 80 valid steps take 80 + (autoresets) of them
        assert len(calls) == (result.env_steps + result.episodes) // 8
        assert all(c["shape"] == (8, 1) for c in calls)


def test_train_runs_the_agents_own_storage_schedule_and_feedback():
    # One env, so env_steps counts 1 a step (0 on autoreset rows): updates fall exactly on
    # learning_starts and every train_frequency after it, as the agent's schedule says.
    runner = make_runner(1)
    config = DQNConfig(
        learning_starts=40, train_frequency=20, batch_size=8, buffer_size=1_000, **SMALL
    )
    agent = build(DQN, runner, config)
    storage = agent.make_storage(
        runner.num_envs, runner.observation_space, runner.action_space, seed=0
    )
    assert isinstance(storage, ReplayBuffer) and storage.capacity == 1_000
    calls = record_updates(agent, runner)
    fed_back = []
    agent.after_update = lambda s, batch: fed_back.append((s, np.shape(batch.indices)))
    schedule: dict = {}
    logger = Logger(None, 100, 10_000, verbose=0)
    loops.train(agent, runner, storage, logger, RunConfig(100), schedule=schedule)
    assert [c["env_steps"] for c in calls] == [40, 60, 80, 100]
    assert fed_back == [(storage, (1, 8))] * 4  # the storage gets each batch's indices back
    assert schedule == {"next_update": 120}  # what a checkpoint saves


def test_train_acts_through_the_agent_and_steps_the_runner():
    runner = make_runner(2)
    agent = build(A2C, runner, A2CConfig(n_steps=5, **SMALL))
    acted = []
    act = agent.act

    def counted_act(obs, *, explore):
        acted.append(explore)
        return act(obs, explore=explore)

    agent.act = counted_act
    seen = record_steps(runner)
    storage = agent.make_storage(runner.num_envs, runner.observation_space, runner.action_space)
    calls = record_updates(agent, runner)
    loops.train(agent, runner, storage, Logger(None, 40, 10_000, 0), RunConfig(40))
    assert len(acted) == len(seen) and all(acted)  # the loop acts, exploring, once a step
    assert len(seen) == 5 * len(calls)  # the budget ends on an update: whole rollouts only
    assert all(c["shape"] == (5, 2) for c in calls)

"""rlkit.distributed: Ray rollout workers in real processes, against the local runner.

Ray is started once per test session (``ray.init(num_cpus=2)``); every test that needs it
is skipped when Ray is not installed.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import pytest

from rlkit import loops
from rlkit.agents import A2C, DQN, A2CConfig, DQNConfig, Reinforce, ReinforceConfig
from rlkit.config import RunConfig
from rlkit.envs import make_vector_env
from rlkit.envs.testing import FaultInjector
from rlkit.errors import EnvWorkerError
from rlkit.logger import Logger
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner
from rlkit.types import Transition

pytestmark = pytest.mark.distributed

ENV_ID = "CartPole-v1"
SMALL = {"hidden_sizes": (8,)}


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    # Tests run from the checkout (PYTHONPATH); the actors inherit the environment.
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    # The crashing env factory below lives in this test module, which the actors cannot
    # import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def cartpole(max_episode_steps: int = 20):
    return functools.partial(make_vector_env, ENV_ID, max_episode_steps=max_episode_steps)


def ray_runner(make_envs, **kwargs):
    from rlkit.distributed import RayRunner

    return RayRunner(make_envs, **{"num_workers": 2, "envs_per_worker": 2, **kwargs})


def build(cls, space_runner, config):
    keras.utils.set_random_seed(0)
    return cls(space_runner.observation_space, space_runner.action_space, config, seed=0)


def copy(transition: Transition) -> Transition:
    return Transition(*(np.array(x, copy=True) for x in transition))


def collect_off_policy(runner, agent, total_steps: int) -> list[Transition]:
    """Run the off-policy loop without updates; return every transition it stored."""
    buffer = ReplayBuffer(1000, runner.num_envs, runner.observation_space, runner.action_space)
    added: list[Transition] = []
    add = buffer.add

    def recorded(transition):
        assert all(np.asarray(x).flags.writeable for x in transition)  # copies, never Ray's
        added.append(copy(transition))
        add(transition)

    buffer.add = recorded
    run = RunConfig(total_steps=total_steps, seed=7)
    loops.train_off_policy(agent, runner, buffer, Logger(None, total_steps, 10**6, 0), run)
    return added


# -- same data as the local runner -------------------------------------------------------------


def test_two_workers_collect_the_local_runners_transitions(ray_session):
    # A greedy policy with fixed weights (epsilon 0, no update before the end): both runners
    # must store exactly the same transitions, autoreset rows and truncations included.
    config = DQNConfig(
        learning_starts=10**6, exploration_initial_eps=0.0, exploration_final_eps=0.0, **SMALL
    )
    local = VectorRunner(cartpole()(4))
    agent = build(DQN, local, config)
    expected = collect_off_policy(local, agent, 300)
    local.close()
    agent.explore_policy.step = 0
    runner = ray_runner(cartpole(), chunk_steps=16, max_weight_lag=1)
    try:
        got = collect_off_policy(runner, agent, 300)
    finally:
        runner.close()
    assert len(got) == len(expected) > 16 * 4  # several chunks
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        for name in Transition._fields:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), f"{name} @ {k}")
    assert runner.env_steps == local.env_steps and runner.episodes == local.episodes
    assert sum(t.truncated.sum() for t in got) > 0 and sum((~t.valid).sum() for t in got) > 0
    # The epsilon schedule moved on as if the learner had acted: N per vector step.
    assert agent.explore_policy.step == 4 * len(got)


def test_step_with_given_actions_matches_the_local_runner(ray_session):
    actions = np.random.default_rng(3).integers(0, 2, size=(60, 4))
    local = VectorRunner(cartpole(12)(4))
    runner = ray_runner(cartpole(12))
    try:
        for r in (local, runner):
            np.testing.assert_array_equal(r.reset(seed=5), local._obs)
        for a in actions:
            expected, _ = local.step(a)
            got, obs = runner.step(a)
            for name in Transition._fields:
                np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
        np.testing.assert_array_equal(
            runner.pop_episode_stats().returns, local.pop_episode_stats().returns
        )
        assert runner.episodes == local.episodes > 0
    finally:
        runner.close()
        local.close()


# -- weights versions --------------------------------------------------------------------------


def test_a2c_collects_every_rollout_with_the_newest_weights(ray_session):
    runner = ray_runner(cartpole(100), chunk_steps=5)
    agent = build(A2C, runner, A2CConfig(n_steps=5, **SMALL))
    lags, versions = [], []
    update = agent.update

    def checked(batch):
        lags.append(runner.weights_lag)
        versions.append(int(agent.updates.numpy()))
        return update(batch)

    agent.update = checked
    try:
        loops.train_on_policy(agent, runner, Logger(None, 400, 10**6, 0), RunConfig(400))
    finally:
        runner.close()
    assert len(lags) >= 400 // 20
    assert lags == [0] * len(lags)  # synchronous: no rollout acted with old weights
    assert runner.broadcasts == len(lags)  # one put per update (chunk k uses version k)


def test_dqn_collection_lags_by_a_bounded_number_of_versions(ray_session):
    # One update (2 gradient steps) per 16 env steps, chunks of 8 rows x 4 envs: two updates
    # per chunk. A chunk collected one ahead acts with weights at most two chunks old.
    config = DQNConfig(
        learning_starts=64, train_frequency=16, gradient_steps=2, batch_size=8, **SMALL
    )
    runner = ray_runner(cartpole(50), chunk_steps=8, max_weight_lag=1)
    agent = build(DQN, runner, config)
    lags = []
    buffer = ReplayBuffer(1000, 4, runner.observation_space, runner.action_space)

    def callback(env_steps):
        if runner._row == 1:  # first row of a chunk
            lags.append(runner.weights_lag)
        return True

    try:
        loops.train_off_policy(
            agent, runner, buffer, Logger(None, 600, 10**6, 0), RunConfig(600), callback
        )
    finally:
        runner.close()
    assert int(agent.updates.numpy()) > 40
    assert max(lags) > 0  # collected ahead while the learner trained
    assert max(lags) <= 2 * 2 * 2  # two chunks of two updates of two gradient steps
    assert runner.broadcasts <= len(lags) + 1


# -- faults ------------------------------------------------------------------------------------


def _crashing_cartpole(num_envs: int, crash_at: int, marker: str | None, fault: str = "exit"):
    """CartPoles whose ``crash_at``-th step breaks (``FaultInjector``), once per ``marker``."""

    def make():
        return FaultInjector(gym.make(ENV_ID), fault, at_step=crash_at, once_file=marker)

    return gym.vector.SyncVectorEnv(
        [make] * num_envs, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP
    )


@pytest.mark.parametrize(
    ("agent_cls", "fault"), [(A2C, "exit"), (Reinforce, "exit"), (DQN, "exit"), (A2C, "raise")]
)
def test_a_worker_killed_mid_run_is_replaced_and_training_finishes(
    ray_session, tmp_path, agent_cls, fault
):
    # "exit": the actor's process dies (os._exit); "raise": an env raises inside the
    # actor, which then takes itself down so that Ray restarts it.
    marker = str(tmp_path / "crashed")
    make = functools.partial(_crashing_cartpole, crash_at=150, marker=marker, fault=fault)
    runner = ray_runner(make, chunk_steps=8, max_weight_lag=0 if agent_cls.on_policy else 1)
    configs = {
        A2C: A2CConfig(n_steps=8, **SMALL),
        Reinforce: ReinforceConfig(episodes_per_update=4, **SMALL),
        DQN: DQNConfig(learning_starts=100, train_frequency=32, batch_size=8, **SMALL),
    }
    agent = build(agent_cls, runner, configs[agent_cls])
    logger = Logger(None, 1500, 10**6, 0)
    try:
        pids = runner.worker_pids()
        if agent_cls.on_policy:
            loops.train_on_policy(agent, runner, logger, RunConfig(1500))
        else:
            buffer = ReplayBuffer(2000, 4, runner.observation_space, runner.action_space)
            loops.train_off_policy(agent, runner, buffer, logger, RunConfig(1500))
        new_pids = runner.worker_pids()
    finally:
        runner.close()
    assert Path(marker).exists()  # a worker did die
    assert runner.restarts == 1
    assert runner.env_steps >= 1500
    assert len(set(pids) - set(new_pids)) == 1  # exactly one actor process was replaced
    assert int(agent.updates.numpy()) > 0


def test_workers_that_keep_crashing_end_the_run_with_a_clear_error(ray_session):
    make = functools.partial(_crashing_cartpole, crash_at=30, marker=None)
    runner = ray_runner(make, num_workers=1, chunk_steps=8, max_restarts=2)
    agent = build(A2C, runner, A2CConfig(n_steps=8, **SMALL))
    try:
        with pytest.raises(EnvWorkerError, match="max_env_restarts=2"):
            loops.train_on_policy(agent, runner, Logger(None, 500, 10**6, 0), RunConfig(500))
    finally:
        runner.close()
    assert runner.restarts == 3


# -- the CLI and learn() -------------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["dqn", "double_dqn", "dueling_dqn", "reinforce", "a2c"])
def test_cli_trains_every_agent_with_ray_workers(ray_session, tmp_path, agent):
    import rlkit.train

    settings = {"runner": "ray", "num_workers": 2, "num_envs": 2, "eval_episodes": 1}
    if agent.endswith("dqn"):
        settings.update(learning_starts=200, train_frequency=64, gradient_steps=4)
    run_dir = rlkit.train.run(
        agent=agent, env=ENV_ID, total_steps=600, overrides=settings, run_dir=tmp_path / agent
    )
    progress = (run_dir / "progress.csv").read_text().splitlines()
    header = progress[0].split(",")
    steps = [float(row.split(",")[header.index("time/env_steps")]) for row in progress[1:]]
    assert max(steps) >= 600
    assert (run_dir / "policy" / "policy.json").exists()
    assert "runner: ray" in (run_dir / "config.yaml").read_text()


def test_missing_ray_is_a_clear_error(monkeypatch, capsys):
    import rlkit.train

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = rlkit.train.main(
        ["--agent", "a2c", "--env", ENV_ID, "--runner", "ray", "--total-steps", "100"]
    )
    assert code == 2
    assert 'pip install "rlkit[distributed]"' in capsys.readouterr().err


@pytest.mark.parametrize("agent", ["a2c", "dqn"])
def test_a_ray_run_resumes_from_its_checkpoint(ray_session, tmp_path, agent):
    import rlkit.train

    settings = {"runner": "ray", "num_workers": 2, "num_envs": 2, "eval_episodes": 1}
    settings["checkpoint_every"] = 300
    if agent == "dqn":
        settings.update(learning_starts=200, train_frequency=64, gradient_steps=4)
    run_dir = rlkit.train.run(
        agent=agent, env=ENV_ID, total_steps=600, overrides=settings, run_dir=tmp_path / agent
    )
    first = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert rlkit.train.main(["--resume", str(run_dir), "--total-steps", "1200", "--quiet"]) == 0
    after = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert int(after[-1].removeprefix("step_")) >= 1200 > int(first[-1].removeprefix("step_"))
    progress = (run_dir / "progress.csv").read_text().splitlines()
    header = progress[0].split(",")
    steps = [float(row.split(",")[header.index("time/env_steps")]) for row in progress[1:]]
    assert steps == sorted(steps) and steps[-1] >= 1200  # one CSV, continued, not restarted
    assert "runner: ray" in (run_dir / "config.yaml").read_text()


# -- the worker's acting policy (no Ray needed) ----------------------------------------------


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_a_cnn_acting_policy_is_built_once_and_loads_each_new_version(mixed_precision):
    import dataclasses

    from rlkit.distributed.acting import ActingPolicy, take_snapshot
    from rlkit.types import Rollout

    image = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)
    cfg = dataclasses.replace(A2CConfig(), hidden_sizes=(32,), mixed_precision=mixed_precision)
    agent = A2C(image, gym.spaces.Discrete(3), cfg, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (5, *image.shape), dtype=np.uint8)
    policy = ActingPolicy(take_snapshot(agent), np.random.default_rng(1))
    network = policy.network
    np.testing.assert_allclose(policy.scores(obs), agent.logits_and_values(obs)[0], atol=1e-6)
    before = policy.scores(obs)
    zeros = np.zeros((2, 3), np.float32)
    agent.update(
        Rollout(
            rng.integers(0, 256, (2, 3, *image.shape), dtype=np.uint8),
            rng.integers(0, 3, (2, 3)),
            rng.normal(size=(2, 3)).astype(np.float32),
            zeros,
            zeros,
            np.ones((2, 3), np.float32),
            rng.integers(0, 256, (3, *image.shape), dtype=np.uint8),
        )
    )
    policy.load(take_snapshot(agent))
    assert policy.network is network  # the same network, new weights
    assert not np.array_equal(policy.scores(obs), before)
    np.testing.assert_allclose(policy.scores(obs), agent.logits_and_values(obs)[0], atol=1e-6)
    assert policy._forward.experimental_get_tracing_count() == 1
    other = dataclasses.replace(take_snapshot(agent), spec={**network.spec, "num_actions": 4})
    with pytest.raises(ValueError, match="another network"):
        policy.load(other)

"""rlkit.distributed: Ray rollout workers in real processes, against the local runner.

Ray is started once per test session (``ray.init(num_cpus=2)``); one test starts its own in
a subprocess (``RayRunner`` starting and stopping Ray), and a CLI subprocess joins the
session's cluster given by ``--ray-address``. Every test that needs Ray is skipped when it
is not installed (CI installs it and fails on such skips).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import pytest

from rlkit import loops
from rlkit.agents import (
    A2C,
    AGENTS,
    DQN,
    PPO,
    A2CConfig,
    DQNConfig,
    PPOConfig,
    Reinforce,
    ReinforceConfig,
)
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
def ray_cluster():
    """This session's Ray cluster (``ray.init``'s context: its address, its session folder)."""
    ray = pytest.importorskip("ray")
    # Tests run from the checkout (PYTHONPATH); the actors inherit the environment.
    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    # The crashing env factory below lives in this test module, which the actors cannot
    # import: ship it by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield context
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_session(ray_cluster):
    """The ``ray`` module, initialized once per session."""
    import ray

    return ray


def cartpole(max_episode_steps: int = 20):
    return functools.partial(make_vector_env, ENV_ID, max_episode_steps=max_episode_steps)


def ray_runner(env_factory, **kwargs):
    from rlkit.distributed import RayRunner

    return RayRunner(env_factory, **{"num_workers": 2, "envs_per_worker": 2, **kwargs})


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


@pytest.mark.parametrize(
    "config",
    [A2CConfig(n_steps=5, **SMALL), PPOConfig(n_steps=5, batch_size=10, n_epochs=2, **SMALL)],
    ids=["a2c", "ppo"],
)
def test_a2c_and_ppo_collect_every_rollout_with_the_newest_weights(ray_session, config):
    runner = ray_runner(cartpole(100), chunk_steps=5)
    agent = build(A2C if isinstance(config, A2CConfig) else PPO, runner, config)
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


@pytest.fixture(scope="module")
def ray_run(ray_session, tmp_path_factory) -> Callable[[str], Path]:
    """``agent -> run folder`` of a 600-step ``rlkit.train.run`` with 2 Ray workers,
    checkpointing every 300 steps; trained on first use, shared by the tests below."""
    import rlkit.train

    runs: dict[str, Path] = {}

    def run(agent: str) -> Path:
        if agent not in runs:
            settings = {"runner": "ray", "num_workers": 2, "num_envs": 2, "final_eval_episodes": 1}
            settings["checkpoint_every"] = 300
            if agent.endswith("dqn") or agent == "rainbow":
                settings.update(learning_starts=200, train_frequency=64, gradient_steps=4)
            if agent == "rainbow":  # workers act epsilon-greedy: no noisy nets with Ray
                settings.update(noisy=False)
            if agent == "ppo":  # the CartPole preset's 256-row minibatches need 8 envs
                settings.update(batch_size=32, n_epochs=2)
            runs[agent] = rlkit.train.run(
                agent=agent,
                env=ENV_ID,
                total_steps=600,
                overrides=settings,
                run_dir=tmp_path_factory.mktemp("ray") / agent,
            )
        return runs[agent]

    return run


def env_steps_logged(run_dir: Path) -> list[float]:
    progress = (run_dir / "progress.csv").read_text().splitlines()
    header = progress[0].split(",")
    return [float(row.split(",")[header.index("time/env_steps")]) for row in progress[1:]]


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_cli_trains_every_agent_with_ray_workers(ray_run, agent):
    run_dir = ray_run(agent)
    assert max(env_steps_logged(run_dir)) >= 600
    assert (run_dir / "policy" / "policy.json").exists()
    assert "runner: ray" in (run_dir / "config.yaml").read_text()


def test_ppo_trains_on_pendulum_with_ray_workers(ray_session, tmp_path):
    # Box actions through the actors: sampled there with the preset's gSDE (each worker
    # draws its own exploration matrices), clipped into the env's bounds by the worker's
    # runner, stored as sampled.
    import rlkit.train

    settings = {"runner": "ray", "num_workers": 2, "num_envs": 1, "final_eval_episodes": 1}
    settings.update(n_steps=50, batch_size=50, n_epochs=2, hidden_sizes=[8])
    run_dir = rlkit.train.run(
        agent="ppo", env="Pendulum-v1", total_steps=400, overrides=settings, run_dir=tmp_path / "r"
    )
    assert max(env_steps_logged(run_dir)) >= 400
    config = (run_dir / "config.yaml").read_text()
    assert "runner: ray" in config and "use_sde: true" in config
    header = (run_dir / "progress.csv").read_text().splitlines()[0].split(",")
    assert "train/std" in header and "train/approx_kl" in header
    results = json.loads((run_dir / "results.json").read_text())
    assert results["env_id"] == "Pendulum-v1" and np.isfinite(results["mean_reward"])


def test_missing_ray_is_a_clear_error(monkeypatch, capsys):
    import rlkit.train

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = rlkit.train.main(
        ["--agent", "a2c", "--env", ENV_ID, "--runner", "ray", "--total-steps", "100"]
    )
    assert code == 2
    assert 'pip install "rlkit[distributed]"' in capsys.readouterr().err


@pytest.mark.parametrize("agent", ["a2c", "dqn"])
def test_a_ray_run_resumes_from_its_checkpoint(ray_run, tmp_path, agent):
    import rlkit.train

    run_dir = tmp_path / agent  # a copy: the shared run stays as it was trained
    shutil.copytree(ray_run(agent), run_dir)
    first = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert rlkit.train.main(["--resume", str(run_dir), "--total-steps", "1200", "--quiet"]) == 0
    after = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert int(after[-1].removeprefix("step_")) >= 1200 > int(first[-1].removeprefix("step_"))
    steps = env_steps_logged(run_dir)
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


def test_a_minatar_dqn_worker_acts_in_numpy_from_its_snapshot():
    import dataclasses

    from rlkit.distributed.acting import ActingPolicy, take_snapshot
    from rlkit.types import Batch

    grids = gym.spaces.Box(0, 1, (10, 10, 4), bool)
    cfg = dataclasses.replace(DQNConfig(), hidden_sizes=(32,), batch_size=4, buffer_size=8)
    agent = DQN(grids, gym.spaces.Discrete(3), cfg, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.random((5, *grids.shape)) < 0.3
    policy = ActingPolicy(take_snapshot(agent), np.random.default_rng(1))
    assert policy.snapshot.numpy and policy.network is None  # no TensorFlow in the worker
    np.testing.assert_array_equal(policy.scores(obs), agent.q_values(obs))
    before = policy.scores(obs)
    agent.update(
        Batch(
            obs=rng.random((4, *grids.shape)) < 0.3,
            action=rng.integers(0, 3, 4),
            reward=rng.normal(size=4).astype(np.float32),
            next_obs=rng.random((4, *grids.shape)) < 0.3,
            terminated=None,
            truncated=None,
            discount=np.full(4, 0.99, np.float32),
            weights=np.ones(4, np.float32),
            indices=None,
        )
    )
    policy.load(take_snapshot(agent))
    assert not np.array_equal(policy.scores(obs), before)  # the update's weights
    np.testing.assert_array_equal(policy.scores(obs), agent.q_values(obs))
    tf_q = agent._q_fn(obs).numpy()  # the TF path, same weights
    np.testing.assert_allclose(policy.scores(obs), tf_q, rtol=1e-5, atol=1e-6)


# -- the documented promises, one by one --------------------------------------------------------


@pytest.mark.parametrize("max_weight_lag", [1, 2])
def test_dqn_data_is_at_most_max_weight_lag_broadcasts_old(ray_session, max_weight_lag):
    # README: "its data is at most that many weight broadcasts old". For every chunk handed
    # out, count the broadcasts of weights newer than the ones it was collected with.
    config = DQNConfig(
        learning_starts=64, train_frequency=16, gradient_steps=2, batch_size=8, **SMALL
    )
    runner = ray_runner(cartpole(50), chunk_steps=8, max_weight_lag=max_weight_lag)
    agent = build(DQN, runner, config)
    broadcast_versions: list[int] = []  # the learner's version at each broadcast, in order
    chunk_lags: list[int] = []  # per chunk: broadcasts newer than the weights it acted with
    act_and_step, calls = runner.act_and_step, []

    def recorded(agent_, obs):
        version, before = int(agent_.updates.numpy()), runner.broadcasts
        out = act_and_step(agent_, obs)
        assert runner.broadcasts - before in (0, 1)  # at most one put per collection
        if runner.broadcasts > before:
            broadcast_versions.append(version)
        if len(calls) % runner.chunk_steps == 0:  # this call handed out a chunk's first row
            acted = version - runner.weights_lag
            assert acted in broadcast_versions, (acted, broadcast_versions)
            chunk_lags.append(sum(v > acted for v in broadcast_versions))
        calls.append(version)
        return out

    runner.act_and_step = recorded
    buffer = ReplayBuffer(1000, 4, runner.observation_space, runner.action_space)
    try:
        loops.train_off_policy(agent, runner, buffer, Logger(None, 600, 10**6, 0), RunConfig(600))
    finally:
        runner.close()
    assert int(agent.updates.numpy()) > 40 and len(chunk_lags) >= 600 // 32
    assert set(chunk_lags) <= set(range(max_weight_lag + 1)), chunk_lags
    assert max(chunk_lags) == max_weight_lag  # collected ahead: the bound is reached


def _set_version(agent, version: int) -> None:
    """Weights whose greedy action is ``version % 2`` whatever the observation, tagged
    ``version`` (the update count): the actions a worker took tell which weights it used."""
    network = agent.policy_network()
    weights = [np.zeros_like(w) for w in network.get_weights()]
    assert weights[-1].shape == (2,)  # the Q head's bias
    weights[-1][version % 2] = 1.0
    network.set_weights(weights)
    network.refresh_numpy()
    agent.updates.assign(version)


def test_a_killed_workers_partial_chunk_is_dropped_and_it_gets_the_current_weights(
    ray_session, tmp_path
):
    # Two workers of two envs, chunks of 8 rows collected one ahead (max_weight_lag=1). Before
    # chunk k is handed out the learner moves to version k, so chunk k was collected with
    # version k - 1, except where a worker crashed: it is redone with the current weights.
    marker = str(tmp_path / "crashed")
    make = functools.partial(_crashing_cartpole, crash_at=20, marker=marker, fault="exit")
    runner = ray_runner(make, chunk_steps=8, max_weight_lag=1)
    greedy = DQNConfig(
        learning_starts=10**6, exploration_initial_eps=0.0, exploration_final_eps=0.0, **SMALL
    )
    agent = build(DQN, runner, greedy)
    chunks: list[list[Transition]] = []
    restarted: list[bool] = []
    try:
        pids = runner.worker_pids()
        obs = runner.reset(seed=0)
        for k in range(5):
            _set_version(agent, k)
            rows = []
            for t in range(8):
                transition, obs = runner.act_and_step(agent, obs)
                rows.append(copy(transition))
                restarted.append(runner.restarted)
                assert not runner.restarted or t == 0  # only a chunk's first row says so
            chunks.append(rows)
        new_pids = runner.worker_pids()
    finally:
        runner.close()
    assert Path(marker).exists() and runner.restarts == 1
    (crashed,) = [i for i in range(2) if pids[i] != new_pids[i]]
    mine = slice(2 * crashed, 2 * crashed + 2)  # the crashed worker's envs
    other = slice(2 * (1 - crashed), 2 * (1 - crashed) + 2)
    (k,) = [c for c in range(5) if restarted[8 * c]]
    assert k == 2  # each env's 20th step falls in chunk 2 (rows 16..23)

    def actions(rows, envs):
        return {int(a) for t in rows for a in t.action[envs][t.valid[envs]]}

    assert actions(chunks[0] + chunks[1], slice(None)) == {0}  # versions 0 and 0
    assert actions(chunks[k], other) == {(k - 1) % 2}  # collected ahead, as before
    assert actions(chunks[k], mine) == {k % 2}  # redone after the crash: the current weights
    # The partial chunk is gone: the redone rows start new episodes from a reset and chain
    # row to row; the rows before the crash never reach the learner.
    before, redone = chunks[k - 1][-1], chunks[k]
    assert not np.array_equal(redone[0].obs[mine], before.next_obs[mine])
    np.testing.assert_array_equal(redone[0].obs[other], before.next_obs[other])
    for a, b in zip(redone[:-1], redone[1:], strict=True):
        np.testing.assert_array_equal(b.obs, a.next_obs)
    assert runner.env_steps == sum(int(t.valid.sum()) for rows in chunks for t in rows)


def test_reinforce_collects_every_chunk_with_the_newest_weights(ray_session):
    runner = ray_runner(cartpole(30), chunk_steps=16)
    agent = build(Reinforce, runner, ReinforceConfig(episodes_per_update=2, **SMALL))
    lags, acted, newest = [], [], []
    act_and_step, calls = runner.act_and_step, [0]

    def recorded(agent_, obs):
        version = int(agent_.updates.numpy())
        out = act_and_step(agent_, obs)
        if calls[0] % runner.chunk_steps == 0:  # a chunk's first row
            lags.append(runner.weights_lag)
            acted.append(version - runner.weights_lag)
            newest.append(version)
        calls[0] += 1
        return out

    runner.act_and_step = recorded
    try:
        loops.train_on_policy(agent, runner, Logger(None, 800, 10**6, 0), RunConfig(800))
    finally:
        runner.close()
    assert int(agent.updates.numpy()) >= 5
    assert lags == [0] * len(lags) and acted == newest  # each chunk: the newest weights
    # Synchronous collection: one broadcast per chunk that follows an update, no more.
    assert runner.broadcasts == len(set(newest))


_RUN_WITHOUT_RAY_STARTED = """
import functools, os, sys, time
from pathlib import Path

import ray

from rlkit.distributed import RayRunner
from rlkit.envs import make_vector_env


def children():
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == os.getpid() and state != "Z":
            found.append(cmdline)
    return found


assert not ray.is_initialized()
runner = RayRunner(
    functools.partial(make_vector_env, "CartPole-v1"), num_workers=1, envs_per_worker=2
)
print("initialized", ray.is_initialized())
print("gcs_server child", any("gcs_server" in c for c in children()))
print("obs", runner.reset(seed=0).shape)
runner.close()
print("after close", ray.is_initialized())
deadline = time.monotonic() + 60
while children() and time.monotonic() < deadline:
    time.sleep(0.2)
print("children left", len(children()))
"""


def test_ray_runner_starts_ray_itself_and_stops_it(tmp_path):
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_RAY_STARTED],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "initialized True",
        "gcs_server child True",  # this process started a Ray instance of its own
        "obs (2, 4)",
        "after close False",
        "children left 0",  # and close() stopped every process of it
    ], out.stderr[-3000:]


def test_cli_joins_the_cluster_given_by_ray_address(ray_cluster, tmp_path):
    """The CLI, a process of its own, joins this session's running cluster as one more
    driver when given its address, and leaves it running."""
    import ray

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    address = ray_cluster.address_info["gcs_address"]
    session_dir = Path(ray_cluster.address_info["session_dir"])
    assert ":" in address and session_dir.is_dir(), (address, session_dir)
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", ENV_ID, "--runner", "ray", "--num-workers", "2"]
    argv += ["--num-envs", "2", "--ray-address", address, "--total-steps", "300"]
    argv += ["--final-eval-episodes", "0", "--run-dir", str(run_dir), "--quiet"]
    cli = subprocess.Popen(
        [sys.executable, "-m", "rlkit.train", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    _, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err[-3000:]
    assert "runner: ray" in (run_dir / "config.yaml").read_text()
    # The CLI was a driver of that cluster: Ray logged it in the cluster's session.
    drivers = [p.name for p in (session_dir / "logs").glob("python-core-driver-*.log")]
    assert any(name.endswith(f"_{cli.pid}.log") for name in drivers), drivers
    # And rlkit left the cluster it joined running: it still runs a new task.
    assert ray.get(ray.remote(lambda: 42).remote(), timeout=120) == 42

"""``vectorization: vector``: an env's own vectorized implementation, beside ``sync``.

CartPole-v1's vector entry point is gymnasium's numpy ``CartPoleVectorEnv``. It must keep
the contract the runner has with ``sync``: same spaces, NEXT_STEP autoreset rows masked
as invalid with the true final observation before them, episode statistics counted the
same way, observations checked, reproducible seeding, restarts after a fault, and the
run's settings (checkpoints and resume) working through the real CLI.
"""

from __future__ import annotations

import functools
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.vector import AutoresetMode

from rlkit import train
from rlkit.agents import get_agent_class
from rlkit.agents.common import seed_everything
from rlkit.config import resolve
from rlkit.envs import RewardNoise, make_vector_env, vector_entry_point_ids
from rlkit.errors import ConfigError, EnvSpaceError
from rlkit.experiment import learn
from rlkit.runner import VectorRunner

ENV = "CartPole-v1"
THETA_LIMIT = 12 * 2 * math.pi / 360  # CartPole's termination angle
X_LIMIT = 2.4


def balancing_actions(obs: np.ndarray) -> np.ndarray:
    """Push towards where the pole falls: keeps CartPole up for its 500 steps."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def align_start_states(sync: gym.vector.VectorEnv, vec: gym.vector.VectorEnv, rows) -> None:
    """Give the sync envs in ``rows`` the vector env's (float64) state of those envs."""
    for i in rows:
        sync.envs[i].unwrapped.state = vec.unwrapped.state[:, i].copy()


# -- spaces and wiring -----------------------------------------------------------------------
def test_spaces_and_autoreset_mode_match_sync():
    vec, sync = make_vector_env(ENV, 5, "vector"), make_vector_env(ENV, 5, "sync")
    assert type(vec.unwrapped).__name__ == "CartPoleVectorEnv"
    assert vec.num_envs == sync.num_envs == 5
    assert vec.single_observation_space == sync.single_observation_space
    assert vec.single_action_space == sync.single_action_space
    assert vec.observation_space == sync.observation_space
    assert vec.action_space == sync.action_space
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    runner = VectorRunner(vec)  # refuses any other autoreset mode
    assert runner.observation_space == sync.single_observation_space
    obs = runner.reset(seed=0)
    assert obs.shape == (5, 4) and obs.dtype == np.float32
    runner.close()
    sync.close()


def test_ids_with_a_vector_entry_point():
    ids = vector_entry_point_ids()
    assert "CartPole-v1" in ids and "Acrobot-v1" not in ids
    assert not any(i.startswith("ALE/") for i in ids)


# -- the runner's contract, side by side with sync -------------------------------------------
@pytest.mark.parametrize("vectorization", ["sync", "vector"])
def test_next_step_autoreset_row_follows_the_final_observation(vectorization):
    # Always pushing right topples the pole within ~10 steps in every env.
    runner = VectorRunner(make_vector_env(ENV, 3, vectorization))
    runner.reset(seed=1)
    ones = np.ones(3, np.int64)
    ended_at = {}
    for t in range(40):
        transition, obs = runner.step(ones)
        for i in np.flatnonzero(transition.terminated & transition.valid):
            final = transition.next_obs[i]  # the true final observation
            assert abs(final[0]) > X_LIMIT or abs(final[2]) > THETA_LIMIT
            ended_at.setdefault(i, t)
        for i, t_end in ended_at.items():
            if t == t_end + 1:  # the autoreset row: masked, a fresh start state after it
                assert not transition.valid[i]
                assert not transition.terminated[i] and not transition.truncated[i]
                assert np.all(np.abs(obs[i]) <= 0.05)
    assert sorted(ended_at) == [0, 1, 2]
    stats = runner.pop_episode_stats()
    # Each env's first episode has as many valid rows as its length, reward 1 per step.
    first = {i: t + 1 for i, t in ended_at.items()}
    assert set(first.values()) <= set(stats.lengths.tolist())
    np.testing.assert_array_equal(stats.returns, stats.lengths.astype(float))
    runner.close()


def test_same_transitions_and_episode_returns_as_sync_when_states_coincide():
    # The two draw their start states differently (see the seeding test below), so each
    # sync env is given the vector env's start state after every reset; from there the
    # float64 physics must agree bit for bit: observations, rewards, terminations, the
    # truncation at 500 steps, the masked autoreset rows and the episode statistics.
    n = 4
    vec, sync = make_vector_env(ENV, n, "vector"), make_vector_env(ENV, n, "sync")
    runner_v, runner_s = VectorRunner(vec), VectorRunner(sync)
    obs = runner_v.reset(seed=0)
    runner_s.reset(seed=0)
    align_start_states(sync, vec, range(n))
    rng = np.random.default_rng(0)
    for _ in range(1100):
        # envs 0-1 balance (two truncated 500-step episodes each), 2-3 act at random
        actions = np.where(np.arange(n) < 2, balancing_actions(obs), rng.integers(0, 2, n))
        tv, obs = runner_v.step(actions)
        ts, _ = runner_s.step(actions)
        np.testing.assert_array_equal(tv.valid, ts.valid)
        np.testing.assert_array_equal(tv.terminated, ts.terminated)
        np.testing.assert_array_equal(tv.truncated, ts.truncated)
        np.testing.assert_array_equal(tv.reward[tv.valid], ts.reward[ts.valid])
        np.testing.assert_array_equal(tv.next_obs[tv.valid], ts.next_obs[ts.valid])
        align_start_states(sync, vec, np.flatnonzero(~tv.valid))
    assert runner_v.env_steps == runner_s.env_steps
    stats_v, stats_s = runner_v.pop_episode_stats(), runner_s.pop_episode_stats()
    np.testing.assert_array_equal(stats_v.returns, stats_s.returns)
    np.testing.assert_array_equal(stats_v.lengths, stats_s.lengths)
    assert (stats_v.lengths == 500).sum() == 4 and len(stats_v.lengths) > 50
    runner_v.close()
    runner_s.close()


def test_kwargs_reach_the_vector_env():
    kwargs = {"max_episode_steps": 20, "sutton_barto_reward": True}
    runners = [VectorRunner(make_vector_env(ENV, 2, v, **kwargs)) for v in ("sync", "vector")]
    for runner in runners:
        obs = runner.reset(seed=0)
        rewards = []
        for _ in range(21):
            transition, obs = runner.step(balancing_actions(obs))
            rewards.append(transition.reward)
        # truncated after 20 steps; Sutton & Barto's reward: 0 per step, -1 on failure
        np.testing.assert_array_equal(transition.valid, [False, False])
        stats = runner.pop_episode_stats()
        np.testing.assert_array_equal(stats.lengths, [20, 20])
        np.testing.assert_array_equal(stats.returns, [0.0, 0.0])
        assert np.all(np.asarray(rewards) == 0.0)
        runner.close()


# -- seeding -----------------------------------------------------------------------------------
def stream(envs: gym.vector.VectorEnv, seed: int, steps: int = 300) -> np.ndarray:
    """Observations of ``steps`` steps with fixed random actions (many autoresets)."""
    obs, _ = envs.reset(seed=seed)
    actions = np.random.default_rng(99).integers(0, 2, (steps, envs.num_envs))
    out = [obs]
    for a in actions:
        out.append(envs.step(a)[0])
    return np.stack(out)


def test_vector_seeding_is_reproducible_and_differs_from_syncs():
    vec = make_vector_env(ENV, 3, "vector")
    first = stream(vec, 7)
    np.testing.assert_array_equal(first, stream(vec, 7))  # same seed, same stream
    assert not np.array_equal(first, stream(vec, 8))
    # One generator seeded 7 draws every start state as uniform(-0.05, 0.05, (4, N)): env
    # i gets draws i, N+i, 2N+i, 3N+i. sync's env i draws its 4 from a generator seeded 7+i.
    start = np.random.default_rng(7).uniform(-0.05, 0.05, (4, 3)).T.astype(np.float32)
    np.testing.assert_array_equal(first[0], start)
    sync_start, _ = make_vector_env(ENV, 3, "sync").reset(seed=7)
    np.testing.assert_array_equal(sync_start[0, 0], start[0, 0])  # the very first draw
    assert not np.array_equal(sync_start[1:], start[1:])
    # With one env the two coincide at the start (autoresets draw differently after).
    one_vec, _ = make_vector_env(ENV, 1, "vector").reset(seed=7)
    one_sync, _ = make_vector_env(ENV, 1, "sync").reset(seed=7)
    np.testing.assert_array_equal(one_vec, one_sync)


# -- observation checks and faults -------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*not within the observation space")  # sync's env checker
@pytest.mark.parametrize("vectorization", ["sync", "vector"])
def test_observations_outside_the_space_are_caught(vectorization):
    envs = make_vector_env(ENV, 2, vectorization)
    # reset bounds of 5-6: the cart starts beyond x = 4.8, outside the observation space
    with pytest.raises(EnvSpaceError, match="outside the declared bounds"):
        envs.reset(seed=0, options={"low": 5.0, "high": 6.0})


def test_the_vector_check_steps_through_after_its_first_steps():
    envs = make_vector_env(ENV, 2, "vector")
    envs.reset(seed=0)
    for _ in range(2):
        assert envs.step != envs.env.step
        envs.step(np.zeros(2, np.int64))
    assert envs.step == envs.env.step  # no wrapper call per step from here on


def test_a_failed_step_rebuilds_the_vector_env():
    envs = make_vector_env(ENV, 2, "vector")
    inner = envs.env

    def fail(actions):
        raise RuntimeError("physics exploded")

    inner.step = fail  # the wrapper steps its inner env: the first step fails
    runner = VectorRunner(envs, rebuild_envs=lambda: make_vector_env(ENV, 2, "vector"))
    runner.reset(seed=0)
    transition, obs = runner.step(np.zeros(2, np.int64))
    assert runner.restarted and runner.restarts == 1
    assert not transition.valid.any() and obs.shape == (2, 4)
    transition, _ = runner.step(np.zeros(2, np.int64))
    assert transition.valid.all() and not runner.restarted
    runner.close()


# -- errors --------------------------------------------------------------------------------------
def test_env_without_a_vector_entry_point_is_refused():
    assert gym.spec("Acrobot-v1").vector_entry_point is None
    a2c = get_agent_class("a2c")
    with pytest.raises(ConfigError, match="'Acrobot-v1' has none") as err:
        resolve(a2c, "Acrobot-v1", overrides={"vectorization": "vector"})
    assert "CartPole-v1" in str(err.value) and "sync" in str(err.value)
    with pytest.raises(ConfigError, match="'Acrobot-v1' has none"):
        make_vector_env("Acrobot-v1", 2, "vector")


def test_atari_is_pointed_to_ale():
    # ale-py registers its games with a vector entry point of its own, without rlkit's
    # preprocessing protocol: 'vector' refuses them and names 'ale'.
    a2c = get_agent_class("a2c")
    with pytest.raises(ConfigError, match="not for Atari.*use 'ale'"):
        resolve(a2c, "ALE/SpaceInvaders-v5", overrides={"vectorization": "vector"})
    with pytest.raises(ConfigError, match="not for Atari.*use 'ale'"):
        make_vector_env("ALE/SpaceInvaders-v5", 2, "vector")
    assert gym.spec("ALE/SpaceInvaders-v5").vector_entry_point is not None


def test_wrappers_are_refused():
    with pytest.raises(ConfigError, match="wrappers=.*cannot apply to vectorization 'vector'"):
        make_vector_env(ENV, 2, "vector", wrappers=[functools.partial(RewardNoise, std=1.0)])
    a2c = get_agent_class("a2c")
    with pytest.raises(ConfigError, match="reward_noise.*'vector'"):
        resolve(a2c, ENV, overrides={"vectorization": "vector", "reward_noise": [1.0, 1.0]})
    resolve(a2c, ENV, overrides={"vectorization": "sync", "reward_noise": [1.0, 1.0]})


def test_cli_refuses_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", "Acrobot-v1", "--set", "vectorization=vector"]
    assert train.main([*argv, "--run-dir", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Acrobot-v1" in err and "CartPole-v1" in err
    assert not run_dir.exists()


# -- training through the real entry points -----------------------------------------------------
def test_cli_a2c_run_and_resume_with_vector(tmp_path):
    run_dir = tmp_path / "run"
    base = [
        "--quiet",
        "--final-eval-episodes",
        "2",
        "--set",
        "vectorization=vector",
        "--set",
        "hidden_sizes=[16,16]",
        "--set",
        "log_interval=500",
    ]
    argv = ["--agent", "a2c", "--env", ENV, "--run-dir", str(run_dir), "--num-envs", "16"]
    assert train.main([*argv, "--total-steps", "1600", "--checkpoint-every", "800", *base]) == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["vectorization"] == "vector" and config["num_envs"] == 16
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train_env_steps"] >= 1600 and results["n_eval_episodes"] == 2
    lines = (run_dir / "progress.csv").read_text().splitlines()
    header = lines[0].split(",")
    returns = [row.split(",")[header.index("rollout/ep_rew_mean")] for row in lines[1:]]
    assert any(r not in ("", "nan") and float(r) > 0 for r in returns)
    assert train.main(["--resume", str(run_dir), "--total-steps", "3200", *base]) == 0
    steps = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert steps[-1] >= "step_000000003200"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["vectorization"] == "vector"


def train_a2c(total: int, run_dir, resume: bool = False):
    cls = get_agent_class("a2c")
    overrides = {
        "hidden_sizes": [16, 16],
        "num_envs": 8,
        "vectorization": "vector",
        "eval_every": 0,
        "stop_reward": None,
        "total_steps": total,
        "checkpoint_every": 800,
        "seed": 5,
    }
    run, cfg = resolve(cls, ENV, overrides=overrides)
    seed_everything(5)
    env = gym.make(ENV)
    agent = cls(env.observation_space, env.action_space, cfg, seed=5)
    result = learn(agent, ENV, run, run_dir=run_dir, resume=resume)
    return agent, result


def test_resume_with_vector_gives_bitwise_identical_weights(tmp_path):
    # 1,600 steps straight vs 800, a stop and a resume: the env reset after a checkpoint
    # is seeded from the step count, so the vector env's streams coincide too.
    straight, _ = train_a2c(1600, tmp_path / "straight")
    train_a2c(800, tmp_path / "split")
    resumed, result = train_a2c(1600, tmp_path / "split", resume=True)
    assert result.env_steps >= 1600
    for a, b in zip(
        straight.policy_network().get_weights(), resumed.policy_network().get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)

"""gSDE (generalized state-dependent exploration, ``use_sde``): the distribution against
numbers worked out by hand, the exploration matrices' schedule, the agents acting and
resuming with it, Ray workers acting with it, saved policies, and the refusals."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from rlkit import export, train
from rlkit.agents import get_agent_class
from rlkit.agents.common import seed_everything
from rlkit.config import resolve
from rlkit.distributed.acting import ActingPolicy, take_snapshot
from rlkit.distributions import SDE_VARIANCE_EPS, ActionDist, StateDependentNoise, gaussian_std
from rlkit.experiment import learn
from rlkit.policy_io import load_policy

LOG_2PI = math.log(2 * math.pi)
BOX = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
# features phi = [1, 2]; log-std [[log 1], [log 0.5]]: sigma^2 = 1 * 1 + 4 * 0.25 = 2.
PHI = np.array([[1.0, 2.0]], np.float32)
LOG_STD = np.log(np.array([[1.0], [0.5]], np.float32))


def test_log_prob_and_entropy_by_hand() -> None:
    dist = ActionDist.from_space(BOX)
    log_pi, entropy = dist.log_prob_entropy(
        tf.constant([[0.5]]), tf.constant([[1.5]]), tf.constant(LOG_STD), tf.constant(PHI)
    )
    var = 2.0 + SDE_VARIANCE_EPS
    want = -0.5 * 1.0**2 / var - 0.5 * math.log(var) - 0.5 * LOG_2PI  # -1.515512
    np.testing.assert_allclose(log_pi.numpy(), [want], rtol=1e-6)
    np.testing.assert_allclose(entropy.numpy(), [0.5 * (1 + LOG_2PI + math.log(var))], rtol=1e-6)
    np.testing.assert_allclose(gaussian_std(LOG_STD, PHI), [[math.sqrt(var)]], rtol=1e-6)


def test_the_std_learns_but_no_gradient_reaches_the_features() -> None:
    dist = ActionDist.from_space(BOX)
    log_std, phi = tf.Variable(LOG_STD), tf.Variable(PHI)
    with tf.GradientTape(persistent=True) as tape:
        log_pi, _ = dist.log_prob_entropy(tf.constant([[0.5]]), tf.constant([[1.5]]), log_std, phi)
    # d log_pi / d log_std[f] = (x^2 / var - 1) phi_f^2 sigma_f^2 / var, x = 1, var = 2:
    # -0.5 * [1, 1] / 2 = [-0.25, -0.25].
    np.testing.assert_allclose(tape.gradient(log_pi, log_std).numpy(), [[-0.25], [-0.25]], 1e-5)
    assert tape.gradient(log_pi, phi) is None


def test_a_sample_is_the_mean_plus_the_features_times_the_matrix() -> None:
    dist = ActionDist.from_space(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    params = np.array([[0.1, -0.2], [0.3, 0.4]], np.float32)
    features = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]], np.float32)
    noise = np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 10
    got = dist.sample(params, np.random.default_rng(0), features=features, noise=noise)
    want = params + np.stack([features[b] @ noise[b] for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_without_matrices_a_sample_is_drawn_from_the_learned_distribution() -> None:
    dist = ActionDist.from_space(gym.spaces.Box(-np.inf, np.inf, (1,), np.float32))
    rng = np.random.default_rng(1)
    features = np.repeat(PHI, 20_000, axis=0)
    actions = dist.sample(np.full((20_000, 1), 0.5, np.float32), rng, LOG_STD, features)
    assert abs(actions.mean() - 0.5) < 0.03
    assert abs(actions.std() - math.sqrt(2.0)) < 0.03


def test_matrices_are_redrawn_every_sample_freq_steps_and_after_a_reset() -> None:
    rng = np.random.default_rng(2)
    noise = StateDependentNoise(sample_freq=3)
    drawn = [noise(LOG_STD, 4, rng).copy() for _ in range(7)]
    assert drawn[0].shape == (4, 2, 1)
    assert all(np.array_equal(drawn[0], m) for m in drawn[1:3])
    assert not np.array_equal(drawn[2], drawn[3])
    assert all(np.array_equal(drawn[3], m) for m in drawn[4:6])
    assert not np.array_equal(drawn[5], drawn[6])
    assert not np.array_equal(drawn[0][0], drawn[0][1])  # one matrix per env
    noise.reset()
    assert not np.array_equal(noise(LOG_STD, 4, rng), drawn[6])
    assert noise(LOG_STD, 2, rng).shape == (2, 2, 1)  # a new env count: new matrices


def test_once_per_rollout_keeps_the_matrices_until_the_reset() -> None:
    rng = np.random.default_rng(3)
    noise = StateDependentNoise()  # -1
    first = noise(LOG_STD, 2, rng).copy()
    assert all(np.array_equal(first, noise(LOG_STD, 2, rng)) for _ in range(50))
    noise.reset()
    assert not np.array_equal(first, noise(LOG_STD, 2, rng))


def test_matrix_entries_have_the_learned_std() -> None:
    big = StateDependentNoise()(LOG_STD, 50_000, np.random.default_rng(4))
    np.testing.assert_allclose(big.std(axis=0), np.exp(LOG_STD), rtol=0.02)


@pytest.mark.parametrize("freq", [0, -2])
def test_a_sample_freq_of_zero_or_below_minus_one_is_refused(freq: int) -> None:
    with pytest.raises(ValueError, match="sample_freq"):
        StateDependentNoise(freq)


# -- agents -----------------------------------------------------------------------------------
SMALL = {"hidden_sizes": [16, 16], "num_envs": 2, "eval_every": 0, "stop_reward": None}
SDE = {"use_sde": True, "sde_sample_freq": 3}
SETTINGS = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "anneal_lr": False},
    "a2c": {"n_steps": 8, "anneal_lr": False},  # annealing follows each run's total_steps
}


def make_agent(name: str, **overrides):
    cls = get_agent_class(name)
    run, cfg = resolve(cls, "Pendulum-v1", overrides={**SMALL, **SDE, **overrides})
    env = gym.make("Pendulum-v1")
    return cls(env.observation_space, env.action_space, cfg, seed=5), run


@pytest.mark.parametrize("name", ["ppo", "a2c", "reinforce"])
def test_an_agent_explores_with_matrices_held_for_sample_freq_steps(name: str) -> None:
    agent, _ = make_agent(name, **SETTINGS.get(name, {}))
    assert agent.network.log_std.shape == (16, 1)  # [features of the policy torso, action dims]
    obs = np.tile(np.array([[1.0, 0.0, 0.5]], np.float32), (2, 1))
    acts = [agent.act(obs, explore=True) for _ in range(4)]
    # The same state and matrix give the same action: no white noise on top.
    assert all(np.array_equal(acts[0], a) for a in acts[1:3])
    assert not np.array_equal(acts[0], acts[3])  # step 3: new matrices
    assert not np.array_equal(acts[0][0], acts[0][1])  # each env its own matrix
    # The mode is the mean, without noise.
    np.testing.assert_array_equal(
        agent.act(obs, explore=False), np.clip(agent.policy_params(obs)[0], -2, 2)
    )


def test_an_update_draws_new_matrices(monkeypatch: pytest.MonkeyPatch) -> None:
    agent, _ = make_agent("ppo", **SETTINGS["ppo"], sde_sample_freq=-1)
    obs = np.full((2, 3), 0.5, np.float32)  # features of 0 (from obs 0) would give no noise
    before = agent.act(obs, explore=True)
    assert np.array_equal(before, agent.act(obs, explore=True))  # once per rollout
    monkeypatch.setattr(agent, "_update_fn", lambda batch: {})  # the weights stay as they are
    agent.update(None)
    assert not np.array_equal(before, agent.act(obs, explore=True))


@pytest.mark.parametrize("numpy_path", [True, False])
def test_a_ray_worker_explores_as_the_learner_does(numpy_path: bool) -> None:
    agent, _ = make_agent("ppo", **SETTINGS["ppo"])  # new matrices every 3 steps
    snapshot = take_snapshot(agent)
    assert snapshot.rule["sde_sample_freq"] == 3 and snapshot.numpy
    if not numpy_path:  # what networks without a numpy forward pass (CNNs) go through
        snapshot = dataclasses.replace(snapshot, numpy=False, weights=agent.network.get_weights())
    policy = ActingPolicy(snapshot, np.random.default_rng(11))
    agent.rng = np.random.default_rng(11)
    obs = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    for step in range(7):  # three draws, the same for both
        np.testing.assert_allclose(
            policy(obs, step), agent.act(obs, explore=True), rtol=1e-5, atol=1e-6
        )


def test_a_ray_worker_draws_new_matrices_when_newer_weights_arrive() -> None:
    agent, _ = make_agent("ppo", **SETTINGS["ppo"], sde_sample_freq=-1)
    snapshot = take_snapshot(agent)
    policy = ActingPolicy(snapshot, np.random.default_rng(11))
    obs = np.full((2, 3), 0.5, np.float32)
    first = policy(obs, 0)
    assert np.array_equal(first, policy(obs, 1))  # one draw per rollout
    policy.load(snapshot)  # the same weights version: the same matrices
    assert np.array_equal(first, policy(obs, 2))
    policy.load(dataclasses.replace(snapshot, version=snapshot.version + 1))
    assert not np.array_equal(first, policy(obs, 3))


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_resume_with_gsde_is_bitwise(name: str, tmp_path: Path) -> None:
    def run_for(total: int, run_dir: Path, resume: bool = False):
        cls = get_agent_class(name)
        overrides = {**SMALL, **SDE, **SETTINGS[name], "total_steps": total}
        run, cfg = resolve(
            cls, "Pendulum-v1", overrides={**overrides, "checkpoint_every": 256, "seed": 3}
        )
        seed_everything(3)
        env = gym.make("Pendulum-v1")
        agent = cls(env.observation_space, env.action_space, cfg, seed=3)
        learn(agent, "Pendulum-v1", run, run_dir=run_dir, resume=resume)
        return agent

    straight = run_for(768, tmp_path / "straight")
    run_for(512, tmp_path / "split")
    resumed = run_for(768, tmp_path / "split", resume=True)
    weights = zip(straight.network.get_weights(), resumed.network.get_weights(), strict=True)
    for a, b in weights:
        np.testing.assert_array_equal(a, b)
    assert int(straight.updates.numpy()) == int(resumed.updates.numpy()) > 0
    assert not np.allclose(straight.network.log_std.numpy(), 0.0)  # the std learned


# -- command line and saved policies ------------------------------------------------------------
TINY = ["--total-steps", "256", "--final-eval-episodes", "2", "--quiet", "--set", "use_sde=true"]
TINY += ["--set", "sde_sample_freq=4", "--set", "n_steps=64", "--set", "batch_size=32"]
TINY += ["--set", "n_epochs=2", "--set", "hidden_sizes=[16,8]"]


def test_a_saved_gsde_policy_loads_acts_and_samples(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert (
        train.main(["--agent", "ppo", "--env", "Pendulum-v1", "--run-dir", str(run_dir), *TINY])
        == 0
    )
    policy = load_policy(run_dir)
    assert policy.meta["network"]["sde"] is True
    assert policy.network.log_std.shape == (8, 1)
    obs = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    greedy = policy(obs)
    assert greedy.shape == (64, 1) and np.all(np.abs(greedy) <= 2.0)
    sampled = policy.stochastic(np.random.default_rng(1))(obs)
    assert sampled.shape == (64, 1) and not np.array_equal(sampled, greedy)
    # The SavedModel serves the mode, as the loaded policy does.
    assert export.main([str(run_dir), "--out", str(tmp_path / "export")]) == 0
    served = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    action = served.signatures["serving_default"](obs=tf.constant(obs))["action"].numpy()
    np.testing.assert_allclose(action, greedy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--env", "CartPole-v1", "--set", "use_sde=true"], "use_sde (gSDE) is for Box actions"),
        (["--env", "Pendulum-v1", "--set", "sde_sample_freq=0"], "sde_sample_freq must be -1"),
    ],
)
def test_bad_gsde_settings_exit_2_with_one_line(argv, fragment, tmp_path: Path, capsys) -> None:
    code = train.main(["--agent", "ppo", *argv, "--run-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "Traceback" not in err
    assert not (tmp_path / "r" / "checkpoints").exists()

"""The command lines with continuous (Box) actions: PPO on Pendulum-v1 through ``rlkit.train``,
``rlkit.evaluate`` and ``rlkit.export``, and the clear refusals around it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import yaml

from rlkit import evaluate, export, train
from rlkit.policy_io import load_policy

ENV = "Pendulum-v1"  # observations [cos, sin, theta_dot]; actions Box(-2, 2, (1,))
LOW, HIGH = -2.0, 2.0
# 4 rollouts of 64 steps, 2 epochs of 2 minibatches each: seconds, with real updates.
TINY = ["--total-steps", "256", "--final-eval-episodes", "1", "--quiet"]
TINY += ["--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=2"]
TINY += ["--set", "hidden_sizes=[16,16]"]


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PPO run on Pendulum-v1 through ``train.main``, shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("pendulum") / "ppo"
    assert train.main(["--agent", "ppo", "--env", ENV, "--run-dir", str(run_dir), *TINY]) == 0
    return run_dir


def test_ppo_trains_on_pendulum_and_saves_a_gaussian_policy(pendulum_run: Path) -> None:
    config = yaml.safe_load((pendulum_run / "config.yaml").read_text())
    assert config["agent"] == "ppo" and config["env"] == ENV
    assert config["n_steps"] == 64 and config["batch_size"] == 32 and config["n_epochs"] == 2

    meta = json.loads((pendulum_run / "policy" / "policy.json").read_text())
    assert meta["agent"] == "ppo" and meta["network"]["log_std_dim"] == 1
    action = meta["action"]
    assert action["kind"] == "gaussian" and action["action_shape"] == [1]
    assert action["low"] == [LOW] and action["high"] == [HIGH]

    header = (pendulum_run / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"train/policy_loss", "train/approx_kl", "train/std"} <= set(header), header

    results = json.loads((pendulum_run / "results.json").read_text())
    assert results["env_id"] == ENV and results["n_eval_episodes"] == 1
    # Pendulum's reward is -(theta^2 + 0.1 theta_dot^2 + 0.001 u^2) <= 0 on each of 200 steps.
    assert -200 * (np.pi**2 + 0.1 * 8**2 + 0.001 * HIGH**2) <= results["mean_reward"] <= 0


def test_evaluate_a_pendulum_run_with_in_bounds_actions(
    pendulum_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"  # a copy: evaluations/ is written into the run folder
    shutil.copytree(pendulum_run, run_dir)
    capsys.readouterr()
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "ppo" in out and ENV in out and "mean reward" in out
    written = json.loads((run_dir / "evaluations" / "seed3-2ep.json").read_text())
    assert written["n_eval_episodes"] == 2 and written["is_deterministic"] is True

    # The same episodes in a plain gymnasium loop with the saved policy: float actions of
    # the env's shape, inside its bounds, and the same returns.
    policy, env, replayed = load_policy(run_dir), gym.make(ENV), []
    for seed in (3, 4):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action = policy(obs[None])[0]
            assert action.shape == (1,) and action.dtype == np.float32
            assert LOW <= action[0] <= HIGH
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        replayed.append(total)
    env.close()
    np.testing.assert_allclose(written["returns"], replayed, rtol=1e-9)

    # Sampling from the Gaussian is allowed (Q-networks are refused): same seed, same episodes.
    argv = ["--run", str(run_dir), "--episodes", "2", "--seed", "3", "--stochastic"]
    assert evaluate.main(argv) == 0
    first = json.loads((run_dir / "evaluations" / "seed3-2ep-stochastic.json").read_text())
    assert evaluate.main(argv) == 0
    again = json.loads((run_dir / "evaluations" / "seed3-2ep-stochastic.json").read_text())
    assert first["is_deterministic"] is False and first["returns"] == again["returns"]


def test_exported_saved_model_serves_actions_of_shape_b_1_within_the_bounds(
    pendulum_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(pendulum_run, run_dir)
    obs = np.random.default_rng(0).uniform([-1, -1, -8], [1, 1, 8], (64, 3)).astype(np.float32)
    # A fresh policy head (orthogonal, gain 0.01) gives means of a few hundredths, which no
    # clip would touch: scale it so that the largest mean is 2x the bound, and the served
    # action must be the mean clipped into [-2, 2].
    policy = load_policy(run_dir)
    head = [v for v in policy.network.weights if v.path.split("/")[-2] == "logits"]
    assert len(head) == 2, [v.path for v in policy.network.weights]
    scale = 2 * HIGH / float(np.abs(policy.scores(obs)).max())
    for variable in head:
        variable.assign(variable * scale)
    policy.network.save_weights(str(run_dir / "policy" / "policy.weights.h5"))

    assert export.main([str(run_dir), "--out", str(tmp_path / "export")]) == 0
    assert "exported to" in capsys.readouterr().out
    served = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    result = served.signatures["serving_default"](obs=tf.constant(obs))
    action, means = result["action"].numpy(), result["scores"].numpy()
    assert action.shape == (64, 1) and action.dtype == np.float32
    assert LOW <= action.min() and action.max() <= HIGH
    outside = (means < LOW) | (means > HIGH)
    assert outside.any() and (~outside).any(), means.ravel()  # the clip is exercised
    np.testing.assert_array_equal(action, np.clip(means, LOW, HIGH))
    # rlkit's own loaded policy (numpy) acts the same.
    np.testing.assert_allclose(action, load_policy(run_dir)(obs), rtol=1e-5, atol=1e-6)


def test_evaluating_a_pendulum_policy_on_cartpole_names_the_action_spaces(
    pendulum_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(pendulum_run, run_dir)
    capsys.readouterr()
    code = evaluate.main(["--run", str(run_dir), "--env", "CartPole-v1", "--episodes", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "CartPole-v1" in err and "Discrete(2)" in err  # the env's action space
    assert "Box of shape (1,)" in err  # the policy's actions
    assert not (run_dir / "evaluations").exists()


@pytest.mark.parametrize("agent", ["dqn", "double_dqn", "dueling_dqn", "rainbow"])
def test_a_q_learning_agent_on_pendulum_is_one_line_naming_the_box_and_ppo(
    agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    # --total-steps 500 is below the presets' learning_starts, a second problem: the action
    # space, which no setting can fix, is the one named.
    args = ["--agent", agent, "--env", ENV, "--run-dir", str(tmp_path / "run")]
    assert train.main([*args, *(["--total-steps", "500"] if agent == "dqn" else [])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Box(-2.0, 2.0, (1,), float32)" in lines[0]
    assert "--agent ppo" in lines[0]
    assert list(tmp_path.iterdir()) == [], "a run folder was written"

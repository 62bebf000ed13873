"""Export: the SavedModel acts exactly like the trained agent, and the card is complete."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import yaml

from rlkit import export, train
from rlkit.agents import AGENTS
from rlkit.policy_io import load_policy, save_policy


@pytest.fixture(scope="module", params=["dueling_dqn", "a2c", "rainbow"])
def run_dir(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp(request.param) / "run"
    argv = [
        "--agent",
        request.param,
        "--env",
        "CartPole-v1",
        "--total-steps",
        "300",
        "--set",
        "learning_starts=100",
        "--final-eval-episodes",
        "2",
        "--run-dir",
        str(path),
        "--quiet",
    ]
    if request.param == "a2c":
        argv = [a for a in argv if a != "learning_starts=100" and a != "--set"]
    assert train.main(argv) == 0
    return path


def test_saved_model_gives_the_policys_actions(run_dir, capsys):
    assert export.main([str(run_dir)]) == 0
    out = run_dir / "export"
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    obs = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32)
    result = served(obs=tf.constant(obs))
    policy = load_policy(run_dir)
    np.testing.assert_array_equal(result["action"].numpy(), policy(obs))
    np.testing.assert_allclose(result["scores"].numpy(), policy.scores(obs), rtol=1e-5, atol=1e-6)
    # The rlkit files rebuild the same policy.
    np.testing.assert_array_equal(load_policy(out)(obs), policy(obs))


def test_model_card_front_matter(run_dir):
    export.export_policy(run_dir)
    text = (run_dir / "export" / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "rlkit"
    assert "CartPole-v1" in front["tags"]
    metric = front["model-index"][0]["results"][0]["metrics"][0]
    assert metric["type"] == "mean_reward" and "+/-" in metric["value"]
    assert "| `learning_rate` |" in text
    results = yaml.safe_load((run_dir / "results.json").read_text())
    mean, std, episodes = results["mean_reward"], results["std_reward"], results["n_eval_episodes"]
    assert f"Evaluation: mean reward {mean:.2f} +/- {std:.2f} over {episodes} episodes." in text


def test_export_without_a_policy_is_exit_2(tmp_path, capsys):
    assert export.main([str(tmp_path)]) == 2
    assert "no saved policy" in capsys.readouterr().err


# -- image policies: the uint8 Nature-CNN signature, bfloat16, no results.json ------------------
IMAGE = gym.spaces.Box(0, 255, (4, 36, 36), np.uint8)  # the smallest stack the Nature CNN takes


def image_policy_run(tmp_path: Path, name: str, mixed_precision: bool) -> Path:
    """A run folder holding only an untrained image policy (no config, no results.json)."""
    cls = AGENTS[name]
    cfg = cls.config_cls(hidden_sizes=(32,), mixed_precision=mixed_precision)
    agent = cls(IMAGE, gym.spaces.Discrete(6), cfg, seed=0)
    network = agent.policy_network()
    assert network.torso_name == "nature_cnn" and network.mixed_precision is mixed_precision
    run_dir = tmp_path / "run"
    save_policy(run_dir / "policy", network, agent=name, env_id="rlkit/FakeAtari-v0")
    return run_dir


@pytest.mark.parametrize("mixed_precision", [False, True], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", ["dueling_dqn", "a2c"])
def test_an_image_policy_exports_with_a_uint8_signature(name, mixed_precision, tmp_path):
    run_dir = image_policy_run(tmp_path, name, mixed_precision)
    assert export.main([str(run_dir), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    spec = served.structured_input_signature[1]["obs"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 4, 36, 36]
    obs = np.random.default_rng(1).integers(0, 256, (16, 4, 36, 36), dtype=np.uint8)
    result = served(obs=tf.constant(obs))
    policy = load_policy(run_dir)
    assert result["scores"].dtype == tf.float32  # a float32 head, whatever the torso
    # The same network, casts and ops as the rlkit policy: the same numbers up to float32
    # rounding (a graph may sum a convolution in another order than eager execution).
    np.testing.assert_allclose(result["scores"].numpy(), policy.scores(obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result["action"].numpy(), policy(obs))
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)):  # float obs are refused
        served(obs=tf.constant(obs.astype(np.float32)))
    # Without results.json or config.yaml the card says the score is unknown.
    text = (out / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["model-index"][0]["results"][0]["metrics"][0]["value"] == "unknown"
    assert "Evaluation: none (the run folder has no results.json)." in text
    assert "None" not in text and "rlkit/FakeAtari-v0" in front["tags"]

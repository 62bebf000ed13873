"""Export: the SavedModel acts exactly like the trained agent, and the card is complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from rlkit import export, train
from rlkit.policy_io import load_policy


@pytest.fixture(scope="module", params=["dueling_dqn", "a2c"])
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
        "--eval-episodes",
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


def test_export_without_a_policy_is_exit_2(tmp_path, capsys):
    assert export.main([str(tmp_path)]) == 2
    assert "no saved policy" in capsys.readouterr().err

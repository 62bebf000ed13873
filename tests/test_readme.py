"""The README's commands and Python example are real."""

from __future__ import annotations

from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_setup_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    train = "python -m rlkit.train --agent a2c --env CartPole-v1"
    assert first_block[0] == f"pip install -e . && {train}"
    assert first_block[1] == 'pip install -e ".[test]" && python -m pytest -q'
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert first_block[1] in ci


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = README.split("## From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert "total_steps=50_000" in block
    exec(compile(block.replace("total_steps=50_000", "total_steps=2_000"), "README", "exec"), {})
    assert (tmp_path / "my_policy" / "policy.json").exists()


def test_sharing_example_runs_offline(tmp_path, monkeypatch):
    """The load_from_hub example, with the download replaced by an exported folder."""
    import gymnasium as gym
    import pytest

    hf = pytest.importorskip("huggingface_hub", reason="the hub extra: pip install 'rlkit[hub]'")
    from rlkit.agents import DQN, DQNConfig
    from rlkit.export import export_for_hub
    from rlkit.policy_io import save_policy

    env = gym.make("CartPole-v1")
    agent = DQN(env.observation_space, env.action_space, DQNConfig(hidden_sizes=(8,)), seed=0)
    save_policy(
        tmp_path / "run" / "policy", agent.policy_network(), agent="dqn", env_id="CartPole-v1"
    )
    folder = export_for_hub(tmp_path / "run", tmp_path / "hub", video=False)
    asked = []
    monkeypatch.setattr(
        hf, "snapshot_download", lambda repo_id, **kw: asked.append(repo_id) or str(folder)
    )
    section = README.split("## Sharing a trained agent", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "README", "exec"), namespace)
    assert asked == ["your-name/dqn-CartPole-v1"]
    assert namespace["done"] and namespace["policy"].meta["agent"] == "dqn"

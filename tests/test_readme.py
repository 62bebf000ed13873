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


def test_own_environment_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    section = README.split("## Your own environment", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python", 1)[1].split("```", 1)[0]
    assert "total_steps=20_000" in block and 'gym.register("Corridor-v0"' in block
    namespace: dict = {}
    try:
        code = block.replace("total_steps=20_000", "total_steps=1_000")
        code = code.replace("eval_every=5_000", "eval_every=500")
        exec(compile(code, "README", "exec"), namespace)
    finally:
        import gymnasium as gym

        gym.registry.pop("Corridor-v0", None)
    result = namespace["result"]
    assert result.env_steps >= 1_000 and len(result.evaluations) == 2

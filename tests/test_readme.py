"""The README's commands and Python examples are real, and tests/README.md names real tests."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_opens_with_the_two_setup_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    train = "python -m rlkit.train --agent a2c --env CartPole-v1"
    assert first_block[0] == f"pip install -e . && {train}"
    assert first_block[1] == 'pip install -e ".[test]" && python -m pytest -q'
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert first_block[1] in ci


FRAGMENT = "<!-- fragment: not run by tests/test_readme.py -->"
# The README's budgets, cut to what shows the code runs.
SMALLER = {
    "total_steps=50_000": "total_steps=2_000",
    "total_steps=100_000": "total_steps=1_000",
    "total_steps=30_000": "total_steps=2_000",
    '"eval_every": 5_000': '"eval_every": 1_000',
    "n_eval_episodes=10": "n_eval_episodes=2",
    "n_eval_episodes=5": "n_eval_episodes=2",
}


# Sections whose Python blocks a test of their own runs (budget cuts, W&B offline, no Hub).
OWN_TESTS = ("## Your own environment", "## Tracking", "## Sharing a trained agent")


def python_blocks() -> list[str]:
    """The README's ```python blocks in order, less fragments and those of ``OWN_TESTS``."""
    text = README
    for heading in OWN_TESTS:
        before, section = text.split(heading, 1)
        text = before + "\n## " + section.split("\n## ", 1)[1]
    parts = text.split("```python")
    return [
        block.split("```", 1)[0]
        for before, block in zip(parts[:-1], parts[1:], strict=True)
        if not before.rstrip().endswith(FRAGMENT)
    ]


def test_every_python_example_runs_as_written(tmp_path, monkeypatch):
    """The Python blocks run in order in one namespace, as a reader pastes them."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4 and README.count(FRAGMENT) <= 2  # fragments stay the exception
    assert any("total_steps=50_000" in block for block in blocks)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        for budget, smaller in SMALLER.items():
            block = block.replace(budget, smaller)
        exec(compile(block, f"README python block {i + 1}", "exec"), namespace)
    assert (tmp_path / "my_policy" / "policy.json").exists()
    assert (tmp_path / "my_agent").is_dir()


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


def _named_tests(row: str) -> list[tuple[str, str | None]]:
    """``(file, test name or None)`` for each test a tests/README.md row's last cell names.

    ``::name`` alone continues the file named before it in the cell; ``::prefix_*`` stands
    for the tests whose names start with ``prefix_`` (returned as ``prefix_\\w*``).
    """
    cell = row.rstrip().rstrip("|").rsplit("|", 1)[-1]
    named, current = [], None
    for match in re.finditer(r"`(test_\w+\.py)?(?:::(\w+)(\*)?)?[^`]*`", cell):
        current = match.group(1) or current
        if current is not None and (match.group(1) or match.group(2)):
            name = match.group(2) and match.group(2) + ("\\w*" if match.group(3) else "")
            named.append((current, name))
    return named


def test_every_test_that_tests_readme_names_exists():
    tests = Path(__file__).resolve().parent
    lines = (tests / "README.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    named = [pair for row in rows for pair in _named_tests(row)]
    assert len(named) > 100  # the table was read
    missing = [
        f"{file}::{name}" if name else file
        for file, name in named
        if not (tests / file).exists()
        or (name and not re.search(rf"^\s*(async )?def {name}\(", (tests / file).read_text(), re.M))
    ]
    assert not missing, f"tests/README.md names tests that do not exist: {missing}"

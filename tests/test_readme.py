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


def python_blocks() -> list[str]:
    """Every ```python block of the README, in order, except those marked as fragments."""
    blocks = []
    for before, rest in zip(
        README.split("```python")[:-1], README.split("```python")[1:], strict=True
    ):
        if not before.rstrip().endswith(FRAGMENT):
            blocks.append(rest.split("```", 1)[0])
    return blocks


def test_every_python_example_runs_as_written(tmp_path, monkeypatch):
    """The Python blocks run in order in one namespace, as a reader pastes them."""
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks()
    assert len(blocks) >= 4 and README.count(FRAGMENT) <= 2  # fragments stay the exception
    assert "total_steps=50_000" in blocks[0]
    namespace: dict = {}
    for i, block in enumerate(blocks):
        for budget, smaller in SMALLER.items():
            block = block.replace(budget, smaller)
        exec(compile(block, f"README python block {i + 1}", "exec"), namespace)
    assert (tmp_path / "my_policy" / "policy.json").exists()
    assert (tmp_path / "my_agent").is_dir()

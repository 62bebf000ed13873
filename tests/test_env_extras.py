"""An env whose optional package is missing: exit code 2 and one line naming the extra."""

from __future__ import annotations

import sys

import pytest

from rlkit import evaluate, train


@pytest.mark.parametrize(
    ("env_id", "module", "extra"),
    [
        ("LunarLander-v3", "Box2D", "box2d"),
        ("BipedalWalker-v3", "Box2D", "box2d"),
        ("HalfCheetah-v5", "mujoco", "mujoco"),
        ("MinAtar/Breakout-v1", "minatar", "minatar"),
        ("ALE/Pong-v5", "ale_py", "atari"),
    ],
)
def test_a_missing_extra_is_one_line_and_exit_code_2(env_id, module, extra, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    code = train.main(["--agent", "dqn", "--env", env_id, "--total-steps", "100"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"pip install 'rlkit[{extra}]'" in err[0] and env_id.split("/")[0] in err[0]


def test_evaluate_names_the_extra_too(monkeypatch, capsys, tmp_path):
    # A policy trained on LunarLander, evaluated where Box2D is missing.
    run_dir = tmp_path / "run"
    argv = ["--agent", "dqn", "--env", "LunarLander-v3", "--total-steps", "64", "--quiet"]
    argv += ["--run-dir", str(run_dir), "--final-eval-episodes", "0"]
    argv += ["--set", "learning_starts=32", "--set", "hidden_sizes=[8]"]
    assert train.main(argv) == 0
    monkeypatch.setitem(sys.modules, "Box2D", None)
    assert evaluate.main(["--run", str(run_dir), "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'rlkit[box2d]'" in err[0]


def test_every_extra_an_error_names_exists():
    """The extras the missing-package errors tell users to install are in pyproject.toml."""
    from pathlib import Path

    import tomllib

    from rlkit.envs import make

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    named = {extra for *_, extra in make.ID_EXTRAS + make.ENTRY_POINT_EXTRAS} | {"atari"}
    assert named <= set(extras), sorted(named - set(extras))
    assert any("Box2D" in d or "box2d" in d for d in extras["box2d"])
    assert any("mujoco" in d for d in extras["mujoco"])

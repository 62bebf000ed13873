"""Tests of the learning table's statistics and bookkeeping (benchmarks/learning.py).

Every expected number is worked out by hand in the comment next to it. Nothing here trains
or imports Stable-Baselines3 or matplotlib; only the check of the SB3 translations against
the shipped presets (and the checkpoint check of a run folder) imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lt(load_benchmark) -> ModuleType:
    return load_benchmark("learning")


@pytest.fixture
def results(lt: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the script's CSVs and output folder at a temporary folder."""
    monkeypatch.setattr(lt, "OUT", tmp_path)
    monkeypatch.setattr(lt, "ROWS", tmp_path / "runs.csv")
    monkeypatch.setattr(lt, "CURVES", tmp_path / "curves.csv")
    return tmp_path


# -- statistics ---------------------------------------------------------------------------
def test_iqm_by_hand(lt: ModuleType) -> None:
    # 1..8: drop 2 from each end, mean of 3, 4, 5, 6 = 4.5 (order does not matter).
    assert lt.iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    # n = 5: floor(5 / 4) = 1 from each end, mean of 2, 3, 4 = 3; the outlier is gone.
    assert lt.iqm([1, 2, 3, 4, 100]) == 3.0
    # n = 3: nothing dropped, the plain mean.
    assert lt.iqm([1.0, 2.0, 6.0]) == 3.0
    # Along the last axis of a 2-D array: one IQM per row.
    np.testing.assert_allclose(lt.iqm(np.array([[1, 2, 3, 4], [10, 20, 30, 40]])), [2.5, 25.0])


def test_bootstrap_ci_by_hand(lt: ModuleType) -> None:
    # A constant has no spread: the interval is the constant.
    assert lt.bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert lt.bootstrap_ci([7.5]) == (7.5, 7.5)
    # Two seeds, 0 and 1: a resample's mean is 0 (p 1/4), 0.5 (p 1/2) or 1 (p 1/4), so the
    # 2.5th percentile is 0 and the 97.5th is 1.
    assert lt.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    # A fixed RNG: the same values give the same interval.
    values = [1.0, 4.0, 2.0, 8.0, 5.0]
    assert lt.bootstrap_ci(values) == lt.bootstrap_ci(values)
    low, high = lt.bootstrap_ci(values)
    assert 1.0 <= low < np.mean(values) < high <= 8.0
    assert all(math.isnan(x) for x in lt.bootstrap_ci([]))


def test_bootstrap_band_by_hand(lt: ModuleType) -> None:
    # Two runs, three points; NaN where a run has no value is left out of the mean.
    curves = np.array([[1.0, 2.0, 4.0], [1.0, np.nan, 6.0]])
    mean, low, high = lt.bootstrap_band(curves)
    np.testing.assert_allclose(mean, [1.0, 2.0, 5.0])
    # Point 0 is 1 in both runs: no spread. Point 2: resample means 4, 5 or 6.
    assert low[0] == high[0] == 1.0
    assert (low[2], high[2]) == (4.0, 6.0)


def test_stratified_resampling_never_mixes_envs(lt: ModuleType) -> None:
    groups = {"CartPole-v1": [1.0, 2.0, 3.0], "Acrobot-v1": [10.0, 20.0]}
    samples = lt.stratified_resample(groups, 500, np.random.default_rng(0))
    assert samples.shape == (500, 5)
    # The first three columns draw from CartPole's values only, the last two from Acrobot's.
    assert set(np.unique(samples[:, :3])) <= {1.0, 2.0, 3.0}
    assert set(np.unique(samples[:, 3:])) <= {10.0, 20.0}
    # Every value of each group turns up (it is a resampling, not a copy).
    assert set(np.unique(samples[:, :3])) == {1.0, 2.0, 3.0}


def test_stratified_bootstrap_ci_by_hand(lt: ModuleType) -> None:
    # Each env constant: every resample is the same, so the CI is flat. Pooled 1, 1, 1, 1,
    # 5, 5, 5, 5: drop two from each end, mean of 1, 1, 5, 5 = 3.
    point, low, high = lt.stratified_bootstrap_ci({"a": [1, 1, 1, 1], "b": [5, 5, 5, 5]})
    assert (point, low, high) == (3.0, 3.0, 3.0)
    # Pooled 1..8: IQM 4.5.
    point, low, high = lt.stratified_bootstrap_ci({"a": [1, 2, 3, 4], "b": [5, 6, 7, 8]})
    assert point == 4.5
    assert low <= point <= high

    # With np.mean as the statistic and one group, it is the plain bootstrap of the mean.
    def mean(x: np.ndarray) -> Any:
        return np.mean(x, axis=-1)

    assert lt.stratified_bootstrap_ci({"a": [0.0, 1.0]}, mean) == (0.5, 0.0, 1.0)


def test_normalized_score_by_hand(lt: ModuleType) -> None:
    assert lt.normalized_score(22.0, "CartPole-v1") == 0.0  # a random policy
    assert lt.normalized_score(475.0, "CartPole-v1") == 1.0  # the threshold
    assert lt.normalized_score(10.0, "LunarLander-v3") == 0.5  # (10 + 180) / (200 + 180)
    assert lt.normalized_score(-155.0, "MountainCar-v0") == 0.5  # (-155 + 200) / 90
    assert lt.normalized_score(-300.0, "Acrobot-v1") == 0.5  # (-300 + 500) / 400


def test_align_curves_carries_a_stopped_run_forward(lt: ModuleType) -> None:
    # Run 0 evaluated three times; run 1 (rlkit's multi-env step counts) stopped after two.
    series = [[(1000, 10.0), (2000, 20.0), (3000, 30.0)], [(1004, 12.0), (2008, 500.0)]]
    grid, values = lt.align_curves(series, budget=3000)
    # Point i sits at the median step of the runs with an i-th evaluation.
    np.testing.assert_allclose(grid, [1002.0, 2004.0, 3000.0])
    np.testing.assert_allclose(values, [[10.0, 20.0, 30.0], [12.0, 500.0, 500.0]])
    # Every run stopped early: the grid still reaches the budget, flat from the last value.
    grid, values = lt.align_curves([[(1000, 5.0)]], budget=5000)
    np.testing.assert_allclose(grid, [1000.0, 5000.0])
    np.testing.assert_allclose(values, [[5.0, 5.0]])
    # A run with no evaluation at all is NaN (left out of the mean).
    _, values = lt.align_curves([[(1000, 5.0)], []], budget=1000)
    assert values.shape == (2, 1) and np.isnan(values[1, 0])


# -- plan and settings --------------------------------------------------------------------
def test_cells_seeds_and_held_out_period(lt: ModuleType) -> None:
    # 7 agents x 6 envs, less the DQN family's four and REINFORCE on the two continuous
    # envs (10) and A2C on LunarLanderContinuous (1: no preset).
    assert len(lt.CELLS) == 7 * 6 - 11
    assert {
        "rainbow:LunarLander-v3",
        "rainbow:MountainCar-v0",
        "reinforce:LunarLander-v3",
        "reinforce:MountainCar-v0",
    } <= set(lt.CELLS)
    assert {c for c in lt.CELLS if c.split(":")[1] in lt.CONTINUOUS} == {
        "ppo:Pendulum-v1",
        "ppo:LunarLanderContinuous-v3",
        "a2c:Pendulum-v1",  # with gSDE, as rl-zoo3's settings
    }
    assert "a2c:MountainCar-v0" in lt.CELLS  # its preset normalizes observations and rewards
    assert "ppo:MountainCar-v0" in lt.CELLS  # the same
    assert all(f"{a}:Acrobot-v1" in lt.CELLS for a in lt.AGENTS)
    assert lt.parse_seeds(lt.DEFAULT_SEEDS) == list(range(1001, 1011))
    assert lt.parse_seeds("1,3-4") == [1, 3, 4]
    assert lt.parse_cells("dqn:CartPole-v1") == [("dqn", "CartPole-v1")]
    with pytest.raises(ValueError, match="unknown cell"):
        lt.parse_cells("sac:CartPole-v1")
    # budget / 20 rounded to thousands: 100k -> 5000, 1M -> 50000; never below 1000.
    assert lt.eval_every_for(100_000) == 5000
    assert lt.eval_every_for(1_000_000) == 50_000
    assert lt.eval_every_for(3000) == 1000


def _dqn_cartpole_config() -> SimpleNamespace:
    """rlkit's DQN CartPole-v1 preset, as far as the SB3 check reads it."""
    return SimpleNamespace(
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        train_frequency=256,
        gradient_steps=128,
        target_update_period=128,
        exploration_steps=8000,
        exploration_final_eps=0.04,
        hidden_sizes=(256, 256),
        loss="huber",
    )


def test_sb3_settings_checked_against_the_preset(lt: ModuleType) -> None:
    run, cfg = SimpleNamespace(num_envs=1), _dqn_cartpole_config()
    settings = lt.SB3_SETTINGS["dqn", "CartPole-v1"]
    # 128 gradient steps per burst of 256 env steps: rlkit syncs every 256 env steps, and
    # SB3's 10 syncs between every two bursts, i.e. every 256 too.
    assert lt.sb3_mismatches("dqn", run, cfg, settings) == []
    cfg.learning_rate = 1e-3
    cfg.target_update_period = 256  # every other burst: 512 env steps
    problems = lt.sb3_mismatches("dqn", run, cfg, settings)
    assert len(problems) == 2
    assert any(p.startswith("learning_rate") for p in problems)
    assert any(p.startswith("target_update_interval: rlkit 512") for p in problems)
    a2c = SimpleNamespace(
        n_steps=5, gamma=0.99, learning_rate=7e-4, ent_coef=0.0, share_torso=False
    )
    a2c.squash_actions = False
    a2c.optimizer = "rmsprop"
    a2c.anneal_lr = False
    a2c.ortho_init = True
    settings = lt.SB3_SETTINGS["a2c", "CartPole-v1"]
    assert lt.sb3_mismatches("a2c", SimpleNamespace(num_envs=8), a2c, settings) == []
    assert lt.sb3_mismatches("a2c", SimpleNamespace(num_envs=4), a2c, settings) == [
        "n_envs: rlkit 4, SB3_SETTINGS 8"
    ]
    a2c.anneal_lr = True  # rl-zoo3's lin_7e-4 where SB3_SETTINGS keeps a constant rate
    assert lt.sb3_mismatches("a2c", SimpleNamespace(num_envs=8), a2c, settings) == [
        "anneal: rlkit True, SB3_SETTINGS False"
    ]
    a2c.anneal_lr, a2c.ortho_init = False, False  # SB3's side initialises orthogonally here
    assert lt.sb3_mismatches("a2c", SimpleNamespace(num_envs=8), a2c, settings) == [
        "ortho_init: rlkit False, SB3_SETTINGS True"
    ]


def test_sb3_is_skipped_cleanly(lt: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert lt.sb3_version(None) is None
    assert "no --sb3-python" in capsys.readouterr().out
    assert lt.sb3_version("/nonexistent/python") is None
    assert "SB3 skipped: cannot run" in capsys.readouterr().out


# -- rows, resuming and the table ---------------------------------------------------------
def _plan(lt: ModuleType, agent: str = "dqn", env: str = "CartPole-v1") -> Any:
    return lt.Plan(agent, env, 3000, 1000, 475.0, 10, 30, 100, ())


def _result(returns: list[float], solved_at: dict | None = None) -> dict[str, Any]:
    return {
        "env_steps": 3000,
        "train_seconds": 12.345,
        "solved_at": solved_at,
        "evaluations": [
            {"env_steps": 1000, "mean_reward": 9.0},
            {"env_steps": 2000, "mean_reward": 480.0},
        ],
        "returns": returns,
    }


def test_record_and_resume(lt: ModuleType, results: Path) -> None:
    plan = _plan(lt)
    solved = {"env_steps": 2000, "train_seconds": 4.5, "mean_reward": 480.0}
    row = lt.record("rlkit", plan, 1, "", "rlkit abc", _result([500.0, 450.0], solved))
    # Mean of 500 and 450 = 475, std 25.
    assert (row["final_mean"], row["final_std"], row["solved"]) == (475.0, 25.0, 1)
    assert (row["solve_steps"], row["solve_seconds"]) == (2000, 4.5)
    assert json.loads(row["final_returns"]) == [500.0, 450.0]
    # Curve rows of a run that died before its row was written are replaced, not doubled.
    lt.append_csv(lt.CURVES, lt.CURVE_FIELDS, [{**lt.read_csv(lt.CURVES)[0], "seed": 2}])
    lt.record("rlkit", plan, 2, "", "rlkit abc", _result([10.0]))
    assert [int(c["seed"]) for c in lt.read_csv(lt.CURVES)] == [1, 1, 2, 2]
    # A finished (lib, agent, env, seed, tag) is not run again; another tag is separate.
    args = argparse.Namespace(
        seeds="1,2",
        libs="rlkit,sb3",
        cells="dqn:CartPole-v1,dqn:Pendulum-v1",
        tag="",
        max_steps=None,
        sb3_python=None,
        runs_dir=str(results / "runs"),
    )
    assert lt.run(args) == 0  # nothing to do: TensorFlow is never imported
    done = {lt.run_key(r) for r in lt.read_csv(lt.ROWS)}
    assert ("rlkit", "dqn", "CartPole-v1", 1, "") in done
    assert ("rlkit", "dqn", "CartPole-v1", 1, "smoke") not in done


def test_run_messages(lt: ModuleType, results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lt.record("rlkit", _plan(lt), 1, "", "v", _result([1.0]))
    args = argparse.Namespace(
        seeds="1",
        libs="rlkit,sb3",
        cells="dqn:CartPole-v1,dqn:Pendulum-v1",
        tag=None,
        max_steps=None,
        sb3_python=None,
        runs_dir=str(results / "runs"),
    )
    assert lt.run(args) == 0
    out = capsys.readouterr().out
    assert "skipped dqn:Pendulum-v1: Discrete actions only" in out
    assert "SB3 skipped: no --sb3-python" in out
    assert "0 runs to do" in out
    # Capped budgets never land among the real rows.
    args.max_steps, args.tag = 3000, ""
    with pytest.raises(ValueError, match="need a --tag"):
        lt.run(args)


def test_curves_get_a_log_axis_when_budgets_are_10x_apart(lt: ModuleType) -> None:
    # LunarLander: the DQN family's 100k against REINFORCE's 5M (50x).
    assert lt.needs_log_steps([100_000, 1_000_000, 5_000_000])
    assert lt.needs_log_steps([100_000, 1_000_000])  # exactly 10x
    # CartPole: 100k and 500k (5x) stay linear, as does one budget.
    assert not lt.needs_log_steps([100_000, 500_000])
    assert not lt.needs_log_steps([200_000])


def test_report_table(lt: ModuleType, results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lt, "plot_curves", lambda *a: [])
    monkeypatch.setattr(lt, "plot_aggregate", lambda *a: results / "aggregate_iqm.png")
    plan = _plan(lt)
    solved = {"env_steps": 2000, "train_seconds": 4.0, "mean_reward": 480.0}
    lt.record("rlkit", plan, 1, "", "v", _result([480.0], solved))
    lt.record("rlkit", plan, 2, "", "v", _result([400.0]))
    lt.record("sb3", plan, 1, "", "w", _result([475.0]))
    lt.record("rlkit", plan, 3, "smoke", "v", _result([0.0]))  # another tag: left out
    text = lt.report()
    assert text is not None and (results / "table.md").read_text() == text
    # rlkit: 480 passes, 400 does not; one confirmed stop at 2000 steps, 4 s; mean 440.
    assert (
        "| CartPole-v1 | dqn | rlkit | 2 | 1/2 | 1/2 | 2,000 [2,000-2,000] | 4 [4-4] | 440.0"
        in text
    )
    assert "| CartPole-v1 | dqn | sb3 | 1 | 1/1 | 0/1 | - | - | 475.0 [475.0, 475.0] |" in text
    # SB3's single run: (475 - 22) / (475 - 22) = 1.
    assert "| sb3 | dqn | CartPole-v1 | 1 | 1.00 [1.00, 1.00] |" in text
    assert lt.report("nothing-here") is None


def test_every_sb3_translation_matches_the_shipped_preset(lt: ModuleType) -> None:
    """SB3_SETTINGS says what rlkit's resolved preset does, cell by cell (or SB3 is skipped)."""
    from rlkit.agents import get_agent_class
    from rlkit.config import resolve

    for agent, env in lt.SB3_SETTINGS:
        run, cfg = resolve(get_agent_class(agent), env)
        settings = lt.sb3_settings(agent, env, run, cfg)
        assert lt.sb3_mismatches(agent, run, cfg, settings) == [], (agent, env)
        if env in lt.CONTINUOUS:
            assert settings["log_std_init"] == cfg.log_std_init
    # A squashed Gaussian has no SB3 MlpPolicy twin: named, not run.
    run, cfg = resolve(get_agent_class("ppo"), "Pendulum-v1", overrides={"squash_actions": True})
    problems = lt.sb3_mismatches("ppo", run, cfg, lt.sb3_settings("ppo", "Pendulum-v1", run, cfg))
    assert problems == ["squash_actions: SB3's MlpPolicy Gaussian is not squashed"]


def _checkpoint(run_dir: Path, step: int, *, ok: bool = True) -> None:
    """A checkpoint folder as rlkit writes it (its manifest), or a damaged one."""
    path = run_dir / "checkpoints" / f"step_{step:012d}"
    path.mkdir(parents=True)
    files = {} if ok else {"agent.index": {"bytes": 1, "sha256": "0"}}  # a missing file
    (path / "manifest.json").write_text(
        json.dumps({"format_version": 1, "step": step, "files": files})
    )


def test_long_runs_checkpoint_and_resume(lt: ModuleType, tmp_path: Path) -> None:
    # A budget of LONG_RUN or more checkpoints ten times a run; a shorter one does not.
    long_plan, _, _ = lt.plan_cell("ppo", "HalfCheetah-v5")
    assert long_plan.budget == 1_000_000
    assert long_plan.cli_args[-2:] == ("--checkpoint-every", "100000")
    short_plan, _, _ = lt.plan_cell("ppo", "CartPole-v1")
    assert "--checkpoint-every" not in short_plan.cli_args
    run_dir = tmp_path / "seed1001"
    fresh = lt.rlkit_command(long_plan, 1001, run_dir)
    assert fresh[fresh.index("--seed") + 1] == "1001" and "--resume" not in fresh
    run_dir.mkdir()
    (run_dir / "progress.csv").write_text("time/env_steps\n500\n")
    _checkpoint(run_dir, 100_000)
    # No config.yaml: not resumable; the leftover folder is removed and the run starts over.
    assert "--resume" not in lt.rlkit_command(long_plan, 1001, run_dir)
    assert not run_dir.exists()
    _checkpoint(run_dir, 100_000)
    _checkpoint(run_dir, 200_000, ok=False)  # damaged: rlkit falls back to 100k, as here
    (run_dir / "config.yaml").write_text("agent: ppo\n")
    assert lt.resume_point(run_dir) == 100_000
    resumed = lt.rlkit_command(long_plan, 1001, run_dir)
    assert resumed[-3:] == ["--resume", str(run_dir), "--quiet"]
    assert run_dir.exists()  # a resumable folder is kept
    # --rlkit-threads N: TensorFlow's threads, on a resume as on a fresh start.
    one = lt.rlkit_command(long_plan, 1001, run_dir, threads=1)
    assert one[3:5] == ["--threads", "1"] and one[-3:] == ["--resume", str(run_dir), "--quiet"]


@pytest.mark.parametrize("margin", [0.0, 2.0])
def test_sb3_callback_confirms_like_rlkit(lt: ModuleType, margin: float) -> None:
    # The SB3 side's evaluation callback, driven by hand (no SB3): an evaluation every 10
    # env steps reaches 100 twice; the first confirmation (mean 105, std 20 * sqrt(30/31)
    # over 31 episodes) clears 100 only without a margin (with 2 standard errors: 97.82,
    # rlkit.evaluate.confirmation_score), the second (110, no spread) clears it either way.
    class Base:
        def __init__(self) -> None:
            self.num_timesteps, self.model = 0, None

    spread = [85.0] * 15 + [125.0] * 15 + [105.0]
    returns = [[120.0, 120.0], spread, [130.0, 130.0], [110.0] * 31]
    callback = lt.sb3_evaluation_callback(
        Base,
        lambda model, seeds: returns.pop(0),
        seed=1,
        every=10,
        eval_episodes=2,
        budget=100,
        rollout_steps=1,
        update_follows=lambda t: False,
        stop=100.0,
        confirm_episodes=31,
        confirm_margin_se=margin,
    )
    callback._on_training_start()
    for t in range(1, 101):
        callback.num_timesteps = t
        callback._on_rollout_start()
        if not callback._on_step():
            break
    assert callback.solved_at["env_steps"] == (20 if margin else 10)
    first = callback.history[0]
    if margin:
        assert first["confirm_score"] == pytest.approx(105 - 2 * np.std(spread) / math.sqrt(31))
        assert callback.solved_at["confirm_score"] == 110.0
    else:
        assert "confirm_score" not in first and first is callback.solved_at


def test_a_run_folder_from_other_settings_is_set_aside(
    lt: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import dataclass, field

    @dataclass
    class Run:
        total_steps: int = 500_000
        eval_every: int = 0
        stop_reward: float | None = None
        confirm_margin_se: float = 0.0

    @dataclass
    class Agent:
        learning_rate: float = 7e-4
        hidden_sizes: tuple[int, ...] = field(default_factory=lambda: (64, 64))

    protocol = {"eval_every": 5000, "stop_reward": 475.0}
    expected = lt.expected_settings(protocol, Run(confirm_margin_se=2.0), Agent())
    # The CLI's overrides are what the run saves; tuples read back as YAML lists.
    assert expected[0] == {
        "total_steps": 500_000,
        "eval_every": 5000,
        "stop_reward": 475.0,
        "confirm_margin_se": 2.0,
        "learning_rate": 7e-4,
        "hidden_sizes": [64, 64],
    }
    assert expected[1]["confirm_margin_se"] == 0.0 and expected[1]["hidden_sizes"] == [64, 64]
    same = {"agent": "a2c", "seed": 9, "checkpoint_every": 0, **expected[0], "total_steps": 1}
    assert lt.stale_settings(same, *expected) == []  # seed, budget, checkpoints: not settings
    # A file written before a setting existed counts it at its default: 0 -> 2 is a change.
    old = {k: v for k, v in same.items() if k != "confirm_margin_se"}
    assert lt.stale_settings(old, *expected) == ["confirm_margin_se 0.0 -> 2.0"]
    assert lt.stale_settings({**same, "learning_rate": 1e-3}, *expected) == [
        "learning_rate 0.001 -> 0.0007"
    ]
    # On disk: a matching folder stays; a stale one is renamed, never deleted.
    import yaml

    run_dir = tmp_path / "seed1"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(same))
    lt.set_aside_if_stale(run_dir, *expected)
    assert run_dir.is_dir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "seed1.stale1").mkdir()  # an earlier one keeps its name
    lt.set_aside_if_stale(run_dir, *expected)
    assert not run_dir.exists() and (tmp_path / "seed1.stale2" / "config.yaml").is_file()
    assert "made with other settings (confirm_margin_se 0.0 -> 2.0)" in capsys.readouterr().out

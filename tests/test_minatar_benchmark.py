"""Tests of the MinAtar benchmark's planning, resuming and report (benchmarks/minatar_ablation.py).

Expected numbers are worked out by hand in the comments. Nothing here trains except the
``slow`` tests (an SB3 smoke run in SB3's Python, and an rlkit CartPole run stopped and
resumed); the rest imports neither TensorFlow (but for the preset check) nor SB3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "minatar_ablation.py"
SB3_PYTHON = os.environ.get("RLKIT_SB3_PYTHON", "/work/sb3venv/bin/python")


@pytest.fixture(scope="module")
def mb(load_benchmark) -> ModuleType:
    return load_benchmark("minatar_ablation")


@pytest.fixture
def results(mb: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the script's CSVs and report folder at a temporary folder."""
    monkeypatch.setattr(mb, "OUT", tmp_path)
    monkeypatch.setattr(mb, "ROWS", tmp_path / "runs.csv")
    monkeypatch.setattr(mb, "CURVES", tmp_path / "curves.csv")
    return tmp_path


def _plan(mb: ModuleType, arm: str = "dqn", game: str = "Breakout", **kw: Any) -> Any:
    fields = {
        "env_id": f"MinAtar/{game}-v1",
        "budget": 1_000_000,
        "eval_every": 50_000,
        "eval_episodes": 10,
        "final_episodes": 30,
        "cli_args": ("--checkpoint-every", "50000"),
    }
    fields.update(kw)
    return mb.Plan(arm=arm, game=game, **fields)


def _run_cfg(**kw: Any) -> SimpleNamespace:
    """A resolved RunConfig as far as the protocol reads it: here, one that follows it."""
    fields = {
        "total_steps": 1_000_000,
        "eval_every": 50_000,
        "eval_episodes": 10,
        "final_eval_episodes": 30,
        "stop_reward": None,
        "eval_epsilon": 0.0,
        "num_envs": 1,
    }
    return SimpleNamespace(**{**fields, **kw})


def _dqn_minatar_cfg(**kw: Any) -> SimpleNamespace:
    """rlkit's DQN MinAtar preset (issue 16), as far as the SB3 translation reads it."""
    fields = {
        "learning_rate": 2.5e-4,
        "adam_epsilon": 3.125e-4,
        "batch_size": 32,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "train_frequency": 4,
        "gradient_steps": 1,
        "target_update_period": 250,
        "tau": 1.0,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.01,
        "exploration_steps": 250_000,
        "max_grad_norm": 10.0,
        "hidden_sizes": (128,),
        "activation": "relu",
        "loss": "huber",
        "mixed_precision": False,
    }
    return SimpleNamespace(**{**fields, **kw})


# -- command line and planning ------------------------------------------------------------
def test_parser_defaults_names_and_tags(mb: ModuleType) -> None:
    args = mb.build_parser().parse_args(["run"])
    assert mb.parse_names(args.games, mb.GAMES, "game") == ["SpaceInvaders", "Breakout"]
    assert mb.parse_names(args.arms, mb.ARMS, "arm") == [
        "dqn",
        "rainbow",
        "rainbow-nstep",
        "rainbow-per",
        "rainbow-dist",
        "sb3-dqn",
    ]
    assert mb.lb.parse_seeds(args.seeds) == [1, 2, 3]
    assert (args.max_steps, args.tag, args.sb3_python, args.sb3_threads) == (None,) * 4
    args = mb.build_parser().parse_args(
        ["run", "--games", "Breakout", "--arms", "rainbow-per,sb3-dqn", "--seeds", "4,6-7"]
    )
    assert mb.parse_names(args.arms, mb.ARMS, "arm") == ["rainbow-per", "sb3-dqn"]
    assert mb.lb.parse_seeds(args.seeds) == [4, 6, 7]
    assert mb.parse_names("dqn, dqn,rainbow", mb.ARMS, "arm") == ["dqn", "rainbow"]
    with pytest.raises(ValueError, match="unknown arm 'sac'"):
        mb.parse_names("dqn,sac", mb.ARMS, "arm")
    with pytest.raises(ValueError, match="unknown game 'Pong'"):
        mb.parse_names("Pong", mb.GAMES, "game")
    # A capped budget's rows get a tag of their own, never the real rows' empty one.
    assert mb.default_tag(None, None) == ""
    assert mb.default_tag(None, 3000) == "max3000"
    assert mb.default_tag("smoke", 3000) == "smoke"
    with pytest.raises(ValueError, match="need a --tag"):
        mb.default_tag("", 3000)
    # 1M steps evaluated every 50k; a smoke budget every third of it.
    assert mb.protocol() == (1_000_000, 50_000)
    assert mb.protocol(3000) == (3000, 1000)
    assert mb.protocol(2_000_000) == (1_000_000, 50_000)


def test_bad_arguments_exit_2_before_anything_runs(
    mb: ModuleType, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--results-dir", str(results), "--runs-dir", str(results / "runs")]
    assert mb.main([*argv, "--arms", "dqn,ppo"]) == 2
    assert "unknown arm 'ppo'" in capsys.readouterr().err
    assert mb.main([*argv, "--max-steps", "3000", "--tag", ""]) == 2
    assert "need a --tag" in capsys.readouterr().err
    assert not (results / "runs").exists()


def test_each_arm_maps_to_the_rlkit_cli(mb: ModuleType) -> None:
    assert mb.arm_args("dqn") == ["--agent", "dqn"]
    assert mb.arm_args("rainbow") == ["--agent", "rainbow"]
    assert mb.arm_args("rainbow-nstep") == ["--agent", "rainbow", "--set", "n_step=1"]
    assert mb.arm_args("rainbow-per") == [
        "--agent",
        "rainbow",
        "--set",
        "prioritized_replay=false",
    ]
    assert mb.arm_args("rainbow-dist") == ["--agent", "rainbow", "--set", "distributional=none"]
    with pytest.raises(ValueError, match="not an rlkit arm"):
        mb.arm_args("sb3-dqn")
    assert [mb.lib_of(a) for a in mb.ARMS] == ["rlkit"] * 5 + ["sb3"]
    # A preset that follows the protocol: the user's command plus checkpoints.
    cli = mb.cli_args("rainbow-per", _run_cfg(), 1_000_000, 50_000)
    plan = _plan(mb, "rainbow-per", cli_args=cli)
    cmd = mb.rlkit_command(plan, 3, Path("/runs/rainbow-per/Breakout/seed3"))
    assert cmd[:3] == [sys.executable, "-m", "rlkit.train"]
    assert mb.shown(cmd) == (
        "python -m rlkit.train --agent rainbow --env MinAtar/Breakout-v1 --seed 3 "
        "--run-dir /runs/rainbow-per/Breakout/seed3 --quiet --checkpoint-every 50000 "
        "--set prioritized_replay=false"
    )
    # Resuming needs only the folder: its config.yaml holds the arm's settings.
    resume = mb.rlkit_command(plan, 3, Path("/runs/x"), resume=True)
    assert resume == [sys.executable, "-m", "rlkit.train", "--resume", "/runs/x", "--quiet"]
    # --rlkit-threads N: TensorFlow's threads, on fresh starts and resumes alike.
    one = mb.rlkit_command(plan, 3, Path("/runs/x"), threads=1)
    assert one[3:5] == ["--threads", "1"] and one[5:7] == ["--agent", "rainbow"]
    assert mb.rlkit_command(plan, 3, Path("/runs/x"), resume=True, threads=2)[3:6] == [
        "--threads",
        "2",
        "--resume",
    ]


def test_protocol_flags_only_where_the_preset_differs(mb: ModuleType) -> None:
    assert mb.protocol_args(_run_cfg(), 1_000_000, 50_000) == ["--checkpoint-every", "50000"]
    # The DQN `default` section (no MinAtar section yet): 100k steps, no periodic
    # evaluation, 100 final episodes.
    default = _run_cfg(total_steps=100_000, eval_every=0, final_eval_episodes=100)
    assert mb.protocol_args(default, 1_000_000, 50_000) == [
        "--total-steps",
        "1000000",
        "--eval-every",
        "50000",
        "--final-eval-episodes",
        "30",
        "--checkpoint-every",
        "50000",
    ]
    # A smoke budget; a stop reward and an evaluation epsilon are switched off.
    odd = _run_cfg(eval_episodes=5, stop_reward=10.0, eval_epsilon=0.05)
    assert mb.protocol_args(odd, 3000, 1000) == [
        "--total-steps",
        "3000",
        "--eval-every",
        "1000",
        "--eval-episodes",
        "10",
        "--set",
        "stop_reward=null",
        "--set",
        "eval_epsilon=0",
        "--checkpoint-every",
        "1000",
    ]


# -- SB3's settings -----------------------------------------------------------------------
def test_sb3_settings_translate_rlkit_dqn_by_hand(mb: ModuleType) -> None:
    cfg = _dqn_minatar_cfg()
    s = mb.sb3_settings(cfg, 1_000_000)
    assert s == {
        "learning_rate": 2.5e-4,
        "adam_epsilon": 3.125e-4,
        "batch_size": 32,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "train_freq": 4,
        "gradient_steps": 1,
        # 250 gradient steps, one per 4 env steps: every 1,000 env steps.
        "target_update_interval": 1000,
        "tau": 1.0,
        "exploration_fraction": 0.25,  # 250k of 1M steps
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.01,
        "max_grad_norm": 10.0,
        "conv_filters": 16,
        "net_arch": [128],
        "activation": "relu",
    }
    # A smoke budget keeps the per-step schedule: epsilon still decays over 250k steps.
    assert mb.sb3_settings(cfg, 3000)["exploration_fraction"] == 250_000 / 3000
    # 2 gradient steps per 4 env steps: 250 of them take 500 env steps.
    assert (
        mb.sb3_settings(_dqn_minatar_cfg(gradient_steps=2), 10**6)["target_update_interval"] == 500
    )
    assert mb.sb3_problems(_run_cfg(), cfg) == []
    problems = mb.sb3_problems(
        _run_cfg(num_envs=4), _dqn_minatar_cfg(loss="mse", gradient_steps=8, target_update_period=3)
    )
    assert problems[0] == "num_envs: rlkit 4, the SB3 side runs 1"
    assert problems[1] == "loss: rlkit mse, SB3 DQN's is Huber"
    assert "1.5 env steps, not a whole number" in problems[2]  # 3 * 4 / 8
    assert len(problems) == 3


def _minatar_sections(path: Path) -> list[str]:
    sections = yaml.safe_load(path.read_text()) or {}
    return [k for k in sections if k.lower() == "minatar" or k.startswith("MinAtar/")]


def test_sb3_settings_match_the_shipped_minatar_dqn_preset(mb: ModuleType) -> None:
    # The MinAtar section of agents/dqn.yaml lands with the MinAtar presets; until then
    # there is nothing to check against.
    if not _minatar_sections(REPO / "agents" / "dqn.yaml"):
        pytest.skip("agents/dqn.yaml has no MinAtar section yet")
    from rlkit.agents import DQN
    from rlkit.config import resolve

    for game in ("SpaceInvaders", "Breakout"):
        run, cfg = resolve(DQN, mb.env_id(game))
        assert mb.sb3_problems(run, cfg) == []
        s = mb.sb3_settings(cfg, run.total_steps)
        expected = mb.sb3_settings(_dqn_minatar_cfg(), 1_000_000)
        assert s == expected, {k: (s[k], expected[k]) for k in s if s[k] != expected[k]}
        # The preset follows the protocol: the command adds only the checkpoints.
        assert mb.protocol_args(run, 1_000_000, 50_000) == ["--checkpoint-every", "50000"]


def test_sb3_is_skipped_cleanly(mb: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert mb.sb3_probe(None) is None
    assert "no --sb3-python" in capsys.readouterr().out
    assert mb.sb3_probe("/nonexistent/python") is None
    assert "SB3 skipped: cannot run" in capsys.readouterr().out


# -- run folders and resuming -------------------------------------------------------------
def _checkpoint(run_dir: Path, step: int, *, ok: bool = True, history: Any = ()) -> None:
    """A checkpoint folder as rlkit writes it (manifest, state.json), or a damaged one."""
    path = run_dir / "checkpoints" / f"step_{step:012d}"
    path.mkdir(parents=True)
    files = {} if ok else {"agent.index": {"bytes": 1, "sha256": "0"}}  # a missing file
    manifest = {"format_version": 1, "step": step, "files": files}
    (path / "manifest.json").write_text(json.dumps(manifest))
    state = {"evaluator": {"history": [dict(h) for h in history]}}
    (path / "state.json").write_text(json.dumps(state))


def test_run_folder_states(mb: ModuleType, tmp_path: Path) -> None:
    run_dir = tmp_path / "seed1"
    assert mb.rlkit_state(run_dir, 3000) == ("fresh", 0)
    run_dir.mkdir()
    (run_dir / "progress.csv").write_text("time/env_steps\n500\n")
    assert mb.rlkit_state(run_dir, 3000) == ("fresh", 0)  # stopped before any checkpoint
    _checkpoint(run_dir, 1000)
    assert mb.rlkit_state(run_dir, 3000) == ("fresh", 0)  # no config.yaml: not resumable
    (run_dir / "config.yaml").write_text("agent: dqn\n")
    assert mb.rlkit_state(run_dir, 3000) == ("resume", 1000)
    _checkpoint(run_dir, 2000, ok=False)  # damaged: rlkit falls back to 1000, as here
    assert mb.rlkit_state(run_dir, 3000) == ("resume", 1000)
    _checkpoint(run_dir, 2500)
    assert mb.rlkit_state(run_dir, 3000) == ("resume", 2500)
    (run_dir / "results.json").write_text(json.dumps({"train_env_steps": 3000}))
    assert mb.rlkit_state(run_dir, 3000) == ("finished", 3000)
    assert mb.rlkit_state(run_dir, 5000) == ("fresh", 0)  # a run of another budget


def _fake_child(calls: list[list[str]], evaluations: list[dict[str, float]]) -> Any:
    """Stands in for ``run_child``: records the command, leaves a finished run behind."""

    def run_child(cmd: list[str], log_path: Path, keep_fds: Any = (), on_stop: str = "") -> int:
        calls.append(list(cmd))
        run_dir = log_path.parent
        # rlkit's train_seconds covers the whole run, earlier processes included.
        results = {"train_env_steps": 3000, "train_seconds": 30.0, "returns": [1.0, 3.0]}
        (run_dir / "results.json").write_text(json.dumps(results))
        _checkpoint(run_dir, 3000, history=evaluations)
        return 0

    return run_child


def test_a_stopped_run_resumes_and_a_finished_one_is_only_read(
    mb: ModuleType, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluations = [
        {"env_steps": 1000, "mean_reward": 0.5},
        {"env_steps": 2000, "mean_reward": 1.5},
        {"env_steps": 3000, "mean_reward": 2.5},
    ]
    calls: list[list[str]] = []
    monkeypatch.setattr(mb, "run_child", _fake_child(calls, evaluations))
    plan = _plan(mb, budget=3000, eval_every=1000, cli_args=("--total-steps", "3000"))
    run_dir = results / "runs" / "dqn" / "Breakout" / "seed1"
    # Stopped at 2,000 steps, after its checkpoint there: continued with --resume.
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("agent: dqn\n")
    _checkpoint(run_dir, 2000, history=evaluations[:2])
    res = mb.run_rlkit(plan, 1, run_dir)
    assert calls == [[sys.executable, "-m", "rlkit.train", "--resume", str(run_dir), "--quiet"]]
    assert res["resumed_from"] == 2000 and res["env_steps"] == 3000
    assert [e["mean_reward"] for e in res["evaluations"]] == [0.5, 1.5, 2.5]
    ledger = json.loads((run_dir / "minatar.json").read_text())
    assert [(s["start"], s["exit"]) for s in ledger["segments"]] == [(2000, 0)]
    row = mb.record(plan, 1, "", "v", res, "python -m rlkit.train ...")
    # 3,000 steps in 30 s of training over both processes; returns 1 and 3: mean 2, std 1.
    assert (row["resumed_from"], row["steps_per_second"]) == (2000, 100.0)
    assert (row["final_mean"], row["final_std"], row["train_seconds"]) == (2.0, 1.0, 30.0)
    assert [c["eval_mean"] for c in mb.lb.read_csv(mb.CURVES)] == ["0.5", "1.5", "2.5"]
    # Finished but unrecorded (stopped between results.json and the row): read, not rerun.
    calls.clear()
    assert mb.run_rlkit(plan, 1, run_dir)["env_steps"] == 3000
    assert calls == []
    # Stopped before its first checkpoint: started again in an emptied folder.
    fresh = results / "runs" / "dqn" / "Breakout" / "seed2"
    fresh.mkdir(parents=True)
    (fresh / "progress.csv").write_text("time/env_steps\n500\n")
    res = mb.run_rlkit(plan, 2, fresh)
    assert calls[0][3:9] == ["--agent", "dqn", "--env", "MinAtar/Breakout-v1", "--seed", "2"]
    assert not (fresh / "progress.csv").exists() and res["resumed_from"] == 0
    # Finished, but with settings the arm no longer has (an older preset): set aside, redone.
    calls.clear()
    expected = ({"n_step": 3}, {"n_step": 1})  # the arm's settings now; config.yaml has none
    mb.run_rlkit(plan, 1, run_dir, (), expected)
    assert calls[0][3:5] == ["--agent", "dqn"]  # a fresh start, not a read or a resume
    assert (run_dir.with_name("seed1.stale1") / "results.json").is_file()


def test_rlkit_arms_carry_the_settings_their_runs_must_have(mb: ModuleType) -> None:
    # What rainbow-nstep's config.yaml must say: the preset with n_step 1, under the protocol.
    plan, (expected, defaults) = mb.prepare("rainbow-nstep", "SpaceInvaders")
    assert expected["n_step"] == 1 and defaults["n_step"] == 3  # Rainbow's own default: 3
    assert expected["prioritized_replay"] is True and expected["stop_reward"] is None
    assert (expected["eval_every"], expected["eval_episodes"]) == (plan.eval_every, 10)
    assert expected["eval_epsilon"] == 0.0


def test_rows_already_there_are_skipped(
    mb: ModuleType, results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = {"env_steps": 10**6, "train_seconds": 100.0, "evaluations": [], "returns": [1.0]}
    mb.record(_plan(mb), 1, "", "v", res, "cmd")
    # Curve rows of a run stopped before its row was written are replaced, not doubled.
    res["evaluations"] = [{"env_steps": 50_000, "mean_reward": 1.0}]
    mb.record(_plan(mb), 2, "", "v", res, "cmd")
    mb.lb.append_csv(mb.CURVES, mb.CURVE_FIELDS, [{**mb.lb.read_csv(mb.CURVES)[0], "seed": 3}])
    mb.record(_plan(mb), 3, "", "v", res, "cmd")
    assert [c["seed"] for c in mb.lb.read_csv(mb.CURVES)] == ["2", "3"]
    argv = ["run", "--arms", "dqn", "--games", "Breakout", "--seeds", "1-3"]
    argv += ["--results-dir", str(results), "--runs-dir", str(results / "runs")]
    assert mb.main(argv) == 0  # nothing to do: TensorFlow is never imported
    assert "0 runs to do (tag '')" in capsys.readouterr().out
    assert {mb.run_key(r) for r in mb.lb.read_csv(mb.ROWS)} == {
        ("dqn", "Breakout", s, "") for s in (1, 2, 3)
    }


# -- children, signals and the lock -------------------------------------------------------
def _interrupt_after(seconds: float) -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


def test_a_stop_is_passed_on_and_the_child_may_finish_its_checkpoint(
    mb: ModuleType, tmp_path: Path
) -> None:
    # The child stands in for rlkit.train: on SIGTERM it takes 0.5 s to "checkpoint".
    marker = tmp_path / "checkpoint"
    child = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n"
        "    time.sleep(0.5)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('written')\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('training', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "minatar.log"
    previous = _interrupt_after(1.0)  # Ctrl-C, as the driver sees it
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            mb.run_child([sys.executable, "-c", child], log)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - t0 < 30
    assert marker.read_text() == "written"  # the driver waited for the child's checkpoint
    text = log.read_text()
    assert "python -c" in text and "training" in text
    assert mb.run_child([sys.executable, "-c", "import sys; sys.exit(3)"], log) == 3


def test_one_run_at_a_time_per_runs_folder(mb: ModuleType, tmp_path: Path) -> None:
    with mb.runs_lock(tmp_path) as fd:
        assert fd >= 0
        with pytest.raises(RuntimeError, match="still works in"):
            with mb.runs_lock(tmp_path, wait_seconds=0.2):
                pass
    with mb.runs_lock(tmp_path, wait_seconds=0.2):  # released
        pass


# -- report -------------------------------------------------------------------------------
def _finished(finals: float, evals: tuple[float, float], seconds: float = 100.0) -> dict:
    """A 1M-step run: two evaluations, 30 final returns all equal to ``finals``."""
    return {
        "env_steps": 1_000_000,
        "train_seconds": seconds,
        "evaluations": [
            {"env_steps": 50_000, "mean_reward": evals[0]},
            {"env_steps": 100_000, "mean_reward": evals[1]},
        ],
        "returns": [finals] * 30,
    }


def test_report_table_ablation_and_plots(mb: ModuleType, results: Path) -> None:
    runs = {  # arm -> per seed (final mean, (two evaluation means))
        "rainbow": [(10.0, (2.0, 4.0)), (20.0, (4.0, 6.0))],
        "rainbow-per": [(4.0, (1.0, 1.0)), (6.0, (1.0, 3.0))],
        "rainbow-dist": [(12.0, (2.0, 2.0)), (14.0, (2.0, 4.0))],
        "rainbow-nstep": [(1.0, (0.0, 0.0))],
        "dqn": [(3.0, (1.0, 1.0)), (5.0, (1.0, 1.0))],
        "sb3-dqn": [(4.0, (1.0, 1.0))],
    }
    for arm, seeds in runs.items():
        for seed, (final, evals) in enumerate(seeds, 1):
            mb.record(_plan(mb, arm), seed, "", "v", _finished(final, evals), "cmd")
    mb.record(_plan(mb), 1, "smoke", "v", _finished(99.0, (9.0, 9.0)), "cmd")  # another tag
    text = mb.report()
    assert text is not None and (results / "table.md").read_text() == text
    assert "from 10 runs" in text
    # Rainbow: finals 10 and 20, mean 15; a resample's mean is 10, 15 or 20 -> CI [10, 20].
    # Mean over evaluations: seed 1 (2 + 4) / 2 = 3, seed 2 5 -> 4 [3, 5]. 1M steps in
    # 100 s: 10,000 steps/s.
    assert (
        "| Breakout | rainbow | rlkit | 2 | 15.00 [10.00, 20.00] | 4.00 [3.00, 5.00] "
        "| 10,000 [10,000-10,000] |" in text
    )
    assert "| Breakout | rainbow-nstep | rlkit | 1 | 1.00 [not enough seeds] " in text
    assert "| Breakout | sb3-dqn | sb3 | 1 | 4.00 [not enough seeds] " in text
    # Without PER: finals 4, 6 -> value 15 - 5 = 10; resampled Rainbow means 10/15/20 minus
    # 4/5/6: from 4 (p 1/16) to 16, so the CI is [4, 16]. Evaluations: 4 - 1.5 = 2.5.
    assert (
        "| prioritized replay (-> uniform) | rainbow-per | 2 / 2 | +10.00 [+4.00, +16.00] "
        "| +2.50 [" in text
    )
    assert "| distributional head (C51 -> expected values) | rainbow-dist | 2 / 2 | +2.00 [" in text
    assert (
        "| multi-step returns (n_step 3 -> 1) | rainbow-nstep | 2 / 1 | not enough seeds "
        "| not enough seeds |" in text
    )
    assert "Ranking: not enough seeds" in text
    assert "Hessel et al. (2018)" in text and "Obando-Ceron & Castro (2021" in text
    assert "| Breakout | 2 / 1 | not enough seeds | not enough seeds |" in text  # rlkit vs SB3
    assert (results / "curves_Breakout.png").stat().st_size > 0
    # A second seed without multi-step returns (finals 1, 3: mean 2, value 13) completes the
    # ranking.
    mb.record(_plan(mb, "rainbow-nstep"), 2, "", "v", _finished(3.0, (0.0, 0.0)), "cmd")
    text = mb.report()
    assert (
        "Ranking by value (final mean): 1. multi-step returns (n_step 3 -> 1) (+13.00), "
        "2. prioritized replay (-> uniform) (+10.00), "
        "3. distributional head (C51 -> expected values) (+2.00)." in text
    )
    # Smoke rows only when asked, into a folder of their own.
    smoke = mb.report("smoke")
    assert smoke is not None and "| Breakout | dqn | rlkit | 1 | 99.00 [not enough seeds]" in smoke
    assert (results / "smoke" / "table.md").exists()
    assert mb.report("nothing-here") is None


# -- slow: real runs ----------------------------------------------------------------------
@pytest.mark.slow
def test_sb3_smoke_run_end_to_end(mb: ModuleType, results: Path, tmp_path: Path) -> None:
    if not Path(SB3_PYTHON).exists():
        pytest.skip(f"no SB3 virtualenv at {SB3_PYTHON} (set RLKIT_SB3_PYTHON)")
    argv = ["run", "--max-steps", "3000", "--games", "Breakout", "--arms", "sb3-dqn"]
    argv += ["--seeds", "1", "--sb3-python", SB3_PYTHON, "--sb3-threads", "1"]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--results-dir", str(results)]
    assert mb.main(argv) == 0
    (row,) = mb.lb.read_csv(mb.ROWS)
    assert (row["lib"], row["arm"], row["tag"], row["env_steps"]) == (
        "sb3",
        "sb3-dqn",
        "max3000",
        "3000",
    )
    assert len(json.loads(row["final_returns"])) == 30
    assert [c["env_steps"] for c in mb.lb.read_csv(mb.CURVES)] == ["1000", "2000", "3000"]
    assert mb.main(argv) == 0  # done: nothing runs again


@pytest.mark.slow
def test_an_rlkit_run_stopped_by_sigterm_resumes_from_its_checkpoint(
    mb: ModuleType, tmp_path: Path
) -> None:
    # rlkit's DQN on CartPole stands in for the MinAtar arms (same CLI, same resume path).
    budget = 10_000
    cli = ("--total-steps", str(budget), "--eval-every", "2000", "--final-eval-episodes", "5")
    cli += ("--set", "stop_reward=null")  # CartPole's preset stops at 475: not here
    plan = _plan(mb, "dqn", env_id="CartPole-v1", budget=budget, eval_every=2000)
    plan = mb.Plan(**{**plan.__dict__, "cli_args": (*cli, "--checkpoint-every", "2000")})
    run_dir = tmp_path / "run"
    driver = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('mb', {str(SCRIPT)!r})\n"
        "mb = importlib.util.module_from_spec(spec); sys.modules['mb'] = mb\n"
        "spec.loader.exec_module(mb)\n"
        f"plan = mb.Plan(**{json.dumps(plan.__dict__)})\n"
        "signal = __import__('signal'); signal.signal(signal.SIGTERM, mb._raise_interrupt)\n"
        "try:\n"
        f"    mb.run_rlkit(plan, 1, mb.Path({str(run_dir)!r}))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO)
    first = run_dir / "checkpoints" / "step_000000002000"
    deadline = time.monotonic() + 600
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 130
    state, step = mb.rlkit_state(run_dir, budget)
    assert state == "resume" and 2000 <= step < budget
    res = mb.run_rlkit(plan, 1, run_dir)
    assert res["env_steps"] == budget and res["resumed_from"] == step
    ledger = json.loads((run_dir / "minatar.json").read_text())
    assert [s["start"] for s in ledger["segments"]] == [0, step]
    assert ledger["segments"][0]["exit"] == "stopped by run"
    steps = [e["env_steps"] for e in res["evaluations"]]
    assert steps == list(range(2000, budget + 1, 2000))  # the whole curve, both processes

"""Tests of the command lines: ``python -m rlkit.train`` and ``python -m rlkit.evaluate``."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from procs import live_workers

import rlkit
from rlkit import evaluate, train
from rlkit.agents import AGENTS
from rlkit.errors import RlkitError, UnknownNameError
from rlkit.policy_io import load_policy

REPO = Path(rlkit.__file__).resolve().parents[1]
ENV = "CartPole-v1"
DQN_FAMILY = ("dqn", "double_dqn", "dueling_dqn", "rainbow")


def tiny_args(name: str) -> list[str]:
    """Flags for a run of a second or two that still updates the agent a few times."""
    args = ["--total-steps", "600", "--final-eval-episodes", "2", "--quiet"]
    args += ["--set", "hidden_sizes=[16,16]", "--set", "log_interval=200"]
    if name in DQN_FAMILY:
        args += ["--set", "learning_starts=100", "--set", "gradient_steps=8"]
    return args


def read_progress(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "progress.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module", params=sorted(AGENTS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One tiny training run per agent through ``train.main``, shared by the tests below."""
    name = request.param
    run_dir = tmp_path_factory.mktemp("runs") / name
    rc = train.main(["--agent", name, "--env", ENV, "--run-dir", str(run_dir), *tiny_args(name)])
    # Snapshot: the evaluate tests below must leave results.json as training wrote it.
    results = run_dir / "results.json"
    train_results = json.loads(results.read_text()) if results.exists() else None
    return {"name": name, "run_dir": run_dir, "rc": rc, "results": train_results}


# -- one training run per agent -----------------------------------------------------------
def test_train_writes_the_run_folder(trained: dict) -> None:
    name, run_dir = trained["name"], trained["run_dir"]
    assert trained["rc"] == 0

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["agent"] == name and config["env"] == ENV
    assert config["total_steps"] == 600 and config["final_eval_episodes"] == 2
    assert config["hidden_sizes"] == [16, 16] and config["log_interval"] == 200
    assert "learning_rate" in config and "seed" in config
    if name in DQN_FAMILY:
        assert config["learning_starts"] == 100 and config["gradient_steps"] == 8

    header, rows = read_progress(run_dir)
    assert "time/env_steps" in header and "time/fps" in header
    assert len(rows) >= 1
    steps = [int(r["time/env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] >= 600
    assert any(k.startswith("train/") for k in header), f"no update metrics logged: {header}"

    events = [p for p in (run_dir / "tb").rglob("*") if p.name.startswith("events.out.tfevents")]
    assert events and all(p.stat().st_size > 0 for p in events)

    policy = json.loads((run_dir / "policy" / "policy.json").read_text())
    assert policy["agent"] == name and policy["env"] == ENV
    assert policy["network"]["hidden_sizes"] == [16, 16]
    assert (run_dir / "policy" / "policy.weights.h5").stat().st_size > 0

    results = trained["results"]
    assert results is not None, "no results.json"
    assert results["n_eval_episodes"] == 2 and len(results["returns"]) == 2
    assert results["mean_reward"] == pytest.approx(np.mean(results["returns"]))
    assert results["std_reward"] == pytest.approx(np.std(results["returns"]))
    assert results["env_id"] == ENV and results["is_deterministic"] is True
    # The same episodes, replayed in a plain gymnasium loop with the saved policy: the final
    # evaluation plays episode i from ``evaluation_seeds(seed, "final", steps, n)[i]``.
    import gymnasium as gym

    from rlkit.evaluate import evaluation_seeds

    seeds = evaluation_seeds(results["seed"], "final", results["train_env_steps"], 2)
    assert results["first_eval_seed"] == seeds[0] and seeds[1] == seeds[0] + 1
    policy, env, replayed = load_policy(run_dir), gym.make(ENV), []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(policy(obs[None])[0]))
            total, done = total + reward, terminated or truncated
        replayed.append(total)
    env.close()
    assert results["returns"] == replayed


def test_evaluate_a_trained_run(trained: dict, capsys: pytest.CaptureFixture) -> None:
    run_dir = trained["run_dir"]
    capsys.readouterr()
    assert evaluate.main(["--run", str(run_dir), "--episodes", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "mean reward" in out and trained["name"] in out
    first = json.loads((run_dir / "evaluations" / "seed1-3ep.json").read_text())
    assert json.loads((run_dir / "results.json").read_text()) == trained["results"]
    assert first["n_eval_episodes"] == 3 and len(first["returns"]) == 3 and first["seed"] == 1
    assert f"{first['mean_reward']:.2f} ± {first['std_reward']:.2f}" in out

    # Same seed, same episodes; the policy folder itself is accepted too.
    assert evaluate.main(["--run", str(run_dir / "policy"), "--episodes", "3", "--seed", "1"]) == 0
    again = json.loads((run_dir / "policy" / "evaluations" / "seed1-3ep.json").read_text())
    assert again["returns"] == first["returns"]


def test_saved_policy_acts_like_the_trained_agent(trained: dict, tmp_path: Path) -> None:
    """The loaded policy replays the final greedy evaluation of training exactly.

    ``train`` plays its final evaluation episodes with the live agent from consecutive seeds
    starting at ``first_eval_seed``; the saved policy must score the same episodes identically.
    """
    run_dir = tmp_path / "copy"
    shutil.copytree(trained["run_dir"], run_dir)
    train_results = trained["results"]
    first = str(train_results["first_eval_seed"])
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2", "--seed", first]) == 0
    eval_results = json.loads((run_dir / "evaluations" / f"seed{first}-2ep.json").read_text())
    assert eval_results["returns"] == train_results["returns"]


def test_saved_policy_greedy_actions_match_the_agent(tmp_path: Path) -> None:
    """Direct check on a batch of observations, for every agent, without training."""
    import gymnasium as gym

    from rlkit.config import resolve
    from rlkit.policy_io import load_policy, save_policy

    env = gym.make(ENV)
    obs = np.stack([env.observation_space.sample() for _ in range(256)]) * 0.5
    for name, cls in AGENTS.items():
        _, cfg = resolve(cls, ENV, overrides={"hidden_sizes": [16, 16]})
        agent = cls(env.observation_space, env.action_space, cfg, seed=3)
        save_policy(tmp_path / name, agent.policy_network(), agent=name, env_id=ENV)
        policy = load_policy(tmp_path / name)
        np.testing.assert_array_equal(policy(obs), agent.act(obs, explore=False), err_msg=name)
    env.close()


def test_progress_rows_have_increasing_steps(trained: dict) -> None:
    _, rows = read_progress(trained["run_dir"])
    steps = [int(r["time/env_steps"]) for r in rows]
    assert len(steps) == len(set(steps)), steps
    assert all(float(r["time/fps"]) > 0 for r in rows)


# -- bad input: exit code 2, one clear line, no run folder --------------------------------
BAD_TRAIN = [
    (["--agent", "sac", "--env", ENV], ["unknown agent 'sac'", *sorted(AGENTS)]),
    (["--agent", "dqn", "--env", "NoSuchEnv-v0"], ["NoSuchEnv-v0"]),
    (["--agent", "dqn", "--env", "Pendulum-v1"], ["Discrete", "Box(-2.0", "--agent ppo"]),
    (["--agent", "a2c", "--env", ENV, "--set", "bogus=1"], ["bogus", "valid", "n_steps"]),
    (["--agent", "dqn", "--env", ENV, "--set", "batch_size=abc"], ["batch_size", "abc"]),
    (["--agent", "dqn", "--env", ENV, "--set", "gamma=2"], ["gamma", "<= 1"]),
    (["--agent", "a2c", "--env", ENV, "--vectorization", "threads"], ["threads", "sync"]),
    (["--agent", "dqn", "--env", ENV, "--config", "missing.yaml"], ["missing.yaml", "exist"]),
    (["--agent", "dqn", "--env", ENV, "--set", "novalue"], ["novalue", "key=value"]),
    (["--agent", "dqn", "--env", ENV, "--total-steps", "50"], ["learning_starts"]),
    (["--agent", "reinforce", "--env", ENV, "--seed", "-1"], ["seed", ">= 0"]),
]


@pytest.mark.parametrize(("argv", "fragments"), BAD_TRAIN, ids=lambda v: " ".join(v)[:60])
def test_train_bad_input(
    argv: list[str],
    fragments: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert train.main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert any(line.startswith("error: ") for line in captured.err.splitlines()), captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a run folder was written"


def test_train_run_dir_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "taken"
    path.write_text("")
    argv = ["--agent", "a2c", "--env", ENV, "--total-steps", "40", "--run-dir", str(path)]
    assert train.main(argv) == 2
    assert "taken" in capsys.readouterr().err


def test_train_debug_flag_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError):
        train.main(["--agent", "dqn", "--env", "NoSuchEnv-v0", "--debug"])


def test_train_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        train.main(["--agent", "dqn", "--env", ENV, "-x"])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--agent", "dqn"], ["--env", ENV]])
def test_train_needs_agent_and_env_or_resume(argv: list[str], capsys) -> None:
    assert train.main(argv) == 2
    assert "give --agent and --env (or --resume RUN_DIR)" in capsys.readouterr().err


def test_show_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["--agent", "dqn", "--env", ENV, "--show-config", "--set", "gamma=0.5", "--seed", "3"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "learning_rate" in out
    shown = yaml.safe_load(out)
    assert shown["agent"] == "dqn" and shown["env"] == ENV
    assert shown["gamma"] == 0.5 and shown["seed"] == 3
    assert shown["jit_compile"] is False and shown["mixed_precision"] is False
    assert list(tmp_path.iterdir()) == []


def test_agent_help_names_every_agent() -> None:
    (action,) = [a for a in train.build_parser()._actions if a.dest == "agent"]
    assert sorted(action.help.replace(",", " ").split()) == sorted(AGENTS)


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_accelerator_flags_for_every_agent(agent: str, capsys) -> None:
    argv = ["--agent", agent, "--env", ENV, "--show-config", "--jit-compile", "--mixed-precision"]
    assert train.main(argv) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["jit_compile"] is True and shown["mixed_precision"] is True


def test_default_run_folder_increments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["--agent", "a2c", "--env", ENV, "--total-steps", "40", "--num-envs", "2"]
    argv += ["--final-eval-episodes", "0", "--set", "hidden_sizes=[8]", "--quiet"]
    assert train.main(argv) == 0
    assert train.main(argv) == 0
    folder = tmp_path / "runs" / "a2c"
    assert sorted(p.name for p in folder.iterdir()) == ["CartPole-v1_1", "CartPole-v1_2"]
    for run_dir in folder.iterdir():
        assert (run_dir / "config.yaml").is_file() and (run_dir / "policy").is_dir()
        assert not (run_dir / "results.json").exists()  # --final-eval-episodes 0: no evaluation
    assert "runs/a2c/CartPole-v1_2" in capsys.readouterr().out


def test_next_run_dir(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert train.next_run_dir(root, "dqn", ENV) == root / "dqn" / "CartPole-v1_1"
    for name in ("CartPole-v1_2", "CartPole-v1_10", "CartPole-v1_x", "Acrobot-v1_40"):
        (root / "dqn" / name).mkdir(parents=True)
    assert train.next_run_dir(root, "dqn", ENV) == root / "dqn" / "CartPole-v1_11"
    assert train.next_run_dir(root, "dqn", "ALE/Pong-v5") == root / "dqn" / "ALE-Pong-v5_1"
    assert train.next_run_dir(root, "a2c", ENV) == root / "a2c" / "CartPole-v1_1"


def test_async_vectorization_leaves_no_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import gymnasium as gym

    # Only an explicit close counts: garbage collection would otherwise hide a missing one.
    monkeypatch.setattr(gym.vector.AsyncVectorEnv, "__del__", lambda self: None)
    before = live_workers()
    run_dir = tmp_path / "async"
    argv = ["--agent", "a2c", "--env", ENV, "--vectorization", "async", "--num-envs", "2"]
    argv += ["--total-steps", "100", "--final-eval-episodes", "1", "--run-dir", str(run_dir)]
    argv += ["--set", "hidden_sizes=[8]", "--quiet"]
    assert train.main(argv) == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["vectorization"] == "async" and config["num_envs"] == 2
    _, rows = read_progress(run_dir)
    assert int(rows[-1]["time/env_steps"]) >= 100
    assert multiprocessing.active_children() == []
    after = live_workers()
    assert after - before == set(), "env worker processes left running"


# -- evaluate: bad input ------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved (untrained) DQN policy for CartPole, to corrupt in the tests below."""
    import gymnasium as gym

    from rlkit.agents import DQN, DQNConfig
    from rlkit.policy_io import save_policy

    env = gym.make(ENV)
    agent = DQN(env.observation_space, env.action_space, DQNConfig(hidden_sizes=(8,)), seed=0)
    path = tmp_path_factory.mktemp("saved") / "policy"
    save_policy(path, agent.policy_network(), agent="dqn", env_id=ENV)
    return path


def corrupt(policy_dir: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "policy"
    shutil.copytree(policy_dir, path)
    meta = json.loads((path / "policy.json").read_text())
    edit(meta)
    (path / "policy.json").write_text(json.dumps(meta))
    return path


def test_evaluate_saved_policy_folder(policy_dir: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "p"
    shutil.copytree(policy_dir, path)
    assert evaluate.main(["--run", str(path), "--episodes", "1"]) == 0
    written = json.loads((path / "evaluations" / "seed0-1ep.json").read_text())
    assert written["n_eval_episodes"] == 1


BAD_POLICIES = {
    "unknown network kind": (lambda m: m["network"].update(kind="transformer"), "transformer"),
    "extra top-level key": (lambda m: m.update(pickle="yes"), "not an rlkit policy"),
    "extra network key": (lambda m: m["network"].update(layers=3), "layers"),
    "missing network": (lambda m: m.pop("network"), "not an rlkit policy"),
    "newer format": (lambda m: m.update(format_version=99), "format version 99"),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_evaluate_rejects_crafted_policy_json(
    case: str, policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    edit, fragment = BAD_POLICIES[case]
    path = corrupt(policy_dir, tmp_path, edit)
    assert evaluate.main(["--run", str(path), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and fragment in err and "Traceback" not in err
    assert not (path / "results.json").exists()


def test_evaluate_other_bad_input(policy_dir: Path, tmp_path: Path, capsys) -> None:
    assert evaluate.main(["--run", str(tmp_path)]) == 2
    assert "no saved policy" in capsys.readouterr().err
    (tmp_path / "policy.json").write_text("{not json")
    assert evaluate.main(["--run", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert evaluate.main(["--run", str(policy_dir), "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err
    assert evaluate.main(["--run", str(policy_dir), "--env", "NoSuchEnv-v0"]) == 2
    assert "NoSuchEnv-v0" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing weights", "weights of another shape"])
def test_evaluate_rejects_bad_weights(
    case: str, policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if case == "missing weights":
        path = corrupt(policy_dir, tmp_path, lambda m: None)
        (path / "policy.weights.h5").unlink()
    else:
        path = corrupt(policy_dir, tmp_path, lambda m: m["network"].update(hidden_sizes=[32]))
    assert evaluate.main(["--run", str(path), "--episodes", "1"]) == 2
    assert "policy.weights.h5" in capsys.readouterr().err


def test_evaluate_on_an_incompatible_env_is_a_clear_error(policy_dir: Path, capsys) -> None:
    assert evaluate.main(["--run", str(policy_dir), "--env", "Acrobot-v1", "--episodes", "1"]) == 2
    assert "Acrobot-v1" in capsys.readouterr().err


# -- the real command line, once ----------------------------------------------------------
def test_train_as_a_subprocess(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    base = [sys.executable, "-m", "rlkit.train", "--agent", "dqn"]
    bad = subprocess.run(
        [*base, "--env", "NoSuchEnv-v0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2, (bad.returncode, bad.stdout, bad.stderr)
    assert "error: unknown env 'NoSuchEnv-v0'" in bad.stderr
    assert "Traceback" not in bad.stderr
    ok = subprocess.run(
        [*base, "--env", ENV, "--show-config", "--set", "batch_size=5e1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, (ok.returncode, ok.stdout, ok.stderr)
    assert yaml.safe_load(ok.stdout)["batch_size"] == 50
    assert list(tmp_path.iterdir()) == []


def test_threads_flag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # In a fresh process (TensorFlow's pools are fixed once it has run, as in this one).
    run_dir = tmp_path / "run"
    code = (
        "import sys; from rlkit import train; import tensorflow as tf\n"
        "rc = train.main(sys.argv[1:])\n"
        "pools = tf.config.threading\n"
        "print(rc, pools.get_intra_op_parallelism_threads(), "
        "pools.get_inter_op_parallelism_threads())\n"
    )
    argv = [*tiny_args("a2c"), "--agent", "a2c", "--env", ENV, "--run-dir", str(run_dir)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv, "--threads", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.stdout.split()[-3:] == ["0", "1", "1"], (proc.stdout, proc.stderr)
    assert (run_dir / "results.json").is_file()
    # Bad values, and a process whose TensorFlow already ran: exit 2, one line.
    assert train.main(["--agent", "a2c", "--env", ENV, "--threads", "0"]) == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # this process's TensorFlow has run
    assert train.main([*argv, "--threads", "2"]) == 2
    assert "--threads cannot be changed once TensorFlow has run" in capsys.readouterr().err


def tiny_a2c(run_dir: Path, *extra: str) -> list[str]:
    """A quiet, tiny A2C run on CartPole into ``run_dir``."""
    return ["--agent", "a2c", "--env", ENV, "--run-dir", str(run_dir), "--quiet", *extra]


def test_train_video_records_the_final_evaluation(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = tiny_a2c(run_dir, "--total-steps", "100", "--final-eval-episodes", "1", "--video")
    assert train.main(argv) == 0
    gif = run_dir / "final_episode.gif"
    assert gif.exists() and gif.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    assert json.loads((run_dir / "results.json").read_text())["video"] == str(gif)


def test_train_records_gifs_during_training_and_times_updates(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = tiny_a2c(
        run_dir, "--total-steps", "200", "--final-eval-episodes", "0", "--set", "video_every=100"
    )
    assert train.main(argv) == 0
    gifs = sorted(p.name for p in (run_dir / "videos").glob("*.gif"))
    assert len(gifs) == 2 and gifs[0].startswith("step_0000001")
    header, rows = read_progress(run_dir)
    assert "time/update_ms" in header and float(rows[-1]["time/update_ms"]) > 0


def test_a_resumed_run_keeps_the_gif_schedule(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    common = ["--final-eval-episodes", "0", "--set", "video_every=150"]
    assert train.main(tiny_a2c(run_dir, "--total-steps", "200", *common)) == 0
    assert train.main(["--resume", str(run_dir), "--total-steps", "400", "--quiet"]) == 0
    steps = sorted(int(p.stem.split("_")[1]) for p in (run_dir / "videos").glob("*.gif"))
    # One GIF at each multiple of 150 (or the first step past it); none at the resume.
    assert len(steps) == 2 and 150 <= steps[0] < 160 and 300 <= steps[1] < 310, steps


def test_best_policy_is_kept_and_evaluated(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = tiny_a2c(
        run_dir,
        "--total-steps",
        "300",
        "--eval-episodes",
        "2",
        "--eval-every",
        "100",
        "--final-eval-episodes",
        "1",
    )
    assert train.main(argv) == 0
    assert (run_dir / "best_policy" / "policy.json").exists()
    assert evaluate.main(["--run", str(run_dir), "--best", "--episodes", "2"]) == 0
    capsys.readouterr()
    (run_dir / "best_policy" / "policy.json").unlink()
    assert evaluate.main(["--run", str(run_dir), "--best"]) == 2
    assert "--eval-every" in capsys.readouterr().err


def test_python_api_run_matches_the_cli(tmp_path: Path) -> None:
    folder = train.run(
        agent="a2c",
        env=ENV,
        total_steps=200,
        seed=4,
        run_dir=tmp_path / "api",
        overrides={"hidden_sizes": [16, 16], "final_eval_episodes": 1, "learning_rate": 1e-3},
    )
    assert folder == tmp_path / "api" and (folder / "policy" / "policy.json").exists()
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["hidden_sizes"] == [16, 16] and config["learning_rate"] == 1e-3
    assert config["seed"] == 4
    with pytest.raises(RlkitError, match="gamma"):
        train.run(agent="a2c", env=ENV, overrides={"gamma": 3}, run_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_same_seed_same_weights(tmp_path: Path) -> None:
    weights = []
    for name in ("one", "two"):
        folder = train.run(
            agent="dqn",
            env=ENV,
            total_steps=400,
            seed=7,
            run_dir=tmp_path / name,
            overrides={"hidden_sizes": [16, 16], "learning_starts": 100, "final_eval_episodes": 0},
        )
        weights.append(load_policy(folder).network.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_evaluate_stochastic(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert train.main(tiny_a2c(run_dir, "--total-steps", "100", "--final-eval-episodes", "0")) == 0
    argv = ["--run", str(run_dir), "--episodes", "3", "--stochastic", "--seed", "2"]
    assert evaluate.main(argv) == 0
    written = run_dir / "evaluations" / "seed2-3ep-stochastic.json"
    first = json.loads(written.read_text())
    assert evaluate.main(argv) == 0
    again = json.loads(written.read_text())
    assert first["returns"] == again["returns"] and first["is_deterministic"] is False
    dqn_dir = tmp_path / "dqn"
    argv = [
        "--agent",
        "dqn",
        "--env",
        ENV,
        "--total-steps",
        "50",
        "--final-eval-episodes",
        "0",
        "--set",
        "learning_starts=10",
        "--run-dir",
        str(dqn_dir),
        "--quiet",
    ]
    assert train.main(argv) == 0
    capsys.readouterr()
    assert evaluate.main(["--run", str(dqn_dir), "--stochastic"]) == 2
    assert "--epsilon" in capsys.readouterr().err


def test_train_says_when_the_default_section_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A run on an env its preset has no section for says so; one on CartPole does not."""
    base = ["--agent", "a2c", "--total-steps", "40", "--num-envs", "2"]
    base += ["--final-eval-episodes", "0", "--set", "hidden_sizes=[8]"]
    assert train.main([*base, "--env", "Acrobot-v1", "--run-dir", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "preset: agents/a2c.yaml has no section for Acrobot-v1" in out
    assert train.main([*base, "--env", ENV, "--run-dir", str(tmp_path / "b")]) == 0
    assert "has no section" not in capsys.readouterr().out
    # A resumed run took its settings from its own config.yaml: no note.
    argv = ["--resume", str(tmp_path / "a"), "--total-steps", "80"]
    assert train.main(argv) == 0
    assert "has no section" not in capsys.readouterr().out

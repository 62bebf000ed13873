"""Checkpoints: exact resume, atomic writes, fallback on damage, format versions, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from rlkit import train
from rlkit.agents import get_agent_class
from rlkit.agents.common import seed_everything
from rlkit.checkpoint import Checkpointer, CheckpointError
from rlkit.config import resolve
from rlkit.experiment import learn

SMALL = {"hidden_sizes": [16, 16], "num_envs": 2, "eval_every": 0, "stop_reward": None}
OFF_POLICY = {"learning_starts": 200, "train_frequency": 16, "gradient_steps": 4}
# PPO with every piece of state a resume must restore: the minibatch permutations' counter,
# observation statistics in the network, the reward scale and each env's running return.
# Not the preset's annealing: it follows the run's budget, which this test extends on resume
# (1000, then 1500), so the first 1000 steps would anneal differently from a 1500-step run
# (by design, as with Stable-Baselines3's schedules).
PPO = {"batch_size": 32, "n_epochs": 2, "normalize_obs": True, "normalize_reward": True}
PPO.update(anneal_lr=False, anneal_clip_range=False)


def cli_a2c(run_dir: Path, *extra: str) -> list[str]:
    """Arguments of a quiet A2C run on CartPole into ``run_dir``."""
    return ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet", *extra]


def train_agent(name: str, total: int, run_dir: Path, resume: bool = False, every: int = 1000):
    cls = get_agent_class(name)
    overrides = {**SMALL, "total_steps": total, "checkpoint_every": every, "seed": 3}
    if not cls.on_policy:
        overrides.update(OFF_POLICY)
    if name == "ppo":
        overrides.update(PPO)
    if name == "rainbow":  # beta fixed: its annealing follows the budget, which grows here
        overrides.update(per_beta0=1.0, noisy=True)  # noisy nets: the CartPole preset has none
    run, cfg = resolve(cls, "CartPole-v1", overrides=overrides)
    seed_everything(3)
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=3)
    result = learn(agent, "CartPole-v1", run, run_dir=run_dir, resume=resume)
    return agent, result


@pytest.mark.parametrize("name", ["dqn", "a2c", "reinforce", "ppo", "rainbow"])
def test_resume_gives_bitwise_identical_weights(name, tmp_path):
    # N + M steps in one go vs N steps, a stop, a resume and M more: N is a multiple of
    # checkpoint_every, so both runs reset their envs with the same seed at step N.
    # N = 1000 already holds many updates (DQN: a target sync before and after the stop).
    straight, _ = train_agent(name, 1500, tmp_path / "straight")
    train_agent(name, 1000, tmp_path / "split")
    resumed, result = train_agent(name, 1500, tmp_path / "split", resume=True)
    assert result.env_steps >= 1500
    for a, b in zip(
        straight.policy_network().get_weights(), resumed.policy_network().get_weights(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert int(straight.updates.numpy()) == int(resumed.updates.numpy())
    if name == "ppo":  # the network's weights above include the observation statistics
        assert int(straight.rollouts.numpy()) == int(resumed.rollouts.numpy()) > 0
        assert straight.network.obs_normalizer.count.numpy() > 1000
        for a, b in zip(straight.reward_scaler.weights, resumed.reward_scaler.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(
            straight.reward_scaler.carry.numpy(), resumed.reward_scaler.carry.numpy()
        )
    if name == "rainbow":  # the noise streams and the replay's priorities resume too
        streams = [
            (a.noise_state.numpy(), b.noise_state.numpy())
            for a, b in zip(
                list(straight.q_network._flatten_layers()),
                list(resumed.q_network._flatten_layers()),
                strict=True,
            )
            if hasattr(a, "noise_state")
        ]
        assert streams and all(np.array_equal(a, b) for a, b in streams)
    if name in ("dqn", "rainbow"):
        assert straight.epsilon == resumed.epsilon
        for a, b in zip(
            straight.target_network.get_weights(),
            resumed.target_network.get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)


def test_without_resume_the_runs_differ(tmp_path):
    # The contract test above can fail: a fresh 1000-step run continued without restoring
    # is not the same as one straight run.
    straight, _ = train_agent("a2c", 1500, tmp_path / "a")
    other, _ = train_agent("a2c", 1500, tmp_path / "b", every=700)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            straight.policy_network().get_weights(),
            other.policy_network().get_weights(),
            strict=True,
        )
    )


@pytest.fixture()
def run_with_checkpoints(tmp_path):
    train_agent("dqn", 1500, tmp_path / "run", every=500)
    return tmp_path / "run"


def test_keeps_the_newest_and_writes_atomically(run_with_checkpoints):
    folder = run_with_checkpoints / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["step_000000001000", "step_000000001500"]  # keep_checkpoints = 2
    manifest = json.loads((folder / names[-1] / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["step"] == 1500
    assert "arrays/frames.npy" in manifest["files"] and "state.json" in manifest["files"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "alter"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(run_with_checkpoints, damage):
    newest = run_with_checkpoints / "checkpoints" / "step_000000001500"
    target = newest / "arrays" / "frames.npy"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete":
        target.unlink()
    else:
        data = bytearray(target.read_bytes())
        data[-1] ^= 0xFF
        target.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="damaged"):
        path, state, _ = Checkpointer(run_with_checkpoints).load_latest()
    assert path.name == "step_000000001000" and state["runner"]["env_steps"] >= 1000


def test_half_written_checkpoint_is_ignored(run_with_checkpoints):
    folder = run_with_checkpoints / "checkpoints"
    shutil.copytree(folder / "step_000000001500", folder / ".tmp-step_000000002000")
    path, _, _ = Checkpointer(run_with_checkpoints).load_latest()
    assert path.name == "step_000000001500"


def test_newer_format_is_refused(run_with_checkpoints):
    manifest = run_with_checkpoints / "checkpoints" / "step_000000001500" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="format 99.*upgrade rlkit"):
        Checkpointer(run_with_checkpoints).load_latest()


def test_checkpoints_hold_the_written_rows_and_report_size_and_time(tmp_path, capsys):
    import csv

    cls = get_agent_class("dqn")
    overrides = {**SMALL, **OFF_POLICY, "total_steps": 1000, "checkpoint_every": 400}
    overrides.update({"buffer_size": 100_000, "log_interval": 250, "seed": 3})
    run, cfg = resolve(cls, "CartPole-v1", overrides=overrides)
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=3)
    learn(agent, "CartPole-v1", run, run_dir=tmp_path / "run", verbose=1)
    newest = Checkpointer(tmp_path / "run").checkpoints()[-1]
    state = json.loads((newest / "state.json").read_text())["replay"]
    # 2 envs: about 500 rows (autoreset rows are stored too, not counted as steps) of 50,000.
    count = state["count"]
    assert 500 <= count < 600 and state["rows"] == 50_000
    for file in sorted((newest / "arrays").glob("*.npy")):
        if file.stem not in ("last_valid", "last_next"):
            assert len(np.load(file, allow_pickle=False)) == count, file.name
    frames = newest / "arrays" / "frames.npy"
    assert frames.stat().st_size < count * 2 * 4 * 4 + 200  # float32 [count, 2, 4] + header
    # Periodic checkpoints: size and write time in the progress rows; the final one: a line.
    with open(tmp_path / "run" / "progress.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("time/checkpoint_mb")]
    assert rows and all(float(r["time/checkpoint_mb"]) > 0 for r in rows)
    assert all(float(r["time/checkpoint_s"]) > 0 for r in rows)
    mb = sum(p.stat().st_size for p in newest.rglob("*") if p.is_file()) / 1e6
    out = capsys.readouterr().out
    assert f"checkpoint {newest}: {mb:,.1f} MB written in " in out


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        Checkpointer(tmp_path).load_latest()


def test_cli_resume_extends_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    base = [
        "--quiet",
        "--final-eval-episodes",
        "0",
        "--set",
        "hidden_sizes=[16,16]",
        "--set",
        "log_interval=200",
    ]
    argv = cli_a2c(run_dir, "--total-steps", "800", "--checkpoint-every", "400", *base)
    assert train.main(argv) == 0
    # A second fresh run into the same folder would bury the first: refused.
    assert train.main(argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert train.main(["--resume", str(run_dir), "--total-steps", "1600", *base]) == 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["total_steps"] == 1600 and config["agent"] == "a2c"
    steps = [p.name for p in (run_dir / "checkpoints").iterdir()]
    assert max(steps) >= "step_000000001600"
    lines = (run_dir / "progress.csv").read_text().splitlines()
    assert lines[0].startswith("time/env_steps")
    steps = [int(float(line.split(",")[0])) for line in lines[1:]]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one row per step
    assert steps[0] <= 400 and steps[-1] >= 1600


def test_cli_resume_errors(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    argv = cli_a2c(run_dir, "--total-steps", "200", "--final-eval-episodes", "0")
    assert train.main(argv) == 0
    assert train.main(["--resume", str(run_dir), "--agent", "dqn"]) == 2
    assert "does not match" in capsys.readouterr().err


def test_global_rng_states_are_restored(tmp_path):
    import random

    train_agent("a2c", 400, tmp_path / "run", every=400)
    _, state, _ = Checkpointer(tmp_path / "run").load_latest()
    # Resuming at the budget trains nothing: the global generators are left exactly as
    # the checkpoint saved them, not as seed_everything (called again) set them.
    train_agent("a2c", 400, tmp_path / "run", resume=True, every=400)
    version, internal, gauss = state["python_random"]
    assert random.getstate() == (version, tuple(internal), gauss)
    assert np.random.get_state()[1].tolist() == state["numpy_global"][1]
    random.seed(3)
    assert random.getstate() != (version, tuple(internal), gauss)


def test_evaluate_a_checkpoint(tmp_path, capsys):
    from rlkit import evaluate

    run_dir = tmp_path / "run"
    argv = cli_a2c(
        run_dir, "--total-steps", "400", "--checkpoint-every", "200", "--final-eval-episodes", "2"
    )
    assert train.main(argv) == 0
    newest = Checkpointer(run_dir).checkpoints()[-1]
    assert evaluate.main(["--run", str(newest), "--episodes", "2"]) == 0
    written = run_dir / "evaluations" / f"{newest.name}-seed0-2ep.json"
    from_checkpoint = json.loads(written.read_text())
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2"]) == 0
    from_policy = json.loads((run_dir / "evaluations" / "seed0-2ep.json").read_text())
    assert from_checkpoint["returns"] == from_policy["returns"]  # same weights at the end
    (newest / "state.json").write_text("{}")
    capsys.readouterr()
    assert evaluate.main(["--run", str(newest)]) == 2
    assert "damaged" in capsys.readouterr().err


def test_a_failed_resume_closes_async_workers(tmp_path):
    from procs import live_children

    cls = get_agent_class("a2c")
    run, cfg = resolve(cls, "CartPole-v1", overrides={**SMALL, "vectorization": "async"})
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=0)
    before = live_children()
    with pytest.raises(CheckpointError):
        learn(agent, "CartPole-v1", run, run_dir=tmp_path / "empty", resume=True)
    leftover = {
        pid
        for pid in live_children() - before
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    }
    assert leftover == set()


def test_resume_with_a_changed_network_is_refused_and_the_config_kept(tmp_path, capsys):
    run_dir = tmp_path / "run"
    base = ["--final-eval-episodes", "0", "--quiet"]
    assert train.main(cli_a2c(run_dir, "--total-steps", "200", "--set", "hidden_sizes=[8]")) == 0
    saved = (run_dir / "config.yaml").read_text()
    argv = ["--resume", str(run_dir), "--total-steps", "400", "--set", "hidden_sizes=[16]", *base]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit this A2C" in err and "shape (4, 8)" in err
    assert (run_dir / "config.yaml").read_text() == saved  # nothing the user saved changed
    assert train.main(["--resume", str(run_dir), "--total-steps", "400", *base]) == 0


def test_a_resumed_run_counts_the_training_seconds_of_the_process_before(tmp_path):
    _, first = train_agent("a2c", 1000, tmp_path / "run")
    newest = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))[-1]
    saved = json.loads((newest / "state.json").read_text())["evaluator"]
    assert 0 < saved["train_seconds"] <= first.train_seconds
    _, resumed = train_agent("a2c", 1500, tmp_path / "run", resume=True)
    assert resumed.earlier_train_seconds == saved["train_seconds"]
    own = resumed.seconds - resumed.eval_seconds
    assert resumed.train_seconds == pytest.approx(saved["train_seconds"] + own)
    assert first.earlier_train_seconds == 0.0  # a fresh run has no earlier process

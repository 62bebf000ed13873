"""Golden runs: each agent trained briefly on CartPole-v1 in a fresh process, digested.

The digest (checksums of the saved policy's weights and of progress.csv without its
timing columns) is what the learner-interface refactor must keep bit for bit on CPU, and
what two fresh processes with the same seed must agree on.

Record (only after a deliberate change of behaviour, saying why in the commit):
    python tests/golden_runs.py
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

GOLDEN = Path(__file__).parent / "golden" / "cartpole.json"
SEED = 5
# Steps per agent: enough for many updates (DQN: ~1,000 fused gradient steps after
# learning_starts; A2C: ~150 updates; REINFORCE: ~20 updates of 8 episodes).
STEPS = {
    "dqn": 3_000,
    "double_dqn": 3_000,
    "dueling_dqn": 3_000,
    "a2c": 6_000,
    "reinforce": 6_000,
}


# Settings pinned to the presets' values when the runs were recorded, so that a preset that
# changes later (the DQN family's CartPole network became 256x256) does not change the runs.
PINNED = {"dqn": ["hidden_sizes=[64,64]"], "double_dqn": ["hidden_sizes=[64,64]"]}
PINNED["dueling_dqn"] = PINNED["dqn"]


def train_command(agent: str, run_dir: Path) -> list[str]:
    """The CLI call of one golden run (no periodic evaluation, no stop rule)."""
    pinned = [arg for setting in PINNED.get(agent, []) for arg in ("--set", setting)]
    return [
        sys.executable,
        "-m",
        "rlkit.train",
        "--agent",
        agent,
        "--env",
        "CartPole-v1",
        "--seed",
        str(SEED),
        "--total-steps",
        str(STEPS[agent]),
        "--eval-every",
        "0",
        "--set",
        "stop_reward=null",
        *pinned,
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]


def weights_digest(path: Path) -> dict[str, str]:
    """sha256 of every array in a ``.weights.h5`` file, by its path in the file."""
    out: dict[str, str] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            array = np.ascontiguousarray(obj[()])
            out[name] = hashlib.sha256(array.tobytes()).hexdigest()[:16]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def progress_rows(path: Path) -> list[dict[str, str]]:
    """progress.csv without the wall-clock columns (fps, elapsed, update time)."""
    timing = {"time/fps", "time/elapsed_s", "time/update_ms"}
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(f)]


def run_and_digest(agent: str, run_dir: Path) -> dict[str, object]:
    """Train ``agent`` in a fresh process and digest what it wrote."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        train_command(agent, run_dir), check=True, env=env, capture_output=True, text=True
    )
    results = json.loads((run_dir / "results.json").read_text())
    return {
        "weights": weights_digest(run_dir / "policy" / "policy.weights.h5"),
        "progress": progress_rows(run_dir / "progress.csv"),
        "final_mean_reward": results["mean_reward"],
    }


def main() -> None:
    """Record the golden digests of every agent."""
    import tempfile

    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in STEPS:
            golden[agent] = run_and_digest(agent, Path(tmp) / agent)
            print(agent, golden[agent]["final_mean_reward"], flush=True)
    GOLDEN.write_text(json.dumps({"seed": SEED, "steps": STEPS, "runs": golden}, indent=1))


if __name__ == "__main__":
    main()

"""Golden runs: each agent trained briefly on CartPole-v1 in a fresh process, digested.

The digest (checksums of the saved policy's weights and of progress.csv without its
timing columns) is what the learner-interface refactor must keep bit for bit on CPU, and
what two fresh processes with the same seed must agree on.

Record (only after a deliberate change of behaviour, saying why in the commit), one fresh
process per agent, every agent or the ones named (the others keep their recorded runs):
    python tests/golden_runs.py [AGENT ...]
The tests check all agents in one other fresh process (``digest_in_one_process``): one
TensorFlow start-up instead of one per agent, and each run after the first also checks
that the runs before it left nothing behind that changes it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from rlkit.precision import cpu_info


def cpu_class(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's vendor and widest float SIMD, e.g. ``GenuineIntel-avx512``.

    TensorFlow's CPU kernels sum in an order set by the vector width they pick, so float
    results are bitwise reproducible on one class of CPU, not across classes (the runs
    recorded on an AMD EPYC with AVX2 differ in the 8th digit on an Intel Xeon with
    AVX-512). Each class has its own golden file.
    """
    info = cpu_info(cpuinfo)
    flags = set(info.get("flags", "").split())
    vendor = info.get("vendor_id", "unknown")
    simd = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return f"{vendor}-{simd}"


GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN = GOLDEN_DIR / f"cartpole_{cpu_class()}.json"
REPO = Path(__file__).resolve().parents[1]
SEED = 5
# Steps per agent: enough for many updates (DQN: ~1,000 fused gradient steps after
# learning_starts; A2C: ~150 updates; REINFORCE: ~20 updates of 8 episodes; PPO: ~24
# updates of 20 epochs of one 256-row minibatch, the learning rate and clip range annealed).
STEPS = {
    "dqn": 3_000,
    "double_dqn": 3_000,
    "dueling_dqn": 3_000,
    "a2c": 6_000,
    "reinforce": 6_000,
    "ppo": 6_000,
    "rainbow": 3_000,
}


# Settings pinned to the presets' values when the runs were recorded, so that a preset that
# changes later (the DQN family's CartPole network became 256x256) does not change the runs.
PINNED = {"dqn": ["hidden_sizes=[64,64]"], "double_dqn": ["hidden_sizes=[64,64]"]}
PINNED["dueling_dqn"] = PINNED["dqn"]
# Rainbow: its first CartPole preset's settings, pinned, with a 64x64 network.
PINNED["rainbow"] = [
    "hidden_sizes=[64,64]",
    "learning_rate=0.001",
    "batch_size=64",
    "buffer_size=100000",
    "learning_starts=1000",
    "train_frequency=64",
    "gradient_steps=32",
    "target_update_period=128",
    "v_min=0",
    "v_max=100",
    "noisy=true",  # the preset's CartPole section turned noisy nets off later
]


def train_args(agent: str, run_dir: Path, seed: int | None = None) -> list[str]:
    """The CLI arguments of one golden run (no periodic evaluation, no stop rule)."""
    pinned = [arg for setting in PINNED.get(agent, []) for arg in ("--set", setting)]
    return [
        "--agent",
        agent,
        "--env",
        "CartPole-v1",
        "--seed",
        str(SEED if seed is None else seed),
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


def train_command(agent: str, run_dir: Path) -> list[str]:
    """The command line of one golden run in a process of its own."""
    return [sys.executable, "-m", "rlkit.train", *train_args(agent, run_dir)]


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


def digest(run_dir: Path) -> dict[str, object]:
    """The digest of a finished run: policy weights, progress rows, final mean reward."""
    results = json.loads((run_dir / "results.json").read_text())
    return {
        "weights": weights_digest(run_dir / "policy" / "policy.weights.h5"),
        "progress": progress_rows(run_dir / "progress.csv"),
        "final_mean_reward": results["mean_reward"],
    }


def _fresh_env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return {**os.environ, "PYTHONPATH": path, **quiet}


def run_and_digest(agent: str, run_dir: Path) -> dict[str, object]:
    """Train ``agent`` in a fresh process of its own and digest what it wrote."""
    subprocess.run(
        train_command(agent, run_dir), check=True, env=_fresh_env(), capture_output=True, text=True
    )
    return digest(run_dir)


def digest_in_one_process(runs: Sequence[tuple[str, int]], root: Path) -> list[dict[str, object]]:
    """Train each ``(agent, seed)`` one after the other in one fresh process; their digests."""
    command = [sys.executable, str(Path(__file__).resolve()), "--in-this-process", str(root)]
    command += [f"{agent}:{seed}" for agent, seed in runs]
    done = subprocess.run(command, env=_fresh_env(), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the golden runs failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads((root / "digests.json").read_text())


def _train_here(root: Path, runs: Sequence[str]) -> None:
    """The child of ``digest_in_one_process``: each ``agent:seed`` via ``train.main`` here."""
    from rlkit import train

    digests = []
    for i, run in enumerate(runs):
        agent, seed = run.split(":")
        run_dir = root / f"{i}_{agent}_{seed}"
        if train.main(train_args(agent, run_dir, int(seed))) != 0:
            raise SystemExit(f"the golden run {run} failed")
        digests.append(digest(run_dir))
    (root / "digests.json").write_text(json.dumps(digests))


def main(agents: Sequence[str] = ()) -> None:
    """Record the golden digests of ``agents`` (every agent if none), keeping the others'."""
    import tempfile

    unknown = sorted(set(agents) - set(STEPS))
    if unknown:
        raise SystemExit(f"no golden run for {unknown}; choose from {sorted(STEPS)}")
    golden = json.loads(GOLDEN.read_text())["runs"] if agents and GOLDEN.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in agents or STEPS:
            golden[agent] = run_and_digest(agent, Path(tmp) / agent)
            print(agent, golden[agent]["final_mean_reward"], flush=True)
    runs = {agent: golden[agent] for agent in STEPS}  # every agent, in STEPS's order
    GOLDEN.write_text(json.dumps({"seed": SEED, "steps": STEPS, "runs": runs}, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--in-this-process"]:
        _train_here(Path(sys.argv[2]), sys.argv[3:])
    else:
        main(sys.argv[1:])

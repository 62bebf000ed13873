"""Training speed on Space Invaders, rlkit vs Stable-Baselines3, side by side.

Usage:
    python benchmarks/atari_vs_sb3.py --sb3-python /path/to/sb3-venv/bin/python [--agent dqn|a2c]

DQN: 1 env, batch 32, train every 4 steps, Adam 1e-4, buffer 100k, learning starts after
1,000 steps; env steps/s is measured *once learning* (after learning_starts), which is what
decides the length of a run. A2C: 8 envs, n_steps 5, RMSprop 7e-4 (SB3's TF-like RMSprop,
rlkit's Keras one), Nature CNN shared by policy and value. Both libraries use
``SpaceInvadersNoFrameskip-v4`` with the DQN protocol (no-ops, frame skip 4 with max-pool,
84x84 grayscale, 4-frame stack, life loss and reward clipping for learning); rlkit runs with
its Python wrappers (``sync``) and, separately, ``ale`` vectorization, in float32 and with
``mixed_precision`` (bfloat16 torso; opt-in). Runs alternate and
the medians are reported in ``benchmarks/results/atari_vs_sb3_<agent>.json``. SB3 needs
PyTorch: install ``stable-baselines3 ale-py opencv-python-headless torch`` in a separate
venv and pass its python.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV = "SpaceInvadersNoFrameskip-v4"

SB3_CHILD = r"""
import json, sys, time
import gymnasium as gym, ale_py
gym.register_envs(ale_py)
from stable_baselines3 import A2C, DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike

agent, steps, start, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
n_envs = 1 if agent == "dqn" else 8
env = VecFrameStack(make_atari_env("SpaceInvadersNoFrameskip-v4", n_envs=n_envs, seed=seed), 4)
if agent == "dqn":
    model = DQN("CnnPolicy", env, learning_rate=1e-4, buffer_size=100_000, batch_size=32,
                learning_starts=start, train_freq=4, target_update_interval=1000,
                optimize_memory_usage=False, seed=seed, device="cpu", verbose=0)
else:
    model = A2C("CnnPolicy", env, ent_coef=0.01, vf_coef=0.25, seed=seed, device="cpu",
                policy_kwargs=dict(optimizer_class=RMSpropTFLike,
                                   optimizer_kwargs=dict(eps=1e-5)), verbose=0)


class Clock(BaseCallback):
    def _on_step(self):
        if self.num_timesteps >= start and not hasattr(self, "t0"):
            self.t0, self.s0 = time.perf_counter(), self.num_timesteps
        return True


cb = Clock()
model.learn(total_timesteps=steps, callback=cb)
print(json.dumps({"steps_per_s": (model.num_timesteps - cb.s0) / (time.perf_counter() - cb.t0)}))
"""


def run_rlkit(
    agent: str, steps: int, start: int, seed: int, vectorization: str, bf16: bool = False
) -> float:
    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import resolve
    from rlkit.envs.atari import env_protocol
    from rlkit.experiment import learn, make_run_envs

    cls = get_agent_class(agent)
    overrides = {
        "seed": seed,
        "total_steps": steps,
        "vectorization": vectorization,
        "eval_every": 0,
        "log_interval": 500,
        "mixed_precision": bf16,
    }
    if agent == "dqn":
        overrides.update(buffer_size=100_000, learning_starts=start)
    else:
        overrides.update(num_envs=8)
    run, cfg = resolve(cls, ENV, overrides=overrides)
    seed_everything(seed)
    protocol = env_protocol(ENV, run)
    envs = make_run_envs(ENV, run, protocol)
    agent_obj = cls(envs.single_observation_space, envs.single_action_space, cfg, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        learn(agent_obj, ENV, run, run_dir=tmp, envs=envs)
        rows = list(csv.DictReader(open(Path(tmp) / "progress.csv")))
    return window_rate(
        [(float(r["time/env_steps"]), float(r["time/elapsed_s"])) for r in rows], start
    )


def window_rate(points: list[tuple[float, float]], start: int) -> float:
    """Env steps/s from the first logged point at or after ``start`` steps to the last one.

    The same window SB3's clock uses (from ``start`` to the end), so that both sides
    report the average over the run once warm (compile, first updates) rather than a
    median of intervals on one side and an average on the other.
    """
    first = next(p for p in points if p[0] >= start)
    last = points[-1]
    return (last[0] - first[0]) / (last[1] - first[1])


def run_sb3(python: str, agent: str, steps: int, start: int, seed: int) -> float:
    out = subprocess.run(
        [python, "-c", SB3_CHILD, agent, str(steps), str(start), str(seed)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", choices=("dqn", "a2c"), default="dqn")
    p.add_argument("--sb3-python", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--name", default=None, help="results file stem (default atari_vs_sb3_<agent>)")
    p.add_argument(
        "--variants",
        default="sync,ale,ale_bf16",
        help="rlkit variants to run (comma list of sync, ale, ale_bf16)",
    )
    args = p.parse_args()
    # DQN: once learning (after 1,000 steps) and warm; A2C: after 1,000 warm-up steps.
    start = 2000 if args.agent == "dqn" else 1000
    steps = args.steps or (4000 if args.agent == "dqn" else 20_000)
    variants = args.variants.split(",")
    unknown = set(variants) - {"sync", "ale", "ale_bf16"}
    if unknown:
        p.error(f"unknown --variants {sorted(unknown)}; choose from sync, ale, ale_bf16")
    results: dict[str, list[float]] = {f"rlkit_{v}": [] for v in variants}
    if args.sb3_python:
        results["sb3"] = []
    for r in range(args.repeats):
        for v in variants:
            results[f"rlkit_{v}"].append(
                run_rlkit(args.agent, steps, start, r, v.removesuffix("_bf16"), bf16="bf16" in v)
            )
        if args.sb3_python:
            results["sb3"].append(run_sb3(args.sb3_python, args.agent, steps, start, r))
        print({k: [round(x) for x in v] for k, v in results.items()}, flush=True)
    summary = {
        k: {"median_steps_per_s": statistics.median(v), "runs": v} for k, v in results.items()
    }
    if "sb3" in summary:
        for k in (f"rlkit_{v}" for v in variants):
            summary[f"ratio_{k}_over_sb3"] = (
                summary[k]["median_steps_per_s"] / summary["sb3"]["median_steps_per_s"]
            )
    out = HERE / "results" / f"{args.name or 'atari_vs_sb3_' + args.agent}.json"
    out.write_text(
        json.dumps({"agent": args.agent, "env": ENV, "steps": steps, **summary}, indent=2) + "\n"
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

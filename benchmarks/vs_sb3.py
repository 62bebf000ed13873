"""A2C, PPO or DQN on CartPole-v1, rlkit vs Stable-Baselines3, same settings, side by side.

Usage:
    python benchmarks/vs_sb3.py --agent a2c --sb3-python /path/to/venv/bin/python
    python benchmarks/vs_sb3.py --agent dqn --sb3-python /path/to/venv/bin/python
    python benchmarks/vs_sb3.py --agent ppo --sb3-python /path/to/venv/bin/python --skip-solve

Throughput: each library trains the agent with rl-zoo3's CartPole-v1 settings for
``--steps`` env steps with no evaluation. A2C: 8 sync envs, n_steps 5, RMSprop lr 7e-4,
gamma 0.99, gae_lambda 1, vf_coef 0.5, ent_coef 0, max_grad_norm 0.5, 64x64 tanh MLPs
(rlkit with the value head on its own torso, as SB3). PPO (rlkit's preset is rl-zoo3's):
8 sync envs, n_steps 32, batch 256, 20 epochs, gamma 0.98, gae_lambda 0.8, Adam lr 1e-3
and clip range 0.2 both decaying linearly to 0, ent_coef 0, separate 64x64 tanh MLPs.
DQN: 1 env, lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, train_freq 256 with
128 gradient steps, target synced once per 128 gradient steps, epsilon decaying to 0.04
over 8,000 steps (zoo: 16% of its 50k budget); SB3 with zoo's 256x256 MLP, rlkit with
its preset's 64x64 (``--set hidden_sizes=[256,256]`` to match).
Runs alternate rlkit / SB3 so that both see the same machine load, and the medians and
their ratio are reported.

Solve: each library trains with a greedy 10-episode evaluation every 5,000 env steps and
stops at the first mean >= 475; steps and training seconds (evaluation excluded) are
reported per seed.

SB3 needs PyTorch, which rlkit does not depend on: install it in a separate virtual
environment (``pip install torch stable-baselines3``) and pass its python with
``--sb3-python``. Results go to ``benchmarks/results/<agent>_vs_sb3.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SB3_CHILD = r"""
import json, sys, time
import numpy as np
import gymnasium as gym
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

agent, mode, steps, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if agent == "a2c":
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu", verbose=0)
elif agent == "ppo":  # rl-zoo3's CartPole-v1 hyperparameters (lin_1e-3, lin_0.2)
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=lambda f: 1e-3 * f,
                clip_range=lambda f: 0.2 * f, seed=seed, device="cpu", verbose=0)
else:  # rl-zoo3's CartPole-v1 hyperparameters
    env = make_vec_env("CartPole-v1", n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100000,
                learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                gradient_steps=128, exploration_fraction=8000 / steps, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)


class Solve(BaseCallback):
    def __init__(self):
        super().__init__()
        self.next_eval, self.eval_s, self.solved = 5000, 0.0, None
        self.eval_env = gym.make("CartPole-v1")

    def _on_training_start(self):
        self.t0 = time.perf_counter()

    def _on_step(self):
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += 5000
        t = time.perf_counter()
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=10, deterministic=True)
        self.eval_s += time.perf_counter() - t
        if mean >= 475:
            self.solved = {"env_steps": self.num_timesteps,
                           "train_seconds": time.perf_counter() - self.t0 - self.eval_s}
            return False
        return True


t0 = time.perf_counter()
cb = Solve() if mode == "solve" else None
model.learn(total_timesteps=steps, callback=cb)
seconds = time.perf_counter() - t0
print(json.dumps({"steps": model.num_timesteps, "seconds": seconds,
                  "solved": cb.solved if cb else None}))
"""


def run_rlkit(agent_name: str, mode: str, steps: int, seed: int, sets: list[str]) -> dict:
    import gymnasium as gym

    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import parse_overrides, resolve
    from rlkit.experiment import learn

    cls = get_agent_class(agent_name)
    overrides = {
        **parse_overrides(sets),
        "seed": seed,
        "total_steps": steps,
        "eval_every": 5000 if mode == "solve" else 0,
        "stop_reward": 475 if mode == "solve" else None,
    }
    run, cfg = resolve(cls, "CartPole-v1", overrides=overrides)
    seed_everything(seed)
    env = gym.make("CartPole-v1")
    agent = cls(env.observation_space, env.action_space, cfg, seed=seed)
    result = learn(agent, "CartPole-v1", run)
    return {"steps": result.env_steps, "seconds": result.seconds, "solved": result.solved_at}


def run_sb3(python: str, agent: str, mode: str, steps: int, seed: int) -> dict:
    out = subprocess.run(
        [python, "-c", SB3_CHILD, agent, mode, str(steps), str(seed)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agent", choices=("a2c", "dqn", "ppo"), default="a2c")
    p.add_argument("--sb3-python", default=None, help="python of a venv with stable-baselines3")
    p.add_argument("--steps", type=int, default=None, help="env steps per throughput run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="rlkit only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seeds", default="1,2,3,4,5", help="seeds of the solve runs")
    p.add_argument("--skip-solve", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.steps = args.steps or (50_000 if args.agent == "dqn" else 100_000)
    args.out = args.out or str(HERE / "results" / f"{args.agent}_vs_sb3.json")
    budget = 500_000 if args.agent == "a2c" else 100_000
    libs = ["rlkit"] + (["sb3"] if args.sb3_python else [])

    def one(lib: str, mode: str, steps: int, seed: int) -> dict:
        if lib == "rlkit":
            return run_rlkit(args.agent, mode, steps, seed, args.set)
        return run_sb3(args.sb3_python, args.agent, mode, steps, seed)

    throughput: dict[str, list[float]] = {lib: [] for lib in libs}
    for r in range(args.repeats):
        for lib in libs:
            res = one(lib, "throughput", args.steps, r)
            throughput[lib].append(res["steps"] / res["seconds"])
            print(f"throughput {lib} run {r}: {throughput[lib][-1]:,.0f} env steps/s", flush=True)
    solve: dict[str, list[dict]] = {lib: [] for lib in libs}
    if not args.skip_solve:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for lib in libs:
                res = one(lib, "solve", budget, seed)
                solve[lib].append({"seed": seed, **(res["solved"] or {"env_steps": None})})
                print(f"solve {lib} seed {seed}: {res['solved']}", flush=True)
    summary = {
        lib: {
            "median_steps_per_s": statistics.median(throughput[lib]),
            "runs_steps_per_s": throughput[lib],
            "solve": solve[lib],
            "median_solve_steps": statistics.median(
                [s["env_steps"] for s in solve[lib] if s["env_steps"] is not None] or [float("nan")]
            ),
            "median_solve_seconds": statistics.median(
                [s["train_seconds"] for s in solve[lib] if s.get("train_seconds")] or [float("nan")]
            ),
        }
        for lib in libs
    }
    if "sb3" in summary:
        summary["speed_ratio_rlkit_over_sb3"] = (
            summary["rlkit"]["median_steps_per_s"] / summary["sb3"]["median_steps_per_s"]
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

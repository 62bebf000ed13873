"""SB3's A2C on CartPole-v1 with rl-zoo3's settings: N env steps, then 20 greedy episodes.

Run in SB3's Python::

    python sb3_learn.py 10000 > sb3.txt                  # seeds 1-8
    python sb3_learn.py 10000 17 48 > sb3_seeds17-48.txt
    python sb3_learn.py 10000 1 16 --init DIR            # starting from rlkit's initial weights

Evaluation seeds 10,000 + 100 * seed + k. ``--init DIR`` loads, for each seed, the weights
``dump_rlkit_init.py DIR`` wrote from rlkit's A2C (same layers, same order as
``update_vs_sb3.SB3_MODULES``) before learning, to tell the initialisation apart from the rest.
"""

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
from update_vs_sb3 import SB3_A2C, SB3_MODULES  # noqa: E402 (rl-zoo3's CartPole settings)

parser = argparse.ArgumentParser()
parser.add_argument("steps", type=int)
parser.add_argument("first", type=int, nargs="?", default=1)
parser.add_argument("last", type=int, nargs="?", default=8)
parser.add_argument("--init", type=Path, default=None, help="rlkit's initial weights, per seed")
args = parser.parse_args()
th.set_num_threads(1)
means = []
for seed in range(args.first, args.last + 1):
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, seed=seed, device="cpu", **SB3_A2C)
    if args.init is not None:
        weights = np.load(args.init / f"rlkit_init_{seed}.npz")
        modules = dict(model.policy.named_modules())
        with th.no_grad():
            for j, name in enumerate(SB3_MODULES):
                modules[name].weight.copy_(th.tensor(weights[f"arr_{2 * j}"].T))
                modules[name].bias.copy_(th.tensor(weights[f"arr_{2 * j + 1}"]))
    model.learn(args.steps)
    env, returns = gym.make("CartPole-v1"), []
    for k in range(20):
        obs, _ = env.reset(seed=10_000 + 100 * seed + k)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    means.append(float(np.mean(returns)))
    print(seed, means[-1], flush=True)
print("median", float(np.median(means)))

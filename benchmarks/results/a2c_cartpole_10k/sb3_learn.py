"""SB3's A2C on CartPole-v1 with rl-zoo3's settings: 10,000 env steps, then 20 greedy episodes.

Run in SB3's Python: ``python sb3_learn.py 10000 > sb3.txt`` (seeds 1-8; evaluation seeds
10,000 + 100 * seed + k).
"""

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
from update_vs_sb3 import SB3_A2C  # noqa: E402 (rl-zoo3's CartPole settings)

th.set_num_threads(1)
steps, means = int(sys.argv[1]), []
for seed in range(1, 9):
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, seed=seed, device="cpu", **SB3_A2C)
    model.learn(steps)
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

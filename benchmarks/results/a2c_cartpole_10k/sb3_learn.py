"""SB3's A2C on CartPole-v1 with rl-zoo3's settings: 10,000 env steps, then 20 greedy episodes.

Run in SB3's Python: ``python sb3_learn.py 10000 > sb3.txt`` (seeds 1-8; evaluation seeds
10,000 + 100 * seed + k).
"""

import sys

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env

th.set_num_threads(1)
steps, means = int(sys.argv[1]), []
for seed in range(1, 9):
    model = A2C(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=8, seed=seed),
        n_steps=5,
        learning_rate=7e-4,
        gamma=0.99,
        gae_lambda=1.0,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
        seed=seed,
        device="cpu",
    )
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

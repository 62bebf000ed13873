"""rlkit's A2C (CartPole preset) in a loop of its own, with either autoreset of gymnasium 1.x.

``python autoreset.py same`` (the reset in the same step as the episode's end, as SB3's
vector envs do: no masked rows) or ``python autoreset.py next`` (the reset on the next step,
a masked row, as rlkit's runner does); seeds 1-8, 10,000 env steps, then 20 greedy episodes.
"""

import sys

import gymnasium as gym
import keras
import numpy as np
from gymnasium.vector import AutoresetMode

from rlkit.agents import get_agent_class
from rlkit.config import resolve
from rlkit.types import Rollout

mode = sys.argv[1]
A2C = get_agent_class("a2c")
_, cfg = resolve(A2C, "CartPole-v1")
T, N = cfg.n_steps, 8
means = []
for seed in range(1, 9):
    keras.utils.set_random_seed(seed)
    autoreset = AutoresetMode.SAME_STEP if mode == "same" else AutoresetMode.NEXT_STEP
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * N, autoreset_mode=autoreset)
    agent = A2C(envs.single_observation_space, envs.single_action_space, cfg, seed=seed)
    obs, _ = envs.reset(seed=seed)
    steps, resetting = 0, np.zeros(N, bool)
    while steps < 10_000:
        rows = {k: np.zeros((T, N), np.float32) for k in ("reward", "term", "trunc", "valid")}
        all_obs, actions = np.zeros((T, N, 4), np.float32), np.zeros((T, N), np.int64)
        for t in range(T):
            action = agent.act(obs, explore=True)
            next_obs, reward, term, trunc, _ = envs.step(action)
            all_obs[t], actions[t] = obs, action
            rows["reward"][t], rows["term"][t], rows["trunc"][t] = reward, term, trunc
            # next-step autoreset: the step after an episode's end only resets (masked)
            rows["valid"][t] = ~resetting if mode == "next" else True
            resetting = (term | trunc) if mode == "next" else resetting
            steps += int(rows["valid"][t].sum())
            obs = next_obs
        agent.update(
            Rollout(
                all_obs,
                actions,
                rows["reward"],
                rows["term"],
                rows["trunc"],
                rows["valid"],
                obs.astype(np.float32),
            )
        )
    env, returns = gym.make("CartPole-v1"), []
    for k in range(20):
        o, _ = env.reset(seed=10_000 + 100 * seed + k)
        done, total = False, 0.0
        while not done:
            a = int(agent.act(o[None].astype(np.float32), explore=False)[0])
            o, reward, term, trunc, _ = env.step(a)
            total, done = total + float(reward), term or trunc
        returns.append(total)
    means.append(float(np.mean(returns)))
    print(mode, seed, means[-1], flush=True)
print(mode, "median", float(np.median(means)))

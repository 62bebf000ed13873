"""Real CartPole rollouts from rlkit's A2C, saved with the weights after every update.

``python lockstep_rlkit.py DIR SEED UPDATES`` (rlkit's Python): the CartPole preset with
``optimizer: rmsprop_torch`` (PyTorch's RMSprop, as SB3's A2C) acts in 8 envs with
same-step autoreset (as SB3's vector envs; a truncated episode's last reward gets
gamma * V(final observation), SB3's bootstrap), and after every 5-step rollout updates.
Each rollout, the starting weights and the weights after each update go to
``DIR/lockstep_<SEED>.npz``; ``lockstep_sb3.py`` replays the rollouts through SB3's A2C
from the same starting weights and compares the weights update by update.
"""

import sys
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np

from rlkit.agents import get_agent_class
from rlkit.config import resolve
from rlkit.policies import sample_categorical
from rlkit.types import Rollout

out, seed, updates = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
A2C = get_agent_class("a2c")
torch_rule = {"optimizer": "rmsprop_torch", "optimizer_eps": 1e-5}
_, cfg = resolve(A2C, "CartPole-v1", overrides=torch_rule)
N, T = 8, cfg.n_steps
keras.utils.set_random_seed(seed)
rng = np.random.default_rng(seed)
envs = gym.vector.SyncVectorEnv(
    [lambda: gym.make("CartPole-v1")] * N, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
)
agent = A2C(envs.single_observation_space, envs.single_action_space, cfg, seed=seed)
net = agent.network


def flat() -> np.ndarray:
    return np.concatenate([v.numpy().ravel() for v in net.trainable_variables])


saved = {"w0": flat()}
obs, _ = envs.reset(seed=seed)
for u in range(updates):
    o, a = np.zeros((T, N, 4), np.float32), np.zeros((T, N), np.int64)
    r, d = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
    for t in range(T):
        action = sample_categorical(net.numpy_forward(obs.astype(np.float32), value=False)[0], rng)
        next_obs, reward, terminated, truncated, info = envs.step(action)
        reward = reward.astype(np.float32)
        for i in np.flatnonzero(truncated & ~terminated):
            final = info["final_obs"][i][None].astype(np.float32)
            reward[i] += cfg.gamma * net.numpy_forward(final)[1][0]
        o[t], a[t], r[t], d[t] = obs, action, reward, terminated | truncated
        obs = next_obs
    zeros = np.zeros_like(d)
    batch = Rollout(o, a, r, d, zeros, np.ones_like(d), obs.astype(np.float32))
    metrics = agent.update(batch)
    saved.update({f"o{u}": o, f"a{u}": a, f"r{u}": r, f"d{u}": d, f"l{u}": batch.last_obs})
    saved[f"w{u + 1}"] = flat()
    saved[f"m{u}"] = np.array([metrics["train/policy_loss"], metrics["train/value_loss"]])
out.mkdir(parents=True, exist_ok=True)
np.savez(out / f"lockstep_{seed}.npz", **saved)
print(f"saved {updates} rollouts and updates to {out / f'lockstep_{seed}.npz'}")

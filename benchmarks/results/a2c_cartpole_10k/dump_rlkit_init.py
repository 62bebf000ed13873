"""rlkit's A2C CartPole preset: its initial weights for seeds 1-16, for ``sb3_learn.py --init``.

``python dump_rlkit_init.py DIR`` writes ``DIR/rlkit_init_<seed>.npz`` (the trainable
variables in rlkit's order: policy torso, value torso, policy head, value head).
"""

import sys
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np

from rlkit.agents import get_agent_class
from rlkit.config import resolve

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
A2C = get_agent_class("a2c")
_, cfg = resolve(A2C, "CartPole-v1")
env = gym.make("CartPole-v1")
for seed in range(1, 17):
    keras.utils.set_random_seed(seed)
    agent = A2C(env.observation_space, env.action_space, cfg, seed=seed)
    weights = [v.numpy() for v in agent.network.trainable_variables]
    np.savez(out / f"rlkit_init_{seed}.npz", *weights)

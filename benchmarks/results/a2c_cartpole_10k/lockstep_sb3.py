"""Replay ``lockstep_rlkit.py``'s rollouts through SB3's A2C; compare weights per update.

``python lockstep_sb3.py DIR SEED UPDATES`` (SB3's Python): SB3's A2C with rl-zoo3's
CartPole settings starts from rlkit's starting weights, and for each saved rollout fills
its rollout buffer (values and log-probabilities from its own current weights), computes
its returns and calls ``train()``; printed: the largest weight difference to rlkit's after
that update, and both sides' losses.
"""

import sys
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
from update_vs_sb3 import SB3_A2C, SB3_MODULES  # noqa: E402

folder, seed, updates = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
th.set_num_threads(1)
data = np.load(folder / f"lockstep_{seed}.npz")
N, T = 8, 5
model = A2C("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N, seed=0), seed=0, **SB3_A2C)
model.set_logger(configure(None, []))
policy, modules = model.policy, dict(model.policy.named_modules())
layers = [modules[name] for name in SB3_MODULES]
shapes = [s for m in layers for s in (tuple(m.weight.shape[::-1]), tuple(m.bias.shape))]


def load(flat: np.ndarray) -> None:
    arrays, i = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        arrays.append(flat[i : i + n].reshape(shape))
        i += n
    with th.no_grad():
        for j, m in enumerate(layers):
            m.weight.copy_(th.tensor(arrays[2 * j].T))
            m.bias.copy_(th.tensor(arrays[2 * j + 1]))


def flat() -> np.ndarray:
    parts = [(m.weight.detach().numpy().T.ravel(), m.bias.detach().numpy()) for m in layers]
    return np.concatenate([x for pair in parts for x in pair])


load(data["w0"])
for u in range(updates):
    o, a, r, d, last = (data[f"{k}{u}"] for k in "oardl")
    starts = np.zeros_like(d)
    starts[1:] = d[:-1]  # SB3 marks the step after an episode's end
    starts[0] = data[f"d{u - 1}"][-1] if u else 1.0
    buf = model.rollout_buffer
    buf.reset()
    for t in range(T):
        with th.no_grad():
            values = policy.predict_values(th.tensor(o[t]))
            _, log_prob, _ = policy.evaluate_actions(th.tensor(o[t]), th.tensor(a[t]))
        buf.add(o[t], a[t].reshape(N, 1), r[t], starts[t], values, log_prob)
    with th.no_grad():
        buf.compute_returns_and_advantage(policy.predict_values(th.tensor(last)), d[-1])
    model.train()
    if u < 3 or u % 25 == 0 or u == updates - 1:
        logged = model.logger.name_to_value
        diff = np.abs(flat() - data[f"w{u + 1}"]).max()
        print(
            f"update {u + 1}: largest weight difference {diff:.2g}; "
            f"policy loss SB3 {logged['train/policy_loss']:.6f} rlkit {data[f'm{u}'][0]:.6f}; "
            f"value loss SB3 {logged['train/value_loss']:.6f} rlkit {data[f'm{u}'][1]:.6f}"
        )

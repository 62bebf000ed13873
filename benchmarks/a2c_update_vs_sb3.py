"""Is rlkit's A2C update Stable-Baselines3's? Three updates from the same weights, compared.

Usage:
    python benchmarks/a2c_update_vs_sb3.py --sb3-python /path/to/sb3-venv/bin/python

rlkit's A2C with its CartPole-v1 settings (separate 64-64 tanh MLPs, lr 7e-4, gamma 0.99,
GAE lambda 1, vf_coef 0.5, no entropy bonus, global-norm clip 0.5) takes three updates on a
fixed random ``[5, 8]`` rollout with two episode ends. In SB3's Python this script then
loads the same starting weights into SB3's ``A2C`` policy (same settings, SB3's default
``torch.optim.RMSprop``, alpha 0.99, eps 1e-5), fills its rollout buffer with the same
rollout and values, and calls ``A2C.train()`` three times. Printed and saved
(``results/a2c_update_vs_sb3.json``): the largest weight difference after each update, for
rlkit's two RMSprops:

- ``rmsprop`` (Keras: epsilon inside the square root; rlkit's A2C default, eps 1e-10);
- ``rmsprop_torch`` (``rlkit.optimizers.TorchRMSprop``: PyTorch's rule, eps 1e-5).

Same losses at the first update on both sides say the loss maths agree; same weights after
the updates say the optimizer does too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "a2c_update_vs_sb3.json"
VARIANTS = {"rmsprop": 1e-10, "rmsprop_torch": 1e-5}  # optimizer -> its epsilon
T, N, UPDATES = 5, 8, 3
# SB3's A2C with rl-zoo3's CartPole-v1 settings (what rlkit's preset stands for).
SB3_A2C = {
    "n_steps": T,
    "learning_rate": 7e-4,
    "gamma": 0.99,
    "gae_lambda": 1.0,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
}
# SB3's modules in the order of rlkit's (kernel, bias) pairs.
SB3_MODULES = [
    "mlp_extractor.policy_net.0",
    "mlp_extractor.policy_net.2",
    "mlp_extractor.value_net.0",
    "mlp_extractor.value_net.2",
    "action_net",
    "value_net",
]


def rollout(seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed ``[T, N]`` CartPole-shaped rollout: env 3 ends at step 2, env 5 at the last."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, N), np.float32)
    terminated[2, 3] = terminated[4, 5] = 1.0
    return {
        "obs": rng.normal(size=(T, N, 4)).astype(np.float32),
        "action": rng.integers(0, 2, (T, N)).astype(np.int64),
        "reward": np.ones((T, N), np.float32),
        "terminated": terminated,
        "last_obs": rng.normal(size=(N, 4)).astype(np.float32),
    }


def rlkit_side(optimizer: str, eps: float, data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Weights before and after each update, and the metrics of each, in rlkit."""
    import gymnasium as gym
    import keras

    from rlkit.agents import get_agent_class
    from rlkit.config import resolve
    from rlkit.types import Rollout

    keras.utils.set_random_seed(0)  # the starting weights (both sides start from these)
    agent_cls = get_agent_class("a2c")
    _, cfg = resolve(
        agent_cls, "CartPole-v1", overrides={"optimizer": optimizer, "optimizer_eps": eps}
    )
    env = gym.make("CartPole-v1")
    agent = agent_cls(env.observation_space, env.action_space, cfg, seed=0)
    weights = [[v.numpy() for v in agent.network.trainable_variables]]
    metrics = []
    zeros = np.zeros((T, N), np.float32)
    batch = Rollout(
        obs=data["obs"],
        action=data["action"],
        reward=data["reward"],
        terminated=data["terminated"],
        truncated=zeros,
        valid=np.ones((T, N), np.float32),
        last_obs=data["last_obs"],
    )
    for _ in range(UPDATES):
        metrics.append({k: float(v) for k, v in agent.update(batch).items()})
        weights.append([v.numpy() for v in agent.network.trainable_variables])
    return {"weights": weights, "metrics": metrics}


def sb3_child(folder: str) -> int:
    """In SB3's Python: the same updates from the same weights; write the differences."""
    import torch as th
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    th.set_num_threads(1)
    path = Path(folder)
    data = dict(np.load(path / "rollout.npz"))
    out = {}
    for variant in VARIANTS:
        side = np.load(path / f"{variant}.npz")
        env = make_vec_env("CartPole-v1", n_envs=N, seed=0)
        model = A2C("MlpPolicy", env, seed=0, device="cpu", **SB3_A2C)
        model.set_logger(configure(None, []))
        policy, modules = model.policy, dict(model.policy.named_modules())
        with th.no_grad():
            for j, name in enumerate(SB3_MODULES):
                modules[name].weight.copy_(th.tensor(side[f"w0_{2 * j}"].T))
                modules[name].bias.copy_(th.tensor(side[f"w0_{2 * j + 1}"]))
        starts = np.zeros((T, N), np.float32)
        starts[1:] = data["terminated"][:-1]  # SB3 marks the step after an episode's end
        rows = []
        for u in range(1, UPDATES + 1):
            buf = model.rollout_buffer
            buf.reset()
            for t in range(T):
                with th.no_grad():
                    obs = th.tensor(data["obs"][t])
                    values = policy.predict_values(obs)
                    _, log_prob, _ = policy.evaluate_actions(obs, th.tensor(data["action"][t]))
                buf.add(
                    data["obs"][t],
                    data["action"][t].reshape(N, 1),
                    data["reward"][t],
                    starts[t],
                    values,
                    log_prob,
                )
            with th.no_grad():
                last = policy.predict_values(th.tensor(data["last_obs"]))
            buf.compute_returns_and_advantage(last_values=last, dones=data["terminated"][-1])
            model.train()
            logged = model.logger.name_to_value
            diff = max(
                max(
                    float(
                        np.abs(modules[n].weight.detach().numpy().T - side[f"w{u}_{2 * j}"]).max()
                    ),
                    float(
                        np.abs(modules[n].bias.detach().numpy() - side[f"w{u}_{2 * j + 1}"]).max()
                    ),
                )
                for j, n in enumerate(SB3_MODULES)
            )
            rows.append(
                {
                    "update": u,
                    "max_abs_weight_diff": diff,
                    "sb3_policy_loss": float(logged["train/policy_loss"]),
                    "sb3_value_loss": float(logged["train/value_loss"]),
                }
            )
        out[variant] = rows
    (path / "sb3.json").write_text(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run both sides; print and save the comparison."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_sb3-child"]:
        return sb3_child(argv[1])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sb3-python", required=True, help="a Python with stable-baselines3")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    data = rollout()
    result: dict[str, Any] = {"rollout": f"[{T}, {N}] random, seed 0", "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "rollout.npz", **data)
        sides = {}
        for variant, eps in VARIANTS.items():
            side = rlkit_side(variant, eps, data)
            sides[variant] = side
            arrays = {
                f"w{u}_{i}": w for u, ws in enumerate(side["weights"]) for i, w in enumerate(ws)
            }
            np.savez(Path(tmp) / f"{variant}.npz", **arrays)
        cmd = [args.sb3_python, str(Path(__file__).resolve()), "_sb3-child", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 1
        sb3 = json.loads((Path(tmp) / "sb3.json").read_text())
    for variant, eps in VARIANTS.items():
        rows = []
        for m, s in zip(sides[variant]["metrics"], sb3[variant], strict=True):
            rows.append(
                {
                    **s,
                    "rlkit_policy_loss": m["train/policy_loss"],
                    "rlkit_value_loss": m["train/value_loss"],
                }
            )
            print(
                f"{variant} (eps {eps:g}) update {s['update']}: losses rlkit "
                f"{m['train/policy_loss']:.6f} / {m['train/value_loss']:.6f}, SB3 "
                f"{s['sb3_policy_loss']:.6f} / {s['sb3_value_loss']:.6f}; largest weight "
                f"difference {s['max_abs_weight_diff']:.2e}"
            )
        result["variants"][variant] = {"optimizer_eps": eps, "updates": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

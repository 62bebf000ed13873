"""Is rlkit's update Stable-Baselines3's? A few updates from the same weights, compared.

Usage:
    python benchmarks/update_vs_sb3.py --agent a2c --sb3-python /path/to/sb3-venv/bin/python
    python benchmarks/update_vs_sb3.py --agent ppo --sb3-python /path/to/sb3-venv/bin/python

rlkit's agent with its CartPole-v1 preset (separate 64-64 tanh MLPs) takes a few updates on a
fixed random rollout with two episode ends. In SB3's Python this script then loads the same
starting weights into SB3's agent with rl-zoo3's CartPole settings (SB3's default optimizer),
fills its rollout buffer with the same rollout, values and log-probabilities, and calls
``train()`` as often. Printed and saved (``results/<agent>_update_vs_sb3.json``): the losses
of the first update on both sides and the largest weight difference after each update, for
each of rlkit's optimizer variants:

- A2C (5 x 8 rollout, 3 updates): ``rmsprop`` (Keras: epsilon inside the square root; the
  preset, eps 1e-10) and ``rmsprop_torch`` (``rlkit.optimizers.TorchRMSprop``: PyTorch's
  rule, eps 1e-5), against ``torch.optim.RMSprop`` (alpha 0.99, eps 1e-5);
- PPO (32 x 8 rollout, one update of 3 epochs of one 256-row minibatch, so that the
  shuffling cannot differ; no annealing): ``adam`` (Keras' Adam, eps 1e-5) against
  ``torch.optim.Adam`` (eps 1e-5).

Same losses at the first update say the loss maths agree; same weights after the updates
say the optimizer does too. Each comparison is made twice: with SB3's own optimizer, and with
SB3's optimizer replaced by Keras' rule (``keras_rule``: RMSprop with epsilon inside the
square root, or Adam with epsilon added before the bias correction), which isolates what the
optimizer accounts for.
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
N = 8  # envs
# SB3 with rl-zoo3's CartPole-v1 settings (what rlkit's presets stand for); PPO without the
# annealing (SB3 anneals by its own progress counter) and with 3 epochs.
SB3_A2C = {
    "n_steps": 5,
    "learning_rate": 7e-4,
    "gamma": 0.99,
    "gae_lambda": 1.0,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
}
SB3_PPO = {
    "n_steps": 32,
    "batch_size": 256,
    "n_epochs": 3,
    "learning_rate": 1e-3,
    "gamma": 0.98,
    "gae_lambda": 0.8,
    "clip_range": 0.2,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
}
# agent -> (SB3 settings, updates, {variant: rlkit overrides of the CartPole preset})
CASES: dict[str, tuple[dict[str, Any], int, dict[str, dict[str, Any]]]] = {
    "a2c": (
        SB3_A2C,
        3,
        {
            "rmsprop": {"optimizer": "rmsprop", "optimizer_eps": 1e-10},
            "rmsprop_torch": {"optimizer": "rmsprop_torch", "optimizer_eps": 1e-5},
        },
    ),
    "ppo": (
        SB3_PPO,
        1,
        {"adam": {"n_epochs": 3, "anneal_lr": False, "anneal_clip_range": False}},
    ),
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


def rollout(steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed ``[T, N]`` CartPole-shaped rollout: env 3 ends at step 2, env 5 at the last."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros((steps, N), np.float32)
    terminated[2, 3] = terminated[-1, 5] = 1.0
    return {
        "obs": rng.normal(size=(steps, N, 4)).astype(np.float32),
        "action": rng.integers(0, 2, (steps, N)).astype(np.int64),
        "reward": np.ones((steps, N), np.float32),
        "terminated": terminated,
        "last_obs": rng.normal(size=(N, 4)).astype(np.float32),
    }


def rlkit_side(
    agent: str, overrides: dict[str, Any], data: dict[str, np.ndarray], updates: int
) -> dict[str, Any]:
    """Weights before and after each update, and the metrics of each, in rlkit."""
    import gymnasium as gym
    import keras

    from rlkit.agents import get_agent_class
    from rlkit.config import resolve
    from rlkit.types import Rollout

    keras.utils.set_random_seed(0)  # the starting weights (both sides start from these)
    agent_cls = get_agent_class(agent)
    _, cfg = resolve(agent_cls, "CartPole-v1", overrides=overrides)
    env = gym.make("CartPole-v1")
    learner = agent_cls(env.observation_space, env.action_space, cfg, seed=0)
    weights = [[v.numpy() for v in learner.network.trainable_variables]]
    metrics = []
    shape = data["reward"].shape
    batch = Rollout(
        obs=data["obs"],
        action=data["action"],
        reward=data["reward"],
        terminated=data["terminated"],
        truncated=np.zeros(shape, np.float32),
        valid=np.ones(shape, np.float32),
        last_obs=data["last_obs"],
    )
    for _ in range(updates):
        metrics.append({k: float(v) for k, v in learner.update(batch).items()})
        weights.append([v.numpy() for v in learner.network.trainable_variables])
    return {"weights": weights, "metrics": metrics}


def keras_rule(torch: Any, agent: str, params: Any, lr: float, eps: float) -> Any:
    """A torch optimizer that steps as Keras' RMSprop (A2C) or Adam (PPO) does."""

    class KerasRule(torch.optim.Optimizer):
        def __init__(self) -> None:
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure: Any = None) -> None:
            for group in self.param_groups:
                for q in group["params"]:
                    if q.grad is None:
                        continue
                    st = self.state[q]
                    if not st:
                        st.update(m=torch.zeros_like(q), v=torch.zeros_like(q), t=0)
                    st["t"] += 1
                    g, m, v, t = q.grad, st["m"], st["v"], st["t"]
                    if agent == "a2c":  # rho 0.99, epsilon inside the square root
                        v.mul_(0.99).add_(0.01 * g * g)
                        q.add_(-lr * g / (v + eps).sqrt())
                    else:  # Adam: epsilon added before the bias correction
                        m.mul_(0.9).add_(0.1 * g)
                        v.mul_(0.999).add_(0.001 * g * g)
                        alpha = lr * (1 - 0.999**t) ** 0.5 / (1 - 0.9**t)
                        q.add_(-alpha * m / (v.sqrt() + eps))

    return KerasRule()


def sb3_child(folder: str) -> int:
    """In SB3's Python: the same updates from the same weights; write the differences."""
    import stable_baselines3
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    th.set_num_threads(1)
    path = Path(folder)
    job = json.loads((path / "job.json").read_text())
    data = dict(np.load(path / "rollout.npz"))
    settings, updates, variants = CASES[job["agent"]]
    algo = getattr(stable_baselines3, job["agent"].upper())
    steps = data["reward"].shape[0]
    out: dict[str, dict[str, list]] = {}
    # Keras' rule only beside the variants that use Keras' optimizer (not rmsprop_torch).
    pairs = [(v, r) for v in variants for r in ("sb3", "keras_rule")]
    for variant, rule in [(v, r) for v, r in pairs if r == "sb3" or not v.endswith("_torch")]:
        side = np.load(path / f"{variant}.npz")
        model = algo(
            "MlpPolicy",
            make_vec_env("CartPole-v1", n_envs=N, seed=0),
            seed=0,
            device="cpu",
            **settings,
        )
        model.set_logger(configure(None, []))
        if rule == "keras_rule":
            eps = job["eps"][variant]
            model.policy.optimizer = keras_rule(
                th, job["agent"], model.policy.parameters(), settings["learning_rate"], eps
            )
        policy, modules = model.policy, dict(model.policy.named_modules())
        with th.no_grad():
            for j, name in enumerate(SB3_MODULES):
                modules[name].weight.copy_(th.tensor(side[f"w0_{2 * j}"].T))
                modules[name].bias.copy_(th.tensor(side[f"w0_{2 * j + 1}"]))
        starts = np.zeros_like(data["terminated"])
        starts[1:] = data["terminated"][:-1]  # SB3 marks the step after an episode's end
        rows = []
        for u in range(1, updates + 1):
            buf = model.rollout_buffer
            buf.reset()
            for t in range(steps):
                with th.no_grad():
                    obs = th.tensor(data["obs"][t])
                    values = policy.predict_values(obs)
                    _, log_prob, _ = policy.evaluate_actions(obs, th.tensor(data["action"][t]))
                action = data["action"][t].reshape(N, 1)
                buf.add(data["obs"][t], action, data["reward"][t], starts[t], values, log_prob)
            with th.no_grad():
                last = policy.predict_values(th.tensor(data["last_obs"]))
            buf.compute_returns_and_advantage(last_values=last, dones=data["terminated"][-1])
            model.train()
            logged = model.logger.name_to_value
            diff = 0.0
            for j, n in enumerate(SB3_MODULES):
                w = modules[n].weight.detach().numpy().T
                b = modules[n].bias.detach().numpy()
                diff = max(diff, float(np.abs(w - side[f"w{u}_{2 * j}"]).max()))
                diff = max(diff, float(np.abs(b - side[f"w{u}_{2 * j + 1}"]).max()))
            rows.append(
                {
                    "update": u,
                    "max_abs_weight_diff": diff,
                    "sb3_policy_loss": float(logged["train/policy_gradient_loss"])
                    if "train/policy_gradient_loss" in logged
                    else float(logged["train/policy_loss"]),
                    "sb3_value_loss": float(logged["train/value_loss"]),
                }
            )
        out.setdefault(variant, {})[rule] = rows
    (path / "sb3.json").write_text(json.dumps(out))
    return 0


def rlkit_eps(agent: str, overrides: dict[str, Any]) -> float:
    """The optimizer epsilon an rlkit variant runs with (its override, else the preset's)."""
    if "optimizer_eps" in overrides:
        return float(overrides["optimizer_eps"])
    from rlkit.agents import get_agent_class
    from rlkit.config import resolve

    return float(resolve(get_agent_class(agent), "CartPole-v1")[1].optimizer_eps)


def main(argv: list[str] | None = None) -> int:
    """Run both sides; print and save the comparison."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_sb3-child"]:
        return sb3_child(argv[1])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", choices=sorted(CASES), default="a2c")
    p.add_argument("--sb3-python", required=True, help="a Python with stable-baselines3")
    p.add_argument(
        "--out", type=Path, default=None, help="default results/<agent>_update_vs_sb3.json"
    )
    args = p.parse_args(argv)
    settings, updates, variants = CASES[args.agent]
    data = rollout(settings["n_steps"])
    result: dict[str, Any] = {
        "agent": args.agent,
        "rollout": f"[{settings['n_steps']}, {N}] random, seed 0",
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "rollout.npz", **data)
        eps = {v: rlkit_eps(args.agent, o) for v, o in variants.items()}
        (Path(tmp) / "job.json").write_text(json.dumps({"agent": args.agent, "eps": eps}))
        sides = {}
        for variant, overrides in variants.items():
            sides[variant] = side = rlkit_side(args.agent, overrides, data, updates)
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
    for variant, overrides in variants.items():
        entry: dict[str, Any] = {"rlkit_overrides": overrides}
        for rule, sb3_rows in sb3[variant].items():
            rows = []
            for m, s in zip(sides[variant]["metrics"], sb3_rows, strict=True):
                ours = (m["train/policy_loss"], m["train/value_loss"])
                rows.append({**s, "rlkit_policy_loss": ours[0], "rlkit_value_loss": ours[1]})
                print(
                    f"{args.agent} {variant} vs SB3 ({rule}) update {s['update']}: losses "
                    f"rlkit {ours[0]:.6f} / {ours[1]:.6f}, SB3 {s['sb3_policy_loss']:.6f} / "
                    f"{s['sb3_value_loss']:.6f}; largest weight difference "
                    f"{s['max_abs_weight_diff']:.2e}"
                )
            entry["vs_" + ("sb3" if rule == "sb3" else "sb3_with_keras_rule")] = rows
        result["variants"][variant] = entry
    out = args.out or HERE / "results" / f"{args.agent}_update_vs_sb3.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

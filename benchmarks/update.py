"""Milliseconds per update step of each agent: plain tf.function vs XLA vs mixed precision.

Usage:
    python benchmarks/update.py                       # every agent, CartPole and Atari shapes
    python benchmarks/update.py --agents a2c --envs CartPole-v1 --repeats 9
    python benchmarks/update.py --modes plain,mixed_precision
    python benchmarks/update.py --report              # tables from the saved results
    python benchmarks/update.py --agents dqn,rainbow --envs MinAtar/SpaceInvaders-v1 \
        --modes plain --name update_minatar

Each agent is built with its shipped preset for the env (CartPole-v1: 64x64 MLPs;
``ALE/SpaceInvaders-v5``: the Nature CNN on 4x84x84 uint8 stacks), once per mode:
``plain`` (the compiled ``tf.function`` step), ``jit_compile`` (``--set jit_compile=true``,
XLA) and ``mixed_precision`` (``--set mixed_precision=true``, bfloat16 torso).
``MinAtar/SpaceInvaders-v1``: the MinAtar CNN on 10x10x6 boolean grids. Updates run on
synthetic batches of the shapes training feeds them:

- DQN family (and Rainbow): ``[G, B]`` transitions, G gradient steps fused into one call
  (the CartPole preset's G=128, B=64, and single steps with B=32 and 64; Atari and MinAtar:
  G=1, B=32);
- A2C: one ``[n_steps, num_envs]`` rollout (CartPole 5x8, Atari 5x16);
- REINFORCE: ``[L, E]`` whole episodes (CartPole 100x8; Atari 32x16, a slice: real
  Space Invaders episodes are 500-1000 agent steps, and an update scales with L x E).

The modes of one shape are timed in alternating rounds (so machine load hits them alike);
a round runs calls for about ``--seconds``; the figure is the median over rounds of the
mean per-call time. The first call (graph optimisation, XLA compilation) is reported
separately, and each update step must have been traced exactly once. Writes
``results/update.{json,csv}`` with the device name, and prints the README table.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any

import numpy as np
from provenance import RESULTS, machine_info, save_rows

AGENTS = ("dqn", "double_dqn", "dueling_dqn", "a2c", "reinforce")
CARTPOLE, ATARI = "CartPole-v1", "ALE/SpaceInvaders-v5"
MODES = {
    "plain": {},
    "jit_compile": {"jit_compile": True},
    "mixed_precision": {"mixed_precision": True},
}


def shapes(agent: str, env_id: str) -> list[dict[str, int]]:
    """The batch shapes to time for ``agent`` on ``env_id``."""
    atari = env_id != CARTPOLE
    if agent.endswith("dqn") or agent == "rainbow":
        if atari:
            return [{"G": 1, "B": 32}]
        return [{"G": 1, "B": 32}, {"G": 1, "B": 64}, {"G": 128, "B": 64}]
    if agent == "a2c":
        return [{"T": 5, "N": 16 if atari else 8}]
    return [{"T": 32, "N": 16} if atari else {"T": 100, "N": 8}]


def spaces(env_id: str) -> tuple[Any, Any]:
    """The single-env observation and action spaces the agents see on ``env_id``."""
    import gymnasium as gym

    if env_id == CARTPOLE or env_id.startswith("MinAtar/"):
        from rlkit.envs.make import check_env_id

        check_env_id(env_id)  # imports the package that registers MinAtar's ids
        env = gym.make(env_id)
        return env.observation_space, env.action_space
    # The dqn protocol's observations: 4 stacked 84x84 grayscale frames; Space Invaders: 6.
    return gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6)


def make_batch(agent: Any, shape: dict[str, int], obs_space: Any, rng: np.random.Generator) -> Any:
    """A synthetic batch of ``shape`` with valid values for ``agent``'s update."""
    from rlkit.types import Batch, Rollout

    def obs(*lead: int) -> np.ndarray:
        if obs_space.dtype == np.uint8:
            return rng.integers(0, 256, (*lead, *obs_space.shape), np.uint8)
        return rng.normal(size=(*lead, *obs_space.shape)).astype(obs_space.dtype)

    def flags(*lead: int, p: float) -> np.ndarray:
        return (rng.random(lead) < p).astype(np.float32)

    n_actions = agent.num_actions
    if "G" in shape:
        g, b = shape["G"], shape["B"]
        return Batch(
            obs=obs(g, b),
            action=rng.integers(0, n_actions, (g, b)),
            reward=rng.normal(size=(g, b)).astype(np.float32),
            next_obs=obs(g, b),
            terminated=(terminated := flags(g, b, p=0.01)),
            truncated=flags(g, b, p=0.0),
            discount=np.float32(0.99) * (1.0 - terminated),
            weights=np.ones((g, b), np.float32),
            indices=np.arange(g * b).reshape(g, b),
        )
    t, n = shape["T"], shape["N"]
    return Rollout(
        obs=obs(t, n),
        action=rng.integers(0, n_actions, (t, n)),
        reward=rng.normal(size=(t, n)).astype(np.float32),
        terminated=flags(t, n, p=0.01),
        truncated=flags(t, n, p=0.0),
        valid=np.ones((t, n), np.float32),
        last_obs=obs(n),
    )


def build(agent: str, env_id: str, mode: str, seed: int) -> Any:
    """The agent with its preset for ``env_id`` and the flags of ``mode``."""
    from rlkit.agents import get_agent_class
    from rlkit.config import resolve

    cls = get_agent_class(agent)
    overrides = {"seed": seed, "eval_every": 0, "stop_reward": None, **MODES[mode]}
    if (agent.endswith("dqn") or agent == "rainbow") and env_id != CARTPOLE:
        overrides["buffer_size"] = 10_000  # not used here; keeps the config check quiet
    _, cfg = resolve(cls, env_id, overrides=overrides)
    obs_space, action_space = spaces(env_id)
    return cls(obs_space, action_space, cfg, seed=seed)


def timed_calls(agent: Any, batch: Any, seconds: float) -> float:
    """Mean milliseconds per ``agent.update(batch)`` over about ``seconds`` of calls."""
    calls, start = 0, time.perf_counter()
    while True:
        agent.update(batch)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls * 1e3


def measure(
    agent_name: str, env_id: str, shape: dict[str, int], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Rows for one agent and batch shape: every mode, timed in alternating rounds."""
    rng = np.random.default_rng(args.seed)
    modes = args.modes.split(",")
    agents, batches, first_ms, build_s = {}, {}, {}, {}
    for mode in modes:
        t0 = time.perf_counter()
        agents[mode] = build(agent_name, env_id, mode, args.seed)
        build_s[mode] = time.perf_counter() - t0
        batches[mode] = make_batch(agents[mode], shape, agents[mode].observation_space, rng)
        t0 = time.perf_counter()
        agents[mode].update(batches[mode])  # graph optimisation / XLA compilation
        first_ms[mode] = (time.perf_counter() - t0) * 1e3
        agents[mode].update(batches[mode])
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:
            rounds[mode].append(timed_calls(agents[mode], batches[mode], args.seconds))
    steps = shape.get("G", 1)
    rows = []
    for mode in modes:
        ms = statistics.median(rounds[mode])
        row = {
            "env": env_id,
            "agent": agent_name,
            "network": (
                "mlp"
                if env_id == CARTPOLE
                else "minatar_cnn"
                if env_id.startswith("MinAtar/")
                else "nature_cnn"
            ),
            "shape": ",".join(f"{k}={v}" for k, v in shape.items()),
            "mode": mode,
            "ms_per_call": ms,
            "ms_per_gradient_step": ms / steps,
            "vs_plain": ms / statistics.median(rounds["plain"]) if "plain" in rounds else None,
            "first_call_ms": first_ms[mode],
            "build_s": build_s[mode],
            "update_traces": agents[mode]._update_fn.experimental_get_tracing_count(),
            "rounds_ms": json.dumps([round(x, 3) for x in rounds[mode]]),
        }
        rows.append(row)
        print(
            f"{env_id} {agent_name} {row['shape']} {mode}: {ms:.2f} ms/call "
            f"({row['ms_per_gradient_step']:.3f} ms/gradient step, first call "
            f"{first_ms[mode]:.0f} ms, traced {row['update_traces']}x)",
            flush=True,
        )
    del agents
    gc.collect()
    return rows


def markdown(rows: list[dict[str, Any]], device: str) -> str:
    """The README table: ms per call per agent and shape, one column per mode."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    out = [
        f"Device: {device}. Milliseconds per update call, median of rounds "
        "(x: relative to plain; first call in brackets).\n",
        "| env | agent | batch | " + " | ".join(modes) + " |",
        "|---|---|---|" + "---|" * len(modes),
    ]
    keys = dict.fromkeys((r["env"], r["agent"], r["shape"]) for r in rows)
    for env_id, agent, shape in keys:
        cells = []
        for mode in modes:
            r = next(
                (
                    r
                    for r in rows
                    if (r["env"], r["agent"], r["shape"], r["mode"]) == (env_id, agent, shape, mode)
                ),
                None,
            )
            if r is None:
                cells.append("-")
                continue
            rel = f" ({r['vs_plain']:.2f}x)" if mode != "plain" and r["vs_plain"] else ""
            cells.append(f"{r['ms_per_call']:.2f}{rel} [{r['first_call_ms']:,.0f}]")
        out.append(f"| {env_id} | {agent} | {shape} | " + " | ".join(cells) + " |")
    traces = sorted({r["update_traces"] for r in rows})
    out.append(f"\nUpdate-step traces per agent and mode: {traces} (1 = traced once).")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--envs", default=f"{CARTPOLE},{ATARI}")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds per mode")
    p.add_argument("--seconds", type=float, default=0.3, help="calls per round, at least one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="update", help="results file stem")
    p.add_argument("--report", action="store_true", help="only print the saved table")
    args = p.parse_args()
    if args.report:
        doc = json.loads((RESULTS / f"{args.name}.json").read_text())
        print(markdown(doc["rows"], doc["meta"]["device"]))
        return 0
    from rlkit.agents.common import seed_everything

    # Once, before any agent exists: reseeding TF (inside seed_everything) clears its
    # cache of instantiated functions, so the next call of every update step compiled
    # before it rebuilds its graph (~0.2-0.4 s once); seeding per agent would put that
    # into the timed rounds of the earlier ones.
    seed_everything(args.seed)
    meta = machine_info(with_tf=True)
    meta["device"] = f"{', '.join(meta['devices'])} ({meta['cpu']}, {meta['cpu_count']} cores)"
    rows: list[dict[str, Any]] = []
    for env_id in args.envs.split(","):
        for agent in args.agents.split(","):
            for shape in shapes(agent, env_id):
                rows += measure(agent, env_id, shape, args)
                save_rows(args.name, rows, settings=vars(args), meta=meta)
    print(markdown(rows, meta["device"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

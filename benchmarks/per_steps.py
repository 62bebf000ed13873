"""What prioritized replay's one-call-per-gradient-step costs against a fused burst.

Usage:
    python benchmarks/per_steps.py [--envs CartPole-v1,MinAtar/SpaceInvaders-v1] [--rounds 7]

With uniform replay the DQN family fuses a burst of G gradient steps into one compiled
call on ``[G, B]`` batches sampled at once. Prioritized replay cannot: the priorities that
step g + 1 samples from must include step g's new ones (issue 16), so rlkit samples, updates
and writes priorities back once per gradient step (``DQN.next_batch`` hands out ``[1, B]``
batches until the burst is done). This times both on the Rainbow preset of each env, the
same network and loss (C51, dueling, double, noisy), with a replay filled with random
transitions of the env's shapes:

- ``fused``: uniform replay, one ``sample(B, num_batches=G)`` and one ``update``;
- ``per_step``: prioritized replay, G x (``sample(B, num_batches=1, beta)``, ``update``,
  ``update_priorities``), which is what training does.

Rounds alternate the two (so machine load hits them alike); the figure is the median over
rounds of milliseconds per gradient step. Writes ``results/per_steps.{json,csv}``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
from provenance import machine_info, save_rows

from rlkit.agents import get_agent_class
from rlkit.agents.common import seed_everything
from rlkit.config import resolve
from rlkit.envs.make import check_env_id
from rlkit.types import Transition


def filled(agent: Any, env: gym.Env, rows: int, seed: int) -> Any:
    """The agent's storage (one env stream) holding ``rows`` random transitions."""
    storage = agent.make_storage(1, env.observation_space, env.action_space, seed=seed)
    rng = np.random.default_rng(seed)
    space = env.observation_space

    def observation() -> np.ndarray:
        if space.dtype == np.bool_:
            return rng.random((1, *space.shape)) < 0.1
        return rng.normal(size=(1, *space.shape)).astype(space.dtype)

    obs = observation()
    for t in range(rows):
        nxt = observation()
        ended = (t + 1) % 200 == 0
        storage.add(
            Transition(
                obs=obs,
                action=rng.integers(0, env.action_space.n, 1),
                reward=rng.normal(size=1).astype(np.float32),
                next_obs=nxt,
                terminated=np.array([ended]),
                truncated=np.zeros(1, bool),
                valid=np.ones(1, bool),
            )
        )
        obs = nxt
    return storage


def time_burst(agent: Any, storage: Any, steps: int, batch: int, prioritized: bool) -> float:
    """Seconds for one burst of ``steps`` gradient steps, as training runs it."""
    start = time.perf_counter()
    if prioritized:
        for _ in range(steps):
            sample = storage.sample(batch, num_batches=1, beta=0.5)
            agent.update(sample)
            agent.after_update(storage, sample)
    else:
        agent.update(storage.sample(batch, num_batches=steps))
    return time.perf_counter() - start


def measure(env_id: str, rounds: int, rows: int, seed: int) -> list[dict[str, Any]]:
    """Median ms per gradient step for the fused and the per-step burst on ``env_id``."""
    check_env_id(env_id)
    env = gym.make(env_id)
    cls = get_agent_class("rainbow")
    agents, storages = {}, {}
    for mode, prioritized in (("fused", False), ("per_step", True)):
        _, cfg = resolve(cls, env_id, overrides={"prioritized_replay": prioritized})
        seed_everything(seed)
        agents[mode] = cls(env.observation_space, env.action_space, cfg, seed=seed)
        storages[mode] = filled(agents[mode], env, rows, seed)
    cfg = agents["fused"].config
    steps, batch = cfg.gradient_steps, cfg.batch_size
    if steps == 1:  # a single-step preset (MinAtar): time a burst of 4 to see the cost
        steps = 4
    for mode in agents:  # compile and warm up
        time_burst(agents[mode], storages[mode], steps, batch, mode == "per_step")
    times: dict[str, list[float]] = {m: [] for m in agents}
    for _ in range(rounds):
        for mode in agents:
            seconds = time_burst(agents[mode], storages[mode], steps, batch, mode == "per_step")
            times[mode].append(seconds / steps * 1e3)
    env.close()
    rows_out = []
    for mode, values in times.items():
        rows_out.append(
            {
                "env": env_id,
                "mode": mode,
                "gradient_steps": steps,
                "batch_size": batch,
                "ms_per_gradient_step": statistics.median(values),
                "rounds": values,
            }
        )
    ratio = rows_out[1]["ms_per_gradient_step"] / rows_out[0]["ms_per_gradient_step"]
    for row in rows_out:
        row["per_step_over_fused"] = ratio
    return rows_out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", default="CartPole-v1,MinAtar/SpaceInvaders-v1")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--rows", type=int, default=5_000, help="transitions in each replay")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rows = []
    for env_id in args.envs.split(","):
        for row in measure(env_id, args.rounds, args.rows, args.seed):
            rows.append(row)
            print(
                f"{row['env']:<28} {row['mode']:<9} G={row['gradient_steps']:<3} "
                f"B={row['batch_size']:<3} {row['ms_per_gradient_step']:.2f} ms/step "
                f"(per-step / fused {row['per_step_over_fused']:.2f}x)",
                flush=True,
            )
    save_rows("per_steps", rows, settings=vars(args), meta=machine_info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

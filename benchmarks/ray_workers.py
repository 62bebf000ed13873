"""Env steps/s collected by Ray rollout workers (1, 2, 4, ...) against the local runner.

Usage:
    python benchmarks/ray_workers.py [--workers 1,2,4] [--envs-per-worker 8] [--steps 40000]
        [--chunk-steps 32] [--repeats 3] [--busy-us 200]

Collection only, no learning: an A2C policy (64x64 MLP, acting by sampling) steps
CartPole-v1 through ``runner.act_and_step`` as the training loops do, and the rate is
env steps handed out per second of wall time, after a warm-up of a few chunks (actor
start-up is not counted). Two envs: plain CartPole-v1 (about 10 us a step: Ray's per-call
and transfer costs dominate) and "busy" CartPole, which also spins the CPU for
``--busy-us`` microseconds per step, like a simulator that costs real compute. The local
runner (one process, ``--envs-per-worker`` sync envs, acting in the learner) is the
reference. Writes ``benchmarks/results/ray_workers.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import gymnasium as gym

from rlkit.envs import make_vector_env
from rlkit.envs.vector import vectorize

HERE = Path(__file__).resolve().parent
ENV_ID = "CartPole-v1"


class BusyStep(gym.Wrapper):
    """Spends ``busy_us`` microseconds of CPU on each step (a stand-in for costly physics)."""

    def __init__(self, env: gym.Env, busy_us: int) -> None:
        super().__init__(env)
        self.busy_s = busy_us * 1e-6

    def step(self, action):
        end = time.perf_counter() + self.busy_s
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def make_busy_envs(num_envs: int, busy_us: int) -> gym.vector.VectorEnv:
    """``num_envs`` busy CartPoles as a sync vector env with NEXT_STEP autoreset."""

    def make() -> gym.Env:
        return BusyStep(gym.make(ENV_ID), busy_us)

    return vectorize([make] * num_envs, "sync")


def rate(runner, agent, steps: int, warmup: int) -> float:
    """Env steps/s of ``act_and_step`` over ``steps`` env steps after ``warmup`` ones."""
    obs = runner.reset(seed=0)
    first = runner.env_steps
    while runner.env_steps < first + warmup:
        _, obs = runner.act_and_step(agent, obs)
    start_steps, t0 = runner.env_steps, time.perf_counter()
    while runner.env_steps < start_steps + steps:
        _, obs = runner.act_and_step(agent, obs)
    return (runner.env_steps - start_steps) / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--envs-per-worker", type=int, default=8)
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--chunk-steps", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--busy-us", type=int, default=200)
    p.add_argument("--out", default=str(HERE / "results" / "ray_workers.json"))
    args = p.parse_args()

    import ray

    from rlkit.agents import A2C
    from rlkit.agents.common import seed_everything
    from rlkit.distributed import RayRunner
    from rlkit.runner import VectorRunner

    seed_everything(0)
    load_before = os.getloadavg()  # other jobs on the shared machine take cores too
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False)
    n = args.envs_per_worker
    factories = {
        "cartpole": functools.partial(make_vector_env, ENV_ID),
        f"busy_{args.busy_us}us": functools.partial(make_busy_envs, busy_us=args.busy_us),
    }
    probe = factories["cartpole"](1)
    agent = A2C(probe.single_observation_space, probe.single_action_space, seed=0)
    probe.close()
    configs = [("local", 0)] + [("ray", int(w)) for w in args.workers.split(",")]
    runs: dict[tuple[str, str, int], list[float]] = {}
    # Repeats alternate over the configs: the shared machine's speed drifts over minutes.
    for repeat in range(args.repeats):
        for env_name, make in factories.items():
            # A busy step costs ~busy_us: fewer steps keep every config to a few seconds.
            steps = args.steps if env_name == "cartpole" else max(args.steps // 8, 2000)
            for kind, workers in configs:
                if kind == "local":
                    runner = VectorRunner(make(n))
                else:
                    runner = RayRunner(
                        make, num_workers=workers, envs_per_worker=n, chunk_steps=args.chunk_steps
                    )
                try:
                    r = rate(runner, agent, steps, 4 * args.chunk_steps * runner.num_envs)
                finally:
                    runner.close()
                runs.setdefault((env_name, kind, workers), []).append(r)
                print(f"repeat {repeat}: {env_name:>12} {kind:>5} workers {workers}  {r:10,.0f}")
    rows = []
    for (env_name, kind, workers), rates in runs.items():
        row = {
            "env": env_name,
            "runner": kind,
            "workers": workers,
            "num_envs": n * max(workers, 1),
            "env_steps_per_s": statistics.median(rates),
            "runs": rates,
        }
        rows.append(row)
        print(
            f"{env_name:>12} {kind:>5} workers {workers}  envs {row['num_envs']:3d}  "
            f"{row['env_steps_per_s']:10,.0f} env steps/s (median of {len(rates)})",
            flush=True,
        )
    ray.shutdown()
    out = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        },
        "ray": ray.__version__,
        "settings": vars(args),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

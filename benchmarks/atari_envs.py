"""Raw Atari env throughput: Python wrappers (sync, async) vs ale-py's C++ vector env.

Usage:
    python benchmarks/atari_envs.py [--env ALE/SpaceInvaders-v5] [--num-envs 8] [--steps 20000]

Steps ``--num-envs`` envs with random actions under the ``dqn`` protocol (same observations
in every mode: 4x84x84 uint8, zero-padded stacks) and reports env steps/s (agent steps, 4
frames each) per vectorization. Writes ``benchmarks/results/atari_envs.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--env", default="ALE/SpaceInvaders-v5")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=20_000, help="env steps per mode")
    p.add_argument("--modes", default="sync,async,ale")
    args = p.parse_args()

    from rlkit.envs import make_vector_env
    from rlkit.envs.atari import load_protocol

    protocol = load_protocol("dqn")
    results = {}
    for mode in args.modes.split(","):
        envs = make_vector_env(args.env, args.num_envs, mode, protocol=protocol)
        try:
            envs.reset(seed=0)
            rng = np.random.default_rng(0)
            n = envs.single_action_space.n
            for _ in range(20):  # warm-up
                envs.step(rng.integers(0, n, args.num_envs))
            iters = args.steps // args.num_envs
            t0 = time.perf_counter()
            for _ in range(iters):
                envs.step(rng.integers(0, n, args.num_envs))
            seconds = time.perf_counter() - t0
        finally:
            envs.close()
        results[mode] = iters * args.num_envs / seconds
        print(f"{mode}: {results[mode]:,.0f} env steps/s", flush=True)
    out = HERE / "results" / "atari_envs.json"
    out.write_text(json.dumps({"env": args.env, "num_envs": args.num_envs, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

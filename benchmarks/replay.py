"""Replay at Atari scale: bytes per transition and sample time, at 1M capacity.

Usage:
    python benchmarks/replay.py [--capacity 1000000] [--num-envs 8]

Fills a ``ReplayBuffer`` of ``--capacity`` transitions of 84x84 uint8 frames with a 4-frame
stack (frames stored once) through ``add``, as training does, then times ``sample`` for
batches of 32 and 256 (median of 200 calls). Writes ``benchmarks/results/replay.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlkit.replay import ReplayBuffer, available_memory_bytes
from rlkit.types import Transition

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--episode-length", type=int, default=1000)
    args = p.parse_args()
    n, k = args.num_envs, 4
    obs_space = gym.spaces.Box(0, 255, (k, 84, 84), np.uint8)
    buffer = ReplayBuffer(
        args.capacity, n, obs_space, gym.spaces.Discrete(6), frame_stack=k, padding="zero", seed=0
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 84, 84), np.uint8)  # a pool of distinct frames
    stack = np.zeros((n, k, 84, 84), np.uint8)
    t0 = time.perf_counter()
    rows = buffer.rows
    for t in range(rows):
        ended = (t + 1) % args.episode_length == 0
        nxt = np.concatenate([stack[:, 1:], frames[(t + np.arange(n)) % 64][:, None]], axis=1)
        buffer.add(
            Transition(
                obs=stack,
                action=np.zeros(n, np.int64),
                reward=np.ones(n, np.float32),
                next_obs=nxt,
                terminated=np.full(n, ended),
                truncated=np.zeros(n, bool),
                valid=np.ones(n, bool),
            )
        )
        stack = nxt
    fill_s = time.perf_counter() - t0
    result = {
        "capacity": buffer.capacity,
        "num_envs": n,
        "nbytes": buffer.nbytes,
        "bytes_per_transition": buffer.nbytes / buffer.capacity,
        "gb": buffer.nbytes / 1e9,
        "fill_seconds": fill_s,
        "add_us_per_vector_step": fill_s / rows * 1e6,
        "memory_available_gb_after_fill": (available_memory_bytes() or 0) / 1e9,
    }
    for batch in (32, 256):
        times = []
        for _ in range(200):
            s = time.perf_counter()
            buffer.sample(batch)
            times.append(time.perf_counter() - s)
        result[f"sample_{batch}_ms_median"] = statistics.median(times) * 1e3
    print(json.dumps(result, indent=2))
    out = HERE / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

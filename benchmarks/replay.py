"""Replay at Atari scale: bytes per transition and sample time against a plain copy, at 1M.

Usage:
    python benchmarks/replay.py [--capacity 1000000] [--num-envs 8] [--rounds 9]

Fills a ``ReplayBuffer`` of ``--capacity`` transitions of 84x84 uint8 frames with a 4-frame
stack (frames stored once) through ``add``, as training does, then times, in alternating
rounds of ``--calls`` calls each (medians over rounds):

- ``sample(B)`` for B = 32 and 256;
- a copy of the bytes that batch holds (``obs`` and ``next_obs`` as 2 x B x 4 x 84 x 84
  bytes, plus 17 bytes of action, reward and flags per transition) between two
  preallocated contiguous arrays: issue #7's yardstick (target: sample(32) within 2x);
- an ablation of where the remaining time goes: the same number of random 84x84 frames
  gathered from the buffer's frame array with ``np.take`` into a new array, and into a
  preallocated one (whether reusing output arrays would pay).

Writes ``results/replay.{json,csv}`` with machine, versions and commit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from provenance import machine_info, save_rows

from rlkit.replay import ReplayBuffer, available_memory_bytes
from rlkit.types import Transition


def fill(buffer: ReplayBuffer, episode_length: int, seed: int = 0) -> float:
    """Add ``buffer.rows`` vector steps of distinct-looking frames; return seconds."""
    n, k = buffer.num_envs, buffer.frame_stack
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (64, 84, 84), np.uint8)  # a pool of distinct frames
    stack = np.zeros((n, k, 84, 84), np.uint8)
    start = time.perf_counter()
    for t in range(buffer.rows):
        ended = (t + 1) % episode_length == 0
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
    return time.perf_counter() - start


def per_call_ms(fn: Callable[[], object], calls: int) -> float:
    """Mean milliseconds per call of ``fn`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e3


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--episode-length", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=100, help="calls per round")
    args = p.parse_args()
    meta = machine_info()
    n, k = args.num_envs, 4
    buffer = ReplayBuffer(
        args.capacity,
        n,
        gym.spaces.Box(0, 255, (k, 84, 84), np.uint8),
        gym.spaces.Discrete(6),
        frame_stack=k,
        padding="zero",
        seed=0,
    )
    fill_s = fill(buffer, args.episode_length)
    common = {
        "capacity": buffer.capacity,
        "num_envs": n,
        "nbytes": buffer.nbytes,
        "bytes_per_transition": buffer.nbytes / buffer.capacity,
        "add_us_per_vector_step": fill_s / buffer.rows * 1e6,
        "memory_available_gb_after_fill": round((available_memory_bytes() or 0) / 1e9, 2),
    }
    frames = buffer.state()["array/frames"].reshape(-1, 84, 84)  # the ring itself, no copy
    rng = np.random.default_rng(1)
    rows = []
    for batch in (32, 256):
        nbytes = 2 * batch * k * 84 * 84 + 17 * batch
        src, dst = np.ones(nbytes, np.uint8), np.empty(nbytes, np.uint8)
        count = batch * (k + 1)  # frames sample() reads: a stack and its successor share k-1
        out = np.empty((count, 84, 84), np.uint8)

        def gather_new(count: int = count) -> None:
            np.take(frames, rng.integers(0, len(frames), count), axis=0, mode="clip")

        def gather_into(count: int = count, out: np.ndarray = out) -> None:
            np.take(frames, rng.integers(0, len(frames), count), axis=0, mode="clip", out=out)

        timed = {
            "sample": lambda batch=batch: buffer.sample(batch),
            "copy": lambda src=src, dst=dst: np.copyto(dst, src),
            "gather_new": gather_new,
            "gather_into": gather_into,
        }
        ms: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(args.rounds):
            for name, fn in timed.items():
                ms[name].append(per_call_ms(fn, args.calls))
        row = {
            "batch": batch,
            **common,
            "sample_ms": statistics.median(ms["sample"]),
            "copy_ms": statistics.median(ms["copy"]),
            "sample_over_copy": statistics.median(
                s / c for s, c in zip(ms["sample"], ms["copy"], strict=True)
            ),
            "copied_bytes": nbytes,
            "gather_new_ms": statistics.median(ms["gather_new"]),
            "gather_into_ms": statistics.median(ms["gather_into"]),
            "rounds_sample_ms": [round(x, 4) for x in ms["sample"]],
            "rounds_copy_ms": [round(x, 4) for x in ms["copy"]],
        }
        rows.append(row)
        print(
            f"sample({batch}): {row['sample_ms']:.3f} ms, copy of {nbytes:,} bytes "
            f"{row['copy_ms']:.3f} ms, ratio {row['sample_over_copy']:.2f} "
            f"(rounds {min(ms['sample']):.3f}-{max(ms['sample']):.3f} ms); gather of "
            f"{count} frames: new array {row['gather_new_ms']:.3f} ms, preallocated "
            f"{row['gather_into_ms']:.3f} ms",
            flush=True,
        )
    print(
        f"{buffer.capacity:,} transitions in {buffer.nbytes / 1e9:.3f} GB "
        f"({common['bytes_per_transition']:,.0f} bytes each); add: "
        f"{common['add_us_per_vector_step']:.0f} us per vector step of {n}"
    )
    save_rows("replay", rows, settings=vars(args), meta=meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

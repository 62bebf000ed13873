"""Replay at Atari scale: bytes per transition and sample time against a plain copy, at 1M.

Usage:
    python benchmarks/replay.py [--capacity 1000000] [--num-envs 8] [--rounds 9]
    python benchmarks/replay.py --quick      # 100,000 transitions, 5 rounds: a fast check

Fills a ``PrioritizedReplayBuffer`` of ``--capacity`` transitions of 84x84 uint8 frames with
a 4-frame stack (frames stored once) through ``add``, as training does (``add`` times
include the sum-tree upkeep), then times, in alternating rounds of ``--calls`` calls each
(medians over rounds):

- uniform ``sample(B)`` for B = 32 and 256 (``ReplayBuffer.sample`` on the same ring: the
  uniform path, unchanged by the subclass);
- a copy of the bytes that batch holds (``obs`` and ``next_obs`` as 2 x B x 4 x 84 x 84
  bytes, plus 17 bytes of action, reward and flags per transition) between two
  preallocated contiguous arrays: issue #7's yardstick (target: sample(32) within 2x);
- an ablation of where the remaining time goes: the same number of random 84x84 frames
  gathered from the buffer's frame array with ``np.take`` into a new array, and into a
  preallocated one (whether reusing output arrays would pay);
- issue #16, B = 32: prioritized ``sample(32)`` against uniform ``sample(32)`` (target:
  within 3x), ``update_priorities`` of 32 (target: within 0.2 ms), and n-step (n = 3)
  uniform ``sample(32)`` against 1-step (target: within 1.5x), on the same ring; and the
  bytes per transition of both buffers (target: PER at most 16 more).

Writes ``results/replay.{json,csv}`` and ``results/replay_per.{json,csv}`` (``_quick``
appended with ``--quick``) with machine, versions and commit.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from provenance import machine_info, save_rows

from rlkit.prioritized import PrioritizedReplayBuffer
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


def with_n_step(buffer: ReplayBuffer, n_step: int) -> ReplayBuffer:
    """The same ring read with n-step returns, for uniform sampling only.

    A shallow copy shares the arrays (a second 1M ring would take another 7 GB);
    ``n_step`` is only read at sample time. Its cursor is its own: add nothing to either.
    """
    view = copy.copy(buffer)
    view.n_step = n_step
    return view


def per_rows(buffer: PrioritizedReplayBuffer, rounds: int, calls: int) -> dict[str, float]:
    """Issue #16's timings at B = 32, in alternating rounds (medians, ratios per round)."""
    nstep = with_n_step(buffer, 3)
    rng = np.random.default_rng(2)
    updates = []
    for _ in range(16):  # real batch indices, with |TD errors| of a plausible spread
        batch = buffer.sample(32, beta=0.4)
        updates.append((batch.indices, rng.exponential(size=32)))
    turn = iter(range(10**9))

    def update() -> None:
        indices, td = updates[next(turn) % len(updates)]
        buffer.update_priorities(indices, td)

    timed = {
        "uniform": lambda: ReplayBuffer.sample(buffer, 32),
        "per": lambda: buffer.sample(32, beta=0.4),
        "update": update,
        "nstep": lambda: ReplayBuffer.sample(nstep, 32),
    }
    ms: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, fn in timed.items():
            ms[name].append(per_call_ms(fn, calls))
    uniform_bytes = ReplayBuffer.nbytes.fget(buffer) / buffer.capacity
    per_bytes = buffer.nbytes / buffer.capacity

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(ms[a], ms[b], strict=True))

    row = {
        "batch": 32,
        "capacity": buffer.capacity,
        "num_envs": buffer.num_envs,
        "uniform_sample_ms": statistics.median(ms["uniform"]),
        "per_sample_ms": statistics.median(ms["per"]),
        "per_over_uniform": ratio("per", "uniform"),
        "update_priorities_ms": statistics.median(ms["update"]),
        "nstep3_sample_ms": statistics.median(ms["nstep"]),
        "nstep3_over_1step": ratio("nstep", "uniform"),
        "uniform_bytes_per_transition": uniform_bytes,
        "per_bytes_per_transition": per_bytes,
        "per_extra_bytes_per_transition": per_bytes - uniform_bytes,
        **{f"rounds_{name}_ms": [round(x, 4) for x in v] for name, v in ms.items()},
    }
    checks = [
        ("PER sample(32) / uniform", row["per_over_uniform"], 3.0, "x"),
        ("update_priorities(32)", row["update_priorities_ms"], 0.2, " ms"),
        ("n-step (3) sample(32) / 1-step", row["nstep3_over_1step"], 1.5, "x"),
        ("PER extra bytes per transition", row["per_extra_bytes_per_transition"], 16, ""),
    ]
    print(
        f"uniform sample(32) {row['uniform_sample_ms']:.3f} ms, PER sample(32) "
        f"{row['per_sample_ms']:.3f} ms, n-step (3) sample(32) {row['nstep3_sample_ms']:.3f} "
        f"ms; bytes per transition: uniform {uniform_bytes:,.0f}, PER {per_bytes:,.0f}"
    )
    for name, value, target, unit in checks:
        verdict = "met" if value <= target else "MISSED"
        print(f"  {name}: {value:.3f}{unit} (target <= {target}{unit}: {verdict})")
    return row


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--episode-length", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=100, help="calls per round")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a fast check: 100,000 transitions, 5 rounds of 50 calls (results *_quick)",
    )
    args = p.parse_args()
    if args.quick:
        args.capacity, args.rounds, args.calls = 100_000, 5, 50
    suffix = "_quick" if args.quick else ""
    meta = machine_info()
    n, k = args.num_envs, 4
    buffer = PrioritizedReplayBuffer(
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
        "nbytes": ReplayBuffer.nbytes.fget(buffer),  # the uniform buffer's arrays
        "bytes_per_transition": ReplayBuffer.nbytes.fget(buffer) / buffer.capacity,
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
            "sample": lambda batch=batch: ReplayBuffer.sample(buffer, batch),
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
        f"{buffer.capacity:,} transitions in {common['nbytes'] / 1e9:.3f} GB "
        f"({common['bytes_per_transition']:,.0f} bytes each, uniform); add (prioritized): "
        f"{common['add_us_per_vector_step']:.0f} us per vector step of {n}"
    )
    save_rows(f"replay{suffix}", rows, settings=vars(args), meta=meta)
    per = per_rows(buffer, args.rounds, args.calls)
    save_rows(f"replay_per{suffix}", [{**per, **common}], settings=vars(args), meta=meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

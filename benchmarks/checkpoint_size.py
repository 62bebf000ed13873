"""Checkpoint size and write time of an Atari-sized replay buffer, partly filled.

Usage:
    python benchmarks/checkpoint_size.py [--capacity 1000000] [--filled 64476] [--repeats 3]

The case of issue 13 (item 7): ``python -m rlkit.train --agent dueling_dqn --env
ALE/SpaceInvaders-v5`` stopped with Ctrl-C after 64,476 steps wrote a 6.7 GB checkpoint.
This fills a ``ReplayBuffer`` of ``--capacity`` transitions (84x84 uint8 frames, 4-frame
stacks, frames stored once) with ``--filled`` synthetic transitions through ``add``, then
writes run checkpoints through the same ``RunSaver`` -> ``Checkpointer`` path training
uses (tiny agent, so the replay is nearly all of it), and times:

- ``written rows``: what ``ReplayBuffer.state()`` gives now (the filled rows only);
- ``whole ring``: the arrays of the whole ring, what it gave before (written once: at 1M
  that is a 7 GB file; ``--skip-whole-ring`` leaves it out);
- the resume of the written-rows checkpoint (verify checksums, load, ``restore``), and that
  the restored buffer samples exactly what the original does.

The ring is allocated with ``np.zeros``: rows never written take no memory, so a 1M ring
with 64k rows filled holds about 0.5 GB of resident memory. Checkpoints go to ``--dir``
(default: a temporary folder, removed at the end). Writes ``results/checkpoint_size.{json,
csv}`` with machine, versions and commit.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from provenance import machine_info, save_rows

from rlkit.replay import ReplayBuffer
from rlkit.types import Transition

FRAME = (84, 84)
STACK = 4


class TinyAgent:
    """The least a checkpoint needs of an agent: one variable, no RNG of its own."""

    rng = None

    def __init__(self) -> None:
        import tensorflow as tf

        self.step = tf.Variable(0, dtype=tf.int64)

    def checkpoint_items(self) -> dict[str, Any]:
        return {"step": self.step}

    def before_checkpoint(self) -> None:
        pass

    def after_restore(self) -> None:
        pass


class Stub:
    """Runner and evaluator stand-ins: the counters and state a checkpoint records."""

    env_steps = episodes = 0

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        pass


def fill(buffer: ReplayBuffer, transitions: int, episode_length: int = 1000) -> float:
    """Add ``transitions // num_envs`` vector steps of distinct-looking frames; seconds."""
    n = buffer.num_envs
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, (64, *FRAME), np.uint8)
    stack = np.zeros((n, STACK, *FRAME), np.uint8)
    start = time.perf_counter()
    for t in range(transitions // n):
        ended = (t + 1) % episode_length == 0
        nxt = np.concatenate([stack[:, 1:], pool[(t + np.arange(n)) % 64][:, None]], axis=1)
        buffer.add(
            Transition(
                obs=stack,
                action=np.full(n, t % 6, np.int64),
                reward=np.ones(n, np.float32),
                next_obs=nxt,
                terminated=np.full(n, ended),
                truncated=np.zeros(n, bool),
                valid=np.ones(n, bool),
            )
        )
        # After an episode end the next row is the (zero-padded) reset, as with NEXT_STEP.
        stack = np.zeros_like(nxt) if ended else nxt
    return time.perf_counter() - start


def make_buffer(capacity: int, num_envs: int, seed: int = 0) -> ReplayBuffer:
    space = gym.spaces.Box(0, 255, (STACK, *FRAME), np.uint8)
    return ReplayBuffer(
        capacity,
        num_envs,
        space,
        gym.spaces.Discrete(6),
        frame_stack=STACK,
        padding="zero",
        seed=seed,
    )


def saver(run_dir: Path, buffer: ReplayBuffer) -> Any:
    from rlkit.checkpoint import Checkpointer
    from rlkit.experiment import RunSaver
    from rlkit.logger import Logger

    logger = Logger(None, 1, 1, verbose=0)
    return RunSaver(Checkpointer(run_dir, keep=1), TinyAgent(), Stub(), logger, Stub(), buffer)


def whole_ring_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """``state()`` as it was before: every array of the whole ring."""
    state = ReplayBuffer.state(buffer)
    state.update({f"array/{k}": v for k, v in buffer._arrays.items()})
    return state


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--filled", type=int, default=64_476, help="transitions added")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="writes of the written-rows layout")
    p.add_argument("--skip-whole-ring", action="store_true", help="do not write the old layout")
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a tmp dir)")
    args = p.parse_args()
    meta = machine_info()
    root = Path(tempfile.mkdtemp(dir=args.dir, prefix="rlkit-ckpt-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        buffer = make_buffer(args.capacity, args.num_envs)
        fill_s = fill(buffer, args.filled)
        print(
            f"buffer: {buffer.capacity:,} transitions ({buffer.nbytes / 1e9:.2f} GB allocated), "
            f"{buffer.size:,} filled in {fill_s:.1f} s",
            flush=True,
        )
        layouts = [("written rows", buffer.state, args.repeats)]
        if not args.skip_whole_ring:
            layouts.append(("whole ring", lambda: whole_ring_state(buffer), 1))
        for name, state_fn, repeats in layouts:
            buffer.state = state_fn  # type: ignore[method-assign]
            run_dir = root / name.replace(" ", "_")
            save = saver(run_dir, buffer)
            sizes, seconds = [], []
            for i in range(repeats):
                save(1_000 + i, {}, final=True)
                sizes.append(save.last_megabytes)
                seconds.append(save.last_seconds)
            frames = save.last_path / "arrays" / "frames.npy"
            row = {
                "layout": name,
                "capacity": buffer.capacity,
                "filled": buffer.size,
                "checkpoint_mb": statistics.median(sizes),
                "frames_npy_mb": frames.stat().st_size / 1e6,
                "write_s_median": statistics.median(seconds),
                "write_s_all": seconds,
            }
            del buffer.state  # back to the method
            if name == "written rows":
                other = make_buffer(args.capacity, args.num_envs, seed=99)
                load = saver(run_dir, other)
                start = time.perf_counter()
                load.restore()
                row["resume_s"] = time.perf_counter() - start
                same = all(
                    np.array_equal(x, y)
                    for _ in range(3)
                    for x, y in zip(buffer.sample(256), other.sample(256), strict=True)
                )
                row["restored_samples_equal"] = same
                del other
            shutil.rmtree(run_dir, ignore_errors=True)
            rows.append(row)
            print(
                f"{name:>12}: {row['checkpoint_mb']:,.1f} MB (frames.npy "
                f"{row['frames_npy_mb']:,.1f} MB), written in {row['write_s_median']:.2f} s"
                + (
                    f"; resume {row['resume_s']:.2f} s, samples equal: "
                    f"{row['restored_samples_equal']}"
                    if "resume_s" in row
                    else ""
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    save_rows("checkpoint_size", rows, settings={**vars(args), "dir": str(args.dir)}, meta=meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

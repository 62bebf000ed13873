"""The runner's own cost: ``VectorRunner.step`` vs the raw vector env's ``step``.

Usage:
    python benchmarks/runner_overhead.py                      # CartPole, sync and async
    python benchmarks/runner_overhead.py --vectorizations sync --num-envs 1,8 --pairs 41

Both step the same vector env with the same random actions. They are timed in many short
blocks in ABBA order (raw, runner, runner, raw, ...), so that drifting machine load and
any order effect fall on both alike; the overhead of a pair of adjacent blocks is
``raw steps/s / runner steps/s - 1``, and the figure is its median over all pairs, with
the 25-75 % range. Issue #7's target: <= 10 % for sync CartPole. No TensorFlow is
imported, so nothing else of rlkit's competes for the cores.

Writes ``results/runner_overhead.{json,csv}`` with machine, versions and commit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from provenance import load_now, machine_info, save_rows
from throughput import calibrate, open_cell, time_raw, time_runner


def quartiles(values: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles."""
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def measure(env_id: str, vectorization: str, num_envs: int, args: argparse.Namespace) -> dict:
    """Median raw and runner steps/s and the paired overhead of one vector env."""
    cell = open_cell(env_id, vectorization, num_envs, args.seed)
    try:
        block = calibrate(cell, args.block_seconds)
        raw: list[float] = []
        runner: list[float] = []
        for i in range(args.pairs):
            first, second = (time_raw, time_runner) if i % 2 == 0 else (time_runner, time_raw)
            a, b = first(cell, block), second(cell, block)
            raw_s, runner_s = (a, b) if i % 2 == 0 else (b, a)
            raw.append(block * num_envs / raw_s)
            runner.append(block * num_envs / runner_s)
    finally:
        cell.runner.close()
    overhead = [r / u - 1 for r, u in zip(raw, runner, strict=True)]
    low, high = quartiles(overhead)
    row: dict[str, Any] = {
        "env": env_id,
        "vectorization": vectorization,
        "num_envs": num_envs,
        "raw_steps_per_s": statistics.median(raw),
        "runner_steps_per_s": statistics.median(runner),
        "runner_overhead": statistics.median(overhead),
        "overhead_q25": low,
        "overhead_q75": high,
        "runner_us_per_vector_step": statistics.median(
            (1 / u - 1 / r) * num_envs * 1e6 for r, u in zip(raw, runner, strict=True)
        ),
        "pairs": args.pairs,
        "block_vector_steps": block,
    }
    print(
        f"{env_id} {vectorization} x{num_envs}: raw {row['raw_steps_per_s']:,.0f}/s, runner "
        f"{row['runner_steps_per_s']:,.0f}/s, overhead {row['runner_overhead']:+.1%} "
        f"({low:+.1%} to {high:+.1%}), {row['runner_us_per_vector_step']:.1f} us per vector step",
        flush=True,
    )
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README table."""
    out = [
        "| env | vectorization | envs | raw env steps/s | runner steps/s | overhead, median "
        "(25-75 %) | runner us per vector step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['env']} | {r['vectorization']} | {r['num_envs']} | "
            f"{r['raw_steps_per_s']:,.0f} | {r['runner_steps_per_s']:,.0f} | "
            f"{r['runner_overhead']:+.1%} ({r['overhead_q25']:+.1%} to {r['overhead_q75']:+.1%})"
            f" | {r['runner_us_per_vector_step']:.1f} |"
        )
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--vectorizations", default="sync,async")
    p.add_argument("--num-envs", default="1,2,4,8,16")
    p.add_argument("--pairs", type=int, default=21)
    p.add_argument("--block-seconds", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    meta = machine_info()
    rows = [
        measure(args.env, vec, int(n), args)
        for vec in args.vectorizations.split(",")
        for n in args.num_envs.split(",")
    ]
    meta["load_at_end"] = load_now()
    save_rows("runner_overhead", rows, settings=vars(args), meta=meta)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

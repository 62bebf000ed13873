"""A2C on CartPole-v1 with ``sync`` vs ``vector`` (gymnasium's numpy CartPoleVectorEnv).

Usage:
    python benchmarks/vector_entry_point.py speed --num-envs 8,64,128 --repeats 3
    python benchmarks/vector_entry_point.py speed --env-var OPENBLAS_NUM_THREADS=1 --tag blas1
    python benchmarks/vector_entry_point.py raw --num-envs 8,64,128 --pairs 9
    python benchmarks/vector_entry_point.py learning --seeds 1,2,3 --steps 500000
    python benchmarks/vector_entry_point.py report

``speed``: training env steps/s of the real CLI (``python -m rlkit.train --agent a2c --env
CartPole-v1 --set vectorization=... --set num_envs=...``, one subprocess per run, the A2C
CartPole preset otherwise, no periodic evaluation, a 1-episode final evaluation) for
``--updates`` updates (``updates * num_envs * n_steps`` env steps, so every size runs about
as many loop iterations). ``sync`` and ``vector`` runs alternate, in ABBA order over the
repeats, so that the machine's drifting load falls on both alike. Two figures per run:
``train_steps_per_s`` from ``results.json`` (training env steps / training seconds, start-up
of the loop included) and ``steady_steps_per_s`` from ``progress.csv`` (env steps per second
between its first and last rows). The summary gives medians over repeats and the median of
the per-repeat ratios vector / sync. ``--env-var`` sets variables for the runs (recorded with
``--tag``), e.g. ``OPENBLAS_NUM_THREADS=1``.

``raw``: in this process, ``envs.step`` and ``VectorRunner.step`` with random actions for both
vectorizations, in short blocks alternating sync / vector (ABBA), medians over ``--pairs``.

``learning``: the same A2C settings at ``--learning-num-envs`` envs with each vectorization
on each seed for ``--steps`` env steps (``stop_reward`` off, so both use the whole budget),
then the CLI's final evaluation (100 greedy episodes on seeds the run never used); also the
training return (``rollout/ep_rew_mean``) at every ``--curve-every`` steps.

Writes ``results/vector_entry_point_{speed,raw,learning}.{json,csv}`` with machine,
versions and commit; ``report`` prints the markdown tables of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import RESULTS, load_now, machine_info, save_rows

ENV = "CartPole-v1"
VECS = ("sync", "vector")
N_STEPS = 5  # A2C's CartPole preset


def cli_run(
    vectorization: str, num_envs: int, total: int, seed: int, extra: list[str], env: dict
) -> dict[str, Any]:
    """One ``python -m rlkit.train`` A2C run; its results.json and progress.csv figures."""
    with tempfile.TemporaryDirectory(prefix="rlkit-vec-") as tmp:
        run_dir = Path(tmp) / "run"
        sets = {
            "vectorization": vectorization,
            "num_envs": num_envs,
            "total_steps": total,
            "seed": seed,
            "eval_every": 0,
            "stop_reward": "null",
            "log_interval": max(total // 20, num_envs * N_STEPS),
        }
        argv = [sys.executable, "-m", "rlkit.train", "--agent", "a2c", "--env", ENV, "--quiet"]
        argv += ["--run-dir", str(run_dir), *extra]
        for key, value in sets.items():
            argv += ["--set", f"{key}={value}"]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        results = json.loads((run_dir / "results.json").read_text())
        with (run_dir / "progress.csv").open() as f:
            progress = list(csv.DictReader(f))
    steps = [float(r["time/env_steps"]) for r in progress]
    elapsed = [float(r["time/elapsed_s"]) for r in progress]
    steady = (steps[-1] - steps[0]) / (elapsed[-1] - elapsed[0]) if len(steps) > 1 else None
    return {
        "train_env_steps": results["train_env_steps"],
        "train_seconds": results["train_seconds"],
        "train_steps_per_s": results["train_env_steps"] / results["train_seconds"],
        "steady_steps_per_s": steady,
        "wall_s": round(wall, 1),
        "final_mean_reward": results["mean_reward"],
        "final_std_reward": results["std_reward"],
        "final_episodes": results["n_eval_episodes"],
        "progress": [
            (int(float(r["time/env_steps"])), _float(r.get("rollout/ep_rew_mean")))
            for r in progress
        ],
    }


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def run_env(pairs: list[str]) -> dict[str, str]:
    """This process's environment plus ``KEY=VALUE`` pairs."""
    env = dict(os.environ)
    for pair in pairs:
        key, _, value = pair.partition("=")
        env[key] = value
    return env


def speed(args: argparse.Namespace) -> None:
    """Training env steps/s, sync vs vector, alternating runs."""
    env, sizes = run_env(args.env_var), [int(n) for n in args.num_envs.split(",")]
    rows: list[dict[str, Any]] = []
    meta = machine_info()
    for repeat in range(args.repeats):
        for n in sizes:
            order = VECS if (repeat + sizes.index(n)) % 2 == 0 else VECS[::-1]
            for vec in order:
                total = args.updates * n * N_STEPS
                extra = ["--final-eval-episodes", "1"]
                out = cli_run(vec, n, total, args.seed, extra, env)
                out.pop("progress")
                row = {"tag": args.tag, "vectorization": vec, "num_envs": n, "repeat": repeat}
                row.update(out)
                row["load_average"] = load_now()["load_average"][0]
                rows.append(row)
                print(
                    f"[{args.tag}] {vec} x{n} repeat {repeat}: "
                    f"{row['train_steps_per_s']:,.0f} steps/s "
                    f"(steady {row['steady_steps_per_s']:,.0f}), load {row['load_average']}",
                    flush=True,
                )
                meta["load_at_end"] = load_now()
                save_rows(
                    f"vector_entry_point_speed_{args.tag}", rows, settings=vars(args), meta=meta
                )
    print(speed_table(rows))


def raw(args: argparse.Namespace) -> None:
    """Raw ``envs.step`` and ``VectorRunner.step`` steps/s with random actions, ABBA."""
    from throughput import calibrate, open_cell, time_raw, time_runner

    rows, meta = [], machine_info()
    for n in [int(n) for n in args.num_envs.split(",")]:
        cells = {vec: open_cell(ENV, vec, n, args.seed) for vec in VECS}
        try:
            blocks = {vec: calibrate(cell, args.block_seconds) for vec, cell in cells.items()}
            figures: dict[str, dict[str, list[float]]] = {
                vec: {"raw": [], "runner": []} for vec in VECS
            }
            for i in range(args.pairs):
                for vec in VECS if i % 2 == 0 else VECS[::-1]:
                    cell, block = cells[vec], blocks[vec]
                    figures[vec]["raw"].append(block * n / time_raw(cell, block))
                    figures[vec]["runner"].append(block * n / time_runner(cell, block))
        finally:
            for cell in cells.values():
                cell.runner.close()
        for vec in VECS:
            row = {
                "vectorization": vec,
                "num_envs": n,
                "raw_steps_per_s": statistics.median(figures[vec]["raw"]),
                "runner_steps_per_s": statistics.median(figures[vec]["runner"]),
                "vector_over_sync_raw": statistics.median(
                    v / s
                    for v, s in zip(figures["vector"]["raw"], figures["sync"]["raw"], strict=True)
                ),
                "pairs": args.pairs,
                "raw_runs": json.dumps([round(x) for x in figures[vec]["raw"]]),
                "runner_runs": json.dumps([round(x) for x in figures[vec]["runner"]]),
            }
            rows.append(row)
            print(
                f"{vec} x{n}: raw {row['raw_steps_per_s']:,.0f}/s, runner "
                f"{row['runner_steps_per_s']:,.0f}/s",
                flush=True,
            )
        meta["load_at_end"] = load_now()
        save_rows("vector_entry_point_raw", rows, settings=vars(args), meta=meta)
    print(raw_table(rows))


def learning(args: argparse.Namespace) -> None:
    """Final evaluation and training curve, sync vs vector, same seeds and budget."""
    env, rows, meta = run_env(args.env_var), [], machine_info()
    n = args.learning_num_envs
    for i, seed in enumerate(int(s) for s in args.seeds.split(",")):
        for vec in VECS if i % 2 == 0 else VECS[::-1]:
            out = cli_run(vec, n, args.steps, seed, [], env)
            progress = out.pop("progress")
            row = {"vectorization": vec, "num_envs": n, "seed": seed, **out}
            for mark in range(args.curve_every, args.steps + 1, args.curve_every):
                before = [r for s, r in progress if s <= mark and r is not None]
                row[f"train_return_at_{mark}"] = before[-1] if before else None
            # The whole curve in one number (less noisy than one greedy evaluation): the
            # mean of the logged training returns (the last 100 episodes at each row).
            logged = [r for _, r in progress if r is not None]
            row["train_return_mean"] = statistics.mean(logged) if logged else None
            rows.append(row)
            print(
                f"{vec} x{n} seed {seed}: final {row['final_mean_reward']:.1f} ± "
                f"{row['final_std_reward']:.1f} ({row['final_episodes']} episodes), "
                f"{row['train_steps_per_s']:,.0f} steps/s",
                flush=True,
            )
            meta["load_at_end"] = load_now()
            save_rows(
                f"vector_entry_point_learning{args.name}", rows, settings=vars(args), meta=meta
            )
    print(learning_table(rows))


# -- report -------------------------------------------------------------------------------------
def speed_table(rows: list[dict[str, Any]]) -> str:
    """Medians per tag, vectorization and size, and the median per-repeat ratio."""
    out = [
        "| runs | envs | sync steps/s (steady) | vector steps/s (steady) | vector / sync |",
        "|---|---|---|---|---|",
    ]
    for tag in dict.fromkeys(r["tag"] for r in rows):
        for n in sorted({r["num_envs"] for r in rows if r["tag"] == tag}):
            cell = {
                vec: sorted(
                    (
                        r
                        for r in rows
                        if (r["tag"], r["num_envs"], r["vectorization"]) == (tag, n, vec)
                    ),
                    key=lambda r: r["repeat"],
                )
                for vec in VECS
            }
            if not all(cell.values()):
                continue
            ratios = [
                v["train_steps_per_s"] / s["train_steps_per_s"]
                for s, v in zip(cell["sync"], cell["vector"], strict=False)
            ]
            figures = []
            for vec in VECS:
                train = statistics.median(r["train_steps_per_s"] for r in cell[vec])
                steady = statistics.median(r["steady_steps_per_s"] for r in cell[vec])
                figures.append(f"{train:,.0f} ({steady:,.0f})")
            out.append(
                f"| {tag} x{len(ratios)} | {n} | {figures[0]} | {figures[1]} | "
                f"{statistics.median(ratios):.2f}x |"
            )
    return "\n".join(out)


def raw_table(rows: list[dict[str, Any]]) -> str:
    """Raw and runner steps/s per vectorization and size."""
    out = [
        "| envs | sync raw | vector raw | vector / sync | sync runner | vector runner |",
        "|---|---|---|---|---|---|",
    ]
    for n in sorted({r["num_envs"] for r in rows}):
        by = {r["vectorization"]: r for r in rows if r["num_envs"] == n}
        out.append(
            f"| {n} | {by['sync']['raw_steps_per_s']:,.0f} | {by['vector']['raw_steps_per_s']:,.0f}"
            f" | {by['vector']['vector_over_sync_raw']:.1f}x | "
            f"{by['sync']['runner_steps_per_s']:,.0f} | {by['vector']['runner_steps_per_s']:,.0f} |"
        )
    return "\n".join(out)


def learning_table(rows: list[dict[str, Any]]) -> str:
    """Final evaluation per seed and vectorization, and the training-return curve."""
    marks = sorted(
        {int(k.rsplit("_", 1)[1]) for r in rows for k in r if k.startswith("train_return_at_")}
    )
    head = " | ".join(f"{m // 1000}k" for m in marks)
    out = [
        "| vectorization | seed | final mean ± std (100 ep.) | steps/s | "
        f"training return at {head} |",
        "|---|---|---|---|---" + "|---" * (len(marks) - 1) + "|",
    ]
    for r in sorted(rows, key=lambda r: (r["vectorization"], r["seed"])):
        curve = " | ".join(
            "-" if r.get(f"train_return_at_{m}") is None else f"{r[f'train_return_at_{m}']:.0f}"
            for m in marks
        )
        out.append(
            f"| {r['vectorization']} | {r['seed']} | {r['final_mean_reward']:.1f} ± "
            f"{r['final_std_reward']:.1f} | {r['train_steps_per_s']:,.0f} | {curve} |"
        )
    out.append("")
    for vec in VECS:
        mine = [r for r in rows if r["vectorization"] == vec]
        if not mine:
            continue
        finals = [r["final_mean_reward"] for r in mine]
        curve = [r["train_return_mean"] for r in mine if r.get("train_return_mean") is not None]
        line = (
            f"{vec}: {len(finals)} seeds, final mean {statistics.mean(finals):.1f} (median "
            f"{statistics.median(finals):.1f}, min {min(finals):.1f}, "
            f"{sum(f >= 475 for f in finals)} >= 475)"
        )
        if curve:
            line += f"; training return averaged over the run {statistics.mean(curve):.1f}"
        out.append(line + "  ")
    return "\n".join(out)


def report(_: argparse.Namespace) -> None:
    """Print the tables of every saved result."""
    for path in sorted(RESULTS.glob("vector_entry_point_*.json")):
        rows = json.loads(path.read_text())["rows"]
        print(f"\n{path.name}\n")
        if "speed" in path.name:
            print(speed_table(rows))
        elif "raw" in path.name:
            print(raw_table(rows))
        else:
            print(learning_table(rows))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("what", choices=("speed", "raw", "learning", "report"))
    p.add_argument("--num-envs", default="8,64,128")
    p.add_argument("--repeats", type=int, default=3, help="speed: runs per cell")
    p.add_argument("--updates", type=int, default=600, help="speed: A2C updates per run")
    p.add_argument("--pairs", type=int, default=9, help="raw: alternating blocks")
    p.add_argument("--block-seconds", type=float, default=0.2, help="raw: block length")
    p.add_argument("--seeds", default="1,2,3", help="learning: seeds")
    p.add_argument("--steps", type=int, default=500_000, help="learning: env steps per run")
    p.add_argument("--learning-num-envs", type=int, default=64)
    p.add_argument("--curve-every", type=int, default=100_000, help="learning: curve marks")
    p.add_argument("--name", default="", help="learning: suffix of the results file")
    p.add_argument("--seed", type=int, default=0, help="speed and raw: the runs' seed")
    p.add_argument("--env-var", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--tag", default="default", help="speed: name of this set of runs")
    args = p.parse_args()
    {"speed": speed, "raw": raw, "learning": learning, "report": report}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

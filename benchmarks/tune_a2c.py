"""Tuning benchmark: does ``rlkit.tune`` beat the shipped A2C CartPole-v1 preset?

Usage:
    python benchmarks/tune_a2c.py                      # the issue's check, ~10 min of both cores
    python benchmarks/tune_a2c.py --quick              # a smoke test of this script (~3 min)

One command does the whole check of issue 17's target:

1. Tuning: ``python -m rlkit.tune --agent a2c --env CartPole-v1 --trials 30 --jobs 2
   --total-steps 50000`` with the shipped search space (``agents/tune/a2c.yaml``) and the
   ``steps`` objective (env steps to a confirmed 475), in a fresh study; its wall time,
   and how many trials completed, were pruned and failed. The budget of 50,000 env steps a
   trial is 2.5x the preset's median to the confirmed 475 (20,006 on seeds 101-110): a
   setting that needs more is no improvement, and a first try at 100,000 spent 70-150 s
   on each unsolved trial here (under a load of 8-10), far from the 10-minute target.
   Trials' final evaluations use 20 episodes instead of 100 (``--set
   final_eval_episodes=20``) to save time: the objective of a solved trial does not use
   them, that of an unsolved one uses their mean.
2. Checking: the best settings (the preset file ``--save-preset`` wrote) and the shipped
   preset each train on 5 seeds neither the tuning (seed 0) nor the preset's own tuning
   (seeds 1-8) used, 501-505 by default, with the preset's evaluation protocol (10 fresh
   episodes every 5,000 env steps, a stop confirmed on 30 more, 100 final episodes on
   unused seeds) and the same budget (``--check-steps``, 200,000; a run that does not
   confirm 475 in it counts as not solved).
3. The verdict on the issue's three claims: tuning under 10 minutes, at least a third of
   the trials pruned, and the tuned settings' median env steps to the confirmed 475 below
   the preset's on the unseen seeds.

Writes ``benchmarks/results/tune/tune_a2c.{json,csv}`` (one row per check run; the tuning
numbers and the verdict in the JSON's settings, with the machine and load), the tuned
preset file and the study's two plots next to them. The study database and the run
folders go to ``runs/bench-tune/`` (not kept in git). Timings on a shared machine are only
as good as its load: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from provenance import RESULTS, load_now, machine_info, save_rows

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENV = "CartPole-v1"


def tune(args: argparse.Namespace, study: str, storage: str, runs: Path, preset: Path) -> dict:
    """Run the study as a user would, in a subprocess; its wall time and trial counts."""
    import optuna

    command = [
        sys.executable, "-m", "rlkit.tune", "--agent", "a2c", "--env", ENV,
        "--trials", str(args.trials), "--jobs", str(args.jobs),
        "--total-steps", str(args.total_steps), "--seed", str(args.seed),
        "--storage", storage, "--study", study, "--runs-dir", str(runs),
        "--save-preset", str(preset), "--set", "final_eval_episodes=20",
    ]  # fmt: skip
    if args.seeds_per_trial > 1:
        command += ["--seeds-per-trial", str(args.seeds_per_trial)]
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=None)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rlkit.tune exited with {done.returncode}")
    trials = optuna.load_study(study_name=study, storage=storage).trials
    states = [t.state.name for t in trials]
    best = optuna.load_study(study_name=study, storage=storage).best_trial
    return {
        "study": study,
        "tune_seconds": round(seconds, 1),
        "trials": len(trials),
        "complete": states.count("COMPLETE"),
        "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"),
        "solved_runs": sum(  # runs (trials x seeds) that confirmed the threshold
            1 for t in trials for r in t.user_attrs.get("runs", []) if r.get("solved_at")
        ),
        "best_trial": best.number,
        "best_value": best.value,
        "best_settings": best.user_attrs["settings"],
    }


def check(args: argparse.Namespace, preset: Path, runs: Path) -> list[dict]:
    """Train the shipped preset and the tuned one on the unseen seeds; one row per run."""
    from rlkit import train

    rows = []
    for seed in [int(s) for s in args.check_seeds.split(",")]:
        for name, config in (("preset", None), ("tuned", preset)):
            run_dir = runs / f"check_{name}_seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            start = time.perf_counter()
            train.run(
                "a2c", ENV, seed=seed, total_steps=args.check_steps, config=config, run_dir=run_dir
            )
            results = json.loads((run_dir / "results.json").read_text())
            solved = results.get("solved_at")
            rows.append(
                {
                    "settings": name,
                    "seed": seed,
                    "solved": solved is not None,
                    "env_steps_to_475": solved["env_steps"] if solved else None,
                    "train_env_steps": results["train_env_steps"],
                    "final_mean": results["mean_reward"],
                    "train_seconds": round(results["train_seconds"], 1),
                    "wall_seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def median_steps(rows: list[dict], name: str) -> float | None:
    """Median env steps to the confirmed 475 (an unsolved run counts as infinitely many);
    None when that median is an unsolved run."""
    steps = [r["env_steps_to_475"] or float("inf") for r in rows if r["settings"] == name]
    median = statistics.median(steps)
    return None if median == float("inf") else median


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--total-steps", type=int, default=50_000, help="budget of each trial run")
    p.add_argument("--seed", type=int, default=0, help="the trials' seed")
    p.add_argument("--seeds-per-trial", type=int, default=1)
    p.add_argument("--check-seeds", default="501,502,503,504,505")
    p.add_argument("--check-steps", type=int, default=200_000, help="budget of each check run")
    p.add_argument("--quick", action="store_true", help="4 trials of 20k steps, 2 check seeds")
    p.add_argument("--out", default="tune_a2c", help="file stem in benchmarks/results/tune/")
    args = p.parse_args()
    if args.quick:
        args.trials, args.total_steps, args.check_seeds = 4, 20_000, "501,502"
        args.check_steps, args.out = 50_000, f"{args.out}_quick"

    folder = RESULTS / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    runs = REPO / "runs" / "bench-tune"
    runs.mkdir(parents=True, exist_ok=True)
    study = f"a2c-{ENV}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = f"sqlite:///{runs / 'studies.db'}"
    preset = folder / f"{args.out}_preset.yaml"
    preset.unlink(missing_ok=True)
    meta = machine_info(with_tf=False)

    tuning = tune(args, study, storage, runs, preset)
    for plot in ("optimization_history.png", "param_importances.png"):
        if (runs / study / plot).is_file():
            shutil.copy(runs / study / plot, folder / f"{args.out}_{plot}")
    load_after_tuning = load_now()
    rows = check(args, preset, runs / study)
    preset_median = median_steps(rows, "preset")
    tuned_median = median_steps(rows, "tuned")
    verdict = {
        "tuning_under_10_minutes": tuning["tune_seconds"] < 600,
        "a_third_pruned": tuning["pruned"] >= tuning["trials"] / 3,
        "tuned_median_steps": tuned_median,
        "preset_median_steps": preset_median,
        "tuned_fewer_steps": tuned_median is not None
        and (preset_median is None or tuned_median < preset_median),
        "tuned_solved": sum(r["solved"] for r in rows if r["settings"] == "tuned"),
        "preset_solved": sum(r["solved"] for r in rows if r["settings"] == "preset"),
    }
    settings = {
        **vars(args),
        "tuning": tuning,
        "verdict": verdict,
        "load_after_tuning": load_after_tuning,
        "load_at_end": load_now(),
    }
    json_path, _ = save_rows(args.out, rows, settings=settings, meta=meta, folder=folder)
    print(json.dumps({"tuning": tuning, "verdict": verdict}, indent=2, default=str))
    print(f"results: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The seed tutorials' experiments on CartPole-v1, 5 seeds per variant, as benchmarks.

Usage (one command per experiment; ``nice -n 10`` on a shared machine):
    python benchmarks/seeds/run.py --experiment double_vs_dqn_noise
    python benchmarks/seeds/run.py --experiment dueling_vs_double
    python benchmarks/seeds/run.py --experiment reinforce_norm_vs_baseline
    python benchmarks/seeds/run.py --experiment dueling_vs_double --report   # tables, plot only

Every variant trains with its agent's shipped CartPole-v1 preset plus the experiment's
overrides, for a fixed env-step budget (no early stop), on seeds 11-15 (never used to tune
the presets). Every ``eval_every`` env steps the greedy policy plays 10 episodes on a
separate, noise-free env (``eval/mean_reward``); after training it plays 20 more on seeds
it never saw. Results go to ``benchmarks/results/seeds/<experiment>.json`` (settings,
machine, versions, commit, every curve), ``<experiment>_curves.csv``, ``<experiment>.md``
(the table) and ``<experiment>.png`` (the curves); see ``report.py`` for the metrics.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import report

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "seeds"
ENV_ID = "CartPole-v1"
FINAL_EPISODES = 20
FINAL_SEED_OFFSET = 20_000  # periodic evaluations use seed + 10_000 (rlkit.experiment)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One arm of an experiment: an agent, overrides of its preset, optional reward noise."""

    label: str
    agent: str
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    reward_noise: tuple[float, float] | None = None  # (mean, std) of RewardNoise


@dataclasses.dataclass(frozen=True)
class Experiment:
    """Variants compared under one budget and evaluation schedule."""

    name: str
    question: str
    variants: tuple[Variant, ...]
    total_steps: int
    eval_every: int


# Soft target updates for the noise experiment: tau 0.005 after every gradient step is the
# common Polyak setting (SB3, TD3). Its time constant, 1 / tau = 200 gradient steps, is close
# to the preset's hard copy every 128 gradient steps, so only the kind of update changes.
SOFT_TARGET = {"tau": 0.005, "target_update_period": 1}
NOISE = (1.0, 1.0)

EXPERIMENTS = {
    e.name: e
    for e in (
        Experiment(
            "double_vs_dqn_noise",
            "Under rewards replaced by Normal(1, 1) samples, does Double DQN beat DQN?",
            (
                Variant("dqn", "dqn", SOFT_TARGET, NOISE),
                Variant("double_dqn", "double_dqn", SOFT_TARGET, NOISE),
            ),
            total_steps=100_000,
            eval_every=2_500,
        ),
        Experiment(
            "dueling_vs_double",
            "Dueling DQN vs Double DQN with their shipped presets, true rewards.",
            (Variant("double_dqn", "double_dqn"), Variant("dueling_dqn", "dueling_dqn")),
            total_steps=100_000,
            eval_every=2_500,
        ),
        Experiment(
            "reinforce_norm_vs_baseline",
            "REINFORCE: standardised returns vs a learned baseline (and both, and neither).",
            (
                Variant("normalised", "reinforce", {"normalize_returns": True, "baseline": False}),
                Variant("baseline", "reinforce", {"normalize_returns": False, "baseline": True}),
                Variant(
                    "baseline+normalised",
                    "reinforce",
                    {"normalize_returns": True, "baseline": True},
                ),
                Variant("plain", "reinforce", {"normalize_returns": False, "baseline": False}),
                # The preset shares one torso between policy and value (as A2C's once did,
                # see agents/a2c.yaml); this arm tells the baseline from the shared torso.
                Variant(
                    "baseline, own torso",
                    "reinforce",
                    {"normalize_returns": False, "baseline": True, "share_torso": False},
                ),
            ),
            total_steps=200_000,
            eval_every=5_000,
        ),
    )
}


def environment() -> dict[str, Any]:
    """Machine, versions and commit the results were measured with."""
    import gymnasium
    import numpy
    import tensorflow

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "rlkit"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "commit": commit + ("+dirty" if dirty else ""),
    }


def run_one(exp: Experiment, variant: Variant, seed: int, total_steps: int) -> dict[str, Any]:
    """Train one variant on one seed; return its settings, curve and final evaluation."""
    import gymnasium as gym
    import numpy as np

    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import plain_dict, resolve
    from rlkit.envs import RewardNoise, make_vector_env
    from rlkit.evaluate import play_episodes
    from rlkit.experiment import learn

    cls = get_agent_class(variant.agent)
    overrides = {
        **variant.overrides,
        "seed": seed,
        "total_steps": total_steps,
        "eval_every": exp.eval_every,
        "eval_episodes": 10,
        "stop_reward": None,  # the whole budget: curves, not a race to 475
    }
    run, cfg = resolve(cls, ENV_ID, overrides=overrides)
    seed_everything(seed, deterministic=run.deterministic)
    env = gym.make(ENV_ID)
    agent = cls(env.observation_space, env.action_space, cfg, seed=seed)
    envs = None
    if variant.reward_noise is not None:
        mean, std = variant.reward_noise
        wrap = functools.partial(RewardNoise, mean=mean, std=std)
        envs = make_vector_env(ENV_ID, run.num_envs, run.vectorization, wrappers=[wrap])
    t0 = time.perf_counter()
    result = learn(agent, ENV_ID, run, envs=envs)
    wall = time.perf_counter() - t0
    final = play_episodes(
        lambda o: agent.act(o, explore=False), ENV_ID, FINAL_EPISODES, seed + FINAL_SEED_OFFSET
    )
    return {
        "variant": variant.label,
        "agent": variant.agent,
        "seed": seed,
        "reward_noise": list(variant.reward_noise) if variant.reward_noise else None,
        "settings": {**plain_dict(run), **plain_dict(cfg)},
        "env_steps": result.env_steps,
        "episodes": result.episodes,
        "train_return_last_100": result.mean_return,
        "wall_seconds": wall,
        "train_seconds": result.evaluations[-1]["train_seconds"] if result.evaluations else wall,
        "curve": [
            {k: row[k] for k in ("env_steps", "mean_reward", "std_reward")}
            for row in result.evaluations
        ],
        "final_returns": [float(r) for r in final],
        "final_mean": float(np.mean(final)),
    }


def write_curves_csv(path: Path, runs: list[dict[str, Any]]) -> None:
    """One row per periodic evaluation: variant, seed, env steps, mean and std return."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "seed", "env_steps", "mean_reward", "std_reward"])
        for r in runs:
            for c in r["curve"]:
                w.writerow(
                    [r["variant"], r["seed"], c["env_steps"], c["mean_reward"], c["std_reward"]]
                )


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--experiment", required=True, choices=sorted(EXPERIMENTS))
    p.add_argument("--seeds", default="11,12,13,14,15")
    p.add_argument("--total-steps", type=int, default=None, help="default: the experiment's")
    p.add_argument("--variants", default=None, help="comma-separated labels (default: all)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--resume", action="store_true", help="keep finished runs, do the rest")
    p.add_argument("--report", action="store_true", help="only rewrite the table and plot")
    args = p.parse_args()

    exp = EXPERIMENTS[args.experiment]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{exp.name}.json"
    if args.report:
        report.write_report(json.loads(json_path.read_text()), out)
        return 0

    from rlkit.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    total_steps = args.total_steps or exp.total_steps
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = args.variants.split(",") if args.variants else [v.label for v in exp.variants]
    unknown = sorted(set(wanted) - {v.label for v in exp.variants})
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {[v.label for v in exp.variants]}")
    runs: list[dict[str, Any]] = []
    if args.resume and json_path.exists():
        runs = json.loads(json_path.read_text())["runs"]
    done = {(r["variant"], r["seed"]) for r in runs}
    data = {
        "experiment": exp.name,
        "question": exp.question,
        "env": ENV_ID,
        "total_steps": total_steps,
        "eval_every": exp.eval_every,
        "eval_episodes": 10,
        "final_episodes": FINAL_EPISODES,
        "seeds": seeds,
        "variants": [dataclasses.asdict(v) for v in exp.variants if v.label in wanted],
        "environment": environment(),
        "runs": runs,
    }
    for variant in exp.variants:
        if variant.label not in wanted:
            continue
        for seed in seeds:
            if (variant.label, seed) in done:
                continue
            row = run_one(exp, variant, seed, total_steps)
            runs.append(row)
            print(
                f"{exp.name} {variant.label} seed {seed}: final {row['final_mean']:.1f}, "
                f"best {max(c['mean_reward'] for c in row['curve']):.1f}, "
                f"{row['wall_seconds']:.0f} s",
                flush=True,
            )
            json_path.write_text(json.dumps(data, indent=1))  # after every run: resumable
    write_curves_csv(out / f"{exp.name}_curves.csv", runs)
    print(report.write_report(data, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

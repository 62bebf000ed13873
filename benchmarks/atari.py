"""Space Invaders benchmark: train agents on an Atari game and record curves and speed.

Usage:
    python benchmarks/atari.py --agents a2c --steps 500000 --seeds 0 --vectorization ale
    python benchmarks/atari.py --agents dqn,dueling_dqn --steps 100000 --seeds 0
    python benchmarks/atari.py --agents a2c --set mixed_precision=true --tag bf16

Each run uses the agent's shipped ``atari`` preset (plus ``--set`` overrides) and the
``dqn`` protocol (see the protocol card), and writes under ``benchmarks/results/atari/``:
``<agent>_<env>_seed<N>.csv`` (the run's progress.csv), ``...protocol.json``, and one row
per run in ``atari.jsonl`` (env steps/s, update ms, peak memory, last mean return). The
learning-curve PNG (``atari_curves.png``, needs matplotlib) plots every CSV there, with
the return of a random policy for reference.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "atari"


def random_policy_return(env_id: str, episodes: int, seed: int) -> float:
    import numpy as np

    from rlkit.envs import make_env
    from rlkit.envs.atari import AtariProtocol

    env = make_env(env_id, protocol=AtariProtocol())
    env.action_space.seed(seed)
    total = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            ret += float(r)
            done = term or trunc
        total.append(ret)
    return float(np.mean(total))


def plot(env_id: str, random_return: float | None) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    colors: dict[str, str] = {}  # one colour per agent (and tag), one line style per seed
    styles = ("-", "--", ":", "-.")
    for path in sorted(OUT.glob("*.csv")):
        rows = [r for r in csv.DictReader(path.open()) if r.get("rollout/ep_rew_mean")]
        xs = [float(r["time/env_steps"]) for r in rows]
        ys = [float(r["rollout/ep_rew_mean"]) for r in rows]
        label, _, seed = path.stem.rpartition("_seed")
        label = label.removesuffix("_" + env_id.replace("/", "-"))
        color = colors.setdefault(label, f"C{len(colors)}")
        style = styles[int(seed) % len(styles)] if seed.isdigit() else "-"
        ax.plot(xs, ys, color=color, ls=style, label=f"{label}, seed {seed}")
    if random_return is not None:
        ax.axhline(
            random_return, color="grey", lw=0.8, label=f"random policy ({random_return:.0f})"
        )
    ax.set_xlabel("env steps (agent steps, 4 frames each)")
    ax.set_ylabel("episode return, full game (mean of last 100)")
    ax.set_title(f"rlkit on {env_id} (dqn protocol)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = OUT / "atari_curves.png"
    fig.savefig(out, dpi=110)
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", default="a2c")
    p.add_argument("--env", default="ALE/SpaceInvaders-v5")
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--seeds", default="0")
    p.add_argument("--vectorization", default="ale", choices=("sync", "async", "ale"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--tag",
        default="",
        help="suffix for the agent's name in file names and the plot (e.g. bf16), so a "
        "variant run sits next to the preset's instead of replacing it",
    )
    p.add_argument("--random-episodes", type=int, default=5)
    p.add_argument("--plot-only", action="store_true")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    random_file = OUT / "random_policy.json"
    if not args.plot_only:
        import gymnasium as gym  # noqa: F401

        from rlkit.agents import get_agent_class
        from rlkit.agents.common import seed_everything
        from rlkit.config import parse_overrides, resolve
        from rlkit.envs.atari import env_protocol, protocol_card
        from rlkit.experiment import learn, make_run_envs

        for agent_name in args.agents.split(","):
            cls = get_agent_class(agent_name)
            for seed in [int(s) for s in args.seeds.split(",")]:
                overrides = {
                    **parse_overrides(args.set),
                    "seed": seed,
                    "total_steps": args.steps,
                    "vectorization": args.vectorization,
                    "eval_every": 0,
                }
                run, cfg = resolve(cls, args.env, overrides=overrides)
                seed_everything(seed)
                protocol = env_protocol(args.env, run)
                envs = make_run_envs(args.env, run, protocol)
                agent = cls(envs.single_observation_space, envs.single_action_space, cfg, seed=seed)
                label = f"{agent_name}-{args.tag}" if args.tag else agent_name
                name = f"{label}_{args.env.replace('/', '-')}_seed{seed}"
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    result = learn(agent, args.env, run, run_dir=tmp, verbose=1, envs=envs)
                    seconds = time.perf_counter() - t0
                    shutil.copy(Path(tmp) / "progress.csv", OUT / f"{name}.csv")
                    with open(OUT / f"{name}.csv", newline="") as f:
                        update_ms = [
                            float(r["time/update_ms"])
                            for r in csv.DictReader(f)
                            if r.get("time/update_ms")
                        ]
                card = protocol_card(args.env, protocol, run.vectorization, seed)
                (OUT / f"{name}.protocol.json").write_text(json.dumps(card, indent=2) + "\n")
                row = {
                    "agent": agent_name,
                    "tag": args.tag,
                    "env": args.env,
                    "seed": seed,
                    "env_steps": result.env_steps,
                    "seconds": seconds,
                    "env_steps_per_s": result.env_steps / seconds,
                    "episodes": result.episodes,
                    "final_mean_return_last100": result.mean_return,
                    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                    "update_ms_median": statistics.median(update_ms) if update_ms else None,
                    "vectorization": run.vectorization,
                    "num_envs": run.num_envs,
                    "bfloat16_torso": agent.policy_network().mixed_precision,
                    "overrides": args.set,
                }
                print(json.dumps(row), flush=True)
                with open(OUT / "atari.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
        if not random_file.exists():
            score = random_policy_return(args.env, args.random_episodes, seed=123)
            random_file.write_text(json.dumps({"env": args.env, "mean_return": score}) + "\n")
    random_return = (
        json.loads(random_file.read_text())["mean_return"] if random_file.exists() else None
    )
    out = plot(args.env, random_return)
    if out:
        print(f"plot: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Turn the benchmark results into the tables of benchmarks/README.md and a plot.

Usage:
    python benchmarks/report.py        # prints the markdown tables, writes results/solve.png
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ORDER = ["dqn", "double_dqn", "dueling_dqn", "a2c", "reinforce"]


def _span(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def solve_table(path: Path = RESULTS / "solve.jsonl", tag: str = "confirmed") -> str:
    """The CartPole solve table of the rows tagged ``tag`` (confirmed stop, final check)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_agent: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("tag") == tag:
            by_agent[r["agent"]].append(r)
    out = [
        "| agent | seeds | confirmed stop | final 100 fresh episodes >= 475 | "
        "final mean, median (min) | env steps to confirmed 475, median (min-max) | "
        "training s to it |",
        "|---|---|---|---|---|---|---|",
    ]
    for agent in sorted(by_agent, key=lambda a: ORDER.index(a) if a in ORDER else 99):
        rs = by_agent[agent]
        solved = [r for r in rs if r["solved"]]
        finals = [r["final_mean"] for r in rs]
        seeds = [r["seed"] for r in rs]
        out.append(
            f"| {agent} | {min(seeds)}-{max(seeds)} | {len(solved)}/{len(rs)} "
            f"| {sum(f >= 475 for f in finals)}/{len(rs)} "
            f"| {statistics.median(finals):.1f} ({min(finals):.1f}) "
            f"| {_span([r['solve_steps'] for r in solved], ',.0f')} "
            f"| {_span([r['solve_seconds'] for r in solved], '.1f')} |"
        )
    _plot_solve(by_agent)
    return "\n".join(out)


def _plot_solve(by_agent: dict[str, list[dict]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    agents = [a for a in ORDER if a in by_agent]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, key, label in (
        (axes[0], "solve_steps", "env steps to a greedy mean >= 475"),
        (axes[1], "solve_seconds", "training seconds to a greedy mean >= 475"),
    ):
        for i, agent in enumerate(agents):
            ys = [r[key] for r in by_agent[agent] if r["solved"]]
            ax.scatter([i] * len(ys), ys, alpha=0.7)
            if ys:
                ax.hlines(statistics.median(ys), i - 0.3, i + 0.3, color="k")
        ax.set_xticks(range(len(agents)), agents, rotation=20)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("rlkit on CartPole-v1 (shipped presets; dots: seeds, bars: medians)")
    fig.tight_layout()
    fig.savefig(RESULTS / "solve.png", dpi=110)


def vs_sb3_table(agent: str) -> str:
    path = RESULTS / f"{agent}_vs_sb3.json"
    if not path.exists():
        return f"(no {path.name} yet)"
    s = json.loads(path.read_text())
    out = [
        "| library | env steps/s, median of runs | runs | env steps to 475, median | "
        "training s to 475, median | per seed (steps) |",
        "|---|---|---|---|---|---|",
    ]
    for lib in ("rlkit", "sb3"):
        if lib not in s:
            continue
        d = s[lib]
        seeds = ", ".join(
            f"{x['seed']}: {x['env_steps']:,}" if x.get("env_steps") else f"{x['seed']}: -"
            for x in d["solve"]
        )
        out.append(
            f"| {lib} | {d['median_steps_per_s']:,.0f} | "
            f"{', '.join(f'{v:,.0f}' for v in d['runs_steps_per_s'])} | "
            f"{d['median_solve_steps']:,.0f} | {d['median_solve_seconds']:.1f} | {seeds} |"
        )
    if "speed_ratio_rlkit_over_sb3" in s:
        out.append(f"\nThroughput ratio rlkit / SB3: **{s['speed_ratio_rlkit_over_sb3']:.2f}x**")
    return "\n".join(out)


def main() -> None:
    print("## Solve (CartPole-v1)\n")
    print(solve_table())
    for agent in ("a2c", "dqn"):
        print(f"\n## {agent.upper()} vs Stable-Baselines3\n")
        print(vs_sb3_table(agent))


if __name__ == "__main__":
    main()

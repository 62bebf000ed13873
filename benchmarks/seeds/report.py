"""Metrics, markdown table and plot of one seed-tutorial experiment (see ``run.py``).

Per run: ``final`` is the mean return of 20 greedy episodes after training, on seeds the
run never saw; ``best`` the highest periodic evaluation (10 greedy episodes); ``auc`` the
mean of the periodic evaluations, i.e. the area under the learning curve divided by the
budget (evaluations are equally spaced; 500 would mean solved from the first one);
``steps_to_475`` the env steps of the first periodic evaluation with a mean >= 475.
Across seeds: mean ± standard deviation (ddof 1), and paired per-seed differences
against the experiment's first variant (same seed: same initial weights where the
networks match, same env seeds).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

THRESHOLD = 475.0


def run_metrics(run: dict[str, Any], threshold: float = THRESHOLD) -> dict[str, Any]:
    """``final``, ``best``, ``auc`` and ``steps_to_475`` (None if never reached) of one run."""
    returns = [row["mean_reward"] for row in run["curve"]]
    if not returns:
        raise ValueError(f"run {run['variant']} seed {run['seed']} has no evaluations")
    reached = [row["env_steps"] for row in run["curve"] if row["mean_reward"] >= threshold]
    return {
        "final": run["final_mean"],
        "best": max(returns),
        "auc": sum(returns) / len(returns),
        "steps_to_475": reached[0] if reached else None,
    }


def mean_std(values: list[float], fmt: str = ".0f") -> str:
    """``mean ± std`` over seeds (std with ddof 1; 0 for a single value)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):{fmt}} ± {sd:{fmt.lstrip('+')}}"


def by_variant(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Runs grouped by variant label in the experiment's order, each sorted by seed."""
    order = [v["label"] for v in data["variants"]]
    groups: dict[str, list[dict[str, Any]]] = {label: [] for label in order}
    for r in data["runs"]:
        groups.setdefault(r["variant"], []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in groups.items() if v}


def table(data: dict[str, Any]) -> str:
    """The markdown table of one experiment, then paired differences against variant 1."""
    groups = by_variant(data)
    lines = [
        "| variant | seeds | final return (20 episodes) | best evaluation | AUC (mean evaluation) "
        "| reached 475 | env steps to 475, median (min-max) | final, per seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    metrics = {label: [run_metrics(r) for r in runs] for label, runs in groups.items()}
    for label, runs in groups.items():
        ms = metrics[label]
        steps = [m["steps_to_475"] for m in ms if m["steps_to_475"] is not None]
        span = f"{statistics.median(steps):,.0f} ({min(steps):,}-{max(steps):,})" if steps else "-"
        per_seed = ", ".join(
            f"{r['seed']}: {m['final']:.0f}" for r, m in zip(runs, ms, strict=True)
        )
        lines.append(
            f"| {label} | {len(runs)} | {mean_std([m['final'] for m in ms])} "
            f"| {mean_std([m['best'] for m in ms])} | {mean_std([m['auc'] for m in ms])} "
            f"| {len(steps)}/{len(runs)} | {span} | {per_seed} |"
        )
    labels = list(groups)
    if len(labels) > 1:
        lines += ["", f"Paired by seed, minus `{labels[0]}`:", ""]
        lines += [
            "| variant | final: mean diff (wins/seeds) | AUC: mean diff (wins/seeds) "
            "| AUC diff per seed |",
            "|---|---|---|---|",
        ]
        ref = {r["seed"]: m for r, m in zip(groups[labels[0]], metrics[labels[0]], strict=True)}
        for label in labels[1:]:
            # (seed, this variant's metrics, the reference's) for the seeds both have
            pairs = [
                (r["seed"], m, ref[r["seed"]])
                for r, m in zip(groups[label], metrics[label], strict=True)
                if r["seed"] in ref
            ]
            cells = []
            for key in ("final", "auc"):
                diffs = [m[key] - b[key] for _, m, b in pairs]
                wins = sum(d > 0 for d in diffs)
                cells.append(f"{mean_std(diffs, '+.0f')} ({wins}/{len(diffs)})")
            per = ", ".join(f"{seed}: {m['auc'] - b['auc']:+.0f}" for seed, m, b in pairs)
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | {per} |")
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    """Learning curves (mean over seeds, min-max band, thin lines per seed) and finals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = by_variant(data)
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]}, constrained_layout=True
    )
    for i, (label, runs) in enumerate(groups.items()):
        color = f"C{i}"
        steps = np.asarray([row["env_steps"] for row in runs[0]["curve"]])
        n = min(len(r["curve"]) for r in runs)
        ys = np.asarray([[row["mean_reward"] for row in r["curve"][:n]] for r in runs])
        for y in ys:
            ax.plot(steps[:n], y, color=color, alpha=0.25, lw=0.8)
        ax.plot(steps[:n], ys.mean(0), color=color, lw=2, label=f"{label} (mean of {len(runs)})")
        ax.fill_between(steps[:n], ys.min(0), ys.max(0), color=color, alpha=0.12)
        finals = [r["final_mean"] for r in runs]
        ax2.scatter(
            np.full(len(finals), i) + np.linspace(-0.15, 0.15, len(finals)), finals, color=color
        )
        ax2.hlines(np.mean(finals), i - 0.3, i + 0.3, color="k")
    ax.axhline(THRESHOLD, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy return (10 episodes, true reward)")
    ax.set_ylim(0, 520)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("curves: mean (thick), seeds (thin), min-max (band)", fontsize=9)
    ax2.set_xticks(range(len(groups)), list(groups), rotation=20, fontsize=8)
    ax2.set_ylim(0, 520)
    ax2.grid(alpha=0.3)
    ax2.set_title("final, 20 episodes\n(dots: seeds, bar: mean)", fontsize=9)
    fig.suptitle(f"{data['experiment']}: {data['question']}", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(data: dict[str, Any], out: Path) -> str:
    """Write ``<experiment>.md`` and ``<experiment>.png`` into ``out``; return the table."""
    text = table(data)
    env = data["environment"]
    header = (
        f"{data['experiment']} on {data['env']}: {data['total_steps']:,} env steps per run, "
        f"greedy evaluation every {data['eval_every']:,}; seeds {data['seeds']}; "
        f"commit {env['commit']}, TF {env['tensorflow']}, gymnasium {env['gymnasium']}, "
        f"{env['cpus']} CPUs ({env['machine']})\n\n"
    )
    (out / f"{data['experiment']}.md").write_text(header + text + "\n")
    plot(data, out / f"{data['experiment']}.png")
    return header + text

"""Which long benchmark runs are complete: ``results/STATUS.md`` from the rows recorded so far.

Usage:
    python benchmarks/status.py            # writes benchmarks/results/STATUS.md and prints it

The long suites run in the background over many sittings and resume where they stopped
(each skips what already has a row). This page counts, per suite and cell, the runs that
have a row in the suite's ``runs.csv`` against the runs the suite's default command (or the
issue's plan, for the runs asked for by ``--cells``/``--games``) would make, so that the
next sitting knows what is left and nobody mistakes a partial table for a finished one.
Rows carrying a smoke-test tag (``max...``, ``smoke``) are not counted.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import learning  # noqa: E402 (the suite's own cell list and paths)
import minatar_ablation  # noqa: E402

OUT = HERE / "results" / "STATUS.md"


def rows(path: Path) -> list[dict[str, str]]:
    """The CSV's rows (none if it does not exist yet)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def is_smoke(tag: str) -> bool:
    """Whether ``tag`` marks a smoke test's rows."""
    return tag.startswith("max") or tag.startswith("smoke")


def learning_section() -> list[str]:
    """The learning table (10 seeds a cell a library) and its MuJoCo runs (3 seeds)."""
    done = Counter(
        (r["lib"], r["agent"], r["env"], r.get("tag") or "")
        for r in rows(learning.ROWS)
        if not is_smoke(r.get("tag") or "")
    )
    seeds = len(learning.parse_seeds(learning.DEFAULT_SEEDS))
    out = [
        "## Learning table (`benchmarks/learning.py`, issue 14 and 15)",
        "",
        f"Planned: every default cell x {seeds} seeds (1001-1010) for rlkit, and for SB3 where "
        "`SB3_SETTINGS` has the cell; MuJoCo (tag `mujoco`): PPO x 3 seeds a side.",
        "",
        "| cell | rlkit | SB3 |",
        "|---|---|---|",
    ]
    total = planned = 0
    cells = [(c, "", seeds) for c in learning.CELLS]
    cells += [(f"ppo:{env}", "mujoco", 3) for env in learning.MUJOCO]
    for cell, tag, n in cells:
        agent, env = cell.split(":")
        has_sb3 = (agent, env) in learning.SB3_SETTINGS
        got = [min(done[lib, agent, env, tag], n) for lib in ("rlkit", "sb3")]
        total += got[0] + (got[1] if has_sb3 else 0)
        planned += n * (2 if has_sb3 else 1)
        sb3 = f"{got[1]}/{n}" if has_sb3 else "-"
        name = f"{cell} ({tag})" if tag else cell
        out.append(f"| {name} | {got[0]}/{n} | {sb3} |")
    out += ["", f"**{total} of {planned} planned runs complete.**", ""]
    out += ["Not planned (`SKIPPED` in `learning.py`):", ""]
    out += [f"- {agent}:{env}: {why}" for (agent, env), why in learning.SKIPPED.items()]
    return [*out, ""]


def minatar_section() -> list[str]:
    """The MinAtar ablation on SpaceInvaders (issue 16's plan: 3 seeds x 6 arms)."""
    done = Counter(
        (r["arm"], r["game"])
        for r in rows(minatar_ablation.ROWS)
        if not is_smoke(r.get("tag") or "")
    )
    n = len(learning.parse_seeds(minatar_ablation.DEFAULT_SEEDS))
    out = [
        "## MinAtar ablation (`benchmarks/minatar_ablation.py`, issue 16)",
        "",
        f"Planned: SpaceInvaders (Breakout if time allows), every arm x {n} seeds, 1M env "
        "steps each.",
        "",
        "| arm | SpaceInvaders | Breakout |",
        "|---|---|---|",
    ]
    totals = [0, 0]
    for arm in minatar_ablation.ARMS:
        got = [min(done[arm, game], n) for game in ("SpaceInvaders", "Breakout")]
        totals = [t + g for t, g in zip(totals, got, strict=True)]
        out.append(f"| {arm} | {got[0]}/{n} | {got[1]}/{n} |")
    planned = n * len(minatar_ablation.ARMS)
    done_line = (
        f"**SpaceInvaders: {totals[0]} of {planned} planned runs complete; "
        f"Breakout: {totals[1]} of {planned}.**"
    )
    out += ["", done_line, ""]
    return out


def main() -> int:
    """Write and print ``results/STATUS.md``."""
    text = "\n".join(
        [
            "# Long benchmark runs: what is complete",
            "",
            "Written by `python benchmarks/status.py` from the rows in `results/`; rerun it "
            "after merging new rows. Each suite's `run` command skips what is done and "
            "resumes the rest.",
            "",
            *learning_section(),
            *minatar_section(),
        ]
    )
    OUT.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

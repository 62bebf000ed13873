"""Training env steps/s of every agent against raw env stepping, and the runner's overhead.

Usage:
    python benchmarks/throughput.py            # default grid, ~25 min on 2 busy cores
    python benchmarks/throughput.py --quick    # sync CartPole, 1 and 8 envs, dqn and a2c
    python benchmarks/throughput.py --agents a2c --envs CartPole-v1 --vectorizations sync \\
        --num-envs 1,8 --repeats 5
    python benchmarks/throughput.py --full     # the whole grid of issue #7 (hours here)
    python benchmarks/throughput.py --report   # tables and plot from the saved results
    python benchmarks/throughput.py --resume   # after an interruption: measure what is missing

Default grid: every agent on CartPole-v1 with ``sync`` x 1, 2, 4, 8, 16 envs and ``async``
x 1, 8, and on ``ALE/SpaceInvaders-v5`` with ``sync``, ``async`` and ``ale`` x 16 envs (50
agent cells, ~25 min on 2 cores shared with other jobs). ``--full`` measures every size
everywhere (125 cells, 2-3 hours there).

For each env, vectorization (``sync``, ``async``; ``ale`` for Atari) and number of envs, one
vector env is built and shared by every agent. Then, for each agent (built with its shipped
preset, tracing done in its constructor, warmed up past ``learning_starts`` and its first
updates), ``--repeats`` rounds each time, back to back:

1. raw: ``envs.step`` with random actions (the env's own cost);
2. runner: ``VectorRunner.step`` with the same random actions (the runner's own cost);
3. training: the real loop (``rlkit.loops``: acting, runner, replay or rollout, updates,
   logging) for a segment of about ``--seconds`` seconds.

The three are measured in the same minute, so machine load hits them alike; the reported
figures are medians over rounds, and the ratios are medians of per-round ratios. The
runner overhead is ``raw steps/s / runner steps/s - 1`` (issue #7's target: <= 10 % for
sync CartPole); "train / raw" is the fraction of the raw env speed left when training.
After its rounds, each agent's update step must have been traced exactly once.

Atari DQN-family runs use ``buffer_size=50000`` and ``learning_starts=1000`` instead of
the preset's 1M / 50k, so that a cell fits in memory and seconds (``--atari-set``).

Writes ``results/throughput.{json,csv}`` (with machine, versions and commit) and
``results/throughput.png``; prints the markdown tables of ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from provenance import RESULTS, load_now, machine_info, save_rows

AGENTS = ("dqn", "double_dqn", "dueling_dqn", "a2c", "reinforce")
CARTPOLE, ATARI = "CartPole-v1", "ALE/SpaceInvaders-v5"
FULL_NUM_ENVS = (1, 2, 4, 8, 16)
ATARI_SETS = ("buffer_size=50000", "learning_starts=1000")


@dataclasses.dataclass
class Cell:
    """One vector env (env id, vectorization, number of envs) and its runner."""

    env_id: str
    vectorization: str
    num_envs: int
    envs: Any
    runner: Any
    protocol: Any
    actions: np.ndarray  # [pool, N] random actions, cycled


def open_cell(env_id: str, vectorization: str, num_envs: int, seed: int) -> Cell:
    """Build the vector env and its runner as ``rlkit.experiment.learn`` does."""
    from rlkit.config import RunConfig
    from rlkit.envs.atari import env_protocol
    from rlkit.experiment import make_run_envs
    from rlkit.runner import VectorRunner

    run = RunConfig(num_envs=num_envs, vectorization=vectorization)
    protocol = env_protocol(env_id, run)
    envs = make_run_envs(env_id, run, protocol)
    runner = VectorRunner(
        envs,
        clip_rewards=bool(protocol and protocol.clip_rewards),
        life_loss_terminal=bool(protocol and protocol.life_loss_terminal),
    )
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, envs.single_action_space.n, (1024, num_envs))
    return Cell(env_id, vectorization, num_envs, envs, runner, protocol, actions)


def _time_steps(reset: Any, step: Any, actions: np.ndarray, steps: int) -> float:
    """Seconds for ``steps`` calls of ``step`` with the rows of ``actions`` in turn."""
    reset(seed=1)
    pool = len(actions)
    start = time.perf_counter()
    for i in range(steps):
        step(actions[i % pool])
    return time.perf_counter() - start


def time_raw(cell: Cell, steps: int) -> float:
    """Seconds for ``steps`` vector steps of ``envs.step`` with random actions."""
    return _time_steps(cell.envs.reset, cell.envs.step, cell.actions, steps)


def time_runner(cell: Cell, steps: int) -> float:
    """Seconds for ``steps`` calls of ``VectorRunner.step`` with random actions."""
    elapsed = _time_steps(cell.runner.reset, cell.runner.step, cell.actions, steps)
    cell.runner.pop_episode_stats()
    return elapsed


def calibrate(cell: Cell, seconds: float) -> int:
    """Vector steps that take about ``seconds`` of raw stepping (at least 20)."""
    time_raw(cell, 10)  # first steps: lazy imports, worker start-up
    trial = 50
    elapsed = time_raw(cell, trial)
    return max(20, int(trial * seconds / max(elapsed, 1e-6)))


@dataclasses.dataclass
class Trainee:
    """An agent with what the loop needs: run settings, buffer, logger, loop state."""

    name: str
    agent: Any
    run: Any
    buffer: Any
    logger: Any
    state: dict[str, Any]


def build_trainee(name: str, cell: Cell, sets: list[str], seed: int) -> Trainee:
    """The agent with its shipped preset for the cell's env (``sets`` override it)."""
    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import parse_overrides, resolve
    from rlkit.logger import Logger

    cls = get_agent_class(name)
    overrides = {
        **parse_overrides(sets),
        "num_envs": cell.num_envs,
        "vectorization": cell.vectorization,
        "seed": seed,
        "eval_every": 0,
        "stop_reward": None,
    }
    run, cfg = resolve(cls, cell.env_id, overrides=overrides)
    seed_everything(seed, run.deterministic)
    runner = cell.runner
    agent = cls(runner.observation_space, runner.action_space, cfg, seed=seed)
    buffer = None
    if not agent.on_policy:  # the agent's own storage: prioritized and n-step where set
        buffer = agent.make_storage(
            runner.num_envs,
            runner.observation_space,
            runner.action_space,
            frame_stack=cell.protocol.frame_stack if cell.protocol else 1,
            padding="zero",
            seed=seed,
        )
    logger = Logger(None, run.total_steps, run.log_interval, verbose=0)
    return Trainee(name, agent, run, buffer, logger, {})


def train(trainee: Trainee, cell: Cell, env_steps: int) -> tuple[float, int, int]:
    """Continue training for at least ``env_steps``; return (seconds, env steps, updates)."""
    from rlkit import loops

    runner = cell.runner
    start_steps, start_updates = runner.env_steps, int(trainee.agent.updates.numpy())
    run = dataclasses.replace(trainee.run, total_steps=runner.env_steps + env_steps)
    start = time.perf_counter()
    if trainee.agent.on_policy:
        loops.train_on_policy(trainee.agent, runner, trainee.logger, run)
    else:
        loops.train_off_policy(
            trainee.agent, runner, trainee.buffer, trainee.logger, run, state=trainee.state
        )
    seconds = time.perf_counter() - start
    updates = int(trainee.agent.updates.numpy()) - start_updates
    return seconds, runner.env_steps - start_steps, updates


def warm_up(trainee: Trainee, cell: Cell, seconds: float) -> float:
    """Train past ``learning_starts`` and two updates, then about ``seconds`` more.

    Returns:
        The env steps/s of that last stretch, to size the timed segments (it includes
        updates, so a DQN segment is not sized from the much faster acting alone).
    """
    cfg = trainee.agent.config
    train(trainee, cell, getattr(cfg, "learning_starts", 0) + 4 * cell.num_envs)
    begin = time.perf_counter()
    while int(trainee.agent.updates.numpy()) < 2 and time.perf_counter() - begin < 4 * seconds:
        train(trainee, cell, 16 * cell.num_envs)
    total_s, total_n = 0.0, 0
    while total_s < seconds:
        s, n, _ = train(trainee, cell, 16 * cell.num_envs)
        total_s, total_n = total_s + s, total_n + n
    return total_n / total_s


def tracing_counts(agent: Any) -> dict[str, int]:
    """How often each compiled function of ``agent`` was traced (0: never called)."""
    out = {"update_traces": agent._update_fn.experimental_get_tracing_count()}
    for attr in ("_q_fn", "_forward_fn"):
        fn = getattr(agent, attr, None)
        if fn is not None:
            out["act_traces"] = fn.experimental_get_tracing_count()
    return out


def measure_cell(
    cell: Cell, agents: list[str], args: argparse.Namespace
) -> Iterator[dict[str, Any]]:
    """Rows of one cell: per agent, medians of interleaved raw / runner / training rounds."""
    block = calibrate(cell, args.block_seconds)
    atari = cell.env_id != CARTPOLE
    for name in agents:
        sets = (list(ATARI_SETS) if atari and name.endswith("dqn") else []) + args.set
        built = time.perf_counter()
        trainee = build_trainee(name, cell, sets, args.seed)
        speed = warm_up(trainee, cell, args.seconds / 2)
        warm_s = time.perf_counter() - built
        segment = max(int(speed * args.seconds), 8 * cell.num_envs)
        raw, runner, training, updates = [], [], [], []
        for _ in range(args.repeats):
            raw.append(block * cell.num_envs / time_raw(cell, block))
            runner.append(block * cell.num_envs / time_runner(cell, block))
            seconds, steps, n = train(trainee, cell, segment)
            training.append(steps / seconds)
            updates.append(n)
        row = {
            "env": cell.env_id,
            "vectorization": cell.vectorization,
            "num_envs": cell.num_envs,
            "agent": name,
            "train_steps_per_s": statistics.median(training),
            "raw_steps_per_s": statistics.median(raw),
            "runner_steps_per_s": statistics.median(runner),
            "train_over_raw": statistics.median(t / r for t, r in zip(training, raw, strict=True)),
            "runner_overhead": statistics.median(
                r / u - 1 for r, u in zip(raw, runner, strict=True)
            ),
            "updates_per_segment": statistics.median(updates),
            "segment_env_steps": segment,
            "raw_block_env_steps": block * cell.num_envs,
            "repeats": args.repeats,
            "build_and_warmup_s": round(warm_s, 1),
            **tracing_counts(trainee.agent),
            "train_runs": json.dumps([round(x) for x in training]),
            "raw_runs": json.dumps([round(x) for x in raw]),
            "runner_runs": json.dumps([round(x) for x in runner]),
        }
        print(
            f"{cell.env_id} {cell.vectorization} x{cell.num_envs} {name}: "
            f"train {row['train_steps_per_s']:,.0f}/s, raw {row['raw_steps_per_s']:,.0f}/s "
            f"(train/raw {row['train_over_raw']:.1%}), runner overhead "
            f"{row['runner_overhead']:+.1%}, update traced {row['update_traces']}x",
            flush=True,
        )
        del trainee
        gc.collect()
        yield row


def grid(args: argparse.Namespace) -> list[tuple[str, str, int, list[str]]]:
    """(env id, vectorization, num_envs, agents) of every cell to measure."""
    if args.quick:
        return [(CARTPOLE, "sync", n, ["dqn", "a2c"]) for n in (1, 8)]
    agents = args.agents.split(",")
    cells = []
    for env_id in args.envs.split(","):
        atari = env_id != CARTPOLE
        for vec in args.vectorizations.split(","):
            if vec == "ale" and not atari:
                continue
            sizes = args.num_envs
            if atari and not args.full:
                sizes = args.atari_num_envs
            elif vec == "async" and not args.full:
                sizes = args.async_num_envs
            cells += [(env_id, vec, int(n), agents) for n in sizes.split(",")]
    return cells


# -- report -------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README tables: training steps/s per agent, and raw vs runner stepping."""
    out = []
    for env_id in dict.fromkeys(r["env"] for r in rows):
        env_rows = [r for r in rows if r["env"] == env_id]
        sizes = sorted({r["num_envs"] for r in env_rows})
        out.append(f"\n**{env_id}**: training env steps/s (train / raw env speed)\n")
        out.append("| agent | vectorization | " + " | ".join(f"{n} envs" for n in sizes) + " |")
        out.append("|---|---|" + "---|" * len(sizes))
        keys = dict.fromkeys((r["agent"], r["vectorization"]) for r in env_rows)
        for agent, vec in sorted(keys, key=lambda k: (AGENTS.index(k[0]), k[1])):
            cells = []
            for n in sizes:
                r = next(
                    (
                        r
                        for r in env_rows
                        if (r["agent"], r["vectorization"], r["num_envs"]) == (agent, vec, n)
                    ),
                    None,
                )
                cells.append(
                    "-"
                    if r is None
                    else f"{_fmt(r['train_steps_per_s'])} ({r['train_over_raw']:.0%})"
                )
            out.append(f"| {agent} | {vec} | " + " | ".join(cells) + " |")
        out.append(
            f"\n**{env_id}**: raw env steps/s with random actions (median of all rounds; "
            "`VectorRunner.step` alone: `benchmarks/runner_overhead.py`)\n"
        )
        vecs = list(dict.fromkeys(r["vectorization"] for r in env_rows))
        out.append("| vectorization | " + " | ".join(f"{n} envs" for n in sizes) + " |")
        out.append("|---|" + "---|" * len(sizes))
        for vec in vecs:
            cells = []
            for n in sizes:
                raw = [
                    x
                    for r in env_rows
                    if (r["vectorization"], r["num_envs"]) == (vec, n)
                    for x in json.loads(r["raw_runs"])
                ]
                cells.append(_fmt(statistics.median(raw)) if raw else "-")
            out.append(f"| {vec} | " + " | ".join(cells) + " |")
    traces = sorted({(r["agent"], r["update_traces"]) for r in rows})
    out.append(
        "\nUpdate-step traces per agent after all its rounds: "
        + ", ".join(f"{a} {t}" for a, t in traces)
    )
    return "\n".join(out)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Steps/s vs number of envs: training per agent and vectorization, raw env dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    envs = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(6.5 * len(envs), 4.5), squeeze=False)
    styles = {"sync": "-", "async": "--", "ale": ":"}
    for ax, env_id in zip(axes[0], envs, strict=True):
        env_rows = [r for r in rows if r["env"] == env_id]
        vecs = list(dict.fromkeys(r["vectorization"] for r in env_rows))
        for agent in AGENTS:
            for vec in vecs:
                rs = sorted(
                    (r for r in env_rows if (r["agent"], r["vectorization"]) == (agent, vec)),
                    key=lambda r: r["num_envs"],
                )
                if rs:
                    color = f"C{AGENTS.index(agent)}"
                    ax.plot(
                        [r["num_envs"] for r in rs],
                        [r["train_steps_per_s"] for r in rs],
                        styles.get(vec, "-"),
                        color=color,
                        marker="o",
                        ms=3,
                        label=f"{agent} ({vec})",
                    )
        for vec in vecs:
            by_n: dict[int, list[float]] = {}
            for r in env_rows:
                if r["vectorization"] == vec:
                    by_n.setdefault(r["num_envs"], []).extend(json.loads(r["raw_runs"]))
            ns = sorted(by_n)
            ax.plot(
                ns,
                [statistics.median(by_n[n]) for n in ns],
                styles.get(vec, "-"),
                color="k",
                lw=2,
                marker="s",
                ms=5,
                label=f"raw env, random actions ({vec})",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of envs")
        ax.set_ylabel("env steps/s")
        ax.set_title(env_id, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle("rlkit training throughput vs raw env stepping (medians)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--envs", default=f"{CARTPOLE},{ATARI}")
    p.add_argument("--vectorizations", default="sync,async,ale", help="ale: Atari only")
    p.add_argument("--num-envs", default="1,2,4,8,16", help="CartPole sync (all with --full)")
    p.add_argument("--async-num-envs", default="1,8", help="CartPole async unless --full")
    p.add_argument("--atari-num-envs", default="16", help="Atari sizes unless --full")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds per agent")
    p.add_argument("--seconds", type=float, default=0.6, help="training per round")
    p.add_argument("--block-seconds", type=float, default=0.15, help="raw/runner block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quick", action="store_true", help="sync CartPole, 1 and 8 envs, dqn+a2c")
    p.add_argument("--full", action="store_true", help="every Atari size too (hours)")
    p.add_argument("--name", default="throughput", help="results file stem")
    p.add_argument("--report", action="store_true", help="only rebuild tables and plot")
    p.add_argument("--resume", action="store_true", help="keep saved rows, measure the rest")
    args = p.parse_args()
    if args.report:
        rows = json.loads((RESULTS / f"{args.name}.json").read_text())["rows"]
    else:
        meta, rows, settings = machine_info(), [], vars(args)
        saved = RESULTS / f"{args.name}.json"
        if args.resume and saved.exists():  # keep what was measured, add the rest
            doc = json.loads(saved.read_text())
            rows = doc["rows"]
            meta = {**doc["meta"], "resumed": [*doc["meta"].get("resumed", []), meta]}
            settings = {**doc["settings"], "resumed_with": vars(args)}
        done = {(r["env"], r["vectorization"], r["num_envs"], r["agent"]) for r in rows}
        begin = time.perf_counter() - meta.get("seconds", 0)
        for env_id, vec, n, agents in grid(args):
            todo = [a for a in agents if (env_id, vec, n, a) not in done]
            if not todo:
                continue
            cell = open_cell(env_id, vec, n, args.seed)
            try:
                for row in measure_cell(cell, todo, args):
                    rows.append(row)
                    meta["seconds"] = round(time.perf_counter() - begin)
                    meta["load_at_end"] = load_now()
                    save_rows(args.name, rows, settings=settings, meta=meta)
            finally:
                cell.runner.close()
    plot(rows, RESULTS / f"{args.name}.png")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

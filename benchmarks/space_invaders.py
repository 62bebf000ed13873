"""Space Invaders, side by side: long learning runs of rlkit and Stable-Baselines3 (issue 14).

Usage:
    python benchmarks/space_invaders.py run --sb3-python /path/to/sb3-venv/bin/python \
        --runs a2c:rlkit:1,a2c:rlkit:2,a2c:sb3:1,a2c:sb3:2,dueling_dqn:rlkit:1,dqn:sb3:1
    python benchmarks/space_invaders.py status    # -> results/space_invaders/STATUS.md
    python benchmarks/space_invaders.py report    # -> plots, README.md, copies of the runs' files
    python benchmarks/space_invaders.py pack      # unfinished runs -> benchmarks/carry/ (git)
    python benchmarks/space_invaders.py unpack    # on the next machine, then `run` resumes them

Smoke test (tiny budgets in a folder of its own, so nothing reaches the real results):
    python benchmarks/space_invaders.py run --root /tmp/si_smoke/runs --results /tmp/si_smoke/out \
        --steps 3000 --checkpoint-every 1000 --learning-starts 1000 --sb3-threads 1 \
        --sb3-buffer-size 5000 --runs a2c:rlkit:9,a2c:sb3:9,dueling_dqn:rlkit:9,dqn:sb3:9 \
        --sb3-python ...
    (then ``status`` and ``report`` with the same ``--root`` and ``--results``)

A run is (agent, library, seed) on ``SpaceInvadersNoFrameskip-v4`` with a budget of agent
steps (4 frames each; both libraries count one step per env per vector step): A2C and PPO
2,000,000 (8M frames), the DQN family (Rainbow included, plotted with it) 250,000 (1M
frames). Without ``--runs``, ``run`` goes through ``ALL_RUNS`` in order. Its folder is
``<root>/<agent>_<lib>_seed<S>`` (default root ``/work/runs/si``, outside git).

rlkit: the shipped preset, exactly the command a user types::

    python -m rlkit.train --agent a2c --env SpaceInvadersNoFrameskip-v4 --seed S \
        --total-steps 2000000 --run-dir D --checkpoint-every 250000 --quiet
    python -m rlkit.train --resume D --total-steps 2000000 --quiet      # to continue

(Dueling DQN and Rainbow: 250,000 steps, a checkpoint every 50,000.) rlkit's ``progress.csv``
gives the curve (``rollout/ep_rew_mean``: mean full-game score of the last 100 training
episodes) and its ``results.json`` the final evaluation: 30 episodes at epsilon 0.05 on seeds
the run never used, full-game unclipped scores. A resume from a periodic checkpoint is bitwise
exact; one from the checkpoint a Ctrl-C writes between two periodic ones is a valid
continuation, but not the same as an uninterrupted run (rlkit resets its envs with a derived
seed at every checkpoint).

Stable-Baselines3 (in its own Python, ``--sb3-python``; this file runs there as
``_sb3-child``): rl-zoo3's Atari settings. Envs from ``make_atari_env`` (``Monitor`` under
``AtariWrapper``: no-ops 30, frame skip 4 with max-pool, life loss terminal and rewards
clipped for learning, 84x84 gray) and ``VecFrameStack(4)``.

- A2C: 16 envs, ent_coef 0.01, vf_coef 0.25, ``RMSpropTFLike(eps=1e-5)``, other defaults
  (n_steps 5, lr 7e-4 constant, gamma 0.99, max_grad_norm 0.5).
- PPO (issue 15): 8 envs, n_steps 128, 4 epochs of minibatches of 256, lr 2.5e-4 and clip
  range 0.1 both annealed linearly to 0 over the budget, vf_coef 0.5, ent_coef 0.01, other
  defaults (gamma 0.99, gae_lambda 0.95, max_grad_norm 0.5) (rl-zoo3's ``ppo.yml``, atari);
  rlkit's PPO Atari preset has the same settings. Budget 2,000,000 steps, checkpoints
  every 250k; the annealing follows the step count across resumes (SB3's
  ``reset_num_timesteps=False``).
- DQN: buffer 100,000, lr 1e-4, batch 32, learning_starts 100,000, target update every 1,000
  steps, train_freq 4, gradient_steps 1, final epsilon 0.01 (rl-zoo3's ``dqn.yml``), plus
  ``optimize_memory_usage=True`` with ``handle_timeout_termination=False`` (rl-zoo3 leaves it
  off; it halves the replay memory to 2.8 GB, and a time-limit cut at 108,000 frames then
  counts as terminal). rl-zoo3 decays epsilon over 10 % of its 10M-step budget, i.e. over 1M
  steps: the same absolute schedule is kept (``exploration_fraction = 1e6 / 250,000 = 4``), so
  at 250k steps SB3 still explores with epsilon ~0.75, as rlkit's preset does (its
  ``exploration_steps`` is 1M too).

SB3 checkpoints every 250k (A2C) or 50k (DQN) steps: ``model.save`` (and
``save_replay_buffer`` for DQN) plus the step count, wall seconds and episode count, written
into a temporary folder and renamed. It resumes with ``load`` (+ ``load_replay_buffer``) and
``learn(reset_num_timesteps=False)``: the weights, optimizer, counters, exploration schedule
and the 100-episode window continue, but the envs restart (episodes in progress are cut) with a
seed derived from the run seed and the step, and PyTorch's RNG is reseeded, so SB3's resume is
not bitwise exact. A callback writes a ``progress.csv`` row every 10,000 steps with rlkit's
column names: ``time/env_steps``, ``time/elapsed_s`` (wall seconds of the kept progress,
summed over resumed segments), ``rollout/ep_rew_mean`` (SB3's ``ep_info_buffer``: the last
100 episodes as ``Monitor`` saw them, i.e. full games with unclipped scores). After training
the policy plays 30 episodes at epsilon 0.05 on the seeds rlkit's final evaluation would use
(``rlkit.evaluate.evaluation_seeds``), counted as ``Monitor`` counts them (whole games).

Bookkeeping: each run folder gets ``driver.json`` (budget, checkpoint interval and a
``segments`` list: start step, end step, dates, exit code, nice level, load average), a
``driver.lock`` while a child runs, and ``driver.log`` (the children's output). A run whose
folder a live process names on its command line (another ``rlkit.train``, say) is left
alone; one that is unfinished and not running is resumed from its newest checkpoint (or
started again if it never wrote one). ``run`` is Ctrl-C safe: the first Ctrl-C (or SIGTERM)
is passed on to the child, which writes a checkpoint and stops; a second one stops it without.
The wall-clock panel of the plots uses each library's own elapsed seconds; on a shared machine
they depend on the load (STATUS.md records the load average at each segment's start and end).
One driver at a time per root (``<root>/.driver.pid``); ``--wait`` waits for runs live
elsewhere instead of skipping them, ``--nice N`` lowers the children's priority, ``--dry-run``
says what would run, ``--sb3-threads N`` sets PyTorch's threads and ``--rlkit-threads N``
TensorFlow's (rlkit's ``--threads N``; default: each library's own choice, one per core).
``--steps``, ``--checkpoint-every``, ``--learning-starts`` and ``--sb3-buffer-size`` exist for
smoke tests only.

Carrying runs between machines: a session's machine (and ``/work/runs`` with it) does not
outlive the session. ``pack`` writes each unfinished, stopped run into
``benchmarks/carry/space_invaders/<run>.tar`` (committed to git): the run folder with only its
newest *scheduled* checkpoint (the first of its ``checkpoint_every`` interval; a Ctrl-C one is
left out, so an rlkit run resumes bitwise exact), at most 64 MB (a DQN run's replay buffer is
GBs: those must finish on one machine). ``unpack`` restores the archives whose folders are
missing under ``--root``; the next ``run`` resumes them and redoes the steps past the
checkpoint. ``driver.json`` records each carry (step, steps dropped, dates, CPUs) and each
segment's CPU, since sessions can land on different machines (and rlkit's
``mixed_precision: auto`` runs bfloat16 on one with AMX or AVX512-BF16, float32 elsewhere).
``pack`` also deletes the archive of a run that has finished. A finished run's files are
copied into ``--results`` (committed) as soon as it ends, its GIF made there too; on a later
machine, where its folder is gone, ``run`` and ``status`` read those copies and never start it
again.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "space_invaders"
# Unfinished runs carried from one machine to the next (``pack`` / ``unpack``): the run
# folders live outside git and a session's machine does not outlive it.
CARRY = HERE / "carry" / "space_invaders"
CARRY_LIMIT_MB = 64  # a DQN run's replay buffer (GBs) cannot be carried: it must finish
DEFAULT_ROOT = Path("/work/runs/si")
ENV_ID = "SpaceInvadersNoFrameskip-v4"

BUDGETS = {"a2c": 2_000_000, "ppo": 2_000_000}
BUDGETS.update(dqn=250_000, double_dqn=250_000, dueling_dqn=250_000, rainbow=250_000)
CHECKPOINT_EVERY = {"a2c": 250_000, "ppo": 250_000}
CHECKPOINT_EVERY.update(dqn=50_000, double_dqn=50_000, dueling_dqn=50_000, rainbow=50_000)
AGENTS = {
    "rlkit": ("a2c", "ppo", "dqn", "double_dqn", "dueling_dqn", "rainbow"),
    "sb3": ("a2c", "ppo", "dqn"),
}
FAMILIES = ("a2c", "ppo", "dqn")  # one plot and one settings table each
SB3_ENVS = {"a2c": 16, "ppo": 8, "dqn": 1}  # rl-zoo3's n_envs
SB3_LOG_EVERY = 10_000
FINAL_EPISODES, FINAL_EPSILON = 30, 0.05
KEEP_CHECKPOINTS = 2
RUN_NAME = re.compile(r"(?P<agent>[a-z0-9_]+)_(?P<lib>rlkit|sb3)_seed(?P<seed>\d+)")

# Published Space Invaders scores for orientation (different budgets and protocols).
REFERENCES = [
    ("Random play (Mnih et al. 2015)", "-", 148.0),
    ("DQN (Mnih et al. 2015, Nature)", "200M frames", 1976.0),
    ("Double DQN (van Hasselt et al. 2016)", "200M frames", 3154.6),
    ("Dueling DQN (Wang et al. 2016)", "200M frames", 6427.3),
    ("A2C (the published figure usually quoted)", "40M frames", 744.5),
    ("rl-zoo3 A2C (SB3)", "10M steps = 40M frames", 627.0),
    ("rl-zoo3 DQN (SB3)", "10M steps = 40M frames", 623.0),
]
ZOO_LINES = {"a2c": 627.0, "dqn": 623.0}  # drawn on the plots as dashed lines
# rl-zoo3's Atari PPO (hyperparams/ppo.yml, atari): 8 envs, lin_2.5e-4, lin_0.1.
PPO_ZOO = {
    "n_steps": 128,
    "n_epochs": 4,
    "batch_size": 256,
    "learning_rate": 2.5e-4,
    "clip_range": 0.1,
    "vf_coef": 0.5,
    "ent_coef": 0.01,
}


@dataclass(frozen=True)
class RunSpec:
    """One run: an agent of one library with one seed."""

    agent: str
    lib: str
    seed: int

    @property
    def name(self) -> str:
        """Folder and file stem, e.g. ``a2c_rlkit_seed1``."""
        return f"{self.agent}_{self.lib}_seed{self.seed}"

    @property
    def family(self) -> str:
        """Which plot the run goes in: ``a2c``, ``ppo`` or ``dqn`` (the DQN family)."""
        return self.agent if self.agent in ("a2c", "ppo") else "dqn"


def parse_runs(text: str) -> list[RunSpec]:
    """``agent:lib:seed,...`` -> run specs.

    Raises:
        ValueError: for a malformed item, an unknown library or an agent it does not have.
    """
    specs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"run {item!r}: expected agent:lib:seed, e.g. a2c:sb3:1")
        agent, lib, seed = parts[0], parts[1], int(parts[2])
        if lib not in AGENTS:
            raise ValueError(f"run {item!r}: lib must be one of {sorted(AGENTS)}")
        if agent not in AGENTS[lib]:
            raise ValueError(f"run {item!r}: {lib} agents here are {', '.join(AGENTS[lib])}")
        specs.append(RunSpec(agent, lib, seed))
    return specs


def spec_from_name(name: str) -> RunSpec | None:
    """The run spec of a folder name, or None if the name is not one of ours."""
    m = RUN_NAME.fullmatch(name)
    if m is None or m["agent"] not in AGENTS[m["lib"]]:
        return None
    return RunSpec(m["agent"], m["lib"], int(m["seed"]))


# -- small helpers ---------------------------------------------------------------------------
def now_text() -> str:
    """Local date and time, to the second."""
    return datetime.datetime.now().isoformat(sep=" ", timespec="seconds")


def mtime_text(path: Path) -> str | None:
    """A file's modification time like ``now_text``, or None if it does not exist."""
    if not path.exists():
        return None
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime)
    return stamp.isoformat(sep=" ", timespec="seconds")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_text(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU model, with its bfloat16 flags (rlkit's ``mixed_precision: auto`` follows them).

    Sessions can land on different machines: a run carried from one to another (``pack``,
    ``unpack``) records each segment's CPU, and with it whether rlkit's torso ran bfloat16.
    """
    from rlkit.precision import BF16_CPU_FLAGS, cpu_info  # stdlib only: no TensorFlow

    info = cpu_info(cpuinfo)
    flags = set(info.get("flags", "").split())
    bf16 = [f for f in BF16_CPU_FLAGS if f in flags]
    model = info.get("model name", "unknown CPU")
    return f"{model} ({', '.join(bf16) if bf16 else 'no bfloat16 flags'})"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """JSON from ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def read_progress(path: Path) -> list[dict[str, float]]:
    """Rows of a ``progress.csv`` (rlkit's or the SB3 child's) as floats; empty cells dropped."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for raw in csv.DictReader(f):
            row = {}
            for k, v in raw.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    continue
            if "time/env_steps" in row:
                rows.append(row)
    return rows


def segment_breaks(rows: list[dict[str, float]]) -> list[int]:
    """Indices of the rows that a resumed process wrote first.

    The SB3 child writes the step its process started from (``time/segment_start``). rlkit's
    rows do not say, but its logger restarts ``time/elapsed_s`` at 0 in a resumed process, and
    its ``time/fps`` is the steps since the previous row over the seconds since that row (or,
    for a resumed process's first row, since the process started). So a row begins a segment
    if ``elapsed_s`` dropped, or if the seconds implied by ``fps`` match its ``elapsed_s``
    better than the gap to the previous row's.
    """
    breaks = []
    for i in range(1, len(rows)):
        row, prev = rows[i], rows[i - 1]
        if "time/segment_start" in row:
            if row["time/segment_start"] != prev.get("time/segment_start"):
                breaks.append(i)
            continue
        elapsed, before = row.get("time/elapsed_s", 0.0), prev.get("time/elapsed_s", 0.0)
        gained, fps = row["time/env_steps"] - prev["time/env_steps"], row.get("time/fps", 0.0)
        if elapsed < before:
            breaks.append(i)
        elif (
            gained > 0
            and fps > 0
            and abs(gained / fps - elapsed) < abs(gained / fps - (elapsed - before))
        ):
            breaks.append(i)
    return breaks


def wall_seconds(rows: list[dict[str, float]]) -> list[float]:
    """Wall seconds of each row since the run began, summed over resumed segments.

    rlkit's ``time/elapsed_s`` counts from the start of each process, so every resumed
    segment adds its seconds to the last kept row's (rows after the checkpoint were dropped
    on resume). The SB3 child's is cumulative already.
    """
    if rows and "time/segment_start" in rows[0]:
        return [r.get("time/elapsed_s", 0.0) for r in rows]
    breaks, out, offset = set(segment_breaks(rows)), [], 0.0
    for i, row in enumerate(rows):
        if i in breaks:
            offset = out[-1]
        out.append(offset + row.get("time/elapsed_s", 0.0))
    return out


def resume_points(rows: list[dict[str, float]]) -> list[float]:
    """Env steps from which resumed segments continued (the row before each break)."""
    return [rows[i - 1]["time/env_steps"] for i in segment_breaks(rows)]


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the finished checkpoints in ``run_dir/checkpoints`` (both libraries), sorted."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    steps = []
    for p in folder.iterdir():
        m = re.fullmatch(r"step_(\d+)", p.name)
        if m and p.is_dir() and (p / "state.json").exists():
            steps.append(int(m.group(1)))
    return sorted(steps)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """The folder of the finished checkpoint at ``step`` (rlkit pads to 12 digits, SB3's to 9).

    Raises:
        FileNotFoundError: if there is none.
    """
    for p in (run_dir / "checkpoints").glob("step_*"):
        m = re.fullmatch(r"step_(\d+)", p.name)
        if m and int(m.group(1)) == step and (p / "state.json").exists():
            return p
    raise FileNotFoundError(f"no finished checkpoint at step {step:,} in {run_dir}")


def config_value(path: Path, key: str) -> str | None:
    """A top-level ``key: value`` of rlkit's ``config.yaml`` (no YAML parser needed)."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.split(":", 1)[1].strip()
    return None


def live_processes(run_dir: Path) -> list[dict[str, Any]]:
    """Processes training in ``run_dir``: those whose command line names the folder.

    A process counts if one of its arguments (``--run-dir D``, ``--resume D``, the SB3
    child's ``D``, relative paths resolved against its working directory) is the folder and
    it runs ``rlkit.train`` or this script. Read from ``/proc``, so it sees runs that other
    people started, not just this driver's.
    """
    target = os.path.realpath(run_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if not any("rlkit.train" in a or a.endswith("space_invaders.py") for a in args):
            continue
        for arg in args:
            value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
            if value and os.path.realpath(os.path.join(cwd, value)) == target:
                found.append({"pid": int(entry.name), "nice": process_nice(entry)})
                break
    return found


def process_nice(proc: Path) -> int | None:
    """The nice level of a process (``/proc/<pid>/stat`` field 19)."""
    try:
        stat = (proc / "stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError, ValueError):
        return None


# -- the state of a run ----------------------------------------------------------------------
@dataclass
class RunInfo:
    """What a run folder says about its run."""

    spec: RunSpec
    run_dir: Path
    meta: dict[str, Any] | None
    rows: list[dict[str, float]]
    results: dict[str, Any] | None
    checkpoints: list[int]
    live: list[dict[str, Any]]

    @property
    def budget(self) -> int:
        """The run's budget in env steps (driver.json, rlkit's config.yaml or the default)."""
        if self.meta and self.meta.get("budget"):
            return int(self.meta["budget"])
        total = config_value(self.run_dir / "config.yaml", "total_steps")
        return int(float(total)) if total else BUDGETS[self.spec.agent]

    @property
    def complete(self) -> bool:
        """Trained to the budget and finally evaluated (``results.json`` written)."""
        return bool(self.results and self.results.get("n_eval_episodes"))

    @property
    def steps(self) -> int:
        """Env steps of the newest progress row (0 if none)."""
        return int(self.rows[-1]["time/env_steps"]) if self.rows else 0

    @property
    def state(self) -> str:
        """complete, running, stopped or not started."""
        if self.complete:
            return "complete" if self.run_dir.exists() else "complete (copies in results/)"
        if self.live:
            return "running"
        return "stopped" if self.rows or self.checkpoints else "not started"

    @property
    def segments(self) -> list[dict[str, Any]]:
        """driver.json's segments, or ones read from progress.csv for a run started elsewhere."""
        if self.meta and self.meta.get("segments"):
            return self.meta["segments"]
        if not self.rows:
            return []
        starts = [0.0, *resume_points(self.rows)]
        ends = [*starts[1:], None if self.live else self.rows[-1]["time/env_steps"]]
        segs: list[dict[str, Any]] = [
            {"start": int(s), "end": None if e is None else int(e), "by": "outside this driver"}
            for s, e in zip(starts, ends, strict=True)
        ]
        # rlkit rewrites config.yaml whenever it starts or resumes a run.
        segs[-1]["started"] = mtime_text(self.run_dir / "config.yaml")
        return segs


def recorded(spec: RunSpec, root: Path, results: Path) -> RunInfo | None:
    """A finished run whose folder is gone, read from the copies ``report`` keeps in ``results``.

    Run folders live on the machine that ran them; the copies (progress, results, protocol
    card, driver.json) are committed, so a later machine still knows the run is complete and
    never starts it again.
    """
    res = read_json(results / f"{spec.name}.results.json")
    if not (isinstance(res, dict) and res.get("n_eval_episodes")):
        return None
    meta = read_json(results / f"{spec.name}.driver.json")
    return RunInfo(
        spec=spec,
        run_dir=root / spec.name,
        meta=meta if isinstance(meta, dict) else None,
        rows=read_progress(results / f"{spec.name}.csv"),
        results=res,
        checkpoints=[],
        live=[],
    )


def inspect(spec: RunSpec, root: Path, results: Path | None = None) -> RunInfo:
    """Read a run's folder (nothing is written); or its copies in ``results`` if it is gone."""
    run_dir = root / spec.name
    if results is not None and not run_dir.exists():
        kept = recorded(spec, root, results)
        if kept is not None:
            return kept
    results = read_json(run_dir / "results.json")
    return RunInfo(
        spec=spec,
        run_dir=run_dir,
        meta=read_json(run_dir / "driver.json"),
        rows=read_progress(run_dir / "progress.csv"),
        results=results if isinstance(results, dict) else None,
        checkpoints=checkpoint_steps(run_dir),
        live=live_processes(run_dir) if run_dir.exists() else [],
    )


def discover(root: Path, results: Path | None = None) -> list[RunSpec]:
    """Runs with a folder under ``root`` or copied files under ``results``, in a stable order."""
    names = set()
    if root.is_dir():
        names |= {p.name for p in root.iterdir() if p.is_dir()}
    if results is not None and results.is_dir():
        names |= {p.name.removesuffix(".csv") for p in results.glob("*.csv")}
    specs = [s for s in (spec_from_name(n) for n in names) if s is not None]
    order = {"a2c": 0, "ppo": 1, "dqn": 2, "double_dqn": 3, "dueling_dqn": 4, "rainbow": 5}
    return sorted(
        specs, key=lambda s: (FAMILIES.index(s.family), s.lib != "rlkit", order[s.agent], s.seed)
    )


# -- run ------------------------------------------------------------------------------------
class Supervisor:
    """Runs one child at a time and passes Ctrl-C / SIGTERM on to it, once per signal.

    The child runs in a session of its own, so a Ctrl-C at the terminal reaches only this
    driver, which forwards it: the first makes the child checkpoint and stop, a second stops
    it at once. After any signal no further run is started.
    """

    def __init__(self) -> None:
        self.child: subprocess.Popen | None = None
        self.signals = 0

    def install(self) -> None:
        """Handle SIGINT and SIGTERM in this process."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)
            what = "checkpoints and stops" if self.signals == 1 else "stops without a checkpoint"
            print(f"\n{signal.Signals(signum).name}: passed on; the run {what}", flush=True)
        else:
            print(f"\n{signal.Signals(signum).name}: stopping", flush=True)

    def run(self, cmd: list[str], log: Path, nice: int = 0) -> int:
        """Run ``cmd`` (output appended to ``log``) until it exits; return its exit code."""
        with open(log, "a") as out:
            out.write(f"\n=== {now_text()}: {' '.join(cmd)}\n")
            out.flush()
            self.child = subprocess.Popen(
                cmd,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
            )
            try:
                return self.child.wait()
            finally:
                self.child = None


def rlkit_command(
    run_dir: Path, spec: RunSpec, budget: int, every: int, resume: bool, threads: int = 0
) -> list[str]:
    """The rlkit CLI command that starts or continues the run (``threads``: 0 for TF's own)."""
    cmd = [sys.executable, "-m", "rlkit.train"]
    if threads:
        cmd += ["--threads", str(threads)]
    if resume:
        return [*cmd, "--resume", str(run_dir), "--total-steps", str(budget), "--quiet"]
    cmd += ["--agent", spec.agent, "--env", ENV_ID, "--seed", str(spec.seed)]
    cmd += ["--total-steps", str(budget), "--run-dir", str(run_dir)]
    return [*cmd, "--checkpoint-every", str(every), "--quiet"]


def new_meta(spec: RunSpec, budget: int, every: int) -> dict[str, Any]:
    """A fresh driver.json."""
    return {
        "run": spec.name,
        "lib": spec.lib,
        "agent": spec.agent,
        "seed": spec.seed,
        "env_id": ENV_ID,
        "budget": budget,
        "checkpoint_every": every,
        "segments": [],
    }


def adopt(info: RunInfo) -> dict[str, Any]:
    """driver.json for a run folder this driver did not start (its first segment recorded)."""
    spec, run_dir = info.spec, info.run_dir
    every = config_value(run_dir / "config.yaml", "checkpoint_every")
    meta = new_meta(spec, info.budget, int(every) if every else CHECKPOINT_EVERY[spec.agent])
    meta["adopted"] = now_text()
    meta["segments"] = info.segments  # read from progress.csv
    if meta["segments"] and meta["segments"][-1]["end"] is not None:
        meta["segments"][-1]["ended"] = mtime_text(run_dir / "progress.csv")
    return meta


def close_open_segment(meta: dict[str, Any], info: RunInfo) -> None:
    """Give the last segment its end step if it has none (its process is gone)."""
    segs = meta["segments"]
    if segs and segs[-1].get("end") is None:
        segs[-1]["end"] = info.steps
        segs[-1]["ended"] = mtime_text(info.run_dir / "progress.csv")


def run_one(spec: RunSpec, args: argparse.Namespace, sup: Supervisor) -> str:
    """Start, resume or skip one run; return what happened, in a few words."""
    root: Path = args.root
    info = inspect(spec, root, args.results)
    while info.live and args.wait and not sup.signals:
        pids = ", ".join(str(p["pid"]) for p in info.live)
        print(f"{spec.name}: running elsewhere (pid {pids}); waiting for it to end", flush=True)
        for _ in range(60):
            time.sleep(1)
            if sup.signals:
                return "stopped while waiting"
        info = inspect(spec, root, args.results)
    if sup.signals:
        return "not started (interrupted)"
    if info.complete:
        return "complete already" + ("" if info.run_dir.exists() else f" (in {args.results})")
    if info.live:
        pids = ", ".join(f"{p['pid']} (nice {p['nice']})" for p in info.live)
        return f"running elsewhere (pid {pids}): left alone"
    if spec.lib == "sb3" and not args.sb3_python:
        return "skipped: no --sb3-python"
    budget = args.steps or info.budget
    every = args.checkpoint_every or int(
        (info.meta or {}).get("checkpoint_every") or CHECKPOINT_EVERY[spec.agent]
    )
    resume = bool(info.checkpoints)
    start = info.checkpoints[-1] if resume else 0
    if spec.lib == "rlkit":
        cmd = rlkit_command(info.run_dir, spec, budget, every, resume, args.rlkit_threads)
        if args.learning_starts is not None and spec.family == "dqn" and not resume:
            cmd[-1:-1] = ["--set", f"learning_starts={args.learning_starts}"]
    else:
        cmd = [args.sb3_python, str(Path(__file__).resolve()), "_sb3-child", str(info.run_dir)]
    verb = f"resume from step {start:,}" if resume else "start"
    if args.dry_run:
        return f"would {verb}: {' '.join(cmd)}"
    info.run_dir.mkdir(parents=True, exist_ok=True)
    meta = info.meta or (adopt(info) if info.rows else new_meta(spec, budget, every))
    close_open_segment(meta, info)
    meta["budget"], meta["checkpoint_every"] = budget, every
    if not resume and spec.lib == "rlkit":  # nothing to continue from: start afresh
        if info.rows:  # kept aside, not overwritten
            stale = info.run_dir / "progress.csv"
            stale.rename(info.run_dir / f"progress.lost-{int(time.time())}.csv")
        empty = info.run_dir / "checkpoints"
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()  # rlkit refuses a fresh start into a folder with checkpoints/
    if spec.lib == "sb3":
        sb3_spec = {
            "agent": spec.agent,
            "seed": spec.seed,
            "budget": budget,
            "checkpoint_every": every,
            "log_every": SB3_LOG_EVERY,
            "threads": args.sb3_threads,
            "buffer_size": args.sb3_buffer_size,
            "learning_starts": args.learning_starts,
        }
        write_json(info.run_dir / "sb3_spec.json", sb3_spec)
    segment: dict[str, Any] = {
        "start": start,
        "end": None,
        "started": now_text(),
        "ended": None,
        "exit": None,
        "by": "driver",
        "resumed": resume,
        "nice": args.nice,
        "load_start": load_average(),
        "cpu": cpu_text(),
    }
    if spec.lib == "sb3":
        segment["torch_threads"] = args.sb3_threads or "default"
    else:
        segment["tf_threads"] = args.rlkit_threads or "default"
    meta["segments"].append(segment)
    write_json(info.run_dir / "driver.json", meta)
    lock = info.run_dir / "driver.lock"
    print(f"{spec.name}: {verb} ({budget:,} steps)  log: {info.run_dir / 'driver.log'}", flush=True)
    t0, code = time.time(), None
    try:
        write_json(lock, {"driver_pid": os.getpid(), "started": now_text(), "cmd": cmd})
        code = sup.run(cmd, info.run_dir / "driver.log", nice=args.nice)
    finally:
        after = inspect(spec, root)
        segment.update(end=after.steps, ended=now_text(), exit=code, load_end=load_average())
        write_json(info.run_dir / "driver.json", meta)
        lock.unlink(missing_ok=True)
    hours = (time.time() - t0) / 3600
    if after.complete:  # keep its files now: the run folder does not outlive this machine
        args.results.mkdir(parents=True, exist_ok=True)
        copy_run_files(after, args.results)
        make_gif(after, args.results)
        res = after.results or {}
        return (
            f"complete: {after.steps:,} steps in this segment's {hours:.2f} h; final evaluation "
            f"{res['mean_reward']:.1f} ± {res['std_reward']:.1f} over {res['n_eval_episodes']}"
        )
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM) or sup.signals:
        return f"interrupted at {after.steps:,} steps (exit {code}); `run` again to resume"
    tail = (info.run_dir / "driver.log").read_text().strip().splitlines()[-8:]
    return f"FAILED (exit {code}) at {after.steps:,} steps:\n    " + "\n    ".join(tail)


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: each run in turn (skipping complete and live ones)."""
    specs = parse_runs(args.runs)
    if args.sb3_python and not args.dry_run and any(s.lib == "sb3" for s in specs):
        probe = [args.sb3_python, "-c", "import stable_baselines3, ale_py, cv2, torch"]
        if subprocess.run(probe, capture_output=True).returncode != 0:
            print(f"error: {args.sb3_python} lacks stable_baselines3, ale-py, opencv or torch")
            return 2
    args.root.mkdir(parents=True, exist_ok=True)
    lock = args.root / ".driver.pid"
    if not args.dry_run:
        other = driver_holding(lock)
        if other:
            print(f"error: another driver (pid {other}) is running runs under {args.root}")
            return 2
        lock.write_text(f"{os.getpid()}\n")
    sup = Supervisor()
    sup.install()
    try:
        for spec in specs:
            outcome = run_one(spec, args, sup)
            print(f"{spec.name}: {outcome}", flush=True)
            if sup.signals:
                break
    finally:
        if not args.dry_run and driver_holding(lock) == os.getpid():
            lock.unlink(missing_ok=True)
    return 130 if sup.signals else 0


def driver_holding(lock: Path) -> int | None:
    """The pid of the live driver that wrote ``lock`` (one driver per root), or None."""
    try:
        pid = int(lock.read_text().strip())
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if "space_invaders.py" in args and "\0run" in args else None


# -- status ---------------------------------------------------------------------------------
def fmt_steps(n: float | None) -> str:
    """``1,234,567`` or ``-``."""
    return "-" if n is None else f"{int(n):,}"


def describe_segment(i: int, seg: dict[str, Any]) -> str:
    """One line on one segment."""
    end = "now (running)" if seg.get("end") is None else fmt_steps(seg["end"])
    text = f"{i}. steps {fmt_steps(seg.get('start'))} -> {end}"
    when = seg.get("started")
    if when:
        text += f", started {when}"
    if seg.get("ended"):
        text += f", ended {seg['ended']}"
    if seg.get("by") and seg["by"] != "driver":
        text += f" ({seg['by']})"
    elif seg.get("resumed") is not None:
        text += " (resumed from its checkpoint)" if seg["resumed"] else " (fresh start)"
    extra = []
    if seg.get("exit") is not None:
        extra.append(f"exit {seg['exit']}")
    if seg.get("nice"):
        extra.append(f"nice {seg['nice']}")
    if seg.get("torch_threads"):
        extra.append(f"torch threads {seg['torch_threads']}")
    if seg.get("tf_threads") not in (None, "default"):
        extra.append(f"TF threads {seg['tf_threads']}")
    if seg.get("load_start"):
        extra.append(f"load {seg['load_start'][0]} -> {(seg.get('load_end') or ['?'])[0]}")
    if seg.get("cpu"):
        extra.append(seg["cpu"])
    return text + (f" [{'; '.join(extra)}]" if extra else "")


def status_markdown(infos: list[RunInfo]) -> str:
    """STATUS.md: one table row per run and the segments of each."""
    lines = [
        "# Space Invaders runs: status",
        "",
        f"Written {now_text()} by `python benchmarks/space_invaders.py status`. Env steps are "
        "agent steps (4 frames each). The score is the mean full-game score of the last 100 "
        "training episodes; the final evaluation plays 30 episodes at epsilon 0.05. Wall hours "
        "add up the segments' elapsed time of the progress that was kept.",
        "",
        "| run | state | env steps / budget | done | last-100 score | final eval | wall h | "
        "steps/s | newest checkpoint | segments |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for info in infos:
        rows = info.rows
        score = rows[-1].get("rollout/ep_rew_mean") if rows else None
        wall = wall_seconds(rows)[-1] if rows else None
        state = info.state
        if info.live:
            state += " (pid " + ", ".join(f"{p['pid']} nice {p['nice']}" for p in info.live) + ")"
        res = info.results if info.complete else None
        final = f"{res['mean_reward']:.1f} ± {res['std_reward']:.1f}" if res else "-"
        segs = info.segments
        resumed = sum(1 for s in segs[1:] if s.get("resumed", True))
        seg_text = f"{len(segs)}" + (f" (resumed {resumed}x)" if resumed else "")
        lines.append(
            f"| {info.spec.name} | {state} | {fmt_steps(info.steps)} / {fmt_steps(info.budget)} "
            f"| {100 * info.steps / info.budget:.0f} % "
            f"| {'-' if score is None else f'{score:.1f}'} | {final} "
            f"| {'-' if wall is None else f'{wall / 3600:.2f}'} "
            f"| {'-' if not wall else f'{info.steps / wall:.0f}'} "
            f"| {fmt_steps(info.checkpoints[-1] if info.checkpoints else None)} | {seg_text} |"
        )
    lines += ["", "## Segments", ""]
    for info in infos:
        segs = info.segments
        lines.append(f"- **{info.spec.name}**" + ("" if segs else ": not started"))
        lines += [f"  {describe_segment(i, s)}" for i, s in enumerate(segs, 1)]
    return "\n".join(lines) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    """``status``: print the table and write STATUS.md."""
    if args.runs:
        specs = parse_runs(args.runs)
    else:  # what is there, and under the default root the planned runs too
        planned = parse_runs(ALL_RUNS) if args.root == DEFAULT_ROOT else []
        specs = planned + [s for s in discover(args.root, args.results) if s not in planned]
    infos = [inspect(s, args.root, args.results) for s in specs]
    text = status_markdown(infos)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "STATUS.md").write_text(text)
    print(text)
    print(f"written: {args.results / 'STATUS.md'}")
    return 0


# -- carrying unfinished runs between machines ----------------------------------------------
def periodic_checkpoint(info: RunInfo) -> int | None:
    """The newest checkpoint a run wrote on schedule, or None if it has none.

    Both libraries checkpoint at the first step past each multiple of ``checkpoint_every``;
    a Ctrl-C adds one between two scheduled ones. The scheduled one is the earliest of its
    interval. Resuming from it is bitwise exact for rlkit (the Ctrl-C one is only a valid
    continuation), so that is the one carried.
    """
    every = int((info.meta or {}).get("checkpoint_every") or CHECKPOINT_EVERY[info.spec.agent])
    first_of_interval: dict[int, int] = {}
    for step in info.checkpoints:
        first_of_interval.setdefault(step // every, step)
    scheduled = [s for k, s in first_of_interval.items() if k >= 1]
    return max(scheduled) if scheduled else None


def pack_run(info: RunInfo, carry: Path) -> str:
    """Write ``carry/<run>.tar``: the run folder with only its newest scheduled checkpoint.

    Returns:
        What was done, in a few words.

    Raises:
        ValueError: the run is running, has no scheduled checkpoint, or is too big to carry.
    """
    name = info.spec.name
    if info.live:
        raise ValueError(f"{name} is running; stop it (Ctrl-C its driver) before packing")
    step = periodic_checkpoint(info)
    if step is None:
        raise ValueError(f"{name} has no scheduled checkpoint yet: nothing to resume from")
    keep = checkpoint_dir(info.run_dir, step)
    skipped = {"driver.lock", "final_episode.gif"}
    files = [
        p
        for p in sorted(info.run_dir.rglob("*"))
        if p.is_file()
        and p.name not in skipped
        and (p.relative_to(info.run_dir).parts[0] != "checkpoints" or keep in p.parents)
    ]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    if size_mb > CARRY_LIMIT_MB:
        raise ValueError(
            f"{name}: {size_mb:,.0f} MB with its checkpoint (limit {CARRY_LIMIT_MB} MB, a replay "
            "buffer?); it cannot be carried, let it finish on one machine"
        )
    meta = info.meta or adopt(info)
    close_open_segment(meta, info)
    meta.setdefault("carried", []).append(
        {"step": step, "dropped_after": info.steps, "packed": now_text(), "cpu": cpu_text()}
    )
    write_json(info.run_dir / "driver.json", meta)
    carry.mkdir(parents=True, exist_ok=True)
    tmp = carry / f".{name}.tar.tmp"
    with tarfile.open(tmp, "w") as tar:
        for p in files:
            tar.add(p, arcname=f"{name}/{p.relative_to(info.run_dir)}", recursive=False)
    os.replace(tmp, carry / f"{name}.tar")
    lost = f"; steps {step:,}-{info.steps:,} will be redone" if info.steps > step else ""
    return f"packed at its checkpoint {step:,} ({size_mb:.1f} MB){lost}"


def cmd_pack(args: argparse.Namespace) -> int:
    """``pack``: carry every unfinished run (and forget the carried files of finished ones)."""
    specs = parse_runs(args.runs) if args.runs else discover(args.root)
    failed = 0
    for spec in specs:
        info = inspect(spec, args.root)
        tar = args.carry / f"{spec.name}.tar"
        if info.complete:
            if tar.exists():
                tar.unlink()
                print(f"{spec.name}: complete; its carried copy {tar} removed")
            continue
        if not info.run_dir.is_dir():
            continue
        try:
            print(f"{spec.name}: {pack_run(info, args.carry)}")
        except ValueError as e:
            print(f"{spec.name}: not packed: {e}")
            failed += 1
    return 1 if failed else 0


def safe_members(tar: tarfile.TarFile, name: str) -> list[tarfile.TarInfo]:
    """The archive's regular files, each under ``name/`` (anything else is refused).

    Raises:
        ValueError: for a link, a device, an absolute path or a ``..`` in a member.
    """
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in parts:
            raise ValueError(f"refusing member {m.name!r}: not a plain file inside the run")
        if parts[0] != name:
            raise ValueError(f"refusing member {m.name!r}: outside {name}/")
    return members


def cmd_unpack(args: argparse.Namespace) -> int:
    """``unpack``: restore each carried run whose folder is not under ``--root`` yet."""
    tars = sorted(args.carry.glob("*.tar")) if args.carry.is_dir() else []
    if not tars:
        print(f"nothing carried in {args.carry}")
        return 0
    args.root.mkdir(parents=True, exist_ok=True)
    for path in tars:
        name = path.name.removesuffix(".tar")
        if spec_from_name(name) is None:
            print(f"{path}: not a run of ours; left alone")
            continue
        target = args.root / name
        if target.exists():
            print(f"{name}: {target} exists already; left as it is")
            continue
        with tarfile.open(path) as tar:
            tar.extractall(args.root, members=safe_members(tar, name), filter="data")
        meta = read_json(target / "driver.json") or {}
        if meta.get("carried"):
            meta["carried"][-1].update(unpacked=now_text(), unpacked_on=cpu_text())
            write_json(target / "driver.json", meta)
        steps = checkpoint_steps(target)
        print(f"{name}: unpacked into {target}; `run` resumes it from step {steps[-1]:,}")
    return 0


# -- report ---------------------------------------------------------------------------------
def copy_run_files(info: RunInfo, out: Path) -> list[str]:
    """Copy a run's progress.csv, results.json and protocol card into ``out``."""
    copied = []
    for src, dst in (
        ("progress.csv", f"{info.spec.name}.csv"),
        ("results.json", f"{info.spec.name}.results.json"),
        ("protocol.json", f"{info.spec.name}.protocol.json"),
        ("driver.json", f"{info.spec.name}.driver.json"),
        ("config.yaml", f"{info.spec.name}.config.yaml"),
    ):
        if (info.run_dir / src).exists():
            shutil.copyfile(info.run_dir / src, out / dst)
            copied.append(dst)
    return copied


def make_gif(info: RunInfo, out: Path) -> Path | None:
    """A GIF of one episode of the final policy (epsilon 0.05, seed 0), or None.

    rlkit: ``python -m rlkit.evaluate --run <copy of D/policy> --video DIR --episodes 1``
    (on a copy, since ``rlkit.evaluate`` writes its results.json beside the policy). SB3: the
    GIF its child recorded after the final evaluation, if imageio was installed there.
    """
    target = out / f"{info.spec.name}.gif"
    if target.exists():
        return target
    if info.spec.lib == "sb3":
        src = info.run_dir / "final_episode.gif"
        if src.exists():
            shutil.copyfile(src, target)
            return target
        return None
    if not (info.run_dir / "policy" / "policy.json").exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(info.run_dir / "policy", Path(tmp) / "policy")
        cmd = [sys.executable, "-m", "rlkit.evaluate", "--run", str(Path(tmp) / "policy")]
        cmd += ["--video", tmp, "--episodes", "1"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        gifs = list(Path(tmp).glob("*.gif"))
        if proc.returncode != 0 or not gifs:
            print(f"{info.spec.name}: no GIF ({(proc.stderr or proc.stdout).strip()[-300:]})")
            return None
        shutil.move(str(gifs[0]), target)
    return target


def curve(path: Path) -> tuple[list[float], list[float], list[float], list[float]]:
    """Env steps, wall hours and last-100 scores of a copied CSV; and its resume steps."""
    rows = read_progress(path)
    wall = wall_seconds(rows)
    keep = [i for i, r in enumerate(rows) if "rollout/ep_rew_mean" in r]
    steps = [rows[i]["time/env_steps"] for i in keep]
    hours = [wall[i] / 3600 for i in keep]
    scores = [rows[i]["rollout/ep_rew_mean"] for i in keep]
    return steps, hours, scores, resume_points(rows)


def plot_family(family: str, specs: list[RunSpec], out: Path) -> Path | None:
    """One figure: score against env steps (left) and wall-clock hours (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [s for s in specs if (out / f"{s.name}.csv").exists()]
    if not specs:
        return None
    fig, (ax_steps, ax_hours) = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    # One colour per library and agent (rlkit's DQN-family agents share a plot), a line
    # style per seed.
    colors = {("sb3", a): "C3" for a in AGENTS["sb3"]}  # red
    rlkit_colors = {"dqn": "C4", "double_dqn": "C9", "rainbow": "C2"}  # purple, cyan, green
    colors.update({("rlkit", a): rlkit_colors.get(a, "C0") for a in AGENTS["rlkit"]})  # blue
    styles = ("-", "--", ":", "-.")
    for spec in specs:
        color = colors[spec.lib, spec.agent]
        steps, hours, scores, resumes = curve(out / f"{spec.name}.csv")
        if not steps:
            continue
        lib = "rlkit" if spec.lib == "rlkit" else "SB3"
        label = f"{lib} {spec.agent}, seed {spec.seed}"
        style = dict(color=color, ls=styles[spec.seed % len(styles)], lw=1.4)
        ax_steps.plot(steps, scores, label=label, **style)
        ax_hours.plot(hours, scores, label=label, **style)
        for x in resumes:  # where a resumed segment took over
            ax_steps.axvline(x, color=color, lw=0.6, alpha=0.35)
        res = read_json(out / f"{spec.name}.results.json")
        if isinstance(res, dict) and res.get("n_eval_episodes"):
            mean, std = res["mean_reward"], res["std_reward"]
            kw = dict(color=color, marker="o", ms=5, capsize=3, lw=1)
            ax_steps.errorbar([steps[-1]], [mean], yerr=[std], **kw)
            ax_hours.errorbar([hours[-1]], [mean], yerr=[std], **kw)
    zoo = ZOO_LINES.get(family)
    if zoo is not None:
        for ax in (ax_steps, ax_hours):
            ax.axhline(zoo, color="grey", ls="--", lw=0.8)
        ax_steps.text(
            0.01,
            zoo,
            f" rl-zoo3 SB3 after 10M steps: {zoo:g}",
            color="grey",
            fontsize=8,
            va="bottom",
            transform=ax_steps.get_yaxis_transform(),
        )
    ax_steps.set_xlabel("env steps (agent steps, 4 frames each)")
    ax_hours.set_xlabel("wall-clock hours (summed over resumed segments)")
    ax_steps.set_ylabel("full-game score, mean of last 100 training episodes")
    for ax in (ax_steps, ax_hours):
        ax.grid(alpha=0.3)
    if ax_hours.get_legend_handles_labels()[0]:
        ax_hours.legend(fontsize=8, loc="upper left")
    names = {
        "dqn": "DQN",
        "double_dqn": "Double DQN",
        "dueling_dqn": "Dueling DQN",
        "rainbow": "Rainbow",
    }
    rlkit_agents = " and ".join(
        dict.fromkeys(names[s.agent] for s in specs if s.lib == "rlkit" and s.agent in names)
    )
    title = {
        "a2c": "A2C: rlkit vs Stable-Baselines3",
        "ppo": "PPO: rlkit vs Stable-Baselines3",
        "dqn": f"rlkit {rlkit_agents or 'DQN family'} vs Stable-Baselines3 DQN",
    }[family]
    fig.suptitle(
        f"{ENV_ID}, dqn protocol. {title}. Dots: final evaluation, 30 episodes at epsilon 0.05 "
        "(± std)",
        fontsize=10,
    )
    fig.tight_layout()
    path = out / f"{family}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sb3_versions(out: Path, specs: list[RunSpec]) -> dict[str, Any]:
    """SB3-side versions and settings, from the first SB3 protocol card found."""
    for spec in specs:
        card = read_json(out / f"{spec.name}.protocol.json")
        if spec.lib == "sb3" and isinstance(card, dict):
            return card.get("versions", {})
    return {}


def results_table(specs: list[RunSpec], out: Path, infos: dict[str, RunInfo]) -> list[str]:
    """Markdown rows: one per run with copied files."""
    lines = [
        "| run | env steps | last-100 score at the end | final eval (30 ep., ε 0.05) | "
        "wall h | env steps/s | segments |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        path = out / f"{spec.name}.csv"
        if not path.exists():
            continue
        rows = read_progress(path)
        if not rows:
            continue
        scores = [r["rollout/ep_rew_mean"] for r in rows if "rollout/ep_rew_mean" in r]
        wall = wall_seconds(rows)[-1]
        steps = rows[-1]["time/env_steps"]
        res = read_json(out / f"{spec.name}.results.json")
        final = "not yet"
        if isinstance(res, dict) and res.get("n_eval_episodes"):
            final = f"{res['mean_reward']:.1f} ± {res['std_reward']:.1f}"
        info = infos.get(spec.name)
        segs = len(info.segments) if info else len(resume_points(rows)) + 1
        score = f"{scores[-1]:.1f}" if scores else "-"
        rate = f"{steps / wall:.0f}" if wall else "-"
        lines.append(
            f"| {spec.name} | {fmt_steps(steps)} | {score} | {final} | {wall / 3600:.2f} "
            f"| {rate} | {segs} |"
        )
    return lines


# (label, rlkit config.yaml key or function, SB3 card "settings" key or function)
_POLICY_GRADIENT_ROWS: list[tuple[str, Any, Any]] = [  # A2C's and PPO's shared settings
    ("gamma", "gamma", "gamma"),
    ("GAE lambda", "gae_lambda", "gae_lambda"),
    ("entropy coefficient", "ent_coef", "ent_coef"),
    ("value coefficient", "vf_coef", "vf_coef"),
    ("max grad norm", "max_grad_norm", "max_grad_norm"),
    ("normalize advantage", "normalize_advantage", "normalize_advantage"),
]
SETTING_ROWS: dict[str, list[tuple[str, Any, Any]]] = {
    "a2c": [
        ("envs", "num_envs", "n_envs"),
        ("env vectorization", "vectorization", lambda s: "DummyVecEnv (Python, in turn)"),
        ("steps per env per update", "n_steps", "n_steps"),
        ("learning rate", "learning_rate", "learning_rate"),
        ("optimizer", "optimizer", "optimizer"),
        (
            "optimizer epsilon (inside the sqrt on both)",
            "optimizer_eps",
            lambda s: s["optimizer_kwargs"].get("eps"),
        ),
        (
            "RMSprop accumulator starts at",
            lambda c: "0 (Keras)" if c["optimizer"] == "rmsprop" else "-",
            lambda s: "1 (TF-like)" if s["optimizer"] == "RMSpropTFLike" else "0",
        ),
        *_POLICY_GRADIENT_ROWS,
    ],
    "ppo": [
        ("envs", "num_envs", "n_envs"),
        ("env vectorization", "vectorization", lambda s: "DummyVecEnv (Python, in turn)"),
        ("steps per env per update", "n_steps", "n_steps"),
        ("minibatch size", "batch_size", "batch_size"),
        ("epochs per update", "n_epochs", "n_epochs"),
        ("learning rate (start)", "learning_rate", "learning_rate"),
        ("learning rate annealed to 0", "anneal_lr", "anneal"),
        ("clip range (start)", "clip_range", "clip_range"),
        ("clip range annealed to 0", "anneal_clip_range", "anneal"),
        *_POLICY_GRADIENT_ROWS,
    ],
    "dqn": [
        ("envs", "num_envs", "n_envs"),
        ("env vectorization", "vectorization", lambda s: "DummyVecEnv (Python)"),
        ("replay size", "buffer_size", "buffer_size"),
        ("learning starts (env steps)", "learning_starts", "learning_starts"),
        ("batch size", "batch_size", "batch_size"),
        ("learning rate", "learning_rate", "learning_rate"),
        ("Adam epsilon", "adam_epsilon", "optimizer_eps"),
        ("env steps per update", "train_frequency", "train_freq"),
        ("gradient steps per update", "gradient_steps", "gradient_steps"),
        (
            "target update every (env steps)",
            lambda c: c["target_update_period"] * c["train_frequency"] // c["gradient_steps"],
            "target_update_interval",
        ),
        ("epsilon start", "exploration_initial_eps", "exploration_initial_eps"),
        ("epsilon end", "exploration_final_eps", "exploration_final_eps"),
        ("epsilon decay (env steps)", "exploration_steps", "exploration_decay_steps"),
        ("gamma", "gamma", "gamma"),
        ("loss", "loss", "loss"),
        ("max grad norm", "max_grad_norm", "max_grad_norm"),
    ],
}


def settings_table(family: str, rlkit_cfg: dict[str, Any], sb3: dict[str, Any]) -> list[str]:
    """Markdown rows comparing rlkit's resolved preset with SB3's settings for one family."""

    def value(getter: Any, source: dict[str, Any]) -> str:
        if not source:
            return "?"
        try:
            got = getter(source) if callable(getter) else source[getter]
        except (KeyError, TypeError, ZeroDivisionError):
            return "?"
        if isinstance(got, float) and got.is_integer() and abs(got) >= 1000:
            got = int(got)
        if isinstance(got, float):
            return f"{got:g}"
        return f"{got:,}" if isinstance(got, int) and not isinstance(got, bool) else str(got)

    lines = ["| setting | rlkit (shipped preset) | SB3 (rl-zoo3) |", "|---|---|---|"]
    for label, rk, sb in SETTING_ROWS[family]:
        lines.append(f"| {label} | {value(rk, rlkit_cfg)} | {value(sb, sb3)} |")
    return lines


def rlkit_config(info: RunInfo | None, out: Path | None = None) -> tuple[dict[str, Any], str]:
    """A run's resolved rlkit settings and where they came from; ({}, "") if unavailable.

    Its ``config.yaml`` (in the run folder, else the copy in ``out``); for a run whose folder
    went with an earlier machine before copies were kept, the shipped preset resolved now for
    its agent and budget, which the caller must say.
    """
    if info is None:
        return {}, ""
    import yaml

    paths = [info.run_dir / "config.yaml"]
    if out is not None:
        paths.append(out / f"{info.spec.name}.config.yaml")
    for path in paths:
        if path.exists():
            try:
                data = yaml.safe_load(path.read_text())
            except yaml.YAMLError:  # a file being rewritten: leave the table's cells empty
                return {}, ""
            return (data, "the run's config.yaml") if isinstance(data, dict) else ({}, "")
    from rlkit import config as config_lib
    from rlkit.agents import get_agent_class

    agent_cls = get_agent_class(info.spec.agent)
    overrides = {"total_steps": info.budget}
    run_cfg, agent_cfg = config_lib.resolve(agent_cls, ENV_ID, overrides=overrides)
    data = yaml.safe_load(config_lib.to_yaml(agent_cls.name, ENV_ID, run_cfg, agent_cfg))
    return data, "the shipped preset, resolved now (the run's own config.yaml was not kept)"


DIFFERENCES = [
    "Env stepping: rlkit steps its envs in ale-py's C++ vector env (threads); SB3 steps "
    "`DummyVecEnv` envs one after the other in Python.",
    "Lost lives: both end the learning episode there. SB3's `EpisodicLifeEnv` also makes the "
    "vector env reset, so `FireResetEnv` presses FIRE and `VecFrameStack` starts a new stack; "
    "rlkit's envs play on (the runner only marks the learning signal). FIRE after a reset: "
    "rlkit presses it for one frame, SB3 for a whole step and then action 2.",
    "Final evaluation: each library's own env. rlkit plays its preprocessed env without any "
    "life-loss handling; SB3 plays its training wrappers and counts whole games as `Monitor` "
    "does (as rl-zoo3's `enjoy.py` does). Same seeds (rlkit's final-evaluation seeds), 30 "
    "episodes, epsilon 0.05.",
    "Checkpoints: rlkit resets its envs after every checkpoint (with a seed derived from the "
    "step), in uninterrupted runs too, which cuts the episodes in progress; SB3's envs restart "
    "only when a run is resumed.",
    "Wall clock: rlkit's elapsed time includes its periodic 5-episode evaluations (every 250k "
    "steps); TensorFlow uses its default thread pools unless a segment names `TF threads` "
    "(`run --rlkit-threads N`), PyTorch the threads in the SB3 cards (`torch_threads`).",
    "SB3's DQN uses `optimize_memory_usage=True` (with `handle_timeout_termination=False`, "
    "which it requires); rl-zoo3's file has it off. It halves the replay memory and changes "
    "nothing else, except that a cut at 108,000 frames counts as terminal.",
]


def readme_text(
    specs: list[RunSpec],
    out: Path,
    plots: list[Path],
    gifs: list[Path],
    infos: dict[str, RunInfo],
) -> str:
    """README.md of the results folder."""
    sys.path.insert(0, str(HERE))
    from provenance import machine_info

    machine = machine_info()
    sb3 = sb3_versions(out, specs)
    rlkit_card = next(
        (
            read_json(out / f"{s.name}.protocol.json")
            for s in specs
            if s.lib == "rlkit" and (out / f"{s.name}.protocol.json").exists()
        ),
        None,
    )
    sb3_cards = {
        s.agent: read_json(out / f"{s.name}.protocol.json")
        for s in specs
        if s.lib == "sb3" and (out / f"{s.name}.protocol.json").exists()
    }
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    commands = [
        "python benchmarks/space_invaders.py run --sb3-python /path/to/sb3-venv/bin/python \\",
        f"    --runs {ALL_RUNS}",
        "python benchmarks/space_invaders.py status",
        "python benchmarks/space_invaders.py report",
    ]
    lines = [
        "# Space Invaders, side by side: rlkit and Stable-Baselines3",
        "",
        "Written by `python benchmarks/space_invaders.py report`; how the runs are made and "
        "resumed is in the docstring of `benchmarks/space_invaders.py`, which run is where "
        "(and which were resumed) in [STATUS.md](STATUS.md).",
        "",
        f"Game: `{ENV_ID}` with the `dqn` protocol on both sides. Budgets: A2C 2,000,000 "
        "agent steps (8M frames), rlkit Dueling DQN and SB3 DQN 250,000 (1M frames), counted "
        "as both libraries count them (one step per env per vector step). Curves: the mean "
        "full-game, unclipped score of the last 100 training episodes, against env steps and "
        "against wall-clock hours. Final evaluation: 30 episodes at epsilon 0.05 on seeds the "
        "run never trained on.",
        "",
        "rlkit runs the shipped preset with the CLI exactly as a user would "
        "(`python -m rlkit.train --agent a2c --env SpaceInvadersNoFrameskip-v4 --seed S "
        "--total-steps 2000000 --run-dir D --checkpoint-every 250000 --quiet`). SB3 runs "
        "rl-zoo3's Atari settings (below); for DQN, epsilon decays over 1M steps as in rl-zoo3's "
        "10M-step schedule, so at 250k steps it is still ~0.75 on both sides. SB3 has no "
        "dueling DQN: its curve is plain DQN. SB3's resume is not bitwise exact (envs restart, "
        "PyTorch's RNG is reseeded); rlkit's is, from its periodic checkpoints.",
        "",
        "```",
        *commands,
        "```",
        "",
        "`run` starts or resumes each run in turn (Ctrl-C: the run in progress writes a "
        "checkpoint and stops; `run` again continues it); run folders live outside git "
        f"(`{DEFAULT_ROOT}`), and `report` copies their `progress.csv`, `results.json` and "
        "protocol cards here.",
        "",
        "## Results",
        "",
        *results_table(specs, out, infos),
        "",
    ]
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    lines += [
        "Thin vertical lines mark where a resumed segment took over. Wall-clock time is each "
        "library's own elapsed time (rlkit's includes its periodic 5-episode evaluations every "
        "250k steps); the machine is shared, so it moves with the load (see STATUS.md).",
        "",
        "## Published reference points",
        "",
        "For orientation only: longer budgets and, for the papers, their own network sizes, "
        "optimizers and evaluation protocols (no-op starts; some use human starts elsewhere).",
        "",
        "| source | budget | Space Invaders score |",
        "|---|---|---|",
        *(f"| {name} | {budget} | {score:g} |" for name, budget, score in REFERENCES),
        "",
        "## Settings side by side",
        "",
    ]
    for family in FAMILIES:
        family_specs = [s for s in specs if s.family == family]
        rk = next((s for s in family_specs if s.lib == "rlkit" and s.name in infos), None)
        sb = next((s for s in family_specs if s.lib == "sb3"), None)
        sb3_card = read_json(out / f"{sb.name}.protocol.json") if sb else None
        sb3_settings = sb3_card.get("settings", {}) if isinstance(sb3_card, dict) else {}
        cfg, source = rlkit_config(infos.get(rk.name) if rk else None, out)
        if not cfg and not sb3_settings:
            continue
        name = {
            "a2c": "A2C",
            "ppo": "PPO",
            "dqn": "DQN family (rlkit: " + (rk.agent if rk else "?") + ")",
        }
        lines += [f"{name[family]}:", "", *settings_table(family, cfg, sb3_settings), ""]
        if rk and source:
            lines += [f"rlkit's column: {rk.name}'s settings, from {source}.", ""]
    lines += ["What else differs:", ""]
    lines += [f"- {d}" for d in DIFFERENCES]
    lines += ["", "## Protocol cards", ""]
    if rlkit_card:
        lines += ["rlkit (`protocol.json` of its runs; the seed differs per run):", "", "```json"]
        lines += [json.dumps(rlkit_card, indent=2), "```", ""]
    for agent, card in sb3_cards.items():
        lines += [f"SB3 {agent} (written by the SB3 child):", "", "```json"]
        lines += [json.dumps(card, indent=2), "```", ""]
    lines += [
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cpu_count']} cores, {machine['memory_gib']} GiB",
        f"- {machine['platform']}, Python {machine['python']}",
        f"- rlkit side: {versions} (commit {machine['commit'][:10]})",
    ]
    if sb3:
        lines.append("- SB3 side: " + ", ".join(f"{k} {v}" for k, v in sb3.items()))
    lines += [f"- load average when this report was written: {load_average()}", ""]
    if gifs:
        lines += ["## Final policies", "", "One episode each, epsilon 0.05, seed 0.", ""]
        lines += [f"- {g.stem}: ![{g.stem}]({g.name})" for g in gifs]
        lines.append("")
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: copy the runs' files, make GIFs and plots, write STATUS.md and README.md."""
    out: Path = args.results
    out.mkdir(parents=True, exist_ok=True)
    specs = parse_runs(args.runs) if args.runs else discover(args.root, out)
    infos: dict[str, RunInfo] = {}
    gifs: list[Path] = []
    if args.root.is_dir():
        for spec in specs:
            info = inspect(spec, args.root, out)
            if not info.run_dir.exists():  # known from its copies only, if at all
                if info.complete:
                    infos[spec.name] = info
                continue
            infos[spec.name] = info
            copied = copy_run_files(info, out)
            print(f"{spec.name}: copied {', '.join(copied) or 'nothing'}")
            if info.complete and not args.no_gifs:
                gif = make_gif(info, out)
                if gif:
                    print(f"{spec.name}: GIF {gif} ({gif.stat().st_size / 1e6:.1f} MB)")
        (out / "STATUS.md").write_text(status_markdown(list(infos.values())))
    gifs = [out / f"{s.name}.gif" for s in specs if (out / f"{s.name}.gif").exists()]
    plots = []
    for family in FAMILIES:
        path = plot_family(family, [s for s in specs if s.family == family], out)
        if path:
            plots.append(path)
            print(f"plot: {path}")
    (out / "README.md").write_text(readme_text(specs, out, plots, gifs, infos))
    print(f"written: {out / 'README.md'}")
    return 0


# -- the SB3 child (runs in SB3's Python) ---------------------------------------------------
class StopFlag:
    """Set by the first SIGINT/SIGTERM (stop at the next step); a second one interrupts."""

    requested = 0

    @classmethod
    def handle(cls, signum: int, _frame: Any) -> None:
        """Signal handler."""
        if cls.requested:
            raise KeyboardInterrupt
        cls.requested = signum


def segment_seed(seed: int, env_steps: int) -> int:
    """The seed of a segment: the run seed at step 0, one derived from (seed, step) after."""
    import numpy as np

    if env_steps == 0:
        return seed
    return int(np.random.SeedSequence([seed, env_steps]).generate_state(1)[0])


def sb3_card(spec: dict[str, Any], model: Any) -> dict[str, Any]:
    """The SB3 run's protocol card: preprocessing, settings and versions."""
    from importlib import metadata

    import gymnasium as gym
    import torch

    if spec["agent"] == "a2c":
        opt = model.policy.optimizer
        settings = {
            "n_envs": model.n_envs,
            "n_steps": model.n_steps,
            "learning_rate": model.learning_rate,
            "gamma": model.gamma,
            "gae_lambda": model.gae_lambda,
            "ent_coef": model.ent_coef,
            "vf_coef": model.vf_coef,
            "max_grad_norm": model.max_grad_norm,
            "normalize_advantage": model.normalize_advantage,
            "optimizer": type(opt).__name__,
            "optimizer_kwargs": {
                k: v for k, v in opt.defaults.items() if k in ("alpha", "eps", "momentum")
            },
        }
    elif spec["agent"] == "ppo":
        settings = {
            "n_envs": model.n_envs,
            "n_steps": model.n_steps,
            "batch_size": model.batch_size,
            "n_epochs": model.n_epochs,
            "learning_rate": PPO_ZOO["learning_rate"],
            "clip_range": PPO_ZOO["clip_range"],
            "anneal": True,  # rl-zoo3's lin_2.5e-4 and lin_0.1
            "gamma": model.gamma,
            "gae_lambda": model.gae_lambda,
            "ent_coef": model.ent_coef,
            "vf_coef": model.vf_coef,
            "max_grad_norm": model.max_grad_norm,
            "normalize_advantage": model.normalize_advantage,
            "optimizer": type(model.policy.optimizer).__name__,
        }
    else:
        settings = {
            "n_envs": model.n_envs,
            "buffer_size": model.buffer_size,
            "learning_rate": model.learning_rate,
            "batch_size": model.batch_size,
            "learning_starts": model.learning_starts,
            "target_update_interval": model.target_update_interval,
            "train_freq": model.train_freq.frequency,
            "gradient_steps": model.gradient_steps,
            "gamma": model.gamma,
            "tau": model.tau,
            "max_grad_norm": model.max_grad_norm,
            "exploration_initial_eps": model.exploration_initial_eps,
            "exploration_final_eps": model.exploration_final_eps,
            "exploration_fraction": model.exploration_fraction,
            "exploration_decay_steps": model.exploration_fraction * spec["budget"],
            "optimize_memory_usage": model.optimize_memory_usage,
            "handle_timeout_termination": False,
            "optimizer": type(model.policy.optimizer).__name__,
            "optimizer_eps": model.policy.optimizer.defaults.get("eps"),
            "loss": "smooth L1 (Huber)",
        }
    versions = {}
    for name in ("stable-baselines3", "torch", "gymnasium", "ale-py", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "env_id": ENV_ID,
        "library": "stable-baselines3",
        "agent": spec["agent"],
        "envs": "make_atari_env (Monitor under AtariWrapper) + VecFrameStack(4), DummyVecEnv",
        "frame_skip": 4,
        "max_pool_last_two_frames": True,
        "sticky_actions": 0.0,
        "noop_max": 30,
        "fire_reset": "FIRE then action 2 after every reset, lost lives included",
        "life_loss": "terminal for learning (EpisodicLifeEnv); the frame stack restarts",
        "reward_clipping": "sign(reward) for learning (ClipRewardEnv)",
        "observation_shape": [84, 84, 4],
        "grayscale": True,
        "step_unit": "agent steps (1 step = 4 frames)",
        "episode_returns": "full game (Monitor under AtariWrapper), unclipped",
        "max_frames_per_episode": gym.spec(ENV_ID).kwargs.get("max_num_frames_per_episode"),
        "settings": settings,
        "torch_threads": torch.get_num_threads(),
        "seed": spec["seed"],
        "versions": versions,
    }


def sb3_child(run_dir_arg: str) -> int:
    """Train (or continue) one SB3 run as ``run_dir/sb3_spec.json`` says; then evaluate it."""
    import gymnasium as gym
    import numpy as np
    import torch

    run_dir = Path(run_dir_arg)
    spec = json.loads((run_dir / "sb3_spec.json").read_text())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    import ale_py
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    sys.path.insert(0, str(REPO))  # rlkit.evaluate's seeds need only numpy
    from rlkit.evaluate import evaluation_seeds

    agent, seed, budget = spec["agent"], int(spec["seed"]), int(spec["budget"])
    every, log_every = int(spec["checkpoint_every"]), int(spec["log_every"])
    is_dqn = agent == "dqn"
    n_envs = SB3_ENVS[agent]
    model_cls = {"a2c": A2C, "ppo": PPO, "dqn": DQN}[agent]
    ckpt_root = run_dir / "checkpoints"
    progress = run_dir / "progress.csv"
    fields = ["time/env_steps", "time/elapsed_s", "time/segment_start", "time/episodes"]
    fields += ["rollout/ep_rew_mean", "rollout/ep_len_mean"]
    if is_dqn:
        fields.append("train/exploration_rate")

    def make_envs(env_seed: int) -> Any:
        return VecFrameStack(make_atari_env(ENV_ID, n_envs=n_envs, seed=env_seed), n_stack=4)

    def build(env: Any) -> Any:
        if is_dqn:
            return DQN(
                "CnnPolicy",
                env,
                buffer_size=int(spec.get("buffer_size") or 100_000),
                learning_rate=1e-4,
                batch_size=32,
                learning_starts=int(spec.get("learning_starts") or 100_000),
                target_update_interval=1000,
                train_freq=4,
                gradient_steps=1,
                exploration_fraction=1_000_000 / budget,  # rl-zoo3's 10 % of 1e7, in steps
                exploration_final_eps=0.01,
                optimize_memory_usage=True,
                replay_buffer_kwargs={"handle_timeout_termination": False},
                seed=seed,
                device="cpu",
                verbose=0,
            )
        if agent == "ppo":  # rl-zoo3's Atari PPO; lin_X: X * progress remaining
            lr, clip = PPO_ZOO["learning_rate"], PPO_ZOO["clip_range"]
            return PPO(
                "CnnPolicy",
                env,
                n_steps=PPO_ZOO["n_steps"],
                n_epochs=PPO_ZOO["n_epochs"],
                batch_size=PPO_ZOO["batch_size"],
                learning_rate=lambda remaining: lr * remaining,
                clip_range=lambda remaining: clip * remaining,
                vf_coef=PPO_ZOO["vf_coef"],
                ent_coef=PPO_ZOO["ent_coef"],
                seed=seed,
                device="cpu",
                verbose=0,
            )
        return A2C(
            "CnnPolicy",
            env,
            ent_coef=0.01,
            vf_coef=0.25,
            policy_kwargs={"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}},
            seed=seed,
            device="cpu",
            verbose=0,
        )

    def save(model: Any, state: dict[str, Any]) -> None:
        """Write checkpoint ``step_<n>`` atomically; keep the newest ``KEEP_CHECKPOINTS``."""
        step = state["env_steps"]
        final = ckpt_root / f"step_{step:09d}"
        tmp = ckpt_root / f".tmp-step_{step:09d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save(tmp / "model.zip")
        if is_dqn:
            model.save_replay_buffer(tmp / "replay_buffer.pkl")
        (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_steps(run_dir)[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(ckpt_root / f"step_{old:09d}", ignore_errors=True)

    def load(env: Any) -> tuple[Any, dict[str, Any]] | None:
        """The newest checkpoint that loads (falling back to older ones), or None."""
        for step in reversed(checkpoint_steps(run_dir)):
            folder = ckpt_root / f"step_{step:09d}"
            try:
                state = json.loads((folder / "state.json").read_text())
                model = model_cls.load(folder / "model.zip", env=env, device="cpu")
                if is_dqn:
                    model.load_replay_buffer(folder / "replay_buffer.pkl")
                    # The envs restart: with optimize_memory_usage the next observation of the
                    # newest stored transition would become the new reset frame, so end that
                    # transition there (SB3's own remedy when it truncates a trajectory).
                    buffer = model.replay_buffer
                    if buffer.full or buffer.pos > 0:
                        buffer.dones[(buffer.pos - 1) % buffer.buffer_size] = True
                return model, state
            except Exception as e:  # a damaged checkpoint: try the one before
                print(f"checkpoint {folder} does not load ({type(e).__name__}: {e})", flush=True)
        return None

    steps0 = checkpoint_steps(run_dir)
    start = steps0[-1] if steps0 else 0
    env = make_envs(segment_seed(seed, start))
    loaded = load(env) if steps0 else None
    if loaded is None:
        model, state = build(env), {"env_steps": 0, "elapsed_s": 0.0, "episodes": 0}
        progress.unlink(missing_ok=True)
    else:
        model, state = loaded
        if model.num_timesteps != state["env_steps"]:
            raise RuntimeError(f"checkpoint says {state['env_steps']}, model {model.num_timesteps}")
        model.set_random_seed(segment_seed(seed, state["env_steps"]))
        # Rows after the checkpoint belong to progress that is being redone.
        if progress.exists():
            n = model.num_timesteps
            with open(progress, newline="") as f:
                kept = [r for r in csv.DictReader(f) if float(r["time/env_steps"]) <= n]
            with open(progress, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(kept)
        print(
            f"resumed at {model.num_timesteps:,} steps; ep_info_buffer holds "
            f"{len(model.ep_info_buffer or [])} episodes",
            flush=True,
        )
    write_json(run_dir / "protocol.json", sb3_card(spec, model))

    class Recorder(BaseCallback):
        """Progress rows every ``log_every`` steps, checkpoints between updates, stop on signal."""

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()
            self.elapsed0, self.episodes = float(state["elapsed_s"]), int(state["episodes"])
            n = self.model.num_timesteps
            self.next_row = (n // log_every + 1) * log_every
            self.next_ckpt = (n // every + 1) * every
            self.last_row = self.segment_start = n

        def elapsed(self) -> float:
            return self.elapsed0 + time.perf_counter() - self.t0

        def snapshot(self) -> dict[str, Any]:
            return {
                "env_steps": int(self.model.num_timesteps),
                "elapsed_s": self.elapsed(),
                "episodes": self.episodes,
                "segment_started": now_text(),
            }

        def row(self) -> None:
            n = int(self.model.num_timesteps)
            buf = list(self.model.ep_info_buffer or [])
            values: dict[str, Any] = {
                "time/env_steps": n,
                "time/elapsed_s": self.elapsed(),
                "time/segment_start": self.segment_start,
                "time/episodes": self.episodes,
            }
            if buf:
                values["rollout/ep_rew_mean"] = float(np.mean([e["r"] for e in buf]))
                # Monitor sits under the frame skip: its lengths are frames, 4 per step.
                values["rollout/ep_len_mean"] = float(np.mean([e["l"] for e in buf])) / 4
            if is_dqn:
                values["train/exploration_rate"] = float(self.model.exploration_rate)
            new = not progress.exists()
            with open(progress, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                if new:
                    w.writeheader()
                w.writerow(values)
            self.last_row = n

        def _on_rollout_start(self) -> None:  # after the previous update: a clean boundary
            n = self.model.num_timesteps
            if n >= self.next_ckpt and n < budget:
                self.next_ckpt = (n // every + 1) * every
                save(self.model, self.snapshot())

        def _on_step(self) -> bool:
            self.episodes += sum("episode" in info for info in self.locals.get("infos", []))
            if self.model.num_timesteps >= self.next_row:
                self.next_row = (self.model.num_timesteps // log_every + 1) * log_every
                self.row()
            return not StopFlag.requested

    signal.signal(signal.SIGINT, StopFlag.handle)
    signal.signal(signal.SIGTERM, StopFlag.handle)
    recorder = Recorder()
    if model.num_timesteps < budget:
        model.learn(
            total_timesteps=budget - model.num_timesteps if loaded else budget,
            callback=recorder,
            reset_num_timesteps=loaded is None,
        )
        if recorder.last_row != model.num_timesteps:
            recorder.row()
        save(model, recorder.snapshot())
        if StopFlag.requested:
            print(f"stopped at {model.num_timesteps:,} steps; checkpoint written", flush=True)
            return 128 + StopFlag.requested
        train_seconds = recorder.elapsed()
    else:
        train_seconds = float(state["elapsed_s"])
    env.close()
    model.save(run_dir / "final_model.zip")

    # Final evaluation: rlkit's seeds and epsilon; one fresh env per episode (its seed);
    # Monitor's "episode" info ends a game (lost lives are only resets of AtariWrapper).
    steps = int(model.num_timesteps)
    seeds = evaluation_seeds(seed, "final", steps, FINAL_EPISODES)
    rng = np.random.default_rng(seeds[0])

    def play(episode_seed: int, frames: list | None = None) -> float:
        kwargs = {"render_mode": "rgb_array"} if frames is not None else None
        venv = VecFrameStack(
            make_atari_env(ENV_ID, n_envs=1, seed=episode_seed, env_kwargs=kwargs), n_stack=4
        )
        try:
            obs = venv.reset()
            n_actions = venv.action_space.n
            while True:
                if frames is not None:
                    frames.append(venv.get_images()[0])
                if rng.random() < FINAL_EPSILON:
                    action = np.array([rng.integers(n_actions)])
                else:
                    action, _ = model.predict(obs, deterministic=True)
                obs, _, _, infos = venv.step(action)
                if "episode" in infos[0]:
                    return float(infos[0]["episode"]["r"])
        finally:
            venv.close()

    t0 = time.perf_counter()
    returns = []
    for episode_seed in seeds:
        if StopFlag.requested:  # trained and checkpointed: the next `run` evaluates again
            print("stopped during the final evaluation", flush=True)
            return 128 + StopFlag.requested
        returns.append(play(episode_seed))
    results = {
        "env_id": ENV_ID,
        "mean_reward": float(np.mean(returns)),
        "std_reward": float(np.std(returns)),
        "n_eval_episodes": len(returns),
        "is_deterministic": False,
        "eval_datetime": datetime.datetime.now().isoformat(timespec="seconds"),
        "returns": returns,
        "library": "stable-baselines3",
        "agent": agent,
        "seed": seed,
        "eval_epsilon": FINAL_EPSILON,
        "train_env_steps": steps,
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - t0,
        "first_eval_seed": seeds[0],
    }
    write_json(run_dir / "results.json", results)
    print(
        f"final evaluation: {results['mean_reward']:.1f} ± {results['std_reward']:.1f} over "
        f"{len(returns)} episodes",
        flush=True,
    )
    try:  # optional: a GIF of one episode (seed 0), if imageio is installed here
        import imageio.v2 as imageio

        frames: list = []
        play(0, frames)
        imageio.mimsave(run_dir / "final_episode.gif", frames, duration=1000 / 30, loop=0)
    except ImportError:
        print("no GIF: imageio is not installed in this Python", flush=True)
    return 0


# -- command line ---------------------------------------------------------------------------
# Issue 14 (A2C, Dueling DQN vs SB3 DQN), issue 15 (PPO) and issue 16 (Rainbow beside Dueling).
ALL_RUNS = (
    "a2c:rlkit:1,a2c:rlkit:2,a2c:sb3:1,a2c:sb3:2,dueling_dqn:rlkit:1,dqn:sb3:1,"
    "rainbow:rlkit:1,ppo:rlkit:1,ppo:sb3:1"
)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="run folders")
    common.add_argument("--results", type=Path, default=RESULTS, help="where reports go")
    r = sub.add_parser("run", parents=[common], help="run or resume each run in turn")
    r.add_argument("--runs", default=ALL_RUNS, help=f"agent:lib:seed list (default {ALL_RUNS})")
    r.add_argument("--sb3-python", default=None, help="a Python with stable-baselines3")
    r.add_argument("--sb3-threads", type=int, default=0, help="torch threads (0: its default)")
    r.add_argument(
        "--rlkit-threads", type=int, default=0, help="TensorFlow threads (0: its default)"
    )
    r.add_argument("--nice", type=int, default=0, help="nice level of the training processes")
    r.add_argument("--wait", action="store_true", help="wait for runs live elsewhere to end")
    r.add_argument("--dry-run", action="store_true", help="say what would run; change nothing")
    r.add_argument("--steps", type=int, default=None, help="budget override (smoke tests)")
    r.add_argument("--checkpoint-every", type=int, default=None, help="(smoke tests)")
    r.add_argument(
        "--sb3-buffer-size", type=int, default=None, help="SB3 DQN replay size (smoke tests)"
    )
    r.add_argument(
        "--learning-starts", type=int, default=None, help="DQN learning_starts, both (smoke tests)"
    )
    s = sub.add_parser("status", parents=[common], help="write STATUS.md")
    s.add_argument("--runs", default=None, help="agent:lib:seed list (default: all under --root)")
    rep = sub.add_parser("report", parents=[common], help="plots, README.md, copies")
    rep.add_argument("--runs", default=None, help="agent:lib:seed list (default: all found)")
    rep.add_argument("--no-gifs", action="store_true", help="skip the GIFs of final policies")
    pk = sub.add_parser(
        "pack", parents=[common], help="carry unfinished runs to the next machine (in git)"
    )
    pk.add_argument("--runs", default=None, help="agent:lib:seed list (default: all under --root)")
    pk.add_argument("--carry", type=Path, default=CARRY, help="where the archives go")
    up = sub.add_parser("unpack", parents=[common], help="restore carried runs under --root")
    up.add_argument("--carry", type=Path, default=CARRY, help="where the archives are")
    child = sub.add_parser("_sb3-child", help=argparse.SUPPRESS)
    child.add_argument("run_dir")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    if args.command == "_sb3-child":
        return sb3_child(args.run_dir)
    args.root = args.root.resolve()
    try:
        commands = {"run": cmd_run, "status": cmd_status, "report": cmd_report}
        commands.update(pack=cmd_pack, unpack=cmd_unpack)
        return commands[args.command](args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

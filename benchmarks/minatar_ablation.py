"""MinAtar: rlkit's DQN, Rainbow and 3 Rainbow ablations, side by side with SB3's DQN (issue 16).

Usage:
    python benchmarks/minatar_ablation.py run --sb3-python /path/to/sb3-venv/bin/python \
        [--games SpaceInvaders,Breakout] [--seeds 1-3] [--runs-dir DIR] [--tag T] \
        [--arms dqn,rainbow,rainbow-nstep,rainbow-per,rainbow-dist,sb3-dqn] [--sb3-threads N]
    python benchmarks/minatar_ablation.py report [--tag T]   # table.md and curves_<game>.png

Smoke test (tiny budget, evaluations every third of it; its rows carry a tag, ``maxN`` by
default, which ``report`` ignores unless given it):
    python benchmarks/minatar_ablation.py run --max-steps 3000 --games Breakout --arms dqn,sb3-dqn \
        --seeds 1 --sb3-python /path/to/sb3-venv/bin/python [--results-dir /tmp/minatar]
    python benchmarks/minatar_ablation.py report --tag max3000   # into results/minatar/max3000/
(``--results-dir`` keeps the rows, tables and plots out of ``benchmarks/results/minatar``.)

Arms, each on ``MinAtar/<Game>-v1`` (10x10xC boolean grids, the minimal action set):
- ``dqn``: rlkit's DQN preset.
- ``rainbow``: rlkit's Rainbow preset (Double + Dueling + 3-step returns + prioritized replay
  + C51 + noisy nets).
- ``rainbow-nstep``: Rainbow less multi-step returns (``--set n_step=1``).
- ``rainbow-per``: Rainbow less prioritized replay (``--set prioritized_replay=false``).
- ``rainbow-dist``: Rainbow less the distributional head (``--set distributional=none``).
- ``sb3-dqn``: Stable-Baselines3's DQN with the settings of rlkit's resolved DQN preset in
  SB3's words (``sb3_settings``; a setting SB3 cannot express skips the arm, naming it), in
  the SB3 virtualenv ``--sb3-python`` (it needs stable-baselines3, torch, gymnasium,
  minatar and pyyaml: the child plays its episodes with rlkit's own env and evaluation
  code from this checkout). MinAtar's boolean grids go through ``MinAtarCNN``, a
  ``BaseFeaturesExtractor`` with rlkit's MinAtar torso (Conv2D 16 3x3 stride 1, ReLU,
  flatten), then the preset's dense layers (``hidden_sizes``) and the Q head.

Protocol, the same for every arm: 1,000,000 env steps on one env; every 50,000 steps 10
greedy episodes from ``rlkit.evaluate.evaluation_seeds(seed, "periodic", step, 10)`` (fresh,
never reused); at the end 30 greedy episodes from ``evaluation_seeds(seed, "final", steps,
30)``, start states the run never trained or evaluated on. The rlkit arms run the CLI
exactly as a user would, in a fresh process each::

    python -m rlkit.train --agent rainbow --env MinAtar/Breakout-v1 --seed 1 --run-dir D \
        --quiet --checkpoint-every 50000 --set prioritized_replay=false

plus only the flags that bring the preset to the protocol where it differs
(``--total-steps``, ``--eval-every``, ``--eval-episodes``, ``--final-eval-episodes``, and
``--set stop_reward=null`` / ``eval_epsilon=0``): with the MinAtar preset sections none is
needed. The SB3 side evaluates through ``learning.sb3_evaluation_callback`` (after the update
that follows the step, as rlkit's loop does) with rlkit's ``play_episodes`` on rlkit's
seeds. rlkit's curve is its evaluator's own history (``learning.read_eval_history``).

Stopping and resuming (``run`` is safe to kill at any moment and to rerun):
- A (arm, game, seed, tag) with a row in ``runs.csv`` is done and skipped.
- An rlkit run whose folder holds a checkpoint that verifies is continued with
  ``python -m rlkit.train --resume D --quiet`` (its ``config.yaml`` holds every setting);
  one that never wrote a checkpoint is started again; one that finished (``results.json``)
  but has no row yet is recorded from its folder without training. A resume from a periodic
  checkpoint continues exactly; one from the checkpoint a stop writes between two periodic
  ones is a valid continuation, not a bitwise copy of an uninterrupted run (rlkit resets
  its envs at every checkpoint).
- SB3 runs cannot resume: an unfinished one is started again from step 0.
- Ctrl-C or SIGTERM to ``run`` is passed on to the running child once: rlkit writes a
  checkpoint and exits, then ``run`` stops; a second one stops the child at once (a third
  kills it). The children run in their own session and get SIGTERM if ``run`` itself dies
  (Linux), and they hold ``run``'s lock on ``--runs-dir`` until they exit, so a new ``run``
  waits for the old child instead of writing into the same folder.
- Runs go one at a time, in the order seed, game, arm (all arms get seed 1 first).
  Lowering their priority is up to the caller (``nice -n 10 python benchmarks/...``).

Each run folder (``<runs-dir>/<tag or main>/<arm>/<game>/seed<S>``, outside git) also holds
``minatar.log`` (the children's output) and, for rlkit, ``minatar.json`` (every process that
worked on it: the step it started from, its command, dates and exit code). A finished rlkit
run keeps its last two checkpoints (each with the replay buffer).

What still differs between the ``dqn`` and ``sb3-dqn`` arms: SB3 acts uniformly at random
for its first ``learning_starts`` steps, rlkit epsilon-greedily (epsilon near 1 there); SB3
updates after every ``train_freq`` env steps once past ``learning_starts``, rlkit's DQN from
``learning_starts`` on; SB3 syncs the target every ``target_update_period * train_frequency
/ gradient_steps`` env steps, counted from step 0, rlkit every ``target_update_period``
gradient steps; weight initializations differ (Keras' Glorot uniform vs PyTorch's
defaults), as do the Adam implementations. Seconds are wall time with each library's
default thread count (``--sb3-threads N`` sets PyTorch's): comparable only between runs of
one sitting on a quiet machine. On a loaded 2-core machine PyTorch's default threads can
slow SB3 by an order of magnitude: a 3,000-step Breakout smoke run with the DQN ``default``
section (4 gradient steps of 128 per 4 env steps), load average 5, had not finished after
10 minutes with PyTorch's 2 threads and took 39 s with ``--sb3-threads 1``. TensorFlow's
default threads do the same to rlkit: runs recorded at 171-394 env steps/s on a loaded machine
train at 950-1,750 with ``--rlkit-threads 1`` (rainbow and dqn, load average 3). Give both
sides one thread (``--sb3-threads 1 --rlkit-threads 1``) when anything else runs.

Output (``benchmarks/results/minatar/``, or ``--results-dir``):
- ``runs.csv``: one row per finished run (lib, arm, game, seed, budget, env_steps,
  train_seconds, resumed_from, steps_per_second, final_mean, final_std, final_returns,
  versions, date, tag, command). ``train_seconds`` is the run's training time (periodic
  evaluations excluded), summed over every process that worked on it (rlkit's
  ``results.json`` carries the earlier processes' time across a resume; SB3 runs never
  resume), ``resumed_from`` the env step the last process started at (0 for a run done in
  one go) and ``steps_per_second`` = env_steps / train_seconds. (Rows written before
  session 13 divided only the last process's steps by that sum, which understated resumed
  runs; ``report`` recomputes the figure from the two columns.) ``command`` is the command
  that started the run.
- ``curves.csv``: every periodic evaluation (arm, game, seed, env_steps, eval_mean, tag).
- ``table.md`` and ``curves_<game>.png`` from ``report``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# This checkout's rlkit (not another one installed in the environment), and `learning`,
# which sits next to this file (in SB3's Python too).
sys.path[:] = [str(HERE), str(REPO), *(p for p in sys.path if p not in (str(HERE), str(REPO)))]
import learning as lb  # noqa: E402  (statistics, CSV rows, SB3 probe and evaluation callback)

OUT = HERE / "results" / "minatar"
ROWS = OUT / "runs.csv"
CURVES = OUT / "curves.csv"
RUNS_DIR = REPO.parent / "runs" / "minatar"  # next to the checkout, outside git
LOCK_NAME = ".minatar.lock"
LEDGER_NAME = "minatar.json"
LOG_NAME = "minatar.log"

GAMES = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
DEFAULT_GAMES = "SpaceInvaders,Breakout"
# rlkit arms: the agent and the ``--set`` overrides that remove one component.
RLKIT_ARMS: dict[str, tuple[str, dict[str, str]]] = {
    "dqn": ("dqn", {}),
    "rainbow": ("rainbow", {}),
    "rainbow-nstep": ("rainbow", {"n_step": "1"}),
    "rainbow-per": ("rainbow", {"prioritized_replay": "false"}),
    "rainbow-dist": ("rainbow", {"distributional": "none"}),
}
SB3_ARMS = {"sb3-dqn": "dqn"}  # SB3 arm -> the rlkit preset whose settings it translates
ARMS = (*RLKIT_ARMS, *SB3_ARMS)
ABLATIONS = {  # ablated arm -> the Rainbow component it removes
    "rainbow-nstep": "multi-step returns (n_step 3 -> 1)",
    "rainbow-per": "prioritized replay (-> uniform)",
    "rainbow-dist": "distributional head (C51 -> expected values)",
}
DEFAULT_SEEDS = "1-3"
BUDGET = 1_000_000
EVAL_EVERY = 50_000
EVAL_EPISODES = 10
FINAL_EPISODES = 30
CONV_FILTERS = 16  # rlkit's MinAtar torso: Conv2D 16 3x3 stride 1, ReLU, flatten
INTERRUPTED = (130, 143, -signal.SIGINT, -signal.SIGTERM)  # exit codes of a stopped child

ROW_FIELDS = [
    "lib",
    "arm",
    "game",
    "seed",
    "budget",
    "env_steps",
    "train_seconds",
    "resumed_from",
    "steps_per_second",
    "final_mean",
    "final_std",
    "final_returns",
    "versions",
    "date",
    "tag",
    "command",
]
CURVE_FIELDS = ["arm", "game", "seed", "env_steps", "eval_mean", "tag"]


# -- planning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What one (arm, game) runs: the protocol and, for rlkit, the CLI's arguments."""

    arm: str
    game: str
    env_id: str
    budget: int
    eval_every: int
    eval_episodes: int
    final_episodes: int
    cli_args: tuple[str, ...]  # rlkit: after --agent/--env/--seed/--run-dir/--quiet


def env_id(game: str) -> str:
    """The gymnasium id of a MinAtar game (minimal action set)."""
    return f"MinAtar/{game}-v1"


def lib_of(arm: str) -> str:
    """``rlkit`` or ``sb3``."""
    return "sb3" if arm in SB3_ARMS else "rlkit"


def parse_names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    """Comma-separated names, each one of ``allowed``, in the order given, no repeats.

    Raises:
        ValueError: naming an unknown one and the choices.
    """
    names: list[str] = []
    for item in text.split(","):
        name = item.strip()
        if name not in allowed:
            raise ValueError(f"unknown {what} {name!r}: choose from {', '.join(allowed)}")
        if name not in names:
            names.append(name)
    return names


def default_tag(tag: str | None, max_steps: int | None) -> str:
    """The rows' tag: as given, else ``maxN`` for a capped budget, else none.

    Raises:
        ValueError: for a capped budget with an empty tag (it would mix with real rows).
    """
    resolved = tag if tag is not None else (f"max{max_steps}" if max_steps else "")
    if max_steps is not None and not resolved:
        raise ValueError("--max-steps is for smoke tests: its rows need a --tag")
    return resolved


def protocol(max_steps: int | None = None) -> tuple[int, int]:
    """(budget, eval_every): 1M and 50k, or a smoke budget evaluated every third of it."""
    budget, every = BUDGET, EVAL_EVERY
    if max_steps is not None and max_steps < budget:
        budget, every = max_steps, min(EVAL_EVERY, max(1, max_steps // 3))
    return budget, every


def arm_args(arm: str) -> list[str]:
    """rlkit CLI arguments naming the arm's agent and its overrides.

    Example: ``arm_args("rainbow-per") == ["--agent", "rainbow", "--set",
    "prioritized_replay=false"]``.

    Raises:
        ValueError: for an arm that is not rlkit's.
    """
    if arm not in RLKIT_ARMS:
        raise ValueError(f"{arm!r} is not an rlkit arm ({', '.join(RLKIT_ARMS)})")
    agent, overrides = RLKIT_ARMS[arm]
    args = ["--agent", agent]
    for key, value in overrides.items():
        args += ["--set", f"{key}={value}"]
    return args


def protocol_settings(budget: int, eval_every: int) -> dict[str, Any]:
    """The run settings every arm runs under: its budget, evaluations, no stop."""
    return {
        "total_steps": budget,
        "eval_every": eval_every,
        "eval_episodes": EVAL_EPISODES,
        "final_eval_episodes": FINAL_EPISODES,
        "stop_reward": None,  # every arm trains for the whole budget
        "eval_epsilon": 0,
    }


# The protocol's settings that have a CLI flag of their own (the others go by --set).
_PROTOCOL_FLAGS = {
    "total_steps": "--total-steps",
    "eval_every": "--eval-every",
    "eval_episodes": "--eval-episodes",
    "final_eval_episodes": "--final-eval-episodes",
}


def protocol_args(run: Any, budget: int, eval_every: int) -> list[str]:
    """CLI flags that bring a resolved ``RunConfig`` to the protocol, then the checkpoints.

    Only settings where the preset differs get a flag, so with a preset that already
    follows the protocol the command is the user's plain one plus ``--checkpoint-every``.
    """
    args: list[str] = []
    for key, value in protocol_settings(budget, eval_every).items():
        if getattr(run, key) == value:
            continue
        if key in _PROTOCOL_FLAGS:
            args += [_PROTOCOL_FLAGS[key], str(value)]
        else:
            args += ["--set", f"{key}={'null' if value is None else value}"]
    return [*args, "--checkpoint-every", str(eval_every)]


def resolve_arm(agent: str, game: str, overrides: Mapping[str, str]) -> tuple[Any, Any]:
    """rlkit's resolved (run, agent) settings, as the CLI would resolve them (imports TF).

    Raises:
        RlkitError: an unknown agent or setting (e.g. Rainbow's, in an rlkit without it).
    """
    from rlkit.agents import get_agent_class
    from rlkit.config import parse_overrides, resolve

    pairs = [f"{key}={value}" for key, value in overrides.items()]
    return resolve(get_agent_class(agent), env_id(game), overrides=parse_overrides(pairs))


def plan_arm(arm: str, game: str, max_steps: int | None = None) -> tuple[Plan, Any, Any]:
    """The arm's plan and rlkit's resolved settings (for SB3: of the preset it translates).

    Raises:
        RlkitError: if this rlkit cannot resolve the arm.
    """
    agent, overrides = RLKIT_ARMS.get(arm) or (SB3_ARMS[arm], {})
    run, cfg = resolve_arm(agent, game, overrides)
    budget, every = protocol(max_steps)
    cli = cli_args(arm, run, budget, every) if arm in RLKIT_ARMS else ()
    plan = Plan(arm, game, env_id(game), budget, every, EVAL_EPISODES, FINAL_EPISODES, cli)
    return plan, run, cfg


def cli_args(arm: str, run: Any, budget: int, eval_every: int) -> tuple[str, ...]:
    """An rlkit arm's CLI arguments after ``--quiet``: the protocol's flags, then its ``--set``."""
    return (*protocol_args(run, budget, eval_every), *arm_args(arm)[2:])


def rlkit_command(
    plan: Plan, seed: int, run_dir: Path, resume: bool = False, threads: int | None = None
) -> list[str]:
    """The rlkit CLI command of a run: a fresh start, or ``--resume`` of its folder.

    ``threads``: TensorFlow's threads (``--threads``; None: its default, one per core).
    """
    cmd = [sys.executable, "-m", "rlkit.train"]
    if threads:
        cmd += ["--threads", str(threads)]
    if resume:  # the run's config.yaml holds the arm's settings and the protocol
        return [*cmd, "--resume", str(run_dir), "--quiet"]
    agent = RLKIT_ARMS[plan.arm][0]
    cmd += ["--agent", agent, "--env", plan.env_id, "--seed", str(seed)]
    return [*cmd, "--run-dir", str(run_dir), "--quiet", *plan.cli_args]


def shown(cmd: Sequence[str]) -> str:
    """A command as a user would type it (``python`` for this interpreter)."""
    return shlex.join(["python" if c == sys.executable else c for c in cmd])


# -- SB3's settings -----------------------------------------------------------------------
def sb3_settings(cfg: Any, budget: int) -> dict[str, Any]:
    """rlkit's resolved DQN settings in SB3's words, for a run of ``budget`` env steps.

    SB3 counts ``target_update_interval`` in env steps, rlkit's ``target_update_period`` in
    gradient steps: interval = period * train_frequency / gradient_steps (250 * 4 / 1 =
    1,000 on MinAtar). SB3's epsilon decays over ``exploration_fraction`` of the budget:
    exploration_steps / budget (0.25 = 250k / 1M; above 1 for a smoke budget, which keeps
    the same per-step schedule). Adam's epsilon goes to SB3's optimizer.
    """
    return {
        "learning_rate": cfg.learning_rate,
        "adam_epsilon": cfg.adam_epsilon,
        "batch_size": cfg.batch_size,
        "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts,
        "gamma": cfg.gamma,
        "train_freq": cfg.train_frequency,
        "gradient_steps": cfg.gradient_steps,
        "target_update_interval": round(
            cfg.target_update_period * cfg.train_frequency / cfg.gradient_steps
        ),
        "tau": cfg.tau,
        "exploration_fraction": cfg.exploration_steps / budget,
        "exploration_initial_eps": cfg.exploration_initial_eps,
        "exploration_final_eps": cfg.exploration_final_eps,
        "max_grad_norm": cfg.max_grad_norm,
        "conv_filters": CONV_FILTERS,
        "net_arch": list(cfg.hidden_sizes),
        "activation": cfg.activation,
    }


def sb3_problems(run: Any, cfg: Any) -> list[str]:
    """Settings of rlkit's resolved DQN preset that SB3's DQN (as run here) cannot match."""
    problems = []
    if run.num_envs != 1:
        problems.append(f"num_envs: rlkit {run.num_envs}, the SB3 side runs 1")
    if cfg.loss != "huber":
        problems.append(f"loss: rlkit {cfg.loss}, SB3 DQN's is Huber")
    interval = cfg.target_update_period * cfg.train_frequency / cfg.gradient_steps
    if not float(interval).is_integer():
        problems.append(
            f"target_update_period {cfg.target_update_period} gradient steps is "
            f"{interval:g} env steps, not a whole number for SB3's target_update_interval"
        )
    if cfg.activation not in ("relu", "tanh", "elu"):
        problems.append(f"activation: {cfg.activation} has no PyTorch counterpart here")
    if getattr(cfg, "mixed_precision", False) not in (False, "false"):
        problems.append("mixed_precision: the SB3 side trains in float32")
    return problems


def sb3_probe(python: str | None) -> str | None:
    """Versions of ``python``'s SB3 side, or None (with a message) if it cannot run it."""
    versions = lb.sb3_version(python)
    if versions is None:
        return None
    probe = "import importlib.metadata as m, minatar, yaml; print(m.version('minatar'))"
    try:
        proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"SB3 skipped: cannot run {python}: {e}")
        return None
    if proc.returncode != 0:
        print(
            f"SB3 skipped: {python} lacks minatar or pyyaml (the child uses rlkit's env and "
            f"evaluation code): {python} -m pip install minatar pyyaml"
        )
        return None
    return f"{versions}; minatar {proc.stdout.strip()}"


# -- run folders --------------------------------------------------------------------------
def rlkit_state(run_dir: Path, budget: int) -> tuple[str, int]:
    """What to do with an rlkit run folder: ``finished``, ``resume`` or ``fresh``, and a step.

    ``finished``: ``results.json`` of a run of at least ``budget`` steps (its step count);
    ``resume``: no results, a checkpoint that verifies and ``config.yaml`` (the step it
    resumes from); ``fresh``: anything else (step 0), including results of a shorter budget.
    """
    results = run_dir / "results.json"
    if results.is_file():
        try:
            steps = int(json.loads(results.read_text())["train_env_steps"])
        except (OSError, ValueError, KeyError):
            steps = -1
        return ("finished", steps) if steps >= budget else ("fresh", 0)
    step = lb.resume_point(run_dir) if run_dir.is_dir() else None
    if step is not None and (run_dir / "config.yaml").is_file():
        return "resume", step
    return "fresh", 0


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file renamed over the old one)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_ledger(run_dir: Path) -> dict[str, Any]:
    """The folder's ``minatar.json`` (an empty ledger if there is none)."""
    try:
        return json.loads((run_dir / LEDGER_NAME).read_text())
    except (OSError, ValueError):
        return {"segments": []}


def now_text() -> str:
    """Local date and time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S")


# -- children -----------------------------------------------------------------------------
def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM (and SIGHUP) stop ``run`` the way Ctrl-C does."""
    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {s: signal.signal(s, _raise_interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def runs_lock(runs_dir: Path, wait_seconds: float = 120.0) -> Iterator[int]:
    """Hold ``runs_dir``'s lock (an ``flock``); yield its descriptor for the children to keep.

    The lock is held as long as any process keeps the descriptor open: a child that
    outlives a killed ``run`` (writing its last checkpoint) keeps it until it exits.

    Raises:
        RuntimeError: if another holder keeps it for ``wait_seconds``.
    """
    import fcntl

    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + wait_seconds, False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another `minatar_ablation.py run`, or a run it started, still works in "
                        f"{runs_dir}; wait for it (or stop it) and run again"
                    ) from None
                if not told:
                    print(f"waiting for the process that holds {runs_dir / LOCK_NAME} ...")
                    told = True
                time.sleep(1.0)
        yield fd
    finally:
        os.close(fd)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """Ask Linux to send this process SIGTERM when its parent (``run``) dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_child(
    cmd: Sequence[str],
    log_path: Path,
    keep_fds: Sequence[int] = (),
    on_stop: str = "the run writes a checkpoint and exits",
) -> int:
    """Run ``cmd`` from the checkout, its output appended to ``log_path``; return its exit code.

    The child has a session of its own, so a Ctrl-C at the terminal reaches only this
    process, which passes it on once as SIGTERM (rlkit: checkpoint and exit); a second one
    is passed on too (rlkit: stop at once), a third kills the child.

    Raises:
        KeyboardInterrupt: after the child exited, if the stop came from here.
    """
    with open(log_path, "a") as log:
        log.write(f"\n== {now_text()}: {shown(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            cwd=REPO,  # `-m rlkit.train` imports this checkout's rlkit
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(keep_fds),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    stops = 0
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            stops += 1
            if stops == 1:
                print(f"\nstopping: {on_stop} (Ctrl-C again: at once)", file=sys.stderr, flush=True)
            if stops <= 2:
                proc.send_signal(signal.SIGTERM)
            else:
                proc.kill()
    if stops:
        raise KeyboardInterrupt
    return code


def log_tail(log_path: Path, lines: int = 15) -> str:
    """The last lines of a child's log."""
    try:
        return "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- rlkit runs ---------------------------------------------------------------------------
def read_rlkit_run(run_dir: Path) -> dict[str, Any]:
    """A finished rlkit run's result, from its ``results.json``, checkpoint and ledger."""
    res = json.loads((run_dir / "results.json").read_text())
    segments = read_ledger(run_dir)["segments"]
    return {
        "env_steps": int(res["train_env_steps"]),
        "train_seconds": float(res["train_seconds"]),
        "resumed_from": int(segments[-1]["start"]) if segments else 0,
        "evaluations": lb.read_eval_history(run_dir),
        "returns": res["returns"],
    }


def run_rlkit(
    plan: Plan,
    seed: int,
    run_dir: Path,
    keep_fds: Sequence[int] = (),
    expected: tuple[dict[str, Any], dict[str, Any]] | None = None,
    threads: int | None = None,
) -> dict:
    """Start, resume or just read one rlkit run; return its result.

    ``expected`` (``prepare``'s): a folder made with other settings is set aside first.
    ``threads``: TensorFlow's threads of the child (None: its default).

    Raises:
        RuntimeError: if the CLI failed (the log's tail in the message).
        KeyboardInterrupt: if ``run`` was stopped (the child checkpointed first).
    """
    if expected is not None:
        lb.set_aside_if_stale(run_dir, *expected)
    state, step = rlkit_state(run_dir, plan.budget)
    if state == "finished":
        print(f"  finished earlier ({step:,} steps): recorded from {run_dir}", flush=True)
        return read_rlkit_run(run_dir)
    if state == "fresh" and run_dir.exists():  # an unfinished run with nothing to resume
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = rlkit_command(plan, seed, run_dir, resume=state == "resume", threads=threads)
    print(f"  {'resume from step ' + format(step, ',') if step else 'start'}: {shown(cmd)}")
    ledger = read_ledger(run_dir)
    ledger.update(arm=plan.arm, game=plan.game, seed=seed, budget=plan.budget)
    segment = {"start": step, "command": shown(cmd), "started": now_text()}
    ledger["segments"].append(segment)
    write_json(run_dir / LEDGER_NAME, ledger)
    try:
        code = run_child(cmd, run_dir / LOG_NAME, keep_fds)
    except KeyboardInterrupt:
        segment.update(ended=now_text(), exit="stopped by run")
        write_json(run_dir / LEDGER_NAME, ledger)
        raise
    segment.update(ended=now_text(), exit=code)
    write_json(run_dir / LEDGER_NAME, ledger)
    if code != 0:
        what = "was stopped from outside" if code in INTERRUPTED else "failed"
        raise RuntimeError(
            f"rlkit.train {what} (exit {code}); `run` again resumes it. Log "
            f"{run_dir / LOG_NAME}:\n{log_tail(run_dir / LOG_NAME)}"
        )
    return read_rlkit_run(run_dir)


# -- SB3 runs -----------------------------------------------------------------------------
def sb3_command(python: str, run_dir: Path) -> list[str]:
    """The SB3 child's command (this script in SB3's Python)."""
    return [python, str(Path(__file__).resolve()), "_sb3-child", str(run_dir / "spec.json")]


def run_sb3(
    python: str,
    plan: Plan,
    settings: Mapping[str, Any],
    seed: int,
    run_dir: Path,
    keep_fds: Sequence[int] = (),
    threads: int | None = None,
) -> dict:
    """Train SB3's DQN from step 0 in a fresh process (an unfinished run starts over).

    A folder whose ``result.json`` covers the budget (the row was not written) is recorded
    as it is.

    Raises:
        RuntimeError: if the child failed (the log's tail in the message).
        KeyboardInterrupt: if ``run`` was stopped.
    """
    result_path = run_dir / "result.json"
    if result_path.is_file():
        res = json.loads(result_path.read_text())
        if int(res["env_steps"]) >= plan.budget:
            print(f"  finished earlier: recorded from {run_dir}", flush=True)
            return {**res, "resumed_from": 0}
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    spec = {**asdict(plan), "seed": seed, "settings": dict(settings), "threads": threads}
    spec["result_path"] = str(result_path)
    write_json(run_dir / "spec.json", spec)
    cmd = sb3_command(python, run_dir)
    print(f"  start: {shown(cmd)}", flush=True)
    code = run_child(cmd, run_dir / LOG_NAME, keep_fds, on_stop="the SB3 run ends (no resume)")
    if code != 0:
        raise RuntimeError(
            f"SB3 child exited {code}; `run` again starts it over. Log "
            f"{run_dir / LOG_NAME}:\n{log_tail(run_dir / LOG_NAME)}"
        )
    return {**json.loads(result_path.read_text()), "resumed_from": 0}


def sb3_child(spec_path: str) -> int:
    """Train SB3's DQN as the spec says and write its result JSON. Runs in SB3's Python."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    sys.path.insert(0, str(REPO))  # rlkit's env and evaluation code need no TensorFlow
    from rlkit.envs import make_env
    from rlkit.evaluate import evaluation_seeds, play_episodes

    spec = json.loads(Path(spec_path).read_text())
    s, env_name, seed, budget = spec["settings"], spec["env_id"], spec["seed"], spec["budget"]
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU}
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])

    class MinAtarCNN(BaseFeaturesExtractor):
        """rlkit's MinAtar torso: [B, 10, 10, C] 0/1 grids -> Conv2D 16 3x3 -> ReLU -> flat."""

        def __init__(self, observation_space: Any, filters: int = CONV_FILTERS) -> None:
            height, width, channels = observation_space.shape
            super().__init__(observation_space, features_dim=filters * (height - 2) * (width - 2))
            self.conv = torch.nn.Conv2d(channels, filters, kernel_size=3, stride=1)

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            x = observations.float().permute(0, 3, 1, 2)  # [B, C, H, W]
            return torch.relu(self.conv(x)).flatten(1)  # [B, 16 * 8 * 8]

    def play(model: Any, seeds: list[int]) -> list[float]:
        """Greedy episodes through rlkit's own evaluation, episode i reset with seeds[i]."""

        def greedy(obs: np.ndarray) -> np.ndarray:
            return model.predict(obs, deterministic=True)[0]  # [1, ...] -> [1]

        return [float(r) for r in play_episodes(greedy, env_name, len(seeds), seed=seeds)]

    envs = make_vec_env(lambda: make_env(env_name), n_envs=1, seed=seed)
    model = DQN(
        "MlpPolicy",
        envs,
        learning_rate=s["learning_rate"],
        buffer_size=s["buffer_size"],
        learning_starts=s["learning_starts"],
        batch_size=s["batch_size"],
        tau=s["tau"],
        gamma=s["gamma"],
        train_freq=s["train_freq"],
        gradient_steps=s["gradient_steps"],
        target_update_interval=s["target_update_interval"],
        exploration_fraction=s["exploration_fraction"],
        exploration_initial_eps=s["exploration_initial_eps"],
        exploration_final_eps=s["exploration_final_eps"],
        max_grad_norm=s["max_grad_norm"],
        policy_kwargs={
            "features_extractor_class": MinAtarCNN,
            "features_extractor_kwargs": {"filters": s["conv_filters"]},
            "net_arch": s["net_arch"],
            "activation_fn": activation[s["activation"]],
            "normalize_images": False,
            "optimizer_kwargs": {"eps": s["adam_epsilon"]},
        },
        seed=seed,
        device="cpu",
    )
    learning_starts = s["learning_starts"]

    def update_follows(env_steps: int) -> bool:
        return env_steps > learning_starts

    callback = lb.sb3_evaluation_callback(
        BaseCallback,
        play,
        seed=seed,
        every=spec["eval_every"],
        eval_episodes=spec["eval_episodes"],
        budget=budget,
        rollout_steps=s["train_freq"],
        update_follows=update_follows,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=budget, callback=callback)
    seconds = time.perf_counter() - t0
    env_steps = int(model.num_timesteps)
    final = evaluation_seeds(seed, "final", env_steps, spec["final_episodes"])
    result = {
        "env_steps": env_steps,
        "train_seconds": seconds - callback.eval_seconds,  # as rlkit's results.json
        "evaluations": callback.history,
        "returns": play(model, final),
    }
    write_json(Path(spec["result_path"]), result)
    envs.close()
    return 0


# -- rows ---------------------------------------------------------------------------------
def run_key(row: Mapping[str, Any]) -> tuple[str, str, int, str]:
    """(arm, game, seed, tag) of a row."""
    return row["arm"], row["game"], int(row["seed"]), row.get("tag") or ""


def drop_curves(key: tuple[str, str, int, str]) -> None:
    """Remove a run's curve rows (left by a run stopped before its row was written)."""
    rows = lb.read_csv(CURVES)
    kept = [r for r in rows if run_key(r) != key]
    if len(kept) != len(rows):
        tmp = CURVES.with_name(f".{CURVES.name}.tmp")
        tmp.unlink(missing_ok=True)
        lb.append_csv(tmp, CURVE_FIELDS, kept)
        os.replace(tmp, CURVES)


def record(
    plan: Plan,
    seed: int,
    tag: str,
    versions: str,
    res: Mapping[str, Any],
    command: str,
) -> dict[str, Any]:
    """Write a finished run's curve rows, then its row (the row marks the run done)."""
    key = (plan.arm, plan.game, seed, tag)
    drop_curves(key)
    curve = [
        {
            "arm": plan.arm,
            "game": plan.game,
            "seed": seed,
            "env_steps": int(e["env_steps"]),
            "eval_mean": round(float(e["mean_reward"]), 3),
            "tag": tag,
        }
        for e in res["evaluations"]
    ]
    lb.append_csv(CURVES, CURVE_FIELDS, curve)
    returns = np.asarray(res["returns"], dtype=float)
    trained = int(res["env_steps"])  # train_seconds covers every process of the run
    seconds = float(res["train_seconds"])
    row = {
        "lib": lib_of(plan.arm),
        "arm": plan.arm,
        "game": plan.game,
        "seed": seed,
        "budget": plan.budget,
        "env_steps": int(res["env_steps"]),
        "train_seconds": round(seconds, 2),
        "resumed_from": int(res.get("resumed_from", 0)),
        "steps_per_second": round(trained / seconds, 1) if trained > 0 and seconds > 0 else "",
        "final_mean": round(float(returns.mean()), 3),
        "final_std": round(float(returns.std()), 3),
        "final_returns": json.dumps([round(float(r), 3) for r in returns]),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "tag": tag,
        "command": command,
    }
    lb.append_csv(ROWS, ROW_FIELDS, [row])
    return row


def minatar_version() -> str:
    """``minatar X`` in this Python (or ``minatar ?``)."""
    from importlib import metadata

    try:
        return f"minatar {metadata.version('minatar')}"
    except metadata.PackageNotFoundError:
        return "minatar ?"


# -- run ----------------------------------------------------------------------------------
def prepare(arm: str, game: str, max_steps: int | None = None) -> tuple[Plan, Any]:
    """The arm's plan, and for SB3 its settings; for rlkit what its runs' settings must be.

    For an rlkit arm the second item is ``learning.expected_settings`` of the arm under the
    protocol: a run folder saved with other settings (an older preset) is set aside, not
    resumed or read.

    Raises:
        RlkitError: if this rlkit cannot resolve the arm (an unknown agent or setting).
        ValueError: if SB3 cannot match rlkit's preset (the message lists why).
    """
    plan, run_cfg, cfg = plan_arm(arm, game, max_steps)
    if arm not in SB3_ARMS:
        protocol = protocol_settings(plan.budget, plan.eval_every)
        return plan, lb.expected_settings(protocol, run_cfg, cfg)
    problems = sb3_problems(run_cfg, cfg)
    if problems:
        raise ValueError("SB3 cannot match rlkit's preset: " + "; ".join(problems))
    return plan, sb3_settings(cfg, plan.budget)


def run(args: argparse.Namespace) -> int:
    """Run every missing (seed, game, arm), one at a time, appending rows.

    Returns:
        0 if every run it tried finished, 1 if some failed or could not be planned.
    """
    games = parse_names(args.games, GAMES, "game")
    arms = parse_names(args.arms, ARMS, "arm")
    seeds = lb.parse_seeds(args.seeds)
    tag = default_tag(args.tag, args.max_steps)
    done = {run_key(r) for r in lb.read_csv(ROWS)}
    todo = [
        (seed, game, arm)
        for seed in seeds
        for game in games
        for arm in arms
        if (arm, game, seed, tag) not in done
    ]
    print(f"{len(todo)} runs to do (tag {tag!r}); rows in {ROWS}")
    if not todo:
        return 0
    sb3_python, sb3_versions = None, None
    if any(arm in SB3_ARMS for _, _, arm in todo):
        sb3_versions = sb3_probe(args.sb3_python)
        sb3_python = args.sb3_python if sb3_versions else None
    from rlkit.errors import RlkitError
    from rlkit.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    rlkit_versions = f"{lb.rlkit_version()}; {minatar_version()}"
    runs_root = Path(args.runs_dir) / (tag or "main")
    plans: dict[tuple[str, str], tuple[Plan, Any]] = {}
    unplanned: dict[tuple[str, str], str] = {}
    failures = 0
    with runs_lock(Path(args.runs_dir)) as lock_fd:
        for seed, game, arm in todo:
            if (arm in SB3_ARMS and sb3_python is None) or (arm, game) in unplanned:
                continue
            if (arm, game) not in plans:
                try:
                    plans[arm, game] = prepare(arm, game, args.max_steps)
                except (RlkitError, ValueError) as e:
                    unplanned[arm, game] = str(e)
                    print(f"{arm} on {game}: cannot run: {e}", flush=True)
                    continue
            plan, settings = plans[arm, game]
            run_dir = runs_root / arm / game / f"seed{seed}"
            print(f"{arm} {game} seed {seed} (budget {plan.budget:,})", flush=True)
            t0 = time.perf_counter()
            try:
                if arm in SB3_ARMS:
                    lock = (lock_fd,)
                    res = run_sb3(sb3_python, plan, settings, seed, run_dir, lock, args.sb3_threads)
                    versions, command = sb3_versions or "", sb3_command(sb3_python, run_dir)
                else:
                    threads = args.rlkit_threads
                    res = run_rlkit(plan, seed, run_dir, (lock_fd,), settings, threads)
                    command = rlkit_command(plan, seed, run_dir, threads=threads)
                    versions = rlkit_versions
            except (RuntimeError, RlkitError) as e:  # RlkitError: a checkpoint too new to read
                failures += 1
                print(f"  failed: {e}", flush=True)
                continue
            row = record(plan, seed, tag, versions, res, shown(command))
            print(
                f"  final mean {row['final_mean']:.2f} over {len(res['returns'])} episodes, "
                f"{row['env_steps']:,} steps, {row['steps_per_second'] or '?'} steps/s, "
                f"{time.perf_counter() - t0:.0f} s wall",
                flush=True,
            )
    if unplanned:
        print(f"{len(unplanned)} (arm, game) pair(s) could not run: see above")
    if failures:
        print(f"{failures} run(s) failed; rerun the command to retry (rlkit runs resume)")
    return 1 if failures or unplanned else 0


# -- report -------------------------------------------------------------------------------
def _num(text: str | None) -> float:
    return float(text) if text not in ("", None) else math.nan


def _speed(env_steps: int, seconds: float) -> float:
    """Env steps per training second of a run, NaN without a positive time."""
    return env_steps / seconds if seconds > 0 else math.nan


def load(tag: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows and curve points of ``tag``, numbers parsed."""
    rows = [
        {
            **r,
            "seed": int(r["seed"]),
            "budget": int(r["budget"]),
            "env_steps": int(r["env_steps"]),
            "train_seconds": _num(r["train_seconds"]),
            # From the two columns, not the stored figure (see ``runs.csv`` above).
            "steps_per_second": _speed(int(r["env_steps"]), _num(r["train_seconds"])),
            "final_mean": _num(r["final_mean"]),
        }
        for r in lb.read_csv(ROWS)
        if (r.get("tag") or "") == tag
    ]
    curves = [
        {
            **c,
            "seed": int(c["seed"]),
            "env_steps": int(c["env_steps"]),
            "eval_mean": float(c["eval_mean"]),
        }
        for c in lb.read_csv(CURVES)
        if (c.get("tag") or "") == tag
    ]
    return rows, curves


def by_cell(
    rows: list[dict[str, Any]], curves: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (game, arm), in table order: seeds, final means, AUCs and steps/s of its runs.

    A run's AUC is the mean of its periodic evaluations (evaluations fall every
    ``eval_every`` steps, so this is the area under its curve over the budget).
    """
    points: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for c in curves:
        points.setdefault((c["arm"], c["game"], c["seed"]), []).append(
            (c["env_steps"], c["eval_mean"])
        )
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (GAMES.index(r["game"]), ARMS.index(r["arm"]), r["seed"])):
        cell = cells.setdefault(
            (r["game"], r["arm"]),
            {"seeds": [], "final": [], "auc": [], "speed": [], "curves": [], "budget": 0},
        )
        series = sorted(points.get((r["arm"], r["game"], r["seed"]), []))
        cell["seeds"].append(r["seed"])
        cell["final"].append(r["final_mean"])
        if series:
            cell["auc"].append(float(np.mean([v for _, v in series])))
        if not math.isnan(r["steps_per_second"]):
            cell["speed"].append(r["steps_per_second"])
        cell["curves"].append(series)
        cell["budget"] = max(cell["budget"], r["budget"])
    return cells


def mean_ci(values: Sequence[float]) -> str:
    """``mean [low, high]`` (95 % bootstrap CI over seeds); no CI from fewer than 2 seeds."""
    if not values:
        return "-"
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.2f} [not enough seeds]"
    low, high = lb.bootstrap_ci(values)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def difference_ci(
    a: Sequence[float], b: Sequence[float], *, resamples: int = lb.RESAMPLES
) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a 95 % bootstrap CI (each group resampled on its own)."""
    rng = np.random.default_rng(lb.BOOTSTRAP_SEED)
    samples = lb.stratified_resample({"a": a, "b": b}, resamples, rng)
    diffs = samples[:, : len(a)].mean(axis=1) - samples[:, len(a) :].mean(axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(np.mean(a) - np.mean(b)), float(low), float(high)


def value_text(a: Sequence[float], b: Sequence[float]) -> str:
    """``+d [low, high]`` or ``not enough seeds`` (fewer than 2 on either side)."""
    if len(a) < 2 or len(b) < 2:
        return "not enough seeds"
    diff, low, high = difference_ci(a, b)
    return f"{diff:+.2f} [{low:+.2f}, {high:+.2f}]"


def cell_table(cells: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[str]:
    """Markdown lines of the per-(game, arm) table."""
    lines = [
        "| game | arm | lib | seeds done | final mean, 30 episodes [95 % CI] "
        "| mean over evaluations (AUC) [95 % CI] | env steps/s, median [range] |",
        "|---|---|---|---|---|---|---|",
    ]
    for (game, arm), c in cells.items():
        speed = "-"
        if c["speed"]:
            speed = f"{np.median(c['speed']):,.0f} [{min(c['speed']):,.0f}-{max(c['speed']):,.0f}]"
        lines.append(
            f"| {game} | {arm} | {lib_of(arm)} | {len(c['seeds'])} | {mean_ci(c['final'])} "
            f"| {mean_ci(c['auc'])} | {speed} |"
        )
    return lines


def ablation_lines(
    cells: Mapping[tuple[str, str], Mapping[str, Any]], games: list[str]
) -> list[str]:
    """Markdown of the ablation: the value of each component, per game, ranked."""
    lines: list[str] = []
    for game in games:
        rainbow = cells.get((game, "rainbow"))
        lines += [
            f"### {game}",
            "",
            "| component removed | arm | seeds (Rainbow / ablated) "
            "| value: final mean [95 % CI] | value: mean over evaluations [95 % CI] |",
            "|---|---|---|---|---|",
        ]
        ranked: list[tuple[float, str]] = []
        for arm, component in ABLATIONS.items():
            ablated = cells.get((game, arm))
            if rainbow is None or ablated is None:
                lines.append(f"| {component} | {arm} | - | not run yet | not run yet |")
                continue
            seeds = f"{len(rainbow['seeds'])} / {len(ablated['seeds'])}"
            final = value_text(rainbow["final"], ablated["final"])
            auc = value_text(rainbow["auc"], ablated["auc"])
            lines.append(f"| {component} | {arm} | {seeds} | {final} | {auc} |")
            if len(rainbow["final"]) >= 2 and len(ablated["final"]) >= 2:
                ranked.append(
                    (float(np.mean(rainbow["final"]) - np.mean(ablated["final"])), component)
                )
        lines.append("")
        if len(ranked) == len(ABLATIONS):
            order = sorted(ranked, reverse=True)
            lines.append(
                "Ranking by value (final mean): "
                + ", ".join(f"{i}. {name} ({v:+.2f})" for i, (v, name) in enumerate(order, 1))
                + ". Overlapping intervals mean the order is not settled."
            )
        else:
            lines.append("Ranking: not enough seeds (Rainbow and each ablated arm need 2 or more).")
        lines.append("")
    return lines


def plot_curves(cells: Mapping[tuple[str, str], Mapping[str, Any]], out: Path) -> list[Path]:
    """One figure per game: each arm's mean greedy return vs env steps, bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for game in GAMES:
        arms = [(arm, c) for (g, arm), c in cells.items() if g == game]
        if not arms:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
        for arm, c in arms:
            grid, ys = lb.align_curves(c["curves"], c["budget"])
            mean, low, high = lb.bootstrap_band(ys)
            color = f"C{ARMS.index(arm)}"
            style = "--" if lib_of(arm) == "sb3" else "-"
            label = f"{arm} (seeds: {len(c['seeds'])})"
            ax.plot(grid, mean, style, color=color, lw=1.8, label=label)
            ax.fill_between(grid, low, high, color=color, alpha=0.15)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"greedy return, {EVAL_EPISODES} fresh episodes")
        ax.set_title(f"MinAtar {game}: mean over seeds, 95 % bootstrap band", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        path = out / f"curves_{game}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


LITERATURE = (
    "For comparison: Hessel et al. (2018), removing one component at a time from Rainbow on "
    "57 Atari games, found prioritized replay and multi-step returns the most important, the "
    "distributional head next (then noisy nets; dueling and double Q-learning mattered least "
    'there). Obando-Ceron & Castro (2021, "Revisiting Rainbow") repeated these ablations on '
    "MinAtar (and small classic-control envs) to ask whether the Atari conclusions hold at "
    "small scale; set the ranking above against their MinAtar figures, not only Atari's."
)


def report(tag: str = "") -> str | None:
    """Write table.md and the plots for the rows of ``tag``; return the markdown."""
    rows, curves = load(tag)
    if not rows:
        print(f"no rows with tag {tag!r} in {ROWS} yet")
        return None
    out = OUT / tag if tag else OUT
    out.mkdir(parents=True, exist_ok=True)
    cells = by_cell(rows, curves)
    games = [g for g in GAMES if any(k[0] == g for k in cells)]
    dates = sorted(r["date"] for r in rows)
    budgets = sorted({r["budget"] for r in rows})
    md = [
        "# MinAtar: rlkit's DQN, Rainbow and its ablations, side by side with SB3's DQN",
        "",
        "Generated by `python benchmarks/minatar_ablation.py report"
        f"{' --tag ' + tag if tag else ''}` "
        f"from {len(rows)} runs ({dates[0]} to {dates[-1]}); budget "
        + ", ".join(f"{b:,}" for b in budgets)
        + " env steps per run.",
        "",
        "Protocol (every arm): one env, the whole budget; every "
        + ", ".join(f"{protocol(b if b < BUDGET else None)[1]:,}" for b in budgets)
        + f" env steps {EVAL_EPISODES} greedy episodes from fresh seeds; at the end "
        f"{FINAL_EPISODES} greedy episodes from seeds the run never used (the final mean). "
        "Mean over evaluations: each run's periodic evaluations averaged (the area under its "
        "curve divided by the budget), then averaged over seeds. CIs: 95 % percentile "
        "bootstrap over seeds (10,000 resamples, fixed RNG); none from a single seed. "
        "Env steps/s: training only (evaluations excluded), measured by the process that "
        "finished the run; wall time on a shared machine, so compare within one sitting.",
        "",
        *cell_table(cells),
        "",
        "## Ablation: the value of each Rainbow component",
        "",
        "Value of a component = Rainbow's mean minus the mean of Rainbow without it (positive: "
        "removing it hurt), for the final mean and for the mean over evaluations, with a 95 % "
        "bootstrap CI (each arm's seeds resampled on their own). The other components stay on "
        "in every ablated arm (Double, Dueling and noisy nets are not ablated here).",
        "",
        *ablation_lines(cells, games),
        LITERATURE,
        "",
        "## rlkit's DQN and SB3's DQN, same settings",
        "",
        "| game | seeds (rlkit / SB3) | rlkit - SB3: final mean [95 % CI] "
        "| rlkit - SB3: mean over evaluations [95 % CI] |",
        "|---|---|---|---|",
    ]
    for game in games:
        ours, theirs = cells.get((game, "dqn")), cells.get((game, "sb3-dqn"))
        if ours is None or theirs is None:
            md.append(f"| {game} | - | not run yet | not run yet |")
            continue
        md.append(
            f"| {game} | {len(ours['seeds'])} / {len(theirs['seeds'])} "
            f"| {value_text(ours['final'], theirs['final'])} "
            f"| {value_text(ours['auc'], theirs['auc'])} |"
        )
    md.append("")
    try:
        paths = plot_curves(cells, out)
        md += ["Plots: " + ", ".join(f"[{p.name}]({p.name})" for p in paths) + ".", ""]
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install 'rlkit[plots]')")
    md += ["Versions: " + " | ".join(sorted({r["versions"] for r in rows})), ""]
    text = "\n".join(md)
    (out / "table.md").write_text(text)
    print(text)
    print(f"written: {out / 'table.md'}")
    return text


# -- command line -------------------------------------------------------------------------
def use_results_dir(path: Path) -> None:
    """Read and write ``runs.csv``, ``curves.csv`` and the report in ``path``."""
    global OUT, ROWS, CURVES
    OUT, ROWS, CURVES = path, path / "runs.csv", path / "curves.csv"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python benchmarks/minatar_ablation.py``."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/minatar_ablation.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=("run", "report"))
    p.add_argument("--games", default=DEFAULT_GAMES, help=f"comma separated, of {', '.join(GAMES)}")
    p.add_argument("--arms", default=",".join(ARMS), help="comma separated")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help="e.g. 1-3 or 1,2,5")
    p.add_argument("--max-steps", type=int, default=None, help="smoke tests only: cap the budget")
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where run folders go")
    p.add_argument(
        "--results-dir",
        default=str(OUT),
        help="where runs.csv, curves.csv and the report go (e.g. elsewhere for a smoke test)",
    )
    p.add_argument("--sb3-python", default=None, help="a Python with stable_baselines3 and minatar")
    p.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="PyTorch threads of the SB3 runs (default: PyTorch's choice, as rlkit's TF)",
    )
    p.add_argument(
        "--rlkit-threads",
        type=int,
        default=None,
        help="TensorFlow threads of the rlkit runs (default: TensorFlow's choice)",
    )
    p.add_argument(
        "--tag", default=None, help="label of the rows (default: none, or maxN with --max-steps)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_sb3-child"]:  # inside SB3's Python: see run_sb3
        return sb3_child(argv[1])
    args = build_parser().parse_args(argv)
    use_results_dir(Path(args.results_dir))
    if args.command == "report":
        report(args.tag or "")
        return 0
    try:
        with sigterm_as_interrupt():
            return run(args)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped; rerun the same command to continue where it left off", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Acting cost of the DQN family: TensorFlow path vs numpy path, and MinAtar training speed.

Usage:
    python benchmarks/acting.py                   # both parts, results/acting.{json,csv}
    python benchmarks/acting.py --part act --repeats 9 --seconds 1
    python benchmarks/acting.py --part train --train-repeats 3 --before-rev db57bf2

Part ``act``: microseconds per ``agent.act(obs, explore=...)`` call on one env's
observation (a real ``reset`` observation, batch 1), for DQN and Rainbow with their
MinAtar/SpaceInvaders-v1 presets (the MinAtar CNN) and Rainbow with its CartPole-v1
preset (an MLP). Both paths run in this process: the TF arm makes ``supports_numpy``
false for the network's class while it runs, so ``act`` takes the compiled TF calls it
took before the numpy path existed (``_q_fn``; with noisy nets ``_noisy_q_fn``). DQN's
exploring calls are timed at the end of its epsilon decay (epsilon 0.01: one greedy
forward pass per call, as for most of a run; at epsilon 1 it would not call the network).
The arms alternate, round after round (TF, numpy, numpy, TF, ...), each round about
``--seconds`` of calls; the figure is the median over rounds of the mean per call.

Part ``train``: env steps per second of 10,000-step MinAtar/SpaceInvaders-v1 runs of DQN
and Rainbow (presets; no evaluation; ``learn`` in a fresh process, timed around the
training loop only), with the code before the numpy path (``--before-rev``, exported with
``git archive`` into a temporary folder) and this checkout, in alternating processes. The
figure is the median over repeats. DQN's epsilon is still near 1 in its first 10,000
steps, so few of its calls reach the network: expect little change there.

Every figure is saved with the load average around it (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provenance import load_now, machine_info, save_rows

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# benchmarks/minatar.py would shadow the minatar package: this folder leaves the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
MINATAR = "MinAtar/SpaceInvaders-v1"
CARTPOLE = "CartPole-v1"
CASES = [("dqn", MINATAR), ("rainbow", MINATAR), ("rainbow", CARTPOLE)]
BEFORE_REV = "db57bf2"  # the last commit before the numpy path for MinAtar and noisy nets


# -- acting ---------------------------------------------------------------------------------


def build_agent(agent: str, env_id: str, seed: int) -> tuple[Any, Any]:
    """The agent with its preset for ``env_id``, and one observation ``[1, ...]``."""
    from rlkit.agents import get_agent_class
    from rlkit.agents.common import seed_everything
    from rlkit.config import resolve
    from rlkit.envs import make_env

    cls = get_agent_class(agent)
    _, cfg = resolve(cls, env_id, overrides={"seed": seed, "eval_every": 0, "stop_reward": None})
    seed_everything(seed)
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    built = cls(env.observation_space, env.action_space, cfg, seed=seed)
    env.close()
    return built, obs[None]


@contextlib.contextmanager
def tf_path(network: Any) -> Iterator[None]:
    """Within the block, networks of ``network``'s class report no numpy path."""
    cls = type(network)
    saved = cls.__dict__.get("supports_numpy")
    cls.supports_numpy = property(lambda self: False)
    try:
        yield
    finally:
        if saved is None:
            del cls.supports_numpy
        else:
            cls.supports_numpy = saved


def mean_us(agent: Any, obs: Any, explore: bool, seconds: float) -> float:
    """Mean microseconds per ``agent.act(obs, explore=explore)`` over about ``seconds``."""
    if explore and not agent.config.noisy:
        agent.explore_policy.step = agent.config.exploration_steps  # epsilon at its final value
    calls, start = 0, time.perf_counter()
    while True:
        agent.act(obs, explore=explore)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls * 1e6


def measure_acting(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of part ``act``: one per case, explore flag and path."""
    rows = []
    for agent_name, env_id in CASES:
        agent, obs = build_agent(agent_name, env_id, args.seed)
        network = agent.q_network
        assert network.supports_numpy, (agent_name, env_id)
        for explore in (False, True):
            with tf_path(network):  # warm-up: trace the compiled acting calls
                for _ in range(3):
                    agent.act(obs, explore=explore)
            for _ in range(3):
                agent.act(obs, explore=explore)
            rounds: dict[str, list[float]] = {"tf": [], "numpy": []}
            load_before = load_now()["load_average"]
            for r in range(args.repeats):
                order = ("tf", "numpy") if r % 2 == 0 else ("numpy", "tf")
                for path in order:
                    if path == "tf":
                        with tf_path(network):
                            rounds[path].append(mean_us(agent, obs, explore, args.seconds))
                    else:
                        rounds[path].append(mean_us(agent, obs, explore, args.seconds))
            load_after = load_now()["load_average"]
            tf_us, np_us = (statistics.median(rounds[p]) for p in ("tf", "numpy"))
            for path, us in (("tf", tf_us), ("numpy", np_us)):
                rows.append(
                    {
                        "part": "act",
                        "agent": agent_name,
                        "env": env_id,
                        "network": network.torso_name,
                        "explore": explore,
                        "path": path,
                        "us_per_call": round(us, 2),
                        "speedup": round(tf_us / np_us, 2) if path == "numpy" else None,
                        "rounds_us": json.dumps([round(x, 2) for x in rounds[path]]),
                        "load_before": json.dumps(load_before),
                        "load_after": json.dumps(load_after),
                    }
                )
            print(
                f"{agent_name} {env_id} explore={explore}: TF {tf_us:.1f} us, numpy "
                f"{np_us:.1f} us ({tf_us / np_us:.1f}x), load {load_before} -> {load_after}",
                flush=True,
            )
    return rows


# -- training -------------------------------------------------------------------------------


def train_child(agent_name: str, env_id: str, steps: int, seed: int) -> None:
    """Train in this (fresh) process and print one JSON line: where rlkit came from, speed."""
    import rlkit
    from rlkit.config import RunConfig
    from rlkit.experiment import learn

    agent, _ = build_agent(agent_name, env_id, seed)
    run = RunConfig(total_steps=steps, seed=seed, eval_every=0, final_eval_episodes=0)
    start = time.perf_counter()
    learn(agent, env_id, run)
    seconds = time.perf_counter() - start
    out = {"rlkit": rlkit.__file__, "seconds": seconds, "steps_per_s": steps / seconds}
    print("RESULT " + json.dumps(out), flush=True)


def export_tree(rev: str, folder: Path) -> Path:
    """The files of commit ``rev`` (``git archive``), unpacked into ``folder``."""
    archive = folder / "tree.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), rev], cwd=REPO, check=True
    )
    tree = folder / rev
    tree.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run_child(tree: Path, agent: str, env_id: str, steps: int, seed: int) -> dict[str, Any]:
    """One training run in a fresh process with rlkit imported from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", agent, env_id]
    command += ["--train-steps", str(steps), "--seed", str(seed)]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"training child failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    if not result["rlkit"].startswith(str(tree)):
        raise RuntimeError(f"the child imported rlkit from {result['rlkit']}, not {tree}")
    return result


def measure_training(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of part ``train``: steps/s before and after, per agent, median of repeats."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": export_tree(args.before_rev, Path(tmp)), "after": REPO}
        for agent_name in ("dqn", "rainbow"):
            runs: dict[str, list[float]] = {"before": [], "after": []}
            loads = []
            for r in range(args.train_repeats):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for arm in order:
                    load = load_now()["load_average"]
                    result = run_child(trees[arm], agent_name, MINATAR, args.train_steps, args.seed)
                    runs[arm].append(result["steps_per_s"])
                    loads.append(load)
                    print(
                        f"{agent_name} {arm}: {result['steps_per_s']:.0f} steps/s "
                        f"({result['seconds']:.1f} s, load {load})",
                        flush=True,
                    )
            before, after = (statistics.median(runs[a]) for a in ("before", "after"))
            for arm, value in (("before", before), ("after", after)):
                rows.append(
                    {
                        "part": "train",
                        "agent": agent_name,
                        "env": MINATAR,
                        "arm": arm,
                        "code": args.before_rev if arm == "before" else "this checkout",
                        "steps": args.train_steps,
                        "steps_per_s": round(value, 1),
                        "speedup": round(after / before, 2) if arm == "after" else None,
                        "runs_steps_per_s": json.dumps([round(x, 1) for x in runs[arm]]),
                        "loads": json.dumps(loads),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for and write ``results/acting.{json,csv}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("act", "train", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=9, help="act: rounds per arm")
    parser.add_argument("--seconds", type=float, default=1.0, help="act: seconds per round")
    parser.add_argument("--train-repeats", type=int, default=3, help="train: runs per arm")
    parser.add_argument("--train-steps", type=int, default=10_000)
    parser.add_argument("--before-rev", default=BEFORE_REV)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="acting", help="file stem in benchmarks/results")
    parser.add_argument("--child", nargs=2, metavar=("AGENT", "ENV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # rlkit from the PYTHONPATH the parent gave
        train_child(*args.child, args.train_steps, args.seed)
        return 0
    sys.path.insert(0, str(REPO))  # this checkout's rlkit, not another one installed
    import rlkit

    print(f"rlkit from {rlkit.__file__}", flush=True)
    meta = machine_info()
    rows = []
    if args.part in ("act", "both"):
        rows += measure_acting(args)
    if args.part in ("train", "both"):
        rows += measure_training(args)
    meta["load_at_end"] = load_now()
    paths = save_rows(args.out, rows, settings=vars(args), meta=meta)
    print(f"wrote {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

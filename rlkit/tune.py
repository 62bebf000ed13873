"""Tune an agent's settings with Optuna: ``python -m rlkit.tune --agent a2c --env CartPole-v1``.

Each trial samples settings from the agent's search space (``agents/tune/<agent>.yaml``, see
``rlkit.search_space``) with Optuna's TPE sampler and trains an ordinary rlkit run with
them (``runs/tune/<study>/trial_<n>/``: config.yaml, progress.csv, checkpoint, policy,
results.json). Its periodic evaluations are reported to the trial as they happen, and a
median pruner stops trials that fall behind the others at the same env step.

The objective (``--objective``, stored with the study; details in ``rlkit.tuning``):
``steps``, the default when the run has a ``stop_reward`` (the classic-control presets do),
minimizes the env steps to a confirmed ``stop_reward``, a run that does not get there
scoring its budget times one plus its relative shortfall; ``reward``, the default
otherwise, maximizes the final evaluation's mean (fresh seeds). With
``--seeds-per-trial K`` every trial trains K runs (seeds ``seed .. seed + K - 1``, the
same for every trial) and scores the mean of their values, so a setting that was lucky on
one seed counts for less.

The study lives in a database (SQLite by default, any SQLAlchemy URL with ``--storage``):
running the command again continues it, and ``--jobs K`` runs K worker processes against
it (``spawn``; each its own TensorFlow with one thread per pool).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlkit.envs.source import safe_name
from rlkit.errors import RlkitError
from rlkit.tuning import (
    STUDY_KEYS,
    Budget,
    TuneSettings,
    check_study,
    default_storage,
    import_optuna,
    open_storage,
    optimize,
    run_workers,
    study_attrs,
)

EPILOG = """examples:
  python -m rlkit.tune --agent a2c --env CartPole-v1 --trials 30 --jobs 2 --total-steps 1e5
  python -m rlkit.tune --agent a2c --env CartPole-v1 --trials 10      # continues that study
  python -m rlkit.tune --agent ppo --env CartPole-v1 --trials 20 --save-preset tuned.yaml
  python -m rlkit.train --agent ppo --env CartPole-v1 --config tuned.yaml
"""

OBJECTIVES = ("auto", "steps", "reward")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m rlkit.tune``."""
    p = argparse.ArgumentParser(
        prog="python -m rlkit.tune",
        description="Tune an rlkit agent's settings on an env with Optuna (TPE sampler, "
        "median pruner fed by the periodic evaluations).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--agent", required=True, help="dqn, double_dqn, dueling_dqn, rainbow, reinforce, a2c, ppo"
    )
    p.add_argument("--env", required=True, help="gymnasium env id, e.g. CartPole-v1")
    p.add_argument("--trials", type=int, required=True, metavar="N", help="trials to run now")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="SQLAlchemy URL of the study's database (default: "
        "sqlite:///runs/tune/<agent>-<env>.db)",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: <agent>-<env>)")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="start no trial after S seconds (running trials finish)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="K", help="worker processes (default 1)")
    p.add_argument(
        "--total-steps",
        type=float,
        metavar="T",
        help="env steps per trial run (default: the preset's; a continued study keeps its own)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="first seed of every trial's runs; also seeds the sampler (default 0)",
    )
    p.add_argument(
        "--seeds-per-trial",
        type=int,
        metavar="K",
        help="runs per trial, on seeds S .. S+K-1; the trial scores their mean (default 1)",
    )
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        help="steps: env steps to a confirmed stop_reward (minimize); reward: final "
        "evaluation's mean (maximize); auto (default): steps when stop_reward is set",
    )
    p.add_argument(
        "--space", metavar="FILE", help="search space YAML (default: agents/tune/<agent>.yaml)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fixed setting for every trial (beats the preset), repeatable",
    )
    p.add_argument(
        "--startup-trials",
        type=int,
        default=5,
        metavar="N",
        help="trials that complete before the median pruner prunes (default 5)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        metavar="N",
        help="env steps into each run before it can be pruned (default: a third of total_steps)",
    )
    p.add_argument(
        "--save-preset",
        metavar="PATH",
        help="write the best settings as PATH's section for the env (merged into an "
        "existing preset file, its other sections and comments kept)",
    )
    p.add_argument(
        "--runs-dir",
        default="runs/tune",
        metavar="DIR",
        help="trial run folders go to DIR/<study>/ (default runs/tune)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return p


# -- the end: summary, plots, preset -----------------------------------------------------
def summarize(study: Any, settings: TuneSettings) -> list[str]:
    """Lines on the study: trial counts and the best trial's value, settings and run."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    lines = [
        f"study {settings.study} ({settings.storage}): {len(trials)} trial(s): "
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed, {counts[TrialState.RUNNING]} running"
    ]
    lines.append(f"objective: {settings.rule().describe()}")
    best = best_trial(study)
    if best is None:
        lines.append("no trial has completed yet: no best settings")
        return lines
    value = f"{best.value:,.0f}" if settings.objective == "steps" else f"{best.value:.2f}"
    runs = best.user_attrs.get("runs", [])
    lines.append(
        f"best: trial {best.number}, value {value}; run folder(s): "
        + ", ".join(r["run_dir"] for r in runs)
    )
    for key, val in (best.user_attrs.get("settings") or {}).items():
        lines.append(f"  {key}: {json.dumps(val)}")
    return lines


def best_trial(study: Any) -> Any:
    """The best complete trial, or None."""
    try:
        return study.best_trial
    except ValueError:
        return None


def preset_values(best: Any, settings: TuneSettings, agent_cls: type) -> dict[str, Any]:
    """The settings a preset section gets: the best trial's and some fixed ones.

    Of the fixed ``--set`` settings, those that shape learning (the agent's settings and
    ``num_envs``), not budgets or evaluation settings.
    """
    from rlkit.config import field_names

    keep = set(field_names(agent_cls.config_cls)) | {"num_envs"}
    fixed = {k: v for k, v in settings.overrides.items() if k in keep}
    return {**fixed, **(best.user_attrs.get("settings") or {})}


def write_plots(study: Any, folder: Path) -> list[str]:
    """Optimization history and parameter importances as PNGs in ``folder``.

    Returns lines saying what was written, or why not (no matplotlib, too few trials).
    """
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return ["plots: skipped (pip install matplotlib for them)"]
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots

    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out = []
    plots = [("optimization_history.png", optuna_plots.plot_optimization_history, 1)]
    plots.append(("param_importances.png", optuna_plots.plot_param_importances, 2))
    for name, plot, needed in plots:
        if len(complete) < needed:
            out.append(f"plots: no {name} (needs {needed} complete trials, has {len(complete)})")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's "experimental" warnings
                ax = plot(study)
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.savefig(folder / name, bbox_inches="tight", dpi=100)
            plt.close(figure)
            out.append(f"plot: {folder / name}")
        except Exception as e:  # a plot must never lose the study's summary
            plt.close("all")
            out.append(f"plots: no {name} ({type(e).__name__}: {e})")
    return out


_TOP_KEY = re.compile(r"""^(?:'([^']*)'|"([^"]*)"|([^\s#'"][^:#]*?))\s*:(?:\s|$)""")


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _section_text(env_id: str, values: Mapping[str, Any], comment: str) -> str:
    import yaml

    body = yaml.safe_dump({env_id: dict(values)}, sort_keys=False, default_flow_style=None)
    return "".join(f"# {line}\n" for line in comment.splitlines()) + body


def write_preset_section(
    path: str | Path, env_id: str, values: Mapping[str, Any], comment: str = ""
) -> tuple[Path, str]:
    """Write ``values`` as the section ``env_id`` of the preset file ``path``.

    A new file gets that one section. An existing preset file (sections such as
    ``default`` and env ids) keeps its other sections, comments and order: the env's
    section, if there is one, is updated with ``values`` (its other keys stay) and
    rewritten in place, else the section is appended. The result is parsed back and
    checked before it replaces the file, atomically. When that cannot be done safely (the
    file is not a preset of sections, or the edit would change another section, as with
    YAML anchors) nothing is changed there and a new file is written next to it.

    Returns:
        The file written, and a sentence saying what was done.

    Raises:
        RlkitError: if ``path`` is a folder or unreadable YAML.
    """
    import yaml

    from rlkit.preset_files import is_sectioned

    path = Path(path)
    if path.is_dir():
        raise RlkitError(f"--save-preset {str(path)!r} is a folder; give a file path")
    if not path.exists():
        _atomic_write(path, _section_text(env_id, values, comment))
        return path, f"wrote section {env_id} to the new preset file {path}"
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise RlkitError(f"--save-preset {str(path)!r} is not valid YAML: {e}") from None
    reason = None
    if not isinstance(data, dict) or (data and not is_sectioned(data)):
        reason = "it is not a preset file of sections (default, env ids)"
        merged_text = None
    else:
        section = {**(data.get(env_id) or {}), **values}
        block = _section_text(env_id, section, comment)
        merged_text = _replace_section(text, env_id, block)
        try:
            ok = yaml.safe_load(merged_text) == {**data, env_id: section}
        except yaml.YAMLError:
            ok = False
        if not ok:
            reason = "rewriting its section in place would change other sections (anchors?)"
    if reason is None and merged_text is not None:
        _atomic_write(path, merged_text)
        verb = "updated" if env_id in data else "added"
        return path, f"{verb} section {env_id} of {path} (its other sections kept)"
    stem = path.name.removesuffix(path.suffix) or path.name
    other, k = path.with_name(f"{stem}.tuned{path.suffix or '.yaml'}"), 1
    while other.exists():
        other, k = path.with_name(f"{stem}.tuned-{k}{path.suffix or '.yaml'}"), k + 1
    _atomic_write(other, _section_text(env_id, values, comment))
    return other, f"left {path} as it is ({reason}); wrote section {env_id} to {other}"


def _replace_section(text: str, env_id: str, block: str) -> str:
    """``text`` with the top-level section ``env_id`` replaced by ``block`` (or appended)."""
    lines = text.splitlines(keepends=True)
    top = []  # (line index, key) of every top-level entry and column-0 comment
    for i, line in enumerate(lines):
        if not line.strip() or line[0] in " \t":
            continue
        match = _TOP_KEY.match(line)
        key = next((g for g in match.groups() if g is not None), None) if match else None
        top.append((i, key.strip() if key is not None else None))
    starts = [i for i, key in top if key == env_id]
    if not starts:
        return text + ("" if not text or text.endswith("\n") else "\n") + block
    start = starts[0]
    # The block ends at the next top-level key, less the comments just above that key
    # (they belong to it); column-0 comments inside the block go with the block.
    end = next((i for i, key in top if i > start and key is not None), len(lines))
    while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


# -- the command ---------------------------------------------------------------------------
def _tune(args: argparse.Namespace) -> int:
    """Check the input, open or create the study, run the trials, summarize."""
    if args.trials < 1:
        raise RlkitError(f"--trials must be at least 1, got {args.trials}")
    if args.jobs < 1:
        raise RlkitError(f"--jobs must be at least 1, got {args.jobs}")
    if args.seeds_per_trial is not None and args.seeds_per_trial < 1:
        raise RlkitError(f"--seeds-per-trial must be at least 1, got {args.seeds_per_trial}")
    if args.timeout is not None and args.timeout <= 0:
        raise RlkitError(f"--timeout must be positive, got {args.timeout}")
    if args.total_steps is not None and args.total_steps < 1:
        raise RlkitError(f"--total-steps must be positive, got {args.total_steps}")
    if args.startup_trials < 0 or (args.warmup_steps is not None and args.warmup_steps < 0):
        raise RlkitError("--startup-trials and --warmup-steps must be >= 0")
    from rlkit.envs import check_env_id

    check_env_id(args.env)
    optuna = import_optuna()
    if not args.debug:
        from rlkit.tf_setup import import_tensorflow_quietly

        import_tensorflow_quietly()
    from rlkit import config as config_lib
    from rlkit.agents import get_agent_class
    from rlkit.search_space import SearchSpace, default_space_file

    agent_cls = get_agent_class(args.agent)
    given = config_lib.parse_overrides(args.set)
    for key in ("total_steps", "seed"):
        if key in given:
            raise RlkitError(f"--set {key}=...: use --{key.replace('_', '-')} instead")
    space_file = Path(args.space) if args.space else default_space_file(agent_cls)
    space = SearchSpace.load(space_file, agent_cls)  # a bad space file: exit 2 before a study

    url = args.storage or default_storage(args.agent, args.env)
    name = args.study or f"{safe_name(args.agent)}-{safe_name(args.env)}"
    storage = open_storage(url, create_folder=args.storage is None)
    attrs = study_attrs(storage, name)
    if url in ("sqlite://", "sqlite:///:memory:") and args.jobs > 1:
        raise RlkitError(f"--storage {url!r} is in this process's memory; workers cannot share it")
    wanted: dict[str, Any] = {
        "agent": args.agent,
        "env": args.env,
        "total_steps": int(args.total_steps) if args.total_steps else None,
        "objective": None if args.objective in (None, "auto") else args.objective,
        "seeds_per_trial": args.seeds_per_trial,
        "overrides": given or None,
    }
    stored: dict[str, Any] = {}
    if attrs:
        check_study(name, attrs, wanted)
        stored = {k: attrs[k] for k in STUDY_KEYS if k in attrs}
        given = dict(stored.get("overrides", given))
    fixed = dict(given)  # with what rlkit.tune adds (eval_every)
    total_steps = wanted["total_steps"] or stored.get("total_steps")
    if total_steps is None:
        run_cfg, _ = config_lib.resolve(agent_cls, args.env, overrides=fixed)
        total_steps = run_cfg.total_steps
    run_cfg, _ = config_lib.resolve(
        agent_cls, args.env, overrides={**fixed, "total_steps": total_steps}
    )
    if run_cfg.eval_every == 0:  # the pruner needs evaluations as the runs go
        fixed["eval_every"] = max(total_steps // 20, 1)
        run_cfg, _ = config_lib.resolve(
            agent_cls, args.env, overrides={**fixed, "total_steps": total_steps}
        )
    if run_cfg.eval_every > total_steps:
        raise RlkitError(
            f"eval_every ({run_cfg.eval_every:,}) is more than total_steps ({total_steps:,}): "
            "no evaluation would run to report to the pruner"
        )
    objective = wanted["objective"] or stored.get("objective") or args.objective or "auto"
    if objective == "auto":
        objective = "steps" if run_cfg.stop_reward is not None else "reward"
    if objective == "steps" and run_cfg.stop_reward is None:
        raise RlkitError(
            f"--objective steps needs a stop_reward ({args.agent}'s preset for {args.env} has "
            "none): add --set stop_reward=R"
        )
    seeds_per_trial = wanted["seeds_per_trial"] or stored.get("seeds_per_trial") or 1
    if run_cfg.runner == "ray" and args.jobs > 1:
        raise RlkitError("--jobs > 1 with runner=ray: the workers would share one Ray cluster")

    settings = TuneSettings(
        agent=args.agent,
        env=args.env,
        storage=url,
        study=name,
        study_dir=str(Path(args.runs_dir) / safe_name(name)),
        space_file=str(space_file),
        total_steps=int(total_steps),
        seed=args.seed,
        seeds_per_trial=int(seeds_per_trial),
        objective=objective,
        stop_reward=run_cfg.stop_reward,
        eval_every=run_cfg.eval_every,
        overrides=fixed,
        startup_trials=args.startup_trials,
        warmup_steps=(
            args.warmup_steps if args.warmup_steps is not None else int(total_steps) // 3
        ),
        sampler_seed=0,
    )
    rule = settings.rule()
    study = optuna.create_study(
        storage=storage, study_name=name, direction=rule.direction, load_if_exists=True
    )
    if not attrs:
        record = {
            "agent": args.agent,
            "env": args.env,
            "total_steps": settings.total_steps,
            "objective": objective,
            "seeds_per_trial": settings.seeds_per_trial,
            "overrides": given,
            "stop_reward": settings.stop_reward,
        }
        for key, value in record.items():
            study.set_user_attr(key, value)
    earlier = len(study.get_trials(deepcopy=False))
    # The sampler's seed changes with the trials so far: a continued study draws new points.
    settings = dataclasses.replace(settings, sampler_seed=args.seed * 1_000_003 + earlier)
    workers = min(args.jobs, args.trials)
    print(
        f"rlkit.tune: study {name} in {url} ({earlier} trial(s) so far); {args.trials} more of "
        f"{agent_cls.__name__} on {args.env}, {settings.total_steps:,} env steps per run, "
        f"seed(s) {settings.seeds()}, {workers} worker process(es); space {space_file} "
        f"({', '.join(space.settings)}); run folders in {settings.study_dir}/",
        flush=True,
    )
    print(f"objective: {rule.describe()}", flush=True)
    deadline = time.time() + args.timeout if args.timeout else None
    previous_term = signal.getsignal(signal.SIGTERM)
    terminated = []

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt

    outcome = "done"
    with contextlib.ExitStack() as stack:
        if threading_is_main():
            signal.signal(signal.SIGTERM, on_sigterm)
            stack.callback(signal.signal, signal.SIGTERM, previous_term)
        try:
            if workers == 1:
                optimize(settings, Budget(args.trials - 1), first_is_ours=True, deadline=deadline)
            else:
                outcome = run_workers(settings, workers, args.trials, deadline)
        except KeyboardInterrupt:
            outcome = "interrupted"
    if outcome == "interrupted":
        print("interrupted: the study so far (continue it by running the same command)")
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    for line in summarize(study, settings):
        print(line)
    for line in write_plots(study, Path(settings.study_dir)):
        print(line)
    best = best_trial(study)
    if args.save_preset and best is not None:
        comment = (
            f"{args.env}: tuned by rlkit.tune (study {name}, trial {best.number}, "
            f"{settings.objective} value {best.value:g}, {settings.total_steps:,} env steps "
            f"per run)"
        )
        values = preset_values(best, settings, agent_cls)
        written, what = write_preset_section(args.save_preset, args.env, values, comment)
        print(f"preset: {what}")
        print(
            f"train with it: python -m rlkit.train --agent {args.agent} --env {args.env} "
            f"--config {written}"
        )
    elif args.save_preset:
        print(f"preset: not written ({args.save_preset}): no trial has completed")
    if outcome == "interrupted":
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    return 1 if outcome == "failed" else 0


def threading_is_main() -> bool:
    """Whether this is the main thread (only it may install signal handlers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when done, 2 on bad input, 130 (143) after Ctrl-C (SIGTERM).

    1 when a worker process failed. Errors print one line (no traceback unless ``--debug``).
    """
    args = build_parser().parse_args(argv)
    try:
        return _tune(args)
    except RlkitError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

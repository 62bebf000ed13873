"""Optuna studies of rlkit runs: objective, pruning callback, database, trial loop, workers.

``python -m rlkit.tune`` (``rlkit/tune.py``) is the command; this module is what it runs,
in this process or in ``spawn``ed worker processes.
Each trial samples settings (``rlkit.search_space``) and trains an ordinary rlkit run with
them (``rlkit.train.run``) in ``<study_dir>/trial_<n>/``; an ``OptunaReporter`` callback
reports every periodic evaluation to the trial and stops the run when the median pruner
says so.

The objective (``Objective``):

- ``steps`` (minimized): env steps to the confirmed ``stop_reward`` (an evaluation reaching
  it and ``confirm_episodes`` more fresh episodes confirming it: no single lucky evaluation
  counts). A run that does not get there in ``total_steps`` scores
  ``total_steps * (1 + shortfall)``, with
  ``shortfall = max(0, stop_reward - m) / max(|stop_reward|, 1)`` and ``m`` the mean of
  its final evaluation (on seeds the run never saw), so every solved run beats every
  unsolved one, and unsolved ones rank by how close they came. At each evaluation the
  pruner is given the value the run would get if it ended there; after a confirmed stop,
  that value is reported at the evaluation steps the run no longer reaches, so the runs
  still going are compared with it there.
- ``reward`` (maximized): the final evaluation's mean reward (``results.json``'s
  ``mean_reward``), the evaluations' means as the run goes.

A trial of several seeds scores the mean of its runs' values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlkit.callbacks import Callback, stop_score
from rlkit.envs.source import safe_name
from rlkit.errors import MissingExtraError, NumericalError, RlkitError, TrainingFault

# Study settings a continued study must share (stored as the study's user attributes).
STUDY_KEYS = ("agent", "env", "total_steps", "objective", "seeds_per_trial", "overrides")


# -- the objective -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Objective:
    """What a trial scores: env steps to a confirmed ``stop_reward``, or the final reward.

    Example:
        >>> rule = Objective("steps", total_steps=100_000, stop_reward=475)
        >>> rule.final_value(solved_steps=None, final_mean=237.5)  # unsolved: 1.5 budgets
        150000.0
    """

    kind: str  # "steps" or "reward"
    total_steps: int
    stop_reward: float | None = None

    @property
    def direction(self) -> str:
        """Optuna's study direction."""
        return "minimize" if self.kind == "steps" else "maximize"

    def describe(self) -> str:
        """One line saying what the value of a trial is."""
        if self.kind == "steps":
            return (
                f"env steps to a confirmed {self.stop_reward:g} (minimized; a run that does "
                f"not get there scores {self.total_steps:,} x (1 + shortfall of its final "
                f"mean below {self.stop_reward:g}, relative))"
            )
        return "mean reward of the final evaluation, on seeds the runs never used (maximized)"

    @staticmethod
    def score(row: Mapping[str, Any]) -> float:
        """An evaluation's mean: its confirmation's when it had one (more episodes)."""
        return float(row.get("confirm_mean_reward", row["mean_reward"]))

    def solved(self, row: Mapping[str, Any]) -> bool:
        """Whether an evaluation is a confirmed stop (``StopOnReward``'s rule)."""
        if self.stop_reward is None or "confirm_mean_reward" not in row:
            return False
        return min(row["mean_reward"], stop_score(row)) >= self.stop_reward

    def unsolved_value(self, mean_reward: float) -> float:
        """The ``steps`` value of a run that did not reach ``stop_reward`` in its budget."""
        stop = float(self.stop_reward)  # type: ignore[arg-type]
        shortfall = max(0.0, stop - mean_reward) / max(abs(stop), 1.0)
        return float(self.total_steps) * (1.0 + shortfall)

    def value_now(self, row: Mapping[str, Any]) -> float:
        """The value a run would get if it ended with this evaluation."""
        if self.kind == "reward":
            return float(row["mean_reward"])
        if self.solved(row):
            return float(row["env_steps"])
        return self.unsolved_value(self.score(row))

    def final_value(self, solved_steps: int | None, final_mean: float) -> float:
        """The value of a finished run: its confirmed stop, or its final mean."""
        if self.kind == "reward":
            return float(final_mean)
        if solved_steps is not None:
            return float(solved_steps)
        return self.unsolved_value(final_mean)


class OptunaReporter(Callback):
    """Reports each periodic evaluation to an Optuna trial; stops the run when it is pruned.

    The value reported is ``Objective.value_now`` (for ``reward``, the evaluation's mean),
    averaged with the values of the trial's runs on earlier seeds (``earlier``), at the
    env step the evaluation was due (``offset`` + a multiple of ``every``), so that trials
    whose rollouts end at other steps are compared at the same ones.

    Example:
        >>> reporter = OptunaReporter(trial, Objective("reward", 50_000), every=5_000)
        >>> rlkit.train.run("a2c", "CartPole-v1", callbacks=[reporter])
        >>> if reporter.pruned_at is not None:
        ...     raise optuna.TrialPruned()
    """

    def __init__(
        self,
        trial: Any,
        objective: Objective,
        *,
        every: int,
        offset: int = 0,
        earlier: Sequence[float] = (),
    ) -> None:
        self.trial, self.objective = trial, objective
        self.every, self.offset, self.earlier = max(int(every), 1), offset, list(earlier)
        self.last_step: int | None = None  # the step of the last report
        self.last_mean: float | None = None  # the last evaluation's mean
        self.solved_steps: int | None = None  # env steps of the confirmed stop
        self.pruned_at: int | None = None  # env steps where the pruner stopped the run

    def step_of(self, env_steps: int) -> int:
        """The step reported for an evaluation at ``env_steps``: when it was due."""
        return self.offset + (env_steps // self.every) * self.every

    def _report(self, value: float, step: int) -> None:
        self.trial.report((sum(self.earlier) + value) / (len(self.earlier) + 1), step)
        self.last_step = step

    def on_evaluation(self, env_steps: int, row: Mapping[str, Any]) -> bool | None:
        """Report the evaluation; False (stop) when the pruner says so."""
        self.last_mean = float(row["mean_reward"])
        self._report(self.objective.value_now(row), self.step_of(env_steps))
        if self.objective.solved(row):  # StopOnReward ends the run here
            self.solved_steps = int(env_steps)
            return None
        if env_steps >= self.objective.total_steps:  # the run ends here: let it complete
            return None
        if self.trial.should_prune():
            self.pruned_at = int(env_steps)
            return False
        return None

    def fill_in(self, value: float) -> None:
        """Report ``value`` (averaged like the others) at the due steps the run did not reach."""
        if self.last_step is None:
            return
        last_due = self.offset + (self.objective.total_steps // self.every) * self.every
        for step in range(self.last_step + self.every, last_due + 1, self.every):
            self._report(value, step)


# -- settings shared by the main process and the workers ---------------------------------
@dataclasses.dataclass(frozen=True)
class TuneSettings:
    """Everything a worker needs to run trials of a study (picklable for ``spawn``)."""

    agent: str
    env: str
    storage: str
    study: str
    study_dir: str
    space_file: str
    total_steps: int
    seed: int
    seeds_per_trial: int
    objective: str  # "steps" or "reward"
    stop_reward: float | None
    eval_every: int
    overrides: dict[str, Any]
    startup_trials: int
    warmup_steps: int
    sampler_seed: int  # with the worker index, seeds each worker's TPE sampler

    def rule(self) -> Objective:
        """The study's ``Objective``."""
        return Objective(self.objective, self.total_steps, self.stop_reward)

    def seeds(self) -> list[int]:
        """The seeds every trial trains on."""
        return [self.seed + i for i in range(self.seeds_per_trial)]


class TrialFailed(Exception):
    """A trial that could not run (sampled settings rlkit refuses); Optuna marks it failed."""


def import_optuna() -> Any:
    """Import Optuna, quiet (rlkit prints its own lines).

    Raises:
        MissingExtraError: naming the ``tune`` extra if Optuna or SQLAlchemy is missing.
    """
    try:
        import optuna
        import sqlalchemy  # noqa: F401  (the study database)
    except ImportError:
        raise MissingExtraError(
            "rlkit.tune needs Optuna and SQLAlchemy: pip install 'rlkit[tune]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def default_storage(agent: str, env_id: str) -> str:
    """``sqlite:///runs/tune/<agent>-<env>.db`` (relative to the working directory)."""
    return f"sqlite:///runs/tune/{safe_name(agent)}-{safe_name(env_id)}.db"


def open_storage(url: str, *, create_folder: bool = False) -> Any:
    """Optuna's database storage at ``url``, with heartbeats so dead trials get failed.

    A trial whose process died (SIGKILL, power loss) stops sending heartbeats and is marked
    failed by the next process that starts a trial in the study.

    Raises:
        RlkitError: naming the URL, if it cannot be opened.
    """
    optuna = import_optuna()
    sqlite = url.startswith("sqlite")
    memory = url in ("sqlite://", "sqlite:///:memory:")
    if create_folder and sqlite and not memory:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    # SQLite's lock wait (5 s by default) is short for several processes writing at once.
    engine_kwargs = {"connect_args": {"timeout": 60}} if sqlite else None
    heartbeat = {} if memory else {"heartbeat_interval": 60, "grace_period": 180}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)
    except Exception as e:  # any driver's error: a bad URL, a missing driver, no server
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RlkitError(f"cannot open the study storage {url!r}: {detail}") from None


def study_attrs(storage: Any, name: str) -> dict[str, Any] | None:
    """The settings stored with study ``name`` (None if there is no such study)."""
    for summary in storage.get_all_studies():
        if summary.study_name == name:
            return dict(summary.user_attrs)
    return None


def check_study(name: str, attrs: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse to continue a study with other settings than it was started with.

    ``wanted`` holds the settings given now (None: not given, the study's apply).

    Raises:
        RlkitError: naming the study's settings.
    """
    stored = {k: attrs[k] for k in STUDY_KEYS if k in attrs}
    clash = [k for k in STUDY_KEYS if wanted.get(k) is not None and k in stored]
    clash = [k for k in clash if stored[k] != wanted[k]]
    if clash:
        described = ", ".join(f"{k}={stored[k]!r}" for k in STUDY_KEYS if k in stored)
        raise RlkitError(
            f"study {name!r} was started with {described}; you asked for "
            + ", ".join(f"{k}={wanted[k]!r}" for k in clash)
            + ". Continue it with its own settings, or name another study with --study"
        )


def load_study(settings: TuneSettings, worker: int = 0) -> Any:
    """The study, with this worker's TPE sampler and the median pruner (run by run)."""
    optuna = import_optuna()
    from rlkit.pruning import RunMedianPruner

    sampler_seed = zlib.crc32(f"{settings.sampler_seed}/{worker}".encode())
    return optuna.load_study(
        study_name=settings.study,
        storage=open_storage(settings.storage),
        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
        pruner=RunMedianPruner(
            settings.total_steps,
            n_startup_trials=settings.startup_trials,
            n_warmup_steps=settings.warmup_steps,
        ),
    )


# -- one trial ---------------------------------------------------------------------------
def trial_run_dir(settings: TuneSettings, number: int, seed: int) -> Path:
    """``<study_dir>/trial_<n>`` (``/seed_<s>`` with several seeds); never an existing one."""
    base = Path(settings.study_dir) / f"trial_{number}"
    if settings.seeds_per_trial > 1:
        base = base / f"seed_{seed}"
    path, k = base, 1
    while path.exists() and any(path.iterdir()):  # a study deleted from its database
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def format_settings(values: Mapping[str, Any]) -> str:
    """``key=value`` pairs, floats to 3 significant digits."""
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={json.dumps(v)}"
        for k, v in values.items()
    )


def run_trial(
    trial: Any, settings: TuneSettings, space: Any, base: Mapping[str, Any], worker: int = 0
) -> float:
    """Optuna's objective: sample settings, train a run per seed, return the trial's value.

    Raises:
        optuna.TrialPruned: when the pruner stopped a run (or its loss diverged).
        TrialFailed: when rlkit refuses the sampled combination of settings, or a run
            stops on a fault other than a diverged loss (``TrainingFault``).
    """
    import optuna

    from rlkit import train as train_lib

    rule = settings.rule()
    start = time.perf_counter()
    values = space.sample(trial, base)
    trial.set_user_attr("settings", values)
    trial.set_user_attr("worker", worker)
    if "tensorflow" in sys.modules:  # its pools' sizes: 1 and 1 in workers (0: TF's choice)
        pools = sys.modules["tensorflow"].config.threading
        sizes = [pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads()]
        trial.set_user_attr("tf_threads", sizes)
    overrides = {**settings.overrides, **values}
    every = int(overrides.get("eval_every", settings.eval_every))
    head = f"trial {trial.number}"
    seeds, runs = settings.seeds(), []
    for i, seed in enumerate(seeds):
        run_dir = trial_run_dir(settings, trial.number, seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.append({"seed": seed, "run_dir": str(run_dir)})
        trial.set_user_attr("runs", runs)
        earlier = [r["value"] for r in runs[:-1]]
        reporter = OptunaReporter(
            trial, rule, every=every, offset=i * settings.total_steps, earlier=earlier
        )
        try:
            with (
                open(run_dir / "tune.log", "w") as log,
                contextlib.redirect_stdout(log),
            ):
                train_lib.run(
                    settings.agent,
                    settings.env,
                    total_steps=settings.total_steps,
                    seed=seed,
                    overrides=overrides,
                    run_dir=run_dir,
                    callbacks=[reporter],
                )
        except NumericalError as e:
            trial.set_user_attr("error", str(e))
            print(f"{head}: pruned, the loss diverged ({run_dir})", flush=True)
            raise optuna.TrialPruned(f"diverged: {e}") from None
        except RlkitError as e:  # ConfigError, mostly: a combination rlkit refuses
            trial.set_user_attr("error", str(e))
            print(f"{head}: failed, rlkit refuses these settings: {e}", flush=True)
            raise TrialFailed(str(e)) from None
        except TrainingFault as e:  # env workers that keep failing, a full disk
            trial.set_user_attr("error", str(e))
            print(f"{head}: failed, the run stopped: {e}", flush=True)
            raise TrialFailed(str(e)) from None
        except KeyboardInterrupt:
            print(f"{head}: interrupted (marked failed; its run is in {run_dir})", flush=True)
            raise
        if reporter.pruned_at is not None:
            runs[-1]["pruned_at"] = reporter.pruned_at
            trial.set_user_attr("runs", runs)
            print(
                f"{head}: pruned at {reporter.pruned_at:,} env steps (evaluation mean "
                f"{reporter.last_mean:.1f}) [{time.perf_counter() - start:.0f} s] "
                f"{format_settings(values)}",
                flush=True,
            )
            raise optuna.TrialPruned(f"pruned at {reporter.pruned_at} env steps")
        results_file = run_dir / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else {}
        final_mean = results.get("mean_reward", reporter.last_mean)
        if final_mean is None:
            raise TrialFailed(f"{run_dir}: no evaluation ran; lower eval_every")
        value = rule.final_value(reporter.solved_steps, final_mean)
        runs[-1].update(
            value=value,
            final_mean=final_mean,
            solved_at=reporter.solved_steps,
            env_steps=results.get("train_env_steps"),
        )
        trial.set_user_attr("runs", runs)
        if reporter.solved_steps is not None and rule.kind == "steps":
            reporter.fill_in(value)
    value = sum(r["value"] for r in runs) / len(runs)
    solved = [r["solved_at"] for r in runs if r["solved_at"] is not None]
    if rule.kind == "steps":
        detail = (
            f"confirmed {rule.stop_reward:g} in {len(solved)}/{len(runs)} run(s)"
            if len(runs) > 1
            else f"confirmed {rule.stop_reward:g} at {solved[0]:,} env steps"
            if solved
            else f"not solved, final mean {runs[0]['final_mean']:.1f}"
        )
        shown = f"{value:,.0f}"
    else:
        detail, shown = f"final mean over {len(runs)} run(s)", f"{value:.2f}"
    print(
        f"{head}: value {shown} ({detail}) [{time.perf_counter() - start:.0f} s] "
        f"{format_settings(values)}",
        flush=True,
    )
    return value


# -- running trials: in this process or in workers ---------------------------------------
class Budget:
    """Trials left to start, shared by the workers (a ``multiprocessing.Value``) or not."""

    def __init__(self, left: int, shared: Any = None) -> None:
        self.left, self.shared = left, shared

    def take(self) -> bool:
        """Claim one trial; False when none is left."""
        if self.shared is None:
            if self.left <= 0:
                return False
            self.left -= 1
            return True
        with self.shared.get_lock():
            if self.shared.value <= 0:
                return False
            self.shared.value -= 1
            return True


def base_settings(settings: TuneSettings) -> tuple[type, dict[str, Any]]:
    """The agent class and the resolved settings of a trial before sampling."""
    from rlkit import config as config_lib
    from rlkit.agents import get_agent_class

    agent_cls = get_agent_class(settings.agent)
    overrides = {**settings.overrides, "total_steps": settings.total_steps}
    run_cfg, agent_cfg = config_lib.resolve(agent_cls, settings.env, overrides=overrides)
    return agent_cls, {**config_lib.plain_dict(run_cfg), **config_lib.plain_dict(agent_cfg)}


def optimize(
    settings: TuneSettings,
    budget: Budget,
    *,
    worker: int = 0,
    first_is_ours: bool = False,
    deadline: float | None = None,
    parent: int | None = None,
) -> None:
    """Run trials of the study until the budget, the deadline or the parent process is gone.

    ``first_is_ours``: this worker runs one trial without taking it from the budget (every
    worker gets at least one). ``parent``: stop when this process is no longer the parent.
    """
    import functools

    from rlkit.search_space import SearchSpace

    study = load_study(settings, worker)
    agent_cls, base = base_settings(settings)
    space = SearchSpace.load(settings.space_file, agent_cls)
    objective = functools.partial(
        run_trial, settings=settings, space=space, base=base, worker=worker
    )
    free = first_is_ours
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        if parent is not None and os.getppid() != parent:
            return
        if not free and not budget.take():
            return
        free = False
        study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True)


def worker_main(
    settings: dict[str, Any], worker: int, shared: Any, deadline: float | None, parent: int
) -> None:
    """A ``spawn``ed worker: one TensorFlow thread per pool, trials until the budget is spent.

    It leaves the terminal's process group, so a Ctrl-C reaches only the main process,
    which passes it on once (the worker's running trial then stops at a step boundary).
    """
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from rlkit.tf_setup import limit_threads

    limit_threads(1)
    try:
        optimize(
            TuneSettings(**settings),
            Budget(0, shared),
            worker=worker,
            first_is_ours=True,
            deadline=deadline,
            parent=parent,
        )
    except KeyboardInterrupt:
        sys.exit(130)


def run_workers(settings: TuneSettings, workers: int, trials: int, deadline: float | None) -> str:
    """Run ``workers`` worker processes to completion; return how it ended.

    "done", "interrupted" (Ctrl-C or SIGTERM; passed on to the workers once, a second one
    passed on again forces them) or "failed" (a worker exited with an error).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    shared = ctx.Value("i", trials - workers)
    plain = dataclasses.asdict(settings)
    procs = [
        ctx.Process(
            target=worker_main,
            args=(plain, i, shared, deadline, os.getpid()),
            name=f"rlkit-tune-{i}",
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    interrupted = False
    while True:
        try:
            for proc in procs:
                proc.join()
            break
        except KeyboardInterrupt:
            if not interrupted:
                print("\ninterrupted: stopping the workers' running trials", flush=True)
            interrupted = True
            for proc in procs:
                if proc.is_alive() and proc.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGINT)
    if interrupted:
        return "interrupted"
    bad = [(p.name, p.exitcode) for p in procs if p.exitcode not in (0, 130)]
    for name, code in bad:
        print(f"error: worker {name} exited with code {code}", file=sys.stderr)
    return "failed" if bad else "done"

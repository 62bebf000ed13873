"""Experiment tracking: log a training run to Weights & Biases (``--track``) from a Callback.

``WandbTracker`` is a ``rlkit.callbacks.Callback`` that starts a W&B run when it is made and
logs to it:

- the run's settings (``config.yaml``: agent, env and every setting) as the W&B config;
- every scalar the run's ``Logger`` writes to TensorBoard (``train/*``, ``rollout/*``,
  ``time/*``, ``eval/*``), through W&B's TensorBoard sync: ``wandb.init(sync_tensorboard=True)``
  patches ``tf.summary.create_file_writer``, so the writer the Logger makes afterwards is
  watched and its events are read back into the W&B history, against ``global_step`` (the
  env steps). Without TensorBoard events (``learn`` without a ``run_dir``) the tracker logs
  the update metrics and evaluations itself;
- each periodic evaluation's row (``eval/*``) and, at the end, all of them as a table;
- the GIFs recorded during training (``video_every``) and the final episode's (``--video``)
  as ``wandb.Video``;
- ``results.json`` (``mean_reward``, ``std_reward``, ...) and the training totals into the
  W&B summary.

The W&B run id is kept in ``<run_dir>/wandb_run.json``, so that a resumed rlkit run
(``--resume``) continues the same W&B run. ``finish`` (or leaving a ``with`` block) ends the
W&B run with an exit code: 0, or that of the exception (130 after Ctrl-C).

wandb is imported only when a tracker is made or ``--track`` is given: ``import rlkit`` and
``rlkit.train`` stay free of it.

Example:
    >>> import rlkit.train
    >>> from rlkit.tracking import WandbTracker
    >>> with WandbTracker("runs/tracked", project="rlkit", tags=["demo"]) as tracker:
    ...     rlkit.train.run("a2c", "CartPole-v1", run_dir="runs/tracked", callbacks=[tracker])
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from rlkit import interrupts
from rlkit.callbacks import Callback
from rlkit.errors import MissingExtraError, RlkitError

INSTALL_HINT = "pip install 'rlkit[wandb]'"
DEFAULT_PROJECT = "rlkit"
RUN_ID_FILE = "wandb_run.json"
# Characters W&B refuses in project (and entity) names, and its limits on lengths.
FORBIDDEN_NAME_CHARS = "/\\#?%:"
MAX_NAME_LENGTH = 128
MAX_TAG_LENGTH = 64
# The parts of an evaluation row the Logger writes itself (rlkit.experiment.PeriodicEvaluator
# writes them as eval/<key>): with TensorBoard synced they reach W&B that way already.
LOGGER_EVAL_KEYS = frozenset({"mean_reward", "std_reward", "confirm_mean_reward"})
VIDEO_SUFFIXES = (".gif", ".mp4")
VIDEO_SCAN_SECONDS = 2.0  # how often on_step looks for new GIFs in <run_dir>/videos

T = TypeVar("T")


def import_wandb() -> Any:
    """Import and return ``wandb``.

    Raises:
        MissingExtraError: if it is not installed (the message names the extra).
    """
    try:
        import wandb
    except ImportError:
        raise MissingExtraError(
            f"experiment tracking needs Weights & Biases (wandb), which is not installed: "
            f"{INSTALL_HINT}"
        ) from None
    return wandb


# -- command line ------------------------------------------------------------------------
TRACKING_FLAGS = ("wandb_project", "wandb_entity", "wandb_group", "wandb_name", "wandb_tags")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--track`` and the ``--wandb-*`` flags to ``parser``."""
    group = parser.add_argument_group(f"experiment tracking with Weights & Biases ({INSTALL_HINT})")
    group.add_argument(
        "--track",
        action="store_true",
        help="log the run to W&B: settings, TensorBoard scalars, evaluations, videos and "
        "results (WANDB_MODE=offline keeps it on this machine; `wandb sync` uploads it later)",
    )
    group.add_argument(
        "--wandb-project",
        metavar="NAME",
        help=f"W&B project (default {DEFAULT_PROJECT!r}; --resume keeps the run's own)",
    )
    group.add_argument(
        "--wandb-entity", metavar="NAME", help="W&B user or team (default: your default entity)"
    )
    group.add_argument(
        "--wandb-group", metavar="NAME", help="W&B group, e.g. one name for several seeds"
    )
    group.add_argument(
        "--wandb-name", metavar="NAME", help="W&B run name (default: <agent>-<run folder name>)"
    )
    group.add_argument(
        "--wandb-tags",
        nargs="+",
        action="extend",
        metavar="TAG",
        help="W&B tags, several (--wandb-tags baseline cartpole); repeatable",
    )


def check_tags(tags: Iterable[str]) -> list[str]:
    """W&B tags, stripped and without repeats.

    Raises:
        RlkitError: for an empty tag or one longer than W&B allows (64 characters).
    """
    out: list[str] = []
    for tag in tags:
        text = str(tag).strip()
        if not 1 <= len(text) <= MAX_TAG_LENGTH:
            raise RlkitError(
                f"W&B tags must have 1 to {MAX_TAG_LENGTH} characters; got {str(tag)!r} "
                f"({len(text)} characters)"
            )
        if text not in out:
            out.append(text)
    return out


def check_name(flag: str, value: str | None, *, forbid: str = "") -> None:
    """Check a W&B project, entity, group or run name given with ``flag``.

    Raises:
        RlkitError: for an empty name, one that is too long or, when ``forbid`` is given,
            one holding whitespace or a character of ``forbid``.
    """
    if value is None:
        return
    if not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise RlkitError(f"{flag} must have 1 to {MAX_NAME_LENGTH} characters; got {value!r}")
    if forbid and any(c in forbid or c.isspace() for c in value):
        raise RlkitError(
            f"{flag} {value!r} may not contain whitespace or any of {' '.join(forbid)} "
            "(W&B refuses them in project and entity names)"
        )


def check_args(args: argparse.Namespace) -> None:
    """Check the tracking flags; with ``--track``, also that wandb can be imported.

    Called before anything is built, so that bad input exits with code 2 at once.

    Raises:
        RlkitError: a ``--wandb-*`` flag without ``--track``, or a bad name or tag.
        MissingExtraError: ``--track`` without wandb installed.
    """
    given = [flag for flag in TRACKING_FLAGS if getattr(args, flag, None) is not None]
    if not getattr(args, "track", False):
        if given:
            raise RlkitError(f"--{given[0].replace('_', '-')} needs --track")
        return
    check_name("--wandb-project", args.wandb_project, forbid=FORBIDDEN_NAME_CHARS)
    check_name("--wandb-entity", args.wandb_entity, forbid=FORBIDDEN_NAME_CHARS)
    check_name("--wandb-group", args.wandb_group)
    check_name("--wandb-name", args.wandb_name)
    check_tags(args.wandb_tags or ())
    import_wandb()


def start_run(args: argparse.Namespace, run_dir: Path, resolved_yaml: str) -> WandbTracker:
    """The tracker of a ``python -m rlkit.train --track`` run, its W&B run started.

    Args:
        args: the parsed command line (``--wandb-*``, ``--resume``, ``--quiet``).
        run_dir: the run folder.
        resolved_yaml: the run's ``config.yaml`` text, which becomes the W&B config.
    """
    import yaml

    config = yaml.safe_load(resolved_yaml)
    return WandbTracker(
        run_dir,
        project=args.wandb_project,
        entity=args.wandb_entity,
        group=args.wandb_group,
        name=args.wandb_name or f"{config['agent']}-{Path(run_dir).name}",
        tags=args.wandb_tags or (),
        config=config,
        resume=bool(args.resume),
        quiet=bool(args.quiet),
    )


def exit_code_for(error: BaseException | None) -> int:
    """The exit code ``python -m rlkit.train`` gives for ``error`` (0 for none)."""
    if error is None:
        return 0
    if isinstance(error, KeyboardInterrupt):
        return 128 + int(interrupts.requested_signal() or signal.SIGINT)
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    if isinstance(error, RlkitError):
        return 2
    return 1


def run_and_finish(train: Callable[[argparse.Namespace], T], args: argparse.Namespace) -> T:
    """Call ``train(args)``, then finish the W&B run it started, if any (``args.tracker``).

    The W&B run ends with exit code 0, or with the one the exception gives (and the
    exception goes on).
    """
    try:
        out = train(args)
    except BaseException as error:
        tracker = getattr(args, "tracker", None)
        if tracker is not None:
            try:
                tracker.finish(exit_code_for(error))
            except Exception as finish_error:  # the training error matters more
                print(f"warning: W&B run not finished: {finish_error}", file=sys.stderr)
        raise
    tracker = getattr(args, "tracker", None)
    if tracker is not None:
        tracker.finish(0)
    return out


# -- the callback ------------------------------------------------------------------------
class WandbTracker(Callback):
    """Logs a training run to Weights & Biases; the W&B run starts when this is made.

    Make it before training starts (before ``learn`` or ``rlkit.train.run``), since W&B's
    TensorBoard sync watches the writers made after ``wandb.init``; end it with ``finish``
    or use it as a context manager. The W&B mode (online, offline, disabled) and folder
    come from W&B's own settings (``WANDB_MODE``, ``WANDB_DIR``) unless given in
    ``init_kwargs``.

    Args:
        run_dir: the run folder (``learn``'s ``run_dir``): its TensorBoard events are
            synced, its GIFs logged, its ``results.json`` put in the W&B summary and the W&B
            run id kept in ``wandb_run.json``. None: a run without a folder.
        project: W&B project (default "rlkit", or the saved one when resuming).
        entity: W&B user or team (default: W&B's default, or the saved one when resuming).
        group: W&B group.
        name: W&B run name.
        tags: W&B tags.
        config: the W&B config; None: the run folder's ``config.yaml`` when training starts,
            or else the agent's settings.
        resume: continue the W&B run whose id ``run_dir/wandb_run.json`` holds (with
            ``resume="allow"``); a new W&B run if there is none.
        sync_tensorboard: sync the Logger's TensorBoard scalars. None (default): when
            ``run_dir`` is given and the ``tensorboard`` package is installed. Otherwise the
            tracker logs the update metrics (averaged over ``log_every`` env steps) and
            evaluations itself.
        log_every: env steps between the tracker's own logs of update metrics (without
            TensorBoard sync only).
        quiet: no W&B console output.
        **init_kwargs: more ``wandb.init`` arguments (``mode``, ``dir``, ``notes``, ...).

    Raises:
        MissingExtraError: if wandb is not installed.
        RlkitError: for a bad tag or name, or when W&B cannot start the run (not logged in).
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        project: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
        resume: bool = False,
        sync_tensorboard: bool | None = None,
        log_every: int = 1000,
        quiet: bool = False,
        **init_kwargs: Any,
    ) -> None:
        wandb = import_wandb()
        self.wandb = wandb
        self.run_dir = Path(run_dir) if run_dir is not None else None
        has_tensorboard = importlib.util.find_spec("tensorboard") is not None
        if sync_tensorboard is None:
            sync_tensorboard = self.run_dir is not None and has_tensorboard
        elif sync_tensorboard and not has_tensorboard:
            raise MissingExtraError(
                "syncing TensorBoard to W&B needs the tensorboard package: pip install tensorboard"
            )
        self.sync_tensorboard = bool(sync_tensorboard)
        check_name("project", project, forbid=FORBIDDEN_NAME_CHARS)
        check_name("entity", entity, forbid=FORBIDDEN_NAME_CHARS)
        saved = self.saved_run() if resume else {}
        if resume and not saved and not quiet:
            where = self.run_dir / RUN_ID_FILE if self.run_dir is not None else "no run_dir"
            print(f"tracking: no W&B run to continue ({where}); starting a new one", flush=True)
        # W&B never unpatches TensorBoard; undo our patch at the end, not somebody else's.
        self._unpatch = self.sync_tensorboard and not wandb.patched["tensorboard"]
        settings = init_kwargs.pop("settings", None)
        if quiet and settings is None:
            settings = wandb.Settings(silent=True)
        try:
            self.run = wandb.init(
                project=project or saved.get("project") or DEFAULT_PROJECT,
                entity=entity or saved.get("entity") or None,
                group=group,
                name=name,
                tags=check_tags(tags) or None,
                id=saved.get("id"),
                resume="allow" if saved.get("id") else None,
                job_type="train",
                sync_tensorboard=self.sync_tensorboard,
                settings=settings,
                **init_kwargs,
            )
        except wandb.errors.Error as error:
            raise RlkitError(
                f"W&B could not start the run: {error} (log in with `wandb login`, or set "
                "WANDB_MODE=offline to keep the run on this machine)"
            ) from None
        # Every scalar is plotted against the env steps: the TensorBoard events bring
        # global_step, and the tracker's own logs carry it too.
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")
        self._config_given = config is not None
        if config is not None:
            self.run.config.update(dict(config), allow_val_change=True)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.run.summary["run_dir"] = str(self.run_dir.resolve())
            record = {"id": self.run.id, "project": self.run.project, "entity": None}
            record["entity"] = getattr(self.run, "entity", None) or None
            (self.run_dir / RUN_ID_FILE).write_text(json.dumps(record, indent=2) + "\n")
        self.log_every = max(int(log_every), 1)
        self.env_steps = 0
        self.evaluations: list[dict[str, Any]] = []  # rows seen by this process
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._next_log = self.log_every
        self._logged_videos: dict[str, int] = {}  # file name -> mtime (ns) when logged
        self._next_scan = 0.0
        self._started = time.time()
        self._ended = self._finished = False

    @property
    def run_id(self) -> str:
        """The W&B run id."""
        return str(self.run.id)

    def saved_run(self) -> dict[str, Any]:
        """What ``wandb_run.json`` in the run folder holds (empty if there is none)."""
        path = self.run_dir / RUN_ID_FILE if self.run_dir is not None else None
        if path is None or not path.is_file():
            return {}
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RlkitError(f"{str(path)!r} is not readable JSON ({error}); delete it") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("id"), str):
            raise RlkitError(f"{str(path)!r} holds no W&B run id; delete it to start a new run")
        return saved

    # -- hooks ---------------------------------------------------------------------------
    def on_training_start(self, agent: Any, env_steps: int) -> None:
        """Fill the W&B config if none was given; note the GIFs already recorded."""
        self.env_steps = env_steps
        if not self._config_given:
            self.run.config.update(self._settings_of(agent), allow_val_change=True)
        # GIFs from before a resume were logged by the process that recorded them.
        self._logged_videos = {p.name: p.stat().st_mtime_ns for p in self._videos()}

    def on_step(self, env_steps: int) -> None:
        """Log the GIFs recorded since the last look (every few seconds)."""
        self.env_steps = env_steps
        if self.run_dir is not None and time.monotonic() >= self._next_scan:
            self._log_new_videos()

    def on_update(self, env_steps: int, metrics: Mapping[str, float]) -> None:
        """Without TensorBoard sync: average the metrics, log them every ``log_every`` steps."""
        if self.sync_tensorboard:
            return
        for key, value in metrics.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1
        if env_steps >= self._next_log:
            self._log_metrics(env_steps)

    def on_evaluation(self, env_steps: int, row: Mapping[str, Any]) -> None:
        """Log the evaluation's row as ``eval/<key>`` (what TensorBoard does not bring)."""
        self.evaluations.append(dict(row))
        skip = {"env_steps", *(LOGGER_EVAL_KEYS if self.sync_tensorboard else ())}
        values = {f"eval/{k}": v for k, v in row.items() if k not in skip}
        self.run.log({"global_step": env_steps, **values})
        self._log_new_videos()

    def on_checkpoint(self, env_steps: int, path: Path) -> None:
        """Keep the newest checkpoint's folder in the W&B summary."""
        self.run.summary["last_checkpoint"] = str(Path(path).resolve())

    def on_training_end(self, result: Any) -> None:
        """Log what is left, the evaluation table and the training totals."""
        self._ended = True
        self.env_steps = result.env_steps
        self._log_metrics(result.env_steps)
        self._log_new_videos()
        # A resumed run's result holds the earlier processes' evaluations too.
        self._log_evaluation_table(result.evaluations or self.evaluations)
        summary = {
            "env_steps": result.env_steps,
            "episodes": result.episodes,
            "train_seconds": result.train_seconds,
            "train_mean_return": result.mean_return,
            "stopped_by": result.stopped_by,
            "solved_at": result.solved_at,
        }
        self.run.summary.update({k: v for k, v in summary.items() if v is not None})

    # -- the end -------------------------------------------------------------------------
    def finish(self, exit_code: int = 0) -> None:
        """End the W&B run (once); after a successful run, log ``results.json`` first.

        ``results.json`` goes into the W&B summary (its per-episode ``returns`` stay in the
        file, which is saved with the run) and ``final_episode.gif`` is logged as
        ``video/final_episode``.
        """
        if self._finished:
            return
        self._finished = True
        try:
            if not self._ended:  # stopped by an exception: log what there is
                self._log_new_videos()
                self._log_evaluation_table(self.evaluations)
            if exit_code == 0:
                self._log_results()
        finally:
            self.run.finish(exit_code=exit_code)
            if self._unpatch and self.wandb.patched["tensorboard"]:
                self.wandb.tensorboard.unpatch()

    def __enter__(self) -> WandbTracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish(exit_code_for(exc))

    # -- helpers -------------------------------------------------------------------------
    def _settings_of(self, agent: Any) -> dict[str, Any]:
        """The run folder's ``config.yaml``, or else the agent's name and settings."""
        if self.run_dir is not None and (self.run_dir / "config.yaml").is_file():
            from rlkit.preset_files import read_yaml

            return read_yaml(self.run_dir / "config.yaml")
        from dataclasses import is_dataclass

        from rlkit.config import plain_dict

        cfg = getattr(agent, "config", None)
        settings = plain_dict(cfg) if is_dataclass(cfg) and not isinstance(cfg, type) else {}
        return {"agent": getattr(agent, "name", type(agent).__name__), **settings}

    def _log_metrics(self, env_steps: int) -> None:
        """Log the averaged update metrics gathered so far (without TensorBoard sync)."""
        if self._sums:
            means = {k: total / self._counts[k] for k, total in self._sums.items()}
            self.run.log({"global_step": env_steps, **means})
            self._sums, self._counts = {}, {}
        self._next_log = (env_steps // self.log_every + 1) * self.log_every

    def _videos(self) -> list[Path]:
        folder = self.run_dir / "videos" if self.run_dir is not None else None
        if folder is None or not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix in VIDEO_SUFFIXES)

    def _log_new_videos(self) -> None:
        """Log each GIF in ``<run_dir>/videos`` not logged yet, at the step in its name."""
        self._next_scan = time.monotonic() + VIDEO_SCAN_SECONDS
        for path in self._videos():
            mtime = path.stat().st_mtime_ns
            if self._logged_videos.get(path.name) == mtime:
                continue
            self._logged_videos[path.name] = mtime
            digits = re.search(r"\d+", path.stem)  # step_000001000.gif
            step = int(digits.group()) if digits else self.env_steps
            video = self.wandb.Video(str(path), format=path.suffix[1:])
            self.run.log({"global_step": step, "video/evaluation": video})

    def _log_evaluation_table(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        data = [[row.get(k) for k in columns] for row in rows]
        table = self.wandb.Table(columns=columns, data=data)
        self.run.log({"global_step": self.env_steps, "eval/table": table})

    def _log_results(self) -> None:
        """``results.json`` (if this run wrote it) into the summary; the final GIF as a video."""
        if self.run_dir is None:
            return
        path = self.run_dir / "results.json"
        if not path.is_file() or path.stat().st_mtime < self._started:
            return  # none, or an earlier process's
        results = json.loads(path.read_text())
        self.run.summary.update({k: v for k, v in results.items() if k != "returns"})
        # A copy in the W&B run's own folder (a file outside it would be symlinked, with a warning).
        copy = Path(self.run.dir) / path.name
        shutil.copyfile(path, copy)
        self.run.save(str(copy), base_path=self.run.dir, policy="now")
        video = Path(str(results.get("video", "")))
        if results.get("video") and video.is_file():
            clip = self.wandb.Video(str(video), format=video.suffix[1:])
            self.run.log({"global_step": self.env_steps, "video/final_episode": clip})

"""One ``write(metrics, step)`` for the console, ``progress.csv`` and TensorBoard."""

from __future__ import annotations

import csv
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.types import EpisodeStats


class Logger:
    """Collects metrics and episode statistics and dumps them every ``log_interval`` steps.

    Args:
        run_dir: folder for ``progress.csv`` and TensorBoard events (None: console only).
        total_steps: the run's budget, for the progress display.
        log_interval: env steps between rows.
        verbose: 0 silent, 1 a progress line per dump (a live bar on a terminal).
        window: episodes averaged in ``rollout/ep_rew_mean``.
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        total_steps: int,
        log_interval: int,
        verbose: int = 1,
        window: int = 100,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.total_steps, self.log_interval, self.verbose = total_steps, log_interval, verbose
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self._metrics: dict[str, list[float]] = {}
        self._next_dump = log_interval
        self._start = time.perf_counter()
        self._last_time, self._last_step = self._start, 0
        self._fps = 0.0
        self._csv_keys: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._tb = None
        if self.run_dir is not None:
            import tensorflow as tf

            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._tb = tf.summary.create_file_writer(str(self.run_dir / "tb"))
        self._live = None
        if verbose and sys.stdout.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._live = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                TextColumn("{task.completed:>9,}/{task.total:,} steps"),
                TextColumn("{task.fields[fps]:>7,.0f} fps"),
                TextColumn("ep_rew_mean {task.fields[rew]}"),
                TextColumn("eval {task.fields[ev]}"),
                TimeRemainingColumn(),
            )
            self._task = self._live.add_task("train", total=total_steps, fps=0.0, rew="-", ev="-")
            self._live.start()

    def state(self) -> dict[str, Any]:
        """Episode window and counters, for checkpoints (JSON-able)."""
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "episodes": self.episodes,
            "next_dump": self._next_dump,
            "last_step": self._last_step,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``, appending to the existing ``progress.csv``."""
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])
        self.episodes, self._next_dump = state["episodes"], state["next_dump"]
        self._last_step = state["last_step"]
        path = self.run_dir / "progress.csv" if self.run_dir is not None else None
        if path is not None and path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self._rows = [
                    r for r in reader if int(float(r["time/env_steps"])) <= self._last_step
                ]
                self._csv_keys = list(reader.fieldnames or [])
            with open(path, "w", newline="") as f:  # drop rows written after the checkpoint
                w = csv.DictWriter(f, fieldnames=self._csv_keys)
                w.writeheader()
                w.writerows(self._rows)

    def write(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step`` (averaged until the next dump)."""
        for k, v in metrics.items():
            self._metrics.setdefault(k, []).append(float(v))
        self.maybe_dump(step)

    def note(self, text: str, step: int, short: str | None = None) -> None:
        """Print one line of news (an evaluation, say) above the progress display.

        Args:
            text: the line.
            step: env steps when it happened.
            short: a few characters for the live bar's ``eval`` column (default: none).
        """
        if self._live is not None:
            self._live.console.print(text)
            if short is not None:
                self._live.update(self._task, completed=step, ev=short)
        elif self.verbose:
            print(text, flush=True)

    def write_episodes(self, stats: EpisodeStats, step: int) -> None:
        """Record finished episodes."""
        if len(stats.returns):
            self.returns.extend(stats.returns.tolist())
            self.lengths.extend(stats.lengths.tolist())
            self.episodes += len(stats.returns)
        self.maybe_dump(step)

    @property
    def mean_return(self) -> float:
        """Mean return over the last ``window`` episodes (nan if none finished)."""
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def maybe_dump(self, step: int) -> None:
        """Dump a row once ``log_interval`` steps have passed since the last one."""
        if step >= self._next_dump:
            self.dump(step)
            self._next_dump = (step // self.log_interval + 1) * self.log_interval

    def dump_final(self, step: int) -> None:
        """Dump the last row unless the last dump was at ``step`` already."""
        if step > self._last_step or self._metrics:
            self.dump(step, echo=step > self._last_step)

    def dump(self, step: int, echo: bool = True) -> dict[str, Any]:
        """Write one row now: CSV, TensorBoard and (if ``echo``) the console."""
        now = time.perf_counter()
        row: dict[str, Any] = {"time/env_steps": step}
        if step > self._last_step:
            self._fps = (step - self._last_step) / max(now - self._last_time, 1e-9)
        row["time/fps"] = self._fps
        row["time/elapsed_s"] = now - self._start
        row["time/episodes"] = self.episodes
        if self.returns:
            row["rollout/ep_rew_mean"] = self.mean_return
            row["rollout/ep_len_mean"] = float(np.mean(self.lengths))
        row.update({k: float(np.mean(v)) for k, v in self._metrics.items()})
        self._metrics.clear()
        self._last_time, self._last_step = now, step
        self._rows.append(row)
        if self.run_dir is not None:
            self._write_csv(row)
            self._write_tensorboard(row, step)
        if echo:
            self._print(row, step)
        return row

    def _write_csv(self, row: dict[str, Any]) -> None:
        path = self.run_dir / "progress.csv"  # type: ignore[operator]
        new_keys = [k for k in row if k not in self._csv_keys]
        if new_keys:  # a metric appeared (e.g. train/loss after learning_starts): rewrite
            self._csv_keys += new_keys
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self._csv_keys)
                w.writeheader()
                w.writerows(self._rows)
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._csv_keys).writerow(row)

    def _write_tensorboard(self, row: dict[str, Any], step: int) -> None:
        import tensorflow as tf

        with self._tb.as_default():  # type: ignore[union-attr]
            for k, v in row.items():
                if k != "time/env_steps":
                    tf.summary.scalar(k, v, step=step)
        self._tb.flush()  # type: ignore[union-attr]

    def _print(self, row: dict[str, Any], step: int) -> None:
        rew = row.get("rollout/ep_rew_mean")
        rew_text = "-" if rew is None else f"{rew:.1f}"
        if self._live is not None:
            self._live.update(self._task, completed=step, fps=row["time/fps"], rew=rew_text)
        elif self.verbose:
            loss = row.get("train/loss", row.get("train/policy_loss"))
            extra = "" if loss is None else f"  loss {loss:.4g}"
            print(
                f"steps {step:>9,}/{self.total_steps:,}  fps {row['time/fps']:>7,.0f}  "
                f"episodes {self.episodes:>6,}  ep_rew_mean {rew_text:>7}{extra}",
                flush=True,
            )

    def close(self) -> None:
        """Stop the live display and close the TensorBoard writer."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._tb is not None:
            self._tb.close()

"""Atomic run checkpoints: TF variables, replay arrays and counters, verified on load.

Layout of one checkpoint, ``RUN_DIR/checkpoints/step_000050000/``::

    manifest.json     format version, step, and the size and sha256 of every file below
    agent.index, agent.data-*    tf.train.Checkpoint of agent.checkpoint_items()
    state.json        counters and RNG states (JSON; no pickle anywhere)
    arrays/*.npy      the replay buffer's written rows (loaded with allow_pickle=False)

A checkpoint is written into ``.tmp-step_...``, every file fsynced, then renamed into
place (and the folder fsynced), so a crash leaves either the previous checkpoint or the
new one, never half of one. A write that fails (a full disk, an I/O error) removes its
temporary folder and raises ``CheckpointWriteError`` naming the previous checkpoint, which
is untouched. Loading verifies the manifest and falls back to the previous
checkpoint, with a warning, if a file is missing, truncated or altered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rlkit.errors import CheckpointWriteError, RlkitError

FORMAT_VERSION = 1
PREFIX = "step_"


class CheckpointError(RlkitError):
    """No usable checkpoint, or one written by a newer rlkit."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint folder (``RUN/checkpoints/step_N``)."""
    return (Path(path) / "manifest.json").is_file() and (Path(path) / "state.json").is_file()


class Checkpointer:
    """Writes checkpoints every ``every`` env steps into ``run_dir/checkpoints``.

    Args:
        run_dir: the run folder.
        every: env steps between checkpoints (0: only when ``save`` is called directly).
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, run_dir: str | Path, every: int = 0, keep: int = 3) -> None:
        self.root = Path(run_dir) / "checkpoints"
        self.every, self.keep = every, max(1, keep)
        self.next_step = every

    def schedule_after(self, step: int) -> None:
        """Make the next periodic checkpoint the first multiple of ``every`` after ``step``."""
        if self.every > 0:
            self.next_step = (step // self.every + 1) * self.every

    def due(self, env_steps: int) -> bool:
        """Whether a periodic checkpoint is due at ``env_steps``."""
        return self.every > 0 and env_steps >= self.next_step

    def save(
        self, step: int, agent: Any, state: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> Path:
        """Write one checkpoint atomically; return its folder.

        Args:
            step: env steps so far (names the checkpoint).
            agent: its ``checkpoint_items()`` are saved with ``tf.train.Checkpoint``.
            state: JSON-able counters and RNG states.
            arrays: numpy arrays (the replay buffer), saved as ``.npy``.

        Raises:
            CheckpointWriteError: if the write failed; the previous checkpoints are intact.
        """
        self.schedule_after(step)
        name = f"{PREFIX}{step:012d}"
        final, tmp = self.root / name, self.root / f".tmp-{name}"
        try:
            self._write(tmp, step, agent, state, arrays)
        except BaseException as error:  # a full disk, an I/O error, or Ctrl-C mid-write
            import tensorflow as tf

            shutil.rmtree(tmp, ignore_errors=True)
            if not isinstance(error, (OSError, tf.errors.OpError)):
                raise
            previous = self.checkpoints()
            kept = f"the previous one, {previous[-1]}, is intact" if previous else "none before"
            raise CheckpointWriteError(
                f"could not write checkpoint {final} ({error}); {kept}"
            ) from error
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        for old in self.checkpoints()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _write(
        self,
        tmp: Path,
        step: int,
        agent: Any,
        state: dict[str, Any],
        arrays: dict[str, np.ndarray],
    ) -> None:
        """Write every file of a checkpoint into ``tmp`` and fsync them."""
        import tensorflow as tf

        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "arrays").mkdir(parents=True)
        agent.before_checkpoint()
        tf.train.Checkpoint(**agent.checkpoint_items()).write(str(tmp / "agent"))
        (tmp / "state.json").write_text(json.dumps(state))
        for key, array in arrays.items():
            np.save(tmp / "arrays" / f"{key}.npy", np.asarray(array), allow_pickle=False)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "format_version": FORMAT_VERSION,
            "step": step,
            "files": {
                str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                for p in files
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        for p in [*files, tmp / "manifest.json"]:
            _fsync_file(p)
        _fsync_dir(tmp)

    def checkpoints(self) -> list[Path]:
        """Complete checkpoint folders, oldest first."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.iterdir() if p.name.startswith(PREFIX) and p.is_dir())

    def load_latest(self) -> tuple[Path, dict[str, Any], dict[str, np.ndarray]]:
        """The newest checkpoint that verifies: (folder, state, arrays).

        Raises:
            CheckpointError: if none verifies, or the newest was written by a newer rlkit.
        """
        problems = []
        for path in reversed(self.checkpoints()):
            try:
                return path, *self._load(path)
            except CheckpointError:
                raise
            except (OSError, ValueError, KeyError) as e:
                problems.append(f"{path.name}: {e}")
                warnings.warn(
                    f"checkpoint {path} is damaged ({e}); falling back to the previous one",
                    stacklevel=2,
                )
        detail = "; ".join(problems) if problems else "there is none"
        raise CheckpointError(f"no usable checkpoint in {self.root}: {detail}")

    def _load(self, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        self.verify(path)
        state = json.loads((path / "state.json").read_text())
        arrays = {
            p.stem: np.load(p, allow_pickle=False) for p in sorted((path / "arrays").glob("*.npy"))
        }
        return state, arrays

    @staticmethod
    def verify(path: Path) -> None:
        """Check a checkpoint folder against its manifest.

        Raises:
            CheckpointError: for a format newer than this rlkit reads.
            ValueError: for a missing or altered file.
        """
        manifest = json.loads((path / "manifest.json").read_text())
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format {version}; this rlkit reads format "
                f"{FORMAT_VERSION} and older: upgrade rlkit to resume it"
            )
        for rel, info in manifest["files"].items():
            file = path / rel
            if not file.is_file():
                raise ValueError(f"{rel} is missing")
            if file.stat().st_size != info["bytes"] or _sha256(file) != info["sha256"]:
                raise ValueError(f"{rel} does not match its checksum")

    def check_fits(self, agent: Any) -> None:
        """Raise ``CheckpointError`` now if the newest checkpoint cannot load into ``agent``.

        For ``--resume`` before anything is written: a network changed with ``--set``
        would otherwise fail later, after the run's ``config.yaml`` was overwritten.
        A damaged checkpoint is left for ``load_latest`` to skip.
        """
        existing = self.checkpoints()
        if not existing:
            return
        try:
            self.restore_agent(existing[-1], agent)
        except CheckpointError:
            raise
        except Exception:  # noqa: BLE001 - damaged files: load_latest falls back later
            return

    @staticmethod
    def restore_agent(path: Path, agent: Any) -> None:
        """Load the agent's variables from checkpoint ``path`` and refresh its Python state.

        Raises:
            CheckpointError: if the checkpoint's variables do not fit the agent's.
        """
        import tensorflow as tf

        try:
            status = tf.train.Checkpoint(**agent.checkpoint_items()).read(str(path / "agent"))
            status.assert_consumed()
        except (ValueError, AssertionError) as e:
            raise CheckpointError(
                f"checkpoint {path} does not fit this {type(agent).__name__} (its network or "
                f"settings differ: {str(e).splitlines()[0]}); resume with the run's own "
                "settings, without --set for network or agent settings"
            ) from None
        agent.after_restore()

"""Process listing from /proc, for tests that check no worker outlives a run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def _stats() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        yield int(entry.name), fields[0], int(fields[1]), int(fields[2])


def live_children(parent: int | None = None) -> set[int]:
    """Pids of the running (not zombie) children of ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    return {pid for pid, state, ppid, _ in _stats() if ppid == parent and state != "Z"}


def is_resource_tracker(pid: int) -> bool:
    """Whether ``pid`` is multiprocessing's resource tracker (it lives as long as its parent)."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def live_workers(parent: int | None = None) -> set[int]:
    """The ``spawn``ed multiprocessing workers among ``live_children`` (env workers).

    Not the resource tracker, and not other children such as Ray's processes.
    """
    return {
        pid
        for pid in live_children(parent)
        if b"spawn_main" in _cmdline(pid) and not is_resource_tracker(pid)
    }


def live_group_members(pgid: int) -> set[int]:
    """Pids of the running (not zombie) processes in process group ``pgid``."""
    return {pid for pid, state, _, group in _stats() if group == pgid and state != "Z"}

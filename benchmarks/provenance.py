"""Where a benchmark figure comes from: machine, versions and commit, saved with the rows.

Usage (from a script in ``benchmarks/``, which Python puts on ``sys.path``):

    from provenance import save_rows
    save_rows("throughput", rows, settings={"repeats": 3})
    # -> results/throughput.json ({"meta": ..., "settings": ..., "rows": [...]})
    #    results/throughput.csv  (the rows, one column per key)
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PACKAGES = ("rlkit", "tensorflow", "keras", "numpy", "gymnasium", "ale-py")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def accelerators() -> list[str]:
    """TensorFlow's visible GPUs by name, or ``["CPU"]`` (imports TensorFlow)."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
    return names or ["CPU"]


def load_now() -> dict[str, Any]:
    """Load averages and the kernel's CPU pressure (share of time tasks waited for a CPU)."""
    out: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()]}
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        out["cpu_pressure_some"] = {k: float(v) for k, v in (f.split("=") for f in some[1:4])}
    except (OSError, IndexError, ValueError):
        pass
    return out


def machine_info(with_tf: bool = False) -> dict[str, Any]:
    """Machine, versions and git commit of this run.

    Args:
        with_tf: also list TensorFlow's devices (imports TensorFlow).
    """
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_at_start": load_now(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }
    if with_tf:
        info["devices"] = accelerators()
    return info


def save_rows(
    name: str,
    rows: list[dict[str, Any]],
    *,
    settings: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    folder: Path = RESULTS,
) -> tuple[Path, Path]:
    """Write ``rows`` to ``folder/<name>.json`` (with provenance) and ``folder/<name>.csv``.

    Args:
        name: file stem.
        rows: one flat dict per measurement (the CSV's columns are the union of keys).
        settings: how the suite was run (CLI arguments), saved in the JSON.
        meta: provenance from ``machine_info`` (taken now if None).
        folder: where to write.

    Returns:
        The JSON and CSV paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta or machine_info(), "settings": settings or {}, "rows": rows}
    json_path = folder / f"{name}.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    csv_path = folder / f"{name}.csv"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path

"""Mixed precision: whether this machine runs bfloat16 fast, for ``mixed_precision: auto``.

bfloat16 halves the bytes and, on hardware built for it, roughly doubles the speed of
the Nature CNN (measured: A2C on Space Invaders 1.6x the env steps/s on a CPU with AMX).
On hardware without it, TensorFlow emulates bfloat16 and a run gets *slower*, so a preset
asks for ``auto``: bfloat16 where it is fast, float32 elsewhere.
"""

from __future__ import annotations

import functools
from pathlib import Path

MIXED_PRECISION_CHOICES = (False, True, "auto")
# x86 flags (Linux /proc/cpuinfo) of CPUs with bfloat16 dot products that oneDNN uses.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` (``model name``, ``flags``, ...).

    Empty where there is no such file (not Linux).
    """
    try:
        text = Path(path).read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key.strip() in fields:  # the second processor starts here
            break
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no ``/proc/cpuinfo``)."""
    return frozenset(cpu_info(path).get("flags", "").split())


@functools.lru_cache(maxsize=1)
def fast_bfloat16() -> tuple[bool, str]:
    """Whether TensorFlow's default device here runs bfloat16 fast, and why (for the log).

    A GPU decides when TensorFlow sees one (it takes the ops): compute capability 8.0 or
    newer (Ampere, Hopper, ...) has bfloat16 tensor cores. Otherwise the CPU: AMX-BF16 or
    AVX512-BF16. Anything else (older GPUs, other CPUs, no ``/proc/cpuinfo``) says no.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        caps = [
            tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus
        ]
        if all(c is not None and tuple(c) >= (8, 0) for c in caps):
            return True, "GPU compute capability " + ", ".join(f"{a}.{b}" for a, b in caps)
        return False, "GPU without bfloat16 tensor cores (compute capability < 8.0)"
    flags = cpu_flags()
    for flag in BF16_CPU_FLAGS:
        if flag in flags:
            return True, f"CPU with {flag}"
    return False, "CPU without AMX-BF16 or AVX512-BF16"


def use_mixed_precision(setting: bool | str, torso: str = "nature_cnn") -> bool:
    """Resolve an agent's ``mixed_precision`` setting (``True``, ``False`` or ``"auto"``).

    ``auto`` takes bfloat16 for the Nature CNN on fast hardware only: a small MLP acts
    through a float32 numpy copy (which bfloat16 would turn off) and has too few FLOPs to
    gain from it.
    """
    if setting == "auto":
        return torso == "nature_cnn" and fast_bfloat16()[0]
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_CHOICES}, got {setting!r}")


def describe_precision(setting: bool | str, torso: str = "nature_cnn") -> str:
    """One line for the run's start: what the torso computes in, and why."""
    on = use_mixed_precision(setting, torso)
    dtype = "bfloat16 torso, float32 heads and losses" if on else "float32"
    if setting != "auto":
        return dtype
    fast, why = fast_bfloat16()
    if fast and not on:
        why = f"an {torso} torso gains nothing from bfloat16"
    return f"{dtype} (mixed_precision: auto, {why})"

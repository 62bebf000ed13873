"""``mixed_precision: auto``: bfloat16 only where the hardware runs it fast."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlkit import precision
from rlkit.agents.a2c import A2C
from rlkit.agents.dqn import DQN
from rlkit.config import resolve
from rlkit.errors import ConfigError

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse sse2 avx2 {extra}
bogomips\t: 4000.00
"""


@pytest.fixture
def hardware(monkeypatch):
    """Pretend the machine has (or lacks) the given CPU flags and GPUs."""

    def set_hardware(cpu_flags=(), gpu_caps=()):
        import tensorflow as tf

        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(cpu_flags))
        gpus = [f"GPU:{i}" for i in range(len(gpu_caps))]
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus)
        details = dict(zip(gpus, gpu_caps, strict=True))
        monkeypatch.setattr(
            tf.config.experimental,
            "get_device_details",
            lambda g: {"compute_capability": details[g]},
        )
        precision.fast_bfloat16.cache_clear()

    yield set_hardware
    precision.fast_bfloat16.cache_clear()


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra="avx512_bf16 amx_bf16"))
    flags = precision.cpu_flags(str(path))
    assert {"avx2", "avx512_bf16", "amx_bf16"} <= flags and "bogomips" not in flags
    assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize(
    ("cpu_flags", "gpu_caps", "fast", "why"),
    [
        (("avx2", "amx_bf16"), (), True, "CPU with amx_bf16"),
        (("avx2", "avx512_bf16"), (), True, "CPU with avx512_bf16"),
        (("avx2", "avx512f"), (), False, "CPU without"),
        ((), (), False, "CPU without"),
        (("amx_bf16",), ((7, 5),), False, "compute capability < 8.0"),  # a T4 decides
        ((), ((8, 0), (9, 0)), True, "8.0, 9.0"),
        ((), ((9, 0), (7, 0)), False, "compute capability < 8.0"),
    ],
)
def test_fast_bfloat16_follows_the_device_that_runs_the_ops(
    hardware, cpu_flags, gpu_caps, fast, why
):
    hardware(cpu_flags, gpu_caps)
    got, reason = precision.fast_bfloat16()
    assert got is fast and why in reason
    assert precision.use_mixed_precision("auto") is fast
    # Explicit settings are never second-guessed.
    assert precision.use_mixed_precision(True) is True
    assert precision.use_mixed_precision(False) is False


def test_describe_precision_says_what_auto_chose(hardware):
    hardware(("amx_bf16",))
    assert precision.describe_precision("auto") == (
        "bfloat16 torso, float32 heads and losses (mixed_precision: auto, CPU with amx_bf16)"
    )
    hardware(("avx2",))
    assert precision.describe_precision("auto").startswith("float32 (mixed_precision: auto")
    assert precision.describe_precision(True).startswith("bfloat16 torso")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        precision.use_mixed_precision("yes")


@pytest.mark.parametrize("cls", [A2C, DQN])
@pytest.mark.parametrize("fast", [True, False])
def test_an_agent_with_auto_builds_the_network_the_hardware_calls_for(hardware, cls, fast):
    hardware(("amx_bf16",) if fast else ("avx2",))
    _, cfg = resolve(cls, "CartPole-v1", overrides={"mixed_precision": "auto"})
    assert cfg.mixed_precision == "auto"
    space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    agent = cls(space, gym.spaces.Discrete(2), cfg, seed=0)
    net = agent.policy_network()
    assert net.mixed_precision is fast
    assert net.spec["mixed_precision"] is fast  # a saved policy records what ran


@pytest.mark.parametrize("value", [True, False, "auto"])
def test_mixed_precision_setting_takes_true_false_and_auto(value):
    _, cfg = resolve(A2C, "CartPole-v1", overrides={"mixed_precision": value})
    assert cfg.mixed_precision == value and type(cfg.mixed_precision) is type(value)


@pytest.mark.parametrize("value", ["maybe", 1, [True]])
def test_a_bad_mixed_precision_setting_names_the_choices(value):
    with pytest.raises(
        ConfigError, match=r"mixed_precision: .* is not one of \[False, True, 'auto'\]"
    ):
        resolve(A2C, "CartPole-v1", overrides={"mixed_precision": value})


def test_a_run_with_auto_prints_the_choice_saves_auto_and_resumes(tmp_path, hardware, capsys):
    import yaml

    from rlkit import train

    hardware(("amx_bf16",))
    run_dir = tmp_path / "run"
    base = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    argv = [*base, "--total-steps", "80", "--eval-episodes", "0"]
    assert train.main([*argv, "--set", "mixed_precision=auto"]) == 0
    out = capsys.readouterr().out
    assert "precision: bfloat16 torso, float32 heads and losses (mixed_precision: auto" in out
    # The run folder keeps the setting, not this machine's answer to it.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["mixed_precision"] == "auto"
    assert train.main(["--resume", str(run_dir), "--total-steps", "160", "--quiet"]) == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["total_steps"] == 160

"""Tests of rlkit.config: resolution order, YAML coercion, validation and the presets."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import rlkit
from rlkit import config as config_lib
from rlkit.agents import A2C, AGENTS, DQN, DQNConfig
from rlkit.config import RunConfig, parse_overrides, resolve, to_yaml
from rlkit.errors import ConfigError

REPO = Path(rlkit.__file__).resolve().parents[1]


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problem_lines(err: ConfigError) -> list[str]:
    """The bullet lines of a ConfigError's message, one per problem."""
    return [line for line in str(err).splitlines() if line.strip().startswith("- ")]


@pytest.fixture
def fake_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A preset folder of our own, so that every layer of the resolution has known values."""
    root = tmp_path / "presets"
    (root / "agents").mkdir(parents=True)
    write_yaml(
        root / "agents" / "dqn.yaml",
        "default:\n"
        "  learning_rate: 2.0e-4\n"  # only in `default`
        "  batch_size: 16\n"  # env section, file and --set each override it
        "  gamma: 0.9\n"  # env section and file override it
        "  tau: 0.5\n"  # env section overrides it
        "CartPole-v1:\n"
        "  batch_size: 24\n"
        "  gamma: 0.95\n"
        "  tau: 0.25\n"
        "atari:\n"
        "  tau: 0.75\n",
    )
    (root / "envs").mkdir()
    shutil.copy(config_lib.preset_dir() / "envs" / "atari.yaml", root / "envs" / "atari.yaml")
    monkeypatch.setattr(config_lib, "preset_dir", lambda: root)
    return root


# -- resolution order ---------------------------------------------------------------------
def test_defaults_when_no_preset_section_matches(fake_presets: Path) -> None:
    run, cfg = resolve(DQN, "Acrobot-v1")
    defaults = DQNConfig()
    # `default` section beats the dataclass defaults ...
    assert cfg.learning_rate == 2.0e-4
    assert cfg.batch_size == 16
    assert cfg.gamma == 0.9
    assert cfg.tau == 0.5
    # ... and everything the preset does not name keeps the dataclass default.
    assert cfg.buffer_size == defaults.buffer_size
    assert cfg.loss == defaults.loss
    assert run == RunConfig()


def test_env_section_beats_default_section(fake_presets: Path) -> None:
    _, cfg = resolve(DQN, "CartPole-v1")
    assert cfg.learning_rate == 2.0e-4  # from `default`, the env section does not name it
    assert (cfg.batch_size, cfg.gamma, cfg.tau) == (24, 0.95, 0.25)


def test_atari_section_applies_to_ale_ids_only(fake_presets: Path) -> None:
    assert resolve(DQN, "ALE/Pong-v5")[1].tau == 0.75
    assert resolve(DQN, "PongNoFrameskip-v4")[1].tau == 0.75
    assert resolve(DQN, "Acrobot-v1")[1].tau == 0.5


def test_preset_section_names_the_section_that_applies(fake_presets: Path) -> None:
    section = config_lib.preset_section
    assert section("dqn", "CartPole-v1") == "CartPole-v1"
    assert section("dqn", "gymnasium:CartPole-v1") == "CartPole-v1"  # module:Id
    assert section("dqn", "ALE/Pong-v5") == "atari"
    assert section("dqn", "Acrobot-v1") == "default"
    assert section("a2c", "CartPole-v1") is None  # no preset file for the agent
    note = config_lib.default_section_note("dqn", "Acrobot-v1")
    assert note is not None and "no section for Acrobot-v1" in note and "--set" in note
    assert config_lib.default_section_note("dqn", "CartPole-v1") is None
    assert config_lib.default_section_note("dqn", "ALE/Pong-v5") is None
    assert config_lib.default_section_note("a2c", "Acrobot-v1") is None


def test_config_file_beats_preset_and_set_beats_file(fake_presets: Path, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "mine.yaml", "batch_size: 40\ngamma: 0.8\n")
    _, cfg = resolve(DQN, "CartPole-v1", config_file=path)
    assert (cfg.batch_size, cfg.gamma, cfg.tau) == (40, 0.8, 0.25)
    _, cfg = resolve(DQN, "CartPole-v1", config_file=str(path), overrides={"batch_size": 48})
    assert (cfg.batch_size, cfg.gamma, cfg.tau, cfg.learning_rate) == (48, 0.8, 0.25, 2.0e-4)


def test_run_settings_resolve_through_the_same_layers(fake_presets: Path, tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "mine.yaml", "total_steps: 3000\nseed: 4\n")
    run, _ = resolve(DQN, "CartPole-v1", config_file=path, overrides={"seed": 5})
    assert (run.total_steps, run.seed, run.num_envs) == (3000, 5, 1)


def test_shipped_preset_layers(tmp_path: Path) -> None:
    """With the real presets: each section's values arrive, later layers still win."""
    sections = yaml.safe_load((config_lib.preset_dir() / "agents" / "dqn.yaml").read_text())
    default, cartpole = sections["default"], sections["CartPole-v1"]

    def check(obj_pair: tuple, expected: dict) -> None:
        run, cfg = obj_pair
        for key, value in expected.items():
            got = getattr(run if hasattr(run, key) else cfg, key)
            want = tuple(value) if isinstance(value, list) else value
            if isinstance(want, float):
                want = pytest.approx(want)
            assert got == want, key

    check(resolve(DQN, "Acrobot-v1"), default)
    check(resolve(DQN, "CartPole-v1"), {**default, **cartpole})
    path = write_yaml(tmp_path / "f.yaml", "learning_rate: 0.125\nbatch_size: 7\n")
    run, cfg = resolve(DQN, "CartPole-v1", config_file=path, overrides={"batch_size": 9})
    assert (cfg.learning_rate, cfg.batch_size) == (0.125, 9)


# -- YAML coercion ------------------------------------------------------------------------
def test_yaml_11_numbers_and_lists_are_coerced(tmp_path: Path) -> None:
    text = (
        "learning_rate: 1e-3\n"
        "total_steps: 5e4\n"
        "buffer_size: 2e4\n"
        "hidden_sizes: [32, 32]\n"
        "stop_reward: null\n"
        "max_grad_norm: 5\n"
    )
    raw = yaml.safe_load(text)
    assert raw["learning_rate"] == "1e-3"  # the YAML 1.1 quirk being worked around
    assert raw["total_steps"] == "5e4"
    run, cfg = resolve(DQN, "CartPole-v1", config_file=write_yaml(tmp_path / "c.yaml", text))
    assert cfg.learning_rate == 0.001 and type(cfg.learning_rate) is float
    assert run.total_steps == 50_000 and type(run.total_steps) is int
    assert cfg.buffer_size == 20_000 and type(cfg.buffer_size) is int
    assert cfg.hidden_sizes == (32, 32) and type(cfg.hidden_sizes) is tuple
    assert run.stop_reward is None  # null beats the preset's stop_reward
    assert cfg.max_grad_norm == 5.0 and type(cfg.max_grad_norm) is float


def test_resolved_configs_are_hashable_frozen_values() -> None:
    run, cfg = resolve(DQN, "CartPole-v1", overrides={"hidden_sizes": [8, 8]})
    hash((run, cfg))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.gamma = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("batch_size", 32.5, "integer"),
        ("batch_size", "abc", "integer"),
        ("batch_size", True, "integer"),
        ("learning_rate", "fast", "number"),
        ("learning_rate", [1], "number"),
        ("hidden_sizes", 64, "list"),
        ("hidden_sizes", [64, "wide"], "integer"),
        ("jit_compile", "maybe", "true or false"),
        ("loss", 3, "is not one of"),  # a field with choices lists them
        ("learning_rate", float("nan"), "finite"),
    ],
)
def test_wrong_types_are_config_errors(key: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(DQN, "CartPole-v1", overrides={key: value})
    assert key in str(info.value) and fragment in str(info.value)


# -- validation, all problems at once -----------------------------------------------------
def test_every_field_problem_is_reported_in_one_error() -> None:
    overrides = {
        "bogus_key": 1,
        "another_typo": 2,
        "gamma": 1.5,
        "learning_rate": 0,
        "batch_size": 0,
        "buffer_size": "lots",
        "loss": "l3",
        "vectorization": "threads",
        "num_envs": 0,
    }
    with pytest.raises(ConfigError) as info:
        resolve(DQN, "CartPole-v1", overrides=overrides)
    msg = str(info.value)
    lines = problem_lines(info.value)
    assert len(lines) == 8, msg  # one for both unknown keys, one per bad value
    assert "'another_typo'" in msg and "'bogus_key'" in msg
    unknown_line = next(line for line in lines if "bogus_key" in line)
    for valid in ("learning_rate", "gamma", "total_steps", "vectorization", "target_update_period"):
        assert valid in unknown_line, f"valid key {valid} not listed: {unknown_line}"
    for fragment in (
        "gamma: must be <= 1",
        "learning_rate: must be > 0",
        "batch_size: must be >= 1",
        "buffer_size: expected an integer",
        "loss: 'l3' is not one of ['huber', 'mse']",
        "vectorization: 'threads' is not one of ['sync', 'async', 'ale', 'vector']",
        "num_envs: must be >= 1",
    ):
        assert fragment in msg


@pytest.mark.parametrize(
    ("agent_cls", "overrides", "fragment"),
    [
        (DQN, {"batch_size": 64, "buffer_size": 32}, "buffer_size (32) must be >= batch_size"),
        (DQN, {"learning_starts": 600, "total_steps": 600}, "learning_starts (600) must be <"),
        (DQN, {"exploration_final_eps": 0.5, "exploration_initial_eps": 0.1}, "exploration"),
        (DQN, {"stop_reward": 100, "eval_every": 0}, "eval_every"),
        (A2C, {"optimizer": "sgd"}, "optimizer: 'sgd' is not one of"),
        (A2C, {"gae_lambda": -0.1}, "gae_lambda: must be >= 0"),
    ],
)
def test_cross_field_and_choice_problems(agent_cls: type, overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(agent_cls, "Acrobot-v1", overrides=overrides)
    assert fragment in str(info.value)


def test_valid_edges_are_accepted() -> None:
    run, cfg = resolve(
        DQN,
        "Acrobot-v1",
        overrides={"gamma": 1, "batch_size": 8, "buffer_size": 8, "learning_starts": 0},
    )
    assert (cfg.gamma, cfg.batch_size, cfg.buffer_size, cfg.learning_starts) == (1.0, 8, 8, 0)


def test_cross_field_problems_are_reported_with_the_others() -> None:
    overrides = {
        "bogus_key": 1,
        "gamma": 1.5,
        "batch_size": 64,
        "buffer_size": 32,
        "learning_starts": 5000,
        "total_steps": 1000,
    }
    with pytest.raises(ConfigError) as info:
        resolve(DQN, "CartPole-v1", overrides=overrides)
    msg = str(info.value)
    assert "bogus_key" in msg and "gamma" in msg
    assert "buffer_size (32) must be >= batch_size" in msg
    assert "learning_starts (5000) must be <" in msg


def test_config_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(DQN, "CartPole-v1", config_file=tmp_path / "missing.yaml")
    bad = write_yaml(tmp_path / "bad.yaml", "learning_rate: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(DQN, "CartPole-v1", config_file=bad)
    seq = write_yaml(tmp_path / "seq.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve(DQN, "CartPole-v1", config_file=seq)
    empty = write_yaml(tmp_path / "empty.yaml", "")
    assert resolve(DQN, "CartPole-v1", config_file=empty) == resolve(DQN, "CartPole-v1")


def test_config_file_is_read_safely(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "evil.yaml", "seed: !!python/object/apply:os.getpid []\n")
    with pytest.raises(ConfigError):
        resolve(DQN, "CartPole-v1", config_file=path)


# -- --set parsing ------------------------------------------------------------------------
def test_parse_overrides() -> None:
    parsed = parse_overrides(["a=1", "b=[1, 2]", "c=3e-4", "d=relu", " e = 0.5", "f=x=y", "g="])
    assert parsed == {
        "a": 1,
        "b": [1, 2],
        "c": "3e-4",
        "d": "relu",
        "e": 0.5,
        "f": "x=y",
        "g": None,
    }
    _, cfg = resolve(DQN, "CartPole-v1", overrides=parse_overrides(["learning_rate=3e-4"]))
    assert cfg.learning_rate == pytest.approx(3e-4) and type(cfg.learning_rate) is float
    run, cfg = resolve(
        DQN, "CartPole-v1", overrides=parse_overrides(["total_steps=2e4", "hidden_sizes=[8, 4]"])
    )
    assert run.total_steps == 20_000 and cfg.hidden_sizes == (8, 4)
    assert parse_overrides(["seed=1", "seed=2"]) == {"seed": 2}  # the last one wins


@pytest.mark.parametrize("pair", ["novalue", "=3", " =3"])
def test_parse_overrides_rejects_pairs_without_key_or_value(pair: str) -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides([pair])


# -- to_yaml round trip -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_to_yaml_round_trips_through_config_file(name: str, tmp_path: Path) -> None:
    agent_cls = AGENTS[name]
    run, cfg = resolve(
        agent_cls, "CartPole-v1", overrides={"seed": 7, "hidden_sizes": [16, 8], "gamma": 0.9}
    )
    text = to_yaml(name, "CartPole-v1", run, cfg)
    data = yaml.safe_load(text)
    assert data["agent"] == name and data["env"] == "CartPole-v1"
    assert data["hidden_sizes"] == [16, 8] and data["seed"] == 7
    assert set(data) == {"agent", "env"} | set(config_lib.field_names(RunConfig)) | set(
        config_lib.field_names(agent_cls.config_cls)
    )
    path = write_yaml(tmp_path / "resolved.yaml", text)
    assert resolve(agent_cls, "CartPole-v1", config_file=path) == (run, cfg)
    # The file names every setting, so the preset of another env changes nothing.
    assert resolve(agent_cls, "Acrobot-v1", config_file=path) == (run, cfg)


# -- shipped presets ----------------------------------------------------------------------
def test_preset_dir_has_a_preset_per_agent() -> None:
    folder = config_lib.preset_dir()
    assert folder.is_dir()
    for name in AGENTS:
        path = folder / "agents" / f"{name}.yaml"
        assert path.is_file(), f"no preset for {name} in {folder}"
        sections = yaml.safe_load(path.read_text())
        assert isinstance(sections, dict) and isinstance(sections.get("default"), dict)
        assert all(isinstance(v, dict) for v in sections.values()), name


def preset_envs() -> list[tuple[str, str]]:
    out = []
    for name in sorted(AGENTS):
        path = config_lib.preset_dir() / "agents" / f"{name}.yaml"
        sections = yaml.safe_load(path.read_text()) if path.is_file() else {}
        envs = {"CartPole-v1", "Acrobot-v1"} | {s for s in sections if s not in ("default",)}
        for env in sorted(envs):
            out.append((name, "ALE/Pong-v5" if env == "atari" else env))
    return out


@pytest.mark.parametrize(("name", "env_id"), preset_envs())
def test_each_shipped_preset_resolves(name: str, env_id: str) -> None:
    run, cfg = resolve(AGENTS[name], env_id)
    assert isinstance(run, RunConfig) and isinstance(cfg, AGENTS[name].config_cls)
    assert yaml.safe_load(to_yaml(name, env_id, run, cfg))["agent"] == name


def test_unknown_agent_error_lists_the_agents() -> None:
    from rlkit.agents import get_agent_class
    from rlkit.errors import UnknownNameError

    assert "sac" not in AGENTS  # a name no agent has (ppo was one until it was added)
    with pytest.raises(UnknownNameError) as info:
        get_agent_class("sac")
    assert "'sac'" in str(info.value)
    assert all(name in str(info.value) for name in AGENTS)


# -- import cost --------------------------------------------------------------------------
def test_import_rlkit_does_not_import_tensorflow() -> None:
    code = "import rlkit, sys; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr

"""Your own environment: ``--env module:Id``, ``--env-kwargs``, the env checker, Dict observations.

The user's envs live in ``tests/user_envs`` as a package of theirs would: importing
``tests.user_envs.corridor`` registers ``UserCorridor-v0`` (a corridor a DQN or A2C learns to
walk in a few thousand steps) and ``UserDictCorridor-v0``; ``tests.user_envs.broken`` holds
envs that each break gymnasium's API in one way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from procs import live_workers

import rlkit
import rlkit.train
from rlkit import evaluate, export, train
from rlkit.config import RunConfig, load_preset, parse_overrides
from rlkit.envs import EnvSource, make_env, make_vector_env
from rlkit.envs.api_check import check_user_env, is_error_warning
from rlkit.envs.source import file_name, is_new_to_rlkit, split_env_id
from rlkit.errors import ConfigError, EnvCheckError, UnknownNameError
from rlkit.policy_io import load_policy

REPO = Path(rlkit.__file__).resolve().parents[1]
ENV = "tests.user_envs.corridor:UserCorridor-v0"
DICT_ENV = "tests.user_envs.corridor:UserDictCorridor-v0"
BROKEN = "tests.user_envs.broken"
QUICK = ["--quiet", "--final-eval-episodes", "3", "--set", "hidden_sizes=[16]"]
DQN_QUICK = ["--set", "learning_starts=100", "--set", "exploration_steps=300"]


@pytest.fixture(autouse=True)
def repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository root is where ``tests.user_envs`` imports from, as a user's project root."""
    monkeypatch.syspath_prepend(str(REPO))


def train_main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = train.main(argv)
    return code, capsys.readouterr().err


# -- module:Id from the command line: train, evaluate, resume, export ------------------------
@pytest.mark.parametrize(
    ("agent", "kwargs"),
    [("a2c", {}), ("dqn", {"length": 7, "max_steps": 30})],
    ids=["a2c-no-kwargs", "dqn-env-kwargs"],
)
def test_a_module_env_trains_evaluates_resumes_and_exports(agent, kwargs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    flags = ["--env-kwargs", *(f"{k}={v}" for k, v in kwargs.items())] if kwargs else []
    extra = DQN_QUICK if agent == "dqn" else []
    argv = ["--agent", agent, "--env", ENV, "--run-dir", str(run_dir), *QUICK, *extra, *flags]
    code, err = train_main([*argv, "--total-steps", "400"], capsys)
    assert code == 0, err

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env"] == ENV
    assert config["env_kwargs"] == (kwargs or None)
    meta = json.loads((run_dir / "policy" / "policy.json").read_text())
    assert meta["env"] == ENV and meta.get("env_kwargs") == (kwargs or None)
    # The corridor's observation is one-hot over its length: a policy for length 7 fails
    # the space check on the default length 5, so every step below that passes made the
    # env with the run's kwargs.
    assert meta["network"]["obs_shape"] == [kwargs.get("length", 5)]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["env_id"] == ENV and results["n_eval_episodes"] == 3

    assert evaluate.main(["--run", str(run_dir), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{agent} on {ENV}: mean reward" in out

    code, err = train_main(["--resume", str(run_dir), "--total-steps", "600", "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((run_dir / "results.json").read_text())["train_env_steps"] >= 600
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env_kwargs"] == (kwargs or None)

    assert export.main([str(run_dir)]) == 0
    exported = json.loads((run_dir / "export" / "policy.json").read_text())
    assert exported["env"] == ENV and exported.get("env_kwargs") == (kwargs or None)
    assert evaluate.main(["--run", str(run_dir / "export"), "--episodes", "2"]) == 0
    capsys.readouterr()
    if kwargs:  # the default length does not fit the policy: the kwargs were what made it fit
        assert evaluate.main(["--run", str(run_dir), "--env-kwargs", "length=5"]) == 2
        assert "observations of shape (7,)" in capsys.readouterr().err


def test_resume_refuses_other_env_kwargs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", ENV, "--run-dir", str(run_dir), *QUICK]
    code, err = train_main([*argv, "--total-steps", "200", "--env-kwargs", "length=6"], capsys)
    assert code == 0, err
    code, err = train_main(["--resume", str(run_dir), "--env-kwargs", "length=8"], capsys)
    assert code == 2
    assert "--env-kwargs {'length': 8} do not match the run being resumed" in err


def test_cli_in_a_fresh_process_with_pythonpath(tmp_path):
    """A subprocess in another folder: only PYTHONPATH says where the module is."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = ["--agent", "a2c", "--env", ENV, "--total-steps", "200", *QUICK]
    done = subprocess.run(
        [sys.executable, "-m", "rlkit.train", *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The run folder is named after the id, without the module: no ':' in a folder name.
    run_dir = tmp_path / "runs" / "a2c" / "UserCorridor-v0_1"
    assert (run_dir / "policy" / "policy.json").exists(), sorted(tmp_path.rglob("*"))[:20]


_MISSING_MODULE = """
import sys
from rlkit import train
code = train.main(["--agent", "dqn", "--env", "my_lab.envs:Maze-v0"])
assert "tensorflow" not in sys.modules, "TensorFlow was imported before the env was checked"
sys.exit(code)
"""


def test_a_module_that_does_not_import_is_exit_2_naming_it_and_the_fix(tmp_path):
    """In a fresh process, and before TensorFlow is imported."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _MISSING_MODULE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err.startswith("error: env 'my_lab.envs:Maze-v0': cannot import module 'my_lab.envs'")
    assert "PYTHONPATH" in err and "pip install 'my_lab'" not in err and "Traceback" not in err
    assert "pip install the package that provides 'my_lab'" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ("tests.user_envs.corridor:Maze-v0", "registers no id 'Maze-v0'"),
        ("tests.user_envs.nothing_here:Maze-v0", "package 'tests.user_envs' has no module"),
        ("a:b:c", "expected an id or module:id (one ':')"),
    ],
)
def test_unknown_module_ids_are_exit_2(env, fragment, capsys):
    code, err = train_main(["--agent", "dqn", "--env", env], capsys)
    assert code == 2 and fragment in err, err


def test_async_spawn_workers_import_the_module(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", ENV, "--run-dir", str(run_dir), *QUICK]
    argv += ["--vectorization", "async", "--num-envs", "2", "--env-kwargs", "length=4"]
    code, err = train_main([*argv, "--total-steps", "200"], capsys)
    assert code == 0, err
    assert load_policy(run_dir).meta["network"]["obs_shape"] == [4]
    assert not live_workers()


# -- kwargs the env rejects ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (["lenght=3"], "got an unexpected keyword argument 'lenght'"),  # TypeError
        (["length=1"], "length must be >= 2, got 1"),  # the env's own ValueError
    ],
)
def test_kwargs_the_env_rejects_are_exit_2_before_training(kwargs, fragment, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "dqn", "--env", ENV, "--run-dir", str(run_dir), "--env-kwargs", *kwargs]
    code, err = train_main(argv, capsys)
    assert code == 2
    assert f"error: env {ENV} rejected env_kwargs" in err and fragment in err
    assert not run_dir.exists()


def test_env_kwargs_must_be_key_value_pairs(capsys):
    code, err = train_main(["--agent", "dqn", "--env", ENV, "--env-kwargs", "length"], capsys)
    assert code == 2 and "--env-kwargs expects key=value, got 'length'" in err
    code, err = train_main(["--agent", "dqn", "--env", ENV, "--set", "env_kwargs=5"], capsys)
    assert code == 2 and "env_kwargs: expected a mapping" in err


# -- gymnasium's env checker ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "finding"),
    [
        ("WrongDtype", "its dtype is float64 but the observation_space declares float32"),
        ("OutsideSpace", "element[0] is 2.0, outside the declared bounds [0.0, 1.0]"),
        ("ResetWithoutSeed", "The `reset` method does not provide a `seed`"),
        ("SeedIgnored", "does not call `super().reset(seed=seed)`"),
    ],
)
def test_a_broken_env_is_exit_2_naming_the_checkers_finding(name, finding, tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", f"{BROKEN}:{name}", "--run-dir", str(run_dir)]
    code, err = train_main([*argv, "--total-steps", "200", *QUICK], capsys)
    assert code == 2
    assert f"error: env {BROKEN}:{name} fails gymnasium's env checker" in err
    assert finding in err and "--skip-env-check" in err
    assert not run_dir.exists()


def test_skip_env_check_trains_an_env_the_checker_refuses(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", f"{BROKEN}:SeedIgnored", "--run-dir", str(run_dir)]
    code, err = train_main([*argv, "--skip-env-check", "--total-steps", "200", *QUICK], capsys)
    assert code == 0, err
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["skip_env_check"] is True
    # Skipping the checker leaves rlkit's own check of the first observations in place.
    argv = ["--agent", "a2c", "--env", f"{BROKEN}:WrongDtype", "--run-dir", str(tmp_path / "b")]
    code, err = train_main([*argv, "--skip-env-check", "--total-steps", "200", *QUICK], capsys)
    assert code == 2 and "its dtype is float64" in err and "checker" not in err


def test_the_checker_runs_only_on_envs_rlkit_has_not_seen():
    from tests.user_envs.corridor import Corridor

    assert not is_new_to_rlkit(EnvSource("CartPole-v1"))
    assert not is_new_to_rlkit(EnvSource(gym.make("CartPole-v1")))
    assert is_new_to_rlkit(EnvSource(ENV))
    assert is_new_to_rlkit(EnvSource("UserCorridor-v0"))  # registered, but not gymnasium's
    assert is_new_to_rlkit(EnvSource(Corridor))
    assert is_new_to_rlkit(EnvSource(lambda: Corridor()))
    assert is_new_to_rlkit(EnvSource(Corridor()))


class _IntTerminated(gym.Env):
    """Says ``terminated`` with an int, not a bool; and has infinite observation bounds."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.normal(size=2).astype(np.float32), {}

    def step(self, action):
        return self.np_random.normal(size=2).astype(np.float32), 0.0, 0, False, {}


class _InfiniteBounds(_IntTerminated):
    def step(self, action):
        return self.np_random.normal(size=2).astype(np.float32), 0.0, False, False, {}


def test_checker_warnings_that_mean_errors_are_errors_and_advice_is_logged_once(caplog):
    with pytest.raises(EnvCheckError, match="Expects `terminated` signal to be a boolean"):
        check_user_env(_IntTerminated)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes as a warning
        check_user_env(_InfiniteBounds)
        check_user_env(_InfiniteBounds)
    advice = [r.getMessage() for r in caplog.records if "infinity" in r.getMessage()]
    assert len(advice) == 2, advice  # minimum and maximum, once each
    assert not is_error_warning("A Box observation space minimum value is -infinity.")
    assert is_error_warning("\x1b[33mWARN: The reward is a NaN value.\x1b[0m")


# -- Dict observations ------------------------------------------------------------------------
def test_dict_observations_need_flatten_dict_obs(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", DICT_ENV, "--run-dir", str(run_dir)]
    code, err = train_main([*argv, "--total-steps", "200", *QUICK], capsys)
    assert code == 2
    assert "has Dict observations" in err and "flatten_dict_obs (--flatten-dict-obs" in err

    code, err = train_main([*argv, "--total-steps", "200", *QUICK, "--flatten-dict-obs"], capsys)
    assert code == 0, err
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["flatten_dict_obs"] is True
    meta = load_policy(run_dir).meta
    assert meta["flatten_dict_obs"] is True and meta["network"]["obs_shape"] == [6]
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2"]) == 0
    assert export.main([str(run_dir)]) == 0
    assert evaluate.main(["--run", str(run_dir / "export"), "--episodes", "2"]) == 0
    env = make_env(EnvSource(DICT_ENV, flatten_dict_obs=True))
    assert env.observation_space.shape == (6,)


# -- from Python: learn() with an id, a callable or an instance -----------------------------------
def tiny_agent(length: int = 5):
    from rlkit.agents import A2C, A2CConfig

    space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)
    return A2C(space, gym.spaces.Discrete(2), A2CConfig(hidden_sizes=(8,)), seed=0)


def test_learn_takes_a_callable_with_env_kwargs_even_into_spawned_workers():
    from rlkit.experiment import learn
    from tests.user_envs.corridor import Corridor

    run = RunConfig(total_steps=200, num_envs=2, env_kwargs={"length": 4}, eval_every=100)
    result = learn(tiny_agent(4), Corridor, run)
    assert result.env_steps >= 200 and len(result.evaluations) == 2
    # A lambda travels to spawned workers by value (cloudpickle).
    run = RunConfig(total_steps=100, num_envs=2, vectorization="async")
    assert learn(tiny_agent(3), lambda: Corridor(length=3), run).env_steps >= 100
    assert not live_workers()


def test_learn_takes_an_env_instance():
    from rlkit.experiment import learn
    from tests.user_envs.corridor import Corridor

    env = Corridor(length=4)
    result = learn(tiny_agent(4), env, RunConfig(total_steps=100))
    assert result.env_steps >= 100 and env.steps > 0  # this very env was stepped
    with pytest.raises(ConfigError, match="has no gymnasium spec"):
        learn(tiny_agent(4), Corridor(length=4), RunConfig(total_steps=100, num_envs=2))
    with pytest.raises(ConfigError, match="periodic evaluation"):
        learn(tiny_agent(4), Corridor(length=4), RunConfig(total_steps=100, eval_every=50))
    with pytest.raises(ConfigError, match="cannot apply to an env instance"):
        learn(tiny_agent(4), Corridor(length=4), RunConfig(env_kwargs={"length": 4}))
    # An instance gymnasium made has a spec: evaluations and more envs are made from it.
    made = gym.make(ENV, length=4)
    result = learn(tiny_agent(4), made, RunConfig(total_steps=100, num_envs=2, eval_every=50))
    assert len(result.evaluations) == 2


def test_learn_runs_the_checker_unless_told_not_to():
    from rlkit.experiment import learn
    from tests.user_envs.broken import SeedIgnored

    with pytest.raises(EnvCheckError, match=r"super\(\).reset\(seed=seed\)"):
        learn(tiny_agent(), SeedIgnored, RunConfig(total_steps=100))
    run = RunConfig(total_steps=100, skip_env_check=True)
    assert learn(tiny_agent(), SeedIgnored, run).env_steps >= 100


def test_run_saves_a_module_level_callable_by_name_for_the_cli(tmp_path, capsys):
    from tests.user_envs.corridor import Corridor

    run_dir = rlkit.train.run(
        "a2c",
        Corridor,
        total_steps=200,
        run_dir=tmp_path / "run",
        env_kwargs={"length": 4},
        overrides={"hidden_sizes": [8], "final_eval_episodes": 2},
    )
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env"] == "tests.user_envs.corridor:Corridor"
    assert config["env_kwargs"] == {"length": 4}
    # module:Class is an entry point the CLI takes back.
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2"]) == 0
    with pytest.raises(EnvCheckError):
        rlkit.train.run("a2c", "tests.user_envs.broken:SeedIgnored", total_steps=100)
    # An instance without a spec is one env: the final evaluation needs another.
    with pytest.raises(ConfigError, match=r"evaluation \(final_eval_episodes"):
        rlkit.train.run("a2c", Corridor(length=4), total_steps=100, run_dir=tmp_path / "i")


def test_a_lambda_has_no_name_the_cli_can_use(tmp_path):
    from tests.user_envs.corridor import Corridor

    source = EnvSource(lambda: Corridor())
    assert source.name == "<lambda>"
    with pytest.raises(UnknownNameError, match="cannot be imported by name"):
        make_env(source.name)


# -- names ------------------------------------------------------------------------------------
def test_names_folders_and_presets_of_module_ids(tmp_path):
    assert split_env_id(ENV) == ("tests.user_envs.corridor", "UserCorridor-v0")
    assert split_env_id("ALE/Pong-v5") == (None, "ALE/Pong-v5")
    assert file_name(ENV) == "UserCorridor-v0"
    assert file_name("ALE/Pong-v5") == "ALE-Pong-v5"
    assert file_name("<lambda>") == "lambda"
    (tmp_path / "dqn" / "UserCorridor-v0_1").mkdir(parents=True)
    assert train.next_run_dir(tmp_path, "dqn", ENV) == tmp_path / "dqn" / "UserCorridor-v0_2"
    assert train.next_run_dir(tmp_path, "dqn", "a/b:c") == tmp_path / "dqn" / "c_1"
    # A module:Id id finds the preset of its id.
    cartpole = "gymnasium.envs.classic_control:CartPole-v1"
    assert load_preset("dqn", cartpole) == load_preset("dqn", "CartPole-v1")
    assert parse_overrides(["size=8", "walls=[1, 2]"], "--env-kwargs") == {
        "size": 8,
        "walls": [1, 2],
    }


def test_make_vector_env_takes_a_source_with_kwargs():
    envs = make_vector_env(EnvSource(ENV, {"length": 3}), 2)
    assert envs.single_observation_space.shape == (3,)
    envs.close()
    with pytest.raises(ConfigError, match="has none"):  # registered, without a vector env
        make_vector_env(ENV, 2, "vector")
    with pytest.raises(ConfigError, match="needs a registered id"):
        make_vector_env("tests.user_envs.corridor:Corridor", 2, "vector")
    from tests.user_envs.corridor import Corridor

    with pytest.raises(ConfigError, match="needs a registered id"):
        make_vector_env(Corridor, 2, "vector")


# -- Ray workers -----------------------------------------------------------------------------
@pytest.mark.distributed
def test_ray_workers_import_the_module_and_take_the_kwargs():
    """Each actor makes its envs from ``module:Id`` and the kwargs (Ray started and stopped)."""
    pytest.importorskip("ray")
    from rlkit.experiment import learn

    run = RunConfig(total_steps=200, runner="ray", num_workers=2, env_kwargs={"length": 4})
    result = learn(tiny_agent(4), ENV, run)
    assert result.env_steps >= 200 and result.episodes > 0


def test_a_policy_folder_cannot_make_evaluate_import_a_module_it_holds(tmp_path, monkeypatch):
    """policy.json naming ``module:Id`` whose module sits in the policy folder (a download
    with a planted ``evil.py``, run from inside it) is refused: nothing of it is imported."""
    from rlkit import evaluate
    from rlkit.agents import DQN, DQNConfig
    from rlkit.policy_io import save_policy

    env = gym.make("CartPole-v1")
    agent = DQN(env.observation_space, env.action_space, DQNConfig(hidden_sizes=(8,)), seed=0)
    folder = tmp_path / "downloaded"
    save_policy(folder, agent.policy_network(), agent="dqn", env_id="CartPole-v1")
    meta = json.loads((folder / "policy.json").read_text())
    meta["env"] = "evil_env_module:CartPole-v1"
    (folder / "policy.json").write_text(json.dumps(meta))
    marker = tmp_path / "ran"
    (folder / "evil_env_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))  # as `python -m` puts the working directory
    assert evaluate.main(["--run", str(folder), "--episodes", "1"]) == 2
    assert not marker.exists()

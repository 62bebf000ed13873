"""Tuning with Optuna (``python -m rlkit.tune``, ``rlkit.tuning``, ``rlkit.search_space``).

Real studies in SQLite files with tiny budgets (A2C on CartPole-v1, 2,000 env steps a run, a
16-unit network): trials, run folders, resuming, pruning, worker processes, Ctrl-C, refusals
and the preset a study writes. Spaces, the objective and the preset writer also alone.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from rlkit import train, tune
from rlkit.agents import A2C, AGENTS, DQN, PPO, Reinforce
from rlkit.config import resolve
from rlkit.errors import ConfigError
from rlkit.preset_files import env_settings, preset_dir
from rlkit.search_space import SearchSpace, default_space_file
from rlkit.tuning import Objective, OptunaReporter

REPO = Path(__file__).resolve().parents[1]
ENV = "CartPole-v1"
TINY_SPACE = """\
learning_rate: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
n_steps: {type: categorical, choices: [5, 8]}
"""
# A run of a few seconds: 2,000 env steps, evaluations every 500 (3 episodes), 5 final ones.
TINY = (
    "--total-steps 2000 --set eval_every=500 --set eval_episodes=3 --set final_eval_episodes=5 "
    "--set hidden_sizes=[16]"
).split()


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def load(url: str, name: str = "a2c-CartPole-v1") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def last_progress_steps(run_dir: Path) -> int:
    with open(run_dir / "progress.csv", newline="") as f:
        return max(int(float(row["time/env_steps"])) for row in csv.DictReader(f))


# -- search spaces ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_shipped_spaces_sample_settings_the_agent_accepts(name: str) -> None:
    agent_cls = AGENTS[name]
    path = default_space_file(agent_cls)
    assert path.parent == preset_dir() / "agents" / "tune"
    assert path.name == (f"{name}.yaml" if (path.parent / f"{name}.yaml").exists() else "dqn.yaml")
    space = SearchSpace.load(path, agent_cls)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        trial = study.ask()
        base = {"total_steps": 200_000, "train_frequency": 4}
        values = space.sample(trial, base)
        assert set(values) == set(space.settings)
        assert space.settings_from(trial.params, base) == values  # stored params map back
        if agent_cls is PPO:  # its batch_size must fit the rollout: rlkit refuses others
            values["batch_size"] = min(values["batch_size"], values["n_steps"])
        resolve(agent_cls, ENV, overrides={**values, "total_steps": 200_000})  # no ConfigError


def test_space_transforms_map_to_settings() -> None:
    space = SearchSpace.from_mapping(
        {
            "gamma": {"type": "float", "low": 1e-4, "high": 0.1, "log": True, "one_minus": True},
            "exploration_steps": {
                "type": "float",
                "low": 0,
                "high": 0.5,
                "ratio_of": "total_steps",
            },
            "train_frequency": {"type": "categorical", "choices": [1, 16]},
            "gradient_steps": {
                "type": "categorical",
                "choices": [1.0, 0.125],
                "ratio_of": "train_frequency",
            },
            "hidden_sizes": {"type": "categorical", "choices": [[64], [256, 256]]},
        },
        DQN,
    )
    params = {
        "one_minus_gamma": 0.01,
        "exploration_steps_per_total_steps": 0.25,
        "train_frequency": 1,
        "gradient_steps_per_train_frequency": 0.125,
        "hidden_sizes": "[256, 256]",  # Optuna stores list choices as JSON labels
    }
    values = space.settings_from(params, {"total_steps": 40_000})
    # 1 x 0.125 rounds to 0 gradient steps: raised to the setting's minimum, 1.
    assert values == {
        "gamma": pytest.approx(0.99),
        "exploration_steps": 10_000,
        "train_frequency": 1,
        "gradient_steps": 1,
        "hidden_sizes": [256, 256],
    }
    assert (
        space.settings_from({**params, "train_frequency": 16}, {"total_steps": 40_000})[
            "gradient_steps"
        ]
        == 2
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"learning_rat": {"type": "float", "low": 0.1, "high": 1}},
            "unknown setting(s) ['learning_rat']",
        ),
        (
            {"learning_rate": {"type": "float", "low": 0.1, "high": 1, "lg": True}},
            "unknown key(s) ['lg']",
        ),
        ({"learning_rate": {"type": "uniform", "low": 0.1, "high": 1}}, "type must be one of"),
        (
            {"learning_rate": {"type": "float", "low": 1.0, "high": 0.1}},
            "low (1.0) must be < high (0.1)",
        ),
        (
            {"learning_rate": {"type": "float", "low": 0, "high": 1, "log": True}},
            "log needs low > 0",
        ),
        ({"n_steps": {"type": "categorical", "choices": []}}, "non-empty list of choices"),
        ({"n_steps": {"type": "int", "low": 0, "high": 8}}, "n_steps: must be >= 1, got 0"),
        ({"gamma": {"type": "float", "low": 0.5, "high": 1.5}}, "gamma: must be <= 1, got 1.5"),
        (
            {"activation": {"type": "categorical", "choices": ["relu", "gelu"]}},
            "'gelu' is not one of",
        ),
        ({"total_steps": {"type": "int", "low": 1000, "high": 2000}}, "--total-steps"),
        (
            {"n_steps": {"type": "int", "low": 1, "high": 8, "ratio_of": "activation"}},
            "not a numeric",
        ),
        ({"learning_rate": 0.001}, "expected a mapping"),
    ],
)
def test_space_file_problems_are_named(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(entry))
    with pytest.raises(ConfigError) as info:
        SearchSpace.load(path, A2C)
    assert str(path) in str(info.value) and message in str(info.value)


def test_every_problem_of_a_space_file_at_once() -> None:
    bad = {
        "foo": {"type": "float", "low": 0, "high": 1},
        "gamma": {"type": "float", "low": 0.5, "high": 2},
        "ent_coef": {"type": "categorical"},
    }
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_mapping(bad, Reinforce, source="bad.yaml")
    text = str(info.value)
    assert "['foo'] for agent 'reinforce'" in text and "gamma: must be <= 1" in text
    assert "ent_coef: categorical needs" in text and text.startswith("search space bad.yaml")


# -- the objective and the pruning callback -------------------------------------------------
class FakeTrial:
    """Records reports; ``prune_after`` reports, should_prune() says yes."""

    def __init__(self, prune_after: int | None = None) -> None:
        self.reports: dict[int, float] = {}
        self.prune_after = prune_after

    def report(self, value: float, step: int) -> None:
        assert step not in self.reports
        self.reports[step] = value

    def should_prune(self) -> bool:
        return self.prune_after is not None and len(self.reports) >= self.prune_after


def test_steps_objective_rewards_a_confirmed_early_stop() -> None:
    rule = Objective("steps", total_steps=10_000, stop_reward=475)
    assert rule.direction == "minimize"
    assert rule.final_value(solved_steps=4_000, final_mean=500) == 4_000
    # Unsolved: the budget plus the relative shortfall of the final mean.
    assert rule.final_value(None, 475) == 10_000
    assert rule.final_value(None, 237.5) == 15_000
    assert rule.final_value(None, 600) == 10_000  # no bonus above the threshold
    solved = {"env_steps": 3000, "mean_reward": 480, "confirm_mean_reward": 476}
    unconfirmed = {**solved, "confirm_mean_reward": 400}
    assert rule.solved(solved) and not rule.solved(unconfirmed)
    assert not rule.solved({**solved, "confirm_score": 470})  # a run with a margin: its score
    assert rule.value_now(solved) == 3000
    assert rule.value_now(unconfirmed) == pytest.approx(10_000 * (1 + 75 / 475))
    reward = Objective("reward", total_steps=10_000)
    assert reward.direction == "maximize" and reward.value_now(solved) == 480
    assert reward.final_value(2000, 123.0) == 123.0


def test_reporter_reports_at_due_steps_fills_in_a_stop_and_stops_when_pruned() -> None:
    rule = Objective("steps", total_steps=2_000, stop_reward=100)
    trial = FakeTrial()
    reporter = OptunaReporter(trial, rule, every=500)
    assert reporter.on_evaluation(504, {"env_steps": 504, "mean_reward": 50.0}) is None
    row = {"env_steps": 1008, "mean_reward": 120.0, "confirm_mean_reward": 110.0}
    assert reporter.on_evaluation(1008, row) is None  # solved: StopOnReward stops the run
    assert reporter.solved_steps == 1008
    reporter.fill_in(1008.0)
    assert trial.reports == {500: 3000.0, 1000: 1008.0, 1500: 1008.0, 2000: 1008.0}
    # A second seed: its values are averaged with the first run's, at steps after it.
    trial2 = FakeTrial(prune_after=2)
    second = OptunaReporter(trial2, rule, every=500, offset=2_000, earlier=[1008.0])
    assert second.on_evaluation(500, {"env_steps": 500, "mean_reward": 0.0}) is None
    assert trial2.reports == {2500: (1008.0 + 4000.0) / 2}
    assert second.on_evaluation(1000, {"env_steps": 1000, "mean_reward": 0.0}) is False
    assert second.pruned_at == 1000
    # The evaluation at the end of the budget completes the run, whatever the pruner says.
    last = OptunaReporter(FakeTrial(prune_after=1), rule, every=500)
    assert last.on_evaluation(2_003, {"env_steps": 2_003, "mean_reward": 0.0}) is None
    assert last.pruned_at is None


# -- the pruner -----------------------------------------------------------------------------
def _study_with(completed: list[dict[int, float]], pruner, direction: str = "minimize"):
    """An in-memory study holding complete trials with these intermediate values."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    for values in completed:
        last = values[max(values)]
        study.add_trial(
            optuna.trial.create_trial(value=last, intermediate_values=values, distributions={})
        )
    return study


def _decisions(study, reports: list[tuple[int, float]]) -> list[bool]:
    """``should_prune()`` after each report of a new trial."""
    trial, out = study.ask(), []
    for step, value in reports:
        trial.report(value, step)
        out.append(trial.should_prune())
    return out


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_run_median_pruner_is_optunas_median_pruner_for_one_run(direction: str) -> None:
    import random

    from rlkit.pruning import RunMedianPruner

    rng = random.Random(7)
    steps = list(range(100, 1001, 100))  # one run of 1,000 steps, evaluated every 100
    pruned = 0
    for case in range(30):
        done = [{s: rng.uniform(0, 10) for s in steps[: rng.randint(3, 10)]} for _ in range(6)]
        reports = [(s, rng.uniform(0, 10)) for s in steps]
        startup, warmup = rng.choice([0, 3, 5, 7]), rng.choice([0, 300, 700])
        ours = _decisions(
            _study_with(done, RunMedianPruner(1000, startup, warmup), direction), reports
        )
        optunas = _decisions(
            _study_with(done, optuna.pruners.MedianPruner(startup, warmup), direction), reports
        )
        assert ours == optunas, case
        pruned += any(ours)
    assert 5 <= pruned <= 25  # the cases compared include prunes and runs left going


def test_run_median_pruner_judges_a_later_seed_by_its_own_run() -> None:
    from rlkit.pruning import RunMedianPruner

    # Two seeds a trial, runs of 1,000 env steps: steps 100-1000 and 1100-2000. The
    # complete trials solved both seeds at about 300 steps (the steps objective).
    done = [
        {
            **{s: 900.0 for s in (100, 200)},
            **{s: 300.0 for s in range(300, 1001, 100)},
            **{s: 650.0 for s in (1100, 1200)},
            **{s: 300.0 for s in range(1300, 2001, 100)},
        }
        for _ in range(5)
    ]
    # This trial's first seed solved at 200 steps; its second is far from solving: its
    # reports are the mean of 200 and the unsolved run's value now (1,000 x (1 + shortfall)).
    reports = [(100, 900.0), *((s, 200.0) for s in range(200, 1001, 100))]
    reports += [(s, (200.0 + 1800.0) / 2) for s in range(1100, 2001, 100)]
    ours = _decisions(_study_with(done, RunMedianPruner(1000, 5, 300)), reports)
    optunas = _decisions(_study_with(done, optuna.pruners.MedianPruner(5, 300)), reports)
    assert not any(optunas)  # the first seed's 200 is its best value forever
    # Ours: no prune in the first run (better than the median), nor in the first 300 steps
    # of the second (warm-up counts from the start of each run); then pruned.
    assert ours.index(True) == reports.index((1300, 1000.0))
    assert not any(ours[: ours.index(True)])
    with pytest.raises(ValueError, match="run_steps >= 1"):
        RunMedianPruner(0)


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--agent", "a2c", "--env", ENV, "--trials", "0"], "--trials must be at least 1, got 0"),
        (
            ["--agent", "a2c", "--env", ENV, "--trials", "2", "--jobs", "0"],
            "--jobs must be at least 1",
        ),
        (["--agent", "a2c", "--env", ENV, "--trials", "1", "--set", "seed=3"], "use --seed"),
    ],
)
def test_bad_numbers_exit_2(argv: list[str], message: str, capsys) -> None:
    assert tune.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


@pytest.mark.parametrize(("agent", "env"), [("a2d", ENV), ("a2c", "CartPol-v1")])
def test_unknown_agent_or_env_reported_like_train(agent: str, env: str, tmp_path, capsys) -> None:
    assert train.main(["--agent", agent, "--env", env, "--run-dir", str(tmp_path)]) == 2
    from_train = capsys.readouterr().err
    argv = ["--agent", agent, "--env", env, "--trials", "1", "--storage", sqlite(tmp_path / "s.db")]
    assert tune.main(argv) == 2
    assert capsys.readouterr().err == from_train
    assert not (tmp_path / "s.db").exists()


def test_without_optuna_one_line_names_the_extra(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    assert tune.main(["--agent", "a2c", "--env", ENV, "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'rlkit[tune]'" in err


@pytest.mark.parametrize("url", ["nosuchdb://x/y", "sqlite:////no/such/folder/s.db"])
def test_storage_that_cannot_be_opened_exits_2(url: str, capsys) -> None:
    assert tune.main(["--agent", "a2c", "--env", ENV, "--trials", "1", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot open the study storage {url!r}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_space_file_exits_2_before_a_study(tmp_path: Path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("learning_rat: {type: float, low: 0.1, high: 1}\n")
    argv = ["--agent", "a2c", "--env", ENV, "--trials", "1", "--space", str(space)]
    assert tune.main([*argv, "--storage", sqlite(tmp_path / "s.db")]) == 2
    assert "unknown setting(s) ['learning_rat']" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


# -- a real study -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of 2 trials, with the default storage and folders (relative to this folder)."""
    folder = tmp_path_factory.mktemp("tune")
    (folder / "space.yaml").write_text(TINY_SPACE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        assert (
            tune.main(
                ["--agent", "a2c", "--env", ENV, "--trials", "2", "--space", "space.yaml", *TINY]
            )
            == 0
        )
    return folder


def test_trials_write_run_folders_and_a_sqlite_study(study_dir: Path) -> None:
    url = sqlite(study_dir / "runs" / "tune" / "a2c-CartPole-v1.db")
    study = load(url)
    attrs = study.user_attrs
    assert attrs["agent"] == "a2c" and attrs["env"] == ENV and attrs["total_steps"] == 2000
    assert attrs["objective"] == "steps" and attrs["stop_reward"] == 475  # the preset's
    trials = study.trials[:2]
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        run_dir = study_dir / "runs" / "tune" / "a2c-CartPole-v1" / f"trial_{trial.number}"
        assert trial.user_attrs["runs"][0]["run_dir"] == str(run_dir.relative_to(study_dir))
        for name in ("config.yaml", "progress.csv", "results.json", "policy", "checkpoints"):
            assert (run_dir / name).exists(), name
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        settings = trial.user_attrs["settings"]
        assert config["learning_rate"] == settings["learning_rate"]
        assert config["n_steps"] == settings["n_steps"] and config["hidden_sizes"] == [16]
        assert config["total_steps"] == 2000 and config["seed"] == 0
        # Not solved in 2,000 steps: the budget times (1 + the final mean's shortfall).
        final = json.loads((run_dir / "results.json").read_text())["mean_reward"]
        assert trial.value == pytest.approx(2000 * (1 + (475 - final) / 475))
        assert set(trial.intermediate_values) == {500, 1000, 1500, 2000}
    plots = study_dir / "runs" / "tune" / "a2c-CartPole-v1"
    assert (plots / "optimization_history.png").is_file()
    assert (plots / "param_importances.png").is_file()


def test_running_again_continues_the_study_and_saves_a_preset(study_dir: Path, capsys) -> None:
    url = sqlite(study_dir / "runs" / "tune" / "a2c-CartPole-v1.db")
    before = len(load(url).trials)
    preset = study_dir / "tuned.yaml"
    argv = ["--agent", "a2c", "--env", ENV, "--trials", "2", "--space", "space.yaml"]
    argv += ["--storage", url, "--runs-dir", str(study_dir / "runs" / "tune")]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(study_dir)
        # No --total-steps or --set: a continued study keeps its own.
        assert tune.main([*argv, "--save-preset", str(preset)]) == 0
    out = capsys.readouterr().out
    study = load(url)
    assert len(study.trials) == before + 2 and f"({before} trial(s) so far)" in out
    assert len({t.params["learning_rate"] for t in study.trials}) == len(study.trials)
    best = study.best_trial
    assert f"best: trial {best.number}" in out
    # The preset: the best settings (and the fixed network) as the env's section...
    sections = yaml.safe_load(preset.read_text())
    assert sections == {ENV: {"hidden_sizes": [16], **best.user_attrs["settings"]}}
    # ...which --config reads back on top of the shipped preset.
    run_cfg, cfg = resolve(A2C, ENV, config_file=preset)
    assert cfg.learning_rate == best.params["learning_rate"] and cfg.hidden_sizes == (16,)
    assert run_cfg.stop_reward == 475 and run_cfg.total_steps == 500_000  # the preset's
    assert (
        train.main(["--agent", "a2c", "--env", ENV, "--config", str(preset), "--show-config"]) == 0
    )
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["learning_rate"] == best.params["learning_rate"]
    assert shown["n_steps"] == best.params["n_steps"]


@pytest.mark.parametrize(
    ("extra", "clash"),
    [
        (["--agent", "reinforce"], "reinforce"),
        (["--agent", "a2c", "--total-steps", "3000"], "3000"),
    ],
)
def test_refuses_a_study_with_other_settings(study_dir: Path, extra, clash, capsys) -> None:
    url = sqlite(study_dir / "runs" / "tune" / "a2c-CartPole-v1.db")
    before = len(load(url).trials)
    argv = [*extra, "--env", ENV, "--trials", "1", "--storage", url, "--study", "a2c-CartPole-v1"]
    assert tune.main(argv) == 2
    err = capsys.readouterr().err
    assert "study 'a2c-CartPole-v1' was started with agent='a2c', env='CartPole-v1'" in err
    assert clash in err and err.count("\n") == 1
    assert len(load(url).trials) == before


def test_a_pruned_trial_stops_early(tmp_path: Path, capsys) -> None:
    url = sqlite(tmp_path / "s.db")
    study = optuna.create_study(storage=url, study_name="pruning", direction="minimize")
    # Three finished trials that solved at 500 env steps: the value 500 at every due step.
    for _ in range(3):
        steps = {s: 500.0 for s in (500, 1000, 1500, 2000)}
        study.add_trial(optuna.trial.create_trial(value=500.0, intermediate_values=steps))
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    argv = ["--agent", "a2c", "--env", ENV, "--trials", "1", "--storage", url]
    argv += [
        "--study",
        "pruning",
        "--runs-dir",
        str(tmp_path),
        "--space",
        str(tmp_path / "space.yaml"),
    ]
    argv += ["--startup-trials", "1", "--warmup-steps", "0", *TINY]
    assert tune.main(argv) == 0
    trial = load(url, "pruning").trials[-1]
    assert trial.state == optuna.trial.TrialState.PRUNED
    # Unsolved at the first evaluation (value >= the 2,000-step budget > 500): stopped there.
    assert list(trial.intermediate_values) == [500]
    run = trial.user_attrs["runs"][0]
    run_dir = Path(run["run_dir"])
    assert run_dir == tmp_path / "pruning" / f"trial_{trial.number}"
    assert 500 <= run["pruned_at"] < 1000
    assert last_progress_steps(run_dir) < 1000
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train_env_steps"] == run["pruned_at"]
    assert results["stopped_by"] == "OptunaReporter.on_evaluation"
    assert (
        f"trial {trial.number}: pruned at {run['pruned_at']:,} env steps" in capsys.readouterr().out
    )


def test_ctrl_c_fails_the_running_trial_and_prints_the_summary(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    def interrupt(self, env_steps, row):  # Ctrl-C during the first evaluation
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(OptunaReporter, "on_evaluation", interrupt)
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    url = sqlite(tmp_path / "s.db")
    argv = ["--agent", "a2c", "--env", ENV, "--trials", "3", "--storage", url]
    argv += ["--runs-dir", str(tmp_path), "--space", str(tmp_path / "space.yaml"), *TINY]
    assert tune.main(argv) == 130
    out = capsys.readouterr().out
    assert "trial 0: interrupted" in out and "interrupted: the study so far" in out
    assert "1 trial(s): 0 complete, 0 pruned, 1 failed, 0 running" in out
    (trial,) = load(url).trials
    assert trial.state == optuna.trial.TrialState.FAIL
    # The run stopped at a step boundary with a final checkpoint, as rlkit.train does.
    assert any((tmp_path / "a2c-CartPole-v1" / "trial_0" / "checkpoints").iterdir())


def test_two_worker_processes_share_one_study(tmp_path: Path, capsys) -> None:
    (tmp_path / "space.yaml").write_text(TINY_SPACE)
    url = sqlite(tmp_path / "s.db")
    argv = ["--agent", "a2c", "--env", ENV, "--trials", "2", "--jobs", "2", "--storage", url]
    argv += ["--runs-dir", str(tmp_path), "--space", str(tmp_path / "space.yaml"), *TINY]
    # Any policy lasts 5 steps: every run stops, confirmed, at its first evaluation.
    assert tune.main([*argv, "--set", "stop_reward=5"]) == 0
    trials = load(url).trials
    assert len(trials) == 2 and {t.user_attrs["worker"] for t in trials} == {0, 1}
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["tf_threads"] == [1, 1]  # one thread per pool in each worker
        solved = trial.user_attrs["runs"][0]["solved_at"]
        assert 500 <= solved < 1000 and trial.value == solved
        # After the stop its value is reported at the steps it did not train.
        assert trial.intermediate_values == {s: solved for s in (500, 1000, 1500, 2000)}
        assert (tmp_path / "a2c-CartPole-v1" / f"trial_{trial.number}" / "policy").is_dir()


# -- preset files -----------------------------------------------------------------------------
def test_preset_section_merged_into_a_preset_file_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "a2c.yaml"
    original = (REPO / "agents" / "a2c.yaml").read_text()
    path.write_text(original)
    written, what = tune.write_preset_section(path, ENV, {"learning_rate": 1e-3}, "tuned")
    assert written == path and "updated section CartPole-v1" in what
    before, after = yaml.safe_load(original), yaml.safe_load(path.read_text())
    assert after[ENV] == {**before[ENV], "learning_rate": 1e-3}
    assert {k: v for k, v in after.items() if k != ENV} == {
        k: v for k, v in before.items() if k != ENV
    }
    text = path.read_text()
    assert "# share_torso: false gives the value head its own MLP" in text  # comments kept
    assert "HalfCheetah-v5: &a2c-mujoco" in text and "# tuned\nCartPole-v1:" in text
    # A new env is appended; the file reads back through --config for it.
    tune.write_preset_section(path, "Acrobot-v1", {"n_steps": 16}, "tuned")
    assert yaml.safe_load(path.read_text())["Acrobot-v1"] == {"n_steps": 16}
    assert resolve(A2C, "Acrobot-v1", config_file=path)[1].n_steps == 16


def test_preset_writer_never_clobbers_what_it_cannot_merge(tmp_path: Path) -> None:
    # A section holding an anchor that other sections use: rewriting it would break them.
    path = tmp_path / "a2c.yaml"
    original = (REPO / "agents" / "a2c.yaml").read_text()
    path.write_text(original)
    written, what = tune.write_preset_section(path, "HalfCheetah-v5", {"n_steps": 16})
    assert path.read_text() == original and written == tmp_path / "a2c.tuned.yaml"
    assert yaml.safe_load(written.read_text()) == {"HalfCheetah-v5": {"n_steps": 16}}
    assert "left" in what and str(written) in what
    # A plain settings file (a run's config.yaml) is no preset of sections.
    flat = tmp_path / "config.yaml"
    flat.write_text("learning_rate: 0.1\n")
    written, _ = tune.write_preset_section(flat, ENV, {"n_steps": 16})
    assert flat.read_text() == "learning_rate: 0.1\n" and written.name == "config.tuned.yaml"


def test_config_file_with_sections_gives_the_env_its_section(tmp_path: Path) -> None:
    data = {"default": {"n_steps": 8}, ENV: {"learning_rate": 1e-3}}
    assert env_settings(data, ENV, "f.yaml") == {"n_steps": 8, "learning_rate": 1e-3}
    assert env_settings(data, "Acrobot-v1", "f.yaml") == {"n_steps": 8}
    assert env_settings({"n_steps": 8}, ENV, "f.yaml") == {"n_steps": 8}  # plain settings
    with pytest.raises(ConfigError, match="none for 'Acrobot-v1'"):
        env_settings({ENV: {"n_steps": 8}}, "Acrobot-v1", "f.yaml")
    # The shipped preset file itself works as a --config file.
    run_cfg, cfg = resolve(A2C, ENV, config_file=REPO / "agents" / "a2c.yaml")
    assert (run_cfg, cfg) == resolve(A2C, ENV)

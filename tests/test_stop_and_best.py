"""``--stop-reward`` ends a run at the first evaluation that reaches it and whose
confirmation on fresh episodes reaches it too; ``best_policy/`` holds the policy of the best
periodic evaluation, and ``evaluate``/``export --best`` use it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import rlkit.evaluate
from rlkit import evaluate, export, train
from rlkit.agents import A2C
from rlkit.policy_io import load_policy

PROBE = np.random.default_rng(0).normal(size=(512, 4)).astype(np.float32)  # CartPole obs


def eval_rewards(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "progress.csv", newline="") as f:
        return [
            (int(r["time/env_steps"]), float(r["eval/mean_reward"]))
            for r in csv.DictReader(f)
            if r.get("eval/mean_reward")
        ]


def test_stop_reward_ends_the_run_at_the_first_evaluation_that_reaches_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    argv += ["--total-steps", "100000", "--eval-every", "200", "--eval-episodes", "2"]
    argv += ["--stop-reward", "5", "--set", "log_interval=100", "--set", "hidden_sizes=[16]"]
    argv += ["--final-eval-episodes", "3"]
    assert train.main(argv) == 0  # any CartPole episode returns at least 8: the first stops
    out = capsys.readouterr().out
    assert "stopped by the evaluation at 20" in out  # 200 or just past it
    assert "confirmed by" in out and "over 30 more (stop_reward 5)" in out
    evals = eval_rewards(run_dir)
    assert len(evals) == 1 and evals[0][1] >= 5
    results = json.loads((run_dir / "results.json").read_text())
    assert results["solved_at"]["env_steps"] == evals[0][0] < 300
    assert results["solved_at"]["mean_reward"] == pytest.approx(evals[0][1])
    assert results["solved_at"]["confirm_episodes"] == 30
    assert results["solved_at"]["confirm_mean_reward"] >= 5
    with open(run_dir / "progress.csv", newline="") as f:
        last_step = max(int(r["time/env_steps"]) for r in csv.DictReader(f))
    assert last_step < 300  # not the 100,000 asked for


def scripted_evaluations(monkeypatch, means: dict[str, list[float]]) -> list[tuple]:
    """Replace evaluation returns by scripted means, per purpose; record every call.

    Returns the list of (purpose, seeds, episodes) of every evaluation, filled as it runs.
    """
    original = rlkit.evaluate.play_episodes
    calls: list[tuple] = []
    purposes = {code: name for name, code in rlkit.evaluate.EVAL_PURPOSES.items()}

    def play_episodes(policy, env_id, episodes, seed, **kwargs):
        seeds = list(seed)
        purpose = purposes[seeds[0] >> 92 & 0xFF]  # the purpose field of evaluation_seeds
        calls.append((purpose, seeds, episodes))
        returns = original(policy, env_id, episodes, seeds, **kwargs)
        scripted = means.get(purpose)
        if scripted:  # a mean for every episode, or the episodes' returns
            value = scripted.pop(0)
            return np.full(episodes, value) if np.isscalar(value) else np.asarray(value)
        return returns

    monkeypatch.setattr(rlkit.evaluate, "play_episodes", play_episodes)
    return calls


def test_a_stop_needs_a_confirmation_on_fresh_episodes(tmp_path, monkeypatch, capsys):
    # Evaluations 2 and 4 reach 100; the confirmation of 2 falls short, that of 4 holds.
    calls = scripted_evaluations(
        monkeypatch, {"periodic": [10.0, 120.0, 50.0, 130.0, 140.0], "confirm": [80.0, 110.0]}
    )
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    argv += ["--total-steps", "5000", "--eval-every", "200", "--eval-episodes", "2"]
    argv += ["--stop-reward", "100", "--set", "log_interval=100", "--set", "hidden_sizes=[8]"]
    argv += ["--final-eval-episodes", "4", "--set", "confirm_episodes=31", "--seed", "2"]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert [c[0] for c in calls] == ["periodic", "periodic", "confirm"] + [
        "periodic",
        "periodic",
        "confirm",
        "final",
    ]
    assert [c[2] for c in calls] == [2, 2, 31, 2, 2, 31, 4]
    assert "not confirmed: training goes on" in out and "confirmed: training stops" in out
    evals = eval_rewards(run_dir)
    assert [m for _, m in evals] == [10.0, 120.0, 50.0, 130.0]
    stopped_at = evals[-1][0]
    assert 800 <= stopped_at < 1000
    assert f"stopped by the evaluation at {stopped_at:,} steps" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["solved_at"]["env_steps"] == stopped_at
    assert results["solved_at"]["confirm_mean_reward"] == 110.0
    assert results["n_eval_episodes"] == 4
    # No episode seed was played twice, and the final evaluation's seeds are new.
    seeds = [s for c in calls for s in c[1]]
    assert len(seeds) == len(set(seeds)) == 2 * 4 + 31 * 2 + 4


def test_a_confirmation_margin_needs_the_mean_clear_of_the_threshold(tmp_path, monkeypatch, capsys):
    # Two evaluations reach 100. The first confirmation's mean (105) reaches it, but less
    # 2 standard errors it does not: 31 returns of mean 105 and std 20 (15 x 85, 15 x 125,
    # one 105) give 105 - 2 * 20 / sqrt(31) = 97.82. The second (110, no spread) holds.
    spread = [85.0] * 15 + [125.0] * 15 + [105.0]
    assert np.mean(spread) == 105.0 and np.std(spread) == pytest.approx(20 * np.sqrt(30 / 31))
    calls = scripted_evaluations(
        monkeypatch, {"periodic": [120.0, 130.0, 140.0], "confirm": [spread, 110.0]}
    )

    def argv(run_dir: Path, *extra: str) -> list[str]:
        args = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--seed"]
        args += ["2", "--total-steps", "5000", "--eval-every", "200", "--eval-episodes", "2"]
        args += ["--stop-reward", "100", "--set", "hidden_sizes=[8]", "--set"]
        return [*args, "confirm_episodes=31", "--final-eval-episodes", "4", *extra]

    run_dir = tmp_path / "run"
    assert train.main(argv(run_dir, "--set", "confirm_margin_se=2")) == 0
    out = capsys.readouterr().out
    assert [c[0] for c in calls] == ["periodic", "confirm", "periodic", "confirm", "final"]
    score = 105.0 - 2 * np.std(spread) / np.sqrt(31)
    assert f"mean 105.0, {score:.1f} less the margin (not confirmed" in out
    assert "mean 110.0, 110.0 less the margin (confirmed: training stops)" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert results["solved_at"]["confirm_score"] == 110.0
    assert 400 <= results["solved_at"]["env_steps"] < 600
    # Without the margin (A2C's CartPole preset has one: set it to 0) the first confirmation
    # stops the run.
    calls = scripted_evaluations(monkeypatch, {"periodic": [120.0], "confirm": [list(spread)]})
    assert train.main(argv(tmp_path / "plain", "--set", "confirm_margin_se=0")) == 0
    assert [c[0] for c in calls] == ["periodic", "confirm", "final"]
    results = json.loads((tmp_path / "plain" / "results.json").read_text())
    assert "confirm_score" not in results["solved_at"]  # rows without a margin as before


def test_confirmation_score_by_hand():
    assert evaluate.confirmation_score([500.0, 450.0, 500.0, 450.0]) == 475.0
    # std 25, 4 returns: a standard error of 12.5, so 2 of them take 25 off.
    assert evaluate.confirmation_score([500.0, 450.0, 500.0, 450.0], 2.0) == 450.0
    assert evaluate.confirmation_score([500.0] * 100, 3.0) == 500.0


def test_periodic_evaluations_play_fresh_seeds_that_a_resumed_run_repeats(tmp_path, monkeypatch):
    calls = scripted_evaluations(monkeypatch, {})
    argv = ["--agent", "dqn", "--env", "CartPole-v1", "--quiet", "--seed", "4"]
    argv += ["--eval-every", "100", "--eval-episodes", "3", "--final-eval-episodes", "2"]
    argv += ["--set", "learning_starts=50", "--set", "hidden_sizes=[8]"]
    argv += ["--checkpoint-every", "200"]
    assert train.main([*argv, "--total-steps", "400", "--run-dir", str(tmp_path / "one")]) == 0
    whole = [(c[0], tuple(c[1])) for c in calls]
    periodic = [s for purpose, s in whole if purpose == "periodic"]
    assert len(periodic) == 4 and len({x for s in periodic for x in s}) == 12
    calls.clear()
    two = tmp_path / "two"
    assert train.main([*argv, "--total-steps", "200", "--run-dir", str(two)]) == 0
    assert train.main(["--resume", str(two), "--total-steps", "400", "--quiet"]) == 0
    resumed = [(c[0], tuple(c[1])) for c in calls if c[0] != "final"]
    # The resumed run evaluates at 300 and 400 on the same seeds as the run in one go.
    assert resumed == [w for w in whole if w[0] != "final"]


# The periodic evaluations' scores, scripted: the third is the best, the fifth only ties it.
SCRIPTED_MEANS = [10.0, 20.0, 50.0, 30.0, 50.0, 40.0]


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    """An A2C run with 6 periodic evaluations, and the policy each evaluation played."""
    run_dir = tmp_path_factory.mktemp("best") / "run"
    played = []  # (seed, mean return, the agent's weights) of every evaluation
    original, original_update = rlkit.evaluate.play_episodes, A2C.update
    agents = []  # the run's agent, caught at its first update

    def update(self, batch):
        agents[:] = [self]
        return original_update(self, batch)

    def play_episodes(policy, env_id, episodes, seed, **kwargs):
        returns = original(policy, env_id, episodes, seed, **kwargs)
        if len(played) < len(SCRIPTED_MEANS):  # a periodic evaluation: its score is scripted
            returns = [SCRIPTED_MEANS[len(played)]] * episodes
        weights = agents[0].policy_network().get_weights()
        played.append((seed, float(np.mean(returns)), weights))
        return returns

    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet"]
    argv += ["--total-steps", "1200", "--eval-every", "200", "--eval-episodes", "3"]
    argv += ["--seed", "3", "--set", "learning_rate=0.01", "--set", "log_interval=200"]
    # (the evaluator imports play_episodes at call time)
    rlkit.evaluate.play_episodes, A2C.update = play_episodes, update
    try:
        assert train.main(argv) == 0
    finally:
        rlkit.evaluate.play_episodes, A2C.update = original, original_update
    periodic, final = played[:-1], played[-1]
    assert [m for _, m, _ in periodic] == pytest.approx([m for _, m in eval_rewards(run_dir)])
    return run_dir, periodic, final


def test_best_policy_is_the_policy_of_the_best_evaluation(best_run):
    run_dir, periodic, final = best_run
    means = [m for _, m, _ in periodic]
    assert means == SCRIPTED_MEANS
    best = 2  # the first of equal bests: a later tie does not replace it

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    # The weights changed between evaluations, or which were kept could not be told.
    assert not any(same(periodic[best][2], p[2]) for i, p in enumerate(periodic) if i != best)
    assert same(load_policy(run_dir / "best_policy").network.get_weights(), periodic[best][2])
    assert same(load_policy(run_dir).network.get_weights(), final[2])  # policy/: the last


def test_evaluate_and_export_best_use_best_policy(best_run, tmp_path):
    run_dir, _, _ = best_run
    kept = load_policy(run_dir / "best_policy")
    args = ["--episodes", "2", "--seed", "7"]
    assert evaluate.main(["--run", str(run_dir / "best_policy"), *args]) == 0
    written = run_dir / "best_policy" / "evaluations" / "seed7-2ep.json"
    direct = json.loads(written.read_text())["returns"]
    assert evaluate.main(["--run", str(run_dir), "--best", *args]) == 0
    best = run_dir / "evaluations" / "best-seed7-2ep.json"
    assert json.loads(best.read_text())["returns"] == direct

    out = tmp_path / "exported"
    assert export.main([str(run_dir), "--best", "--out", str(out)]) == 0
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    result = served(obs=tf.constant(PROBE))
    np.testing.assert_array_equal(result["action"].numpy(), kept(PROBE))
    np.testing.assert_allclose(result["scores"].numpy(), kept.scores(PROBE), rtol=1e-6, atol=1e-6)
    for name in ("policy.json", "policy.weights.h5"):
        assert (out / name).read_bytes() == (run_dir / "best_policy" / name).read_bytes()
    assert not (run_dir / "export").exists()  # --out was used, not the default folder


def test_eval_episodes_zero_with_a_stop_reward_is_refused_before_any_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir)]
    argv += ["--eval-every", "200", "--eval-episodes", "0", "--stop-reward", "100"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval_episodes" in err[0]
    assert not run_dir.exists()


def test_an_evaluation_env_that_cannot_be_built_is_exit_2_before_training(
    tmp_path, monkeypatch, capsys
):
    import sys

    # Recording needs pygame to render CartPole; without it the evaluation env fails.
    monkeypatch.setitem(sys.modules, "pygame", None)
    run_dir = tmp_path / "run"
    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--video"]
    argv += ["--total-steps", "100000"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluation env CartPole-v1" in err[0] and "pygame" in err[0]
    assert not run_dir.exists()


def test_every_evaluation_has_its_own_progress_row(tmp_path, monkeypatch):
    # Three evaluations inside one log interval: each is a row, none averaged away.
    scripted_evaluations(monkeypatch, {"periodic": [1.0, 2.0, 6.0]})
    run_dir = tmp_path / "run"
    argv = ["--agent", "dqn", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet"]
    argv += ["--total-steps", "300", "--eval-every", "100", "--final-eval-episodes", "1"]
    argv += ["--set", "log_interval=1000", "--set", "learning_starts=50"]
    argv += ["--set", "hidden_sizes=[8]"]
    assert train.main(argv) == 0
    assert eval_rewards(run_dir) == [(100, 1.0), (200, 2.0), (300, 6.0)]

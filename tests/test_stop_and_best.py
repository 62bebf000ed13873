"""``--stop-reward`` ends a run at the first evaluation that reaches it; ``best_policy/``
holds the policy of the best periodic evaluation, and ``evaluate``/``export --best`` use it.
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
    assert train.main(argv) == 0  # any CartPole episode returns at least 8: the first stops
    out = capsys.readouterr().out
    assert "stopped when a greedy evaluation reached 5" in out
    evals = eval_rewards(run_dir)
    assert len(evals) == 1 and evals[0][1] >= 5
    results = json.loads((run_dir / "results.json").read_text())
    assert results["solved_at"]["env_steps"] == evals[0][0] < 300
    assert results["solved_at"]["mean_reward"] == pytest.approx(evals[0][1])
    with open(run_dir / "progress.csv", newline="") as f:
        last_step = max(int(r["time/env_steps"]) for r in csv.DictReader(f))
    assert last_step < 300  # not the 100,000 asked for


# The periodic evaluations' scores, scripted: the third is the best, the fifth only ties it.
SCRIPTED_MEANS = [10.0, 20.0, 50.0, 30.0, 50.0, 40.0]


@pytest.fixture(scope="module")
def best_run(tmp_path_factory):
    """An A2C run with 6 periodic evaluations, and the policy each evaluation played."""
    run_dir = tmp_path_factory.mktemp("best") / "run"
    played = []  # (seed, mean return, the agent's weights) of every evaluation
    original, original_update = rlkit.evaluate.evaluate_policy, A2C.update
    agents = []  # the run's agent, caught at its first update

    def update(self, batch):
        agents[:] = [self]
        return original_update(self, batch)

    def evaluate_policy(policy, env_id, episodes, seed, **kwargs):
        returns = original(policy, env_id, episodes, seed, **kwargs)
        if len(played) < len(SCRIPTED_MEANS):  # a periodic evaluation: its score is scripted
            returns = [SCRIPTED_MEANS[len(played)]] * episodes
        weights = agents[0].policy_network().get_weights()
        played.append((seed, float(np.mean(returns)), weights))
        return returns

    argv = ["--agent", "a2c", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--quiet"]
    argv += ["--total-steps", "1200", "--eval-every", "200", "--eval-episodes", "3"]
    argv += ["--seed", "3", "--set", "learning_rate=0.01", "--set", "log_interval=200"]
    # (the evaluator imports evaluate_policy at call time)
    rlkit.evaluate.evaluate_policy, A2C.update = evaluate_policy, update
    try:
        assert train.main(argv) == 0
    finally:
        rlkit.evaluate.evaluate_policy, A2C.update = original, original_update
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
    direct = json.loads((run_dir / "best_policy" / "results.json").read_text())["returns"]
    assert evaluate.main(["--run", str(run_dir), "--best", *args]) == 0
    assert json.loads((run_dir / "results.json").read_text())["returns"] == direct

    out = tmp_path / "exported"
    assert export.main([str(run_dir), "--best", "--out", str(out)]) == 0
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    result = served(obs=tf.constant(PROBE))
    np.testing.assert_array_equal(result["action"].numpy(), kept(PROBE))
    np.testing.assert_allclose(result["scores"].numpy(), kept.scores(PROBE), rtol=1e-6, atol=1e-6)
    for name in ("policy.json", "policy.weights.h5"):
        assert (out / name).read_bytes() == (run_dir / "best_policy" / name).read_bytes()
    assert not (run_dir / "export").exists()  # --out was used, not the default folder

"""Callbacks (``rlkit.callbacks``): every hook is called when it should be, with what it
says, and any of them can stop training; ``stop_reward`` is one of them."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

from rlkit import train
from rlkit.agents import A2C, DQN, A2CConfig, DQNConfig
from rlkit.callbacks import HOOKS, Callback, CallbackList, StopOnReward
from rlkit.config import RunConfig
from rlkit.experiment import learn

SPACES = gym.make("CartPole-v1")
SMALL_DQN = DQNConfig(hidden_sizes=(16,), learning_starts=100, train_frequency=4, buffer_size=2000)


class Recorder(Callback):
    """Records every call; stops (returns False) from ``stop_hook`` after ``after`` calls."""

    def __init__(self, stop_hook: str | None = None, after: int = 1) -> None:
        self.calls: dict[str, list] = {h: [] for h in (*HOOKS, "start", "end")}
        self.stop_hook, self.after = stop_hook, after

    def _record(self, hook: str, *args):
        self.calls[hook].append(args)
        if hook == self.stop_hook and len(self.calls[hook]) >= self.after:
            return False
        return None

    def on_training_start(self, agent, env_steps):
        self.calls["start"].append((agent, env_steps))

    def on_step(self, env_steps):
        return self._record("on_step", env_steps)

    def on_update(self, env_steps, metrics):
        return self._record("on_update", env_steps, dict(metrics))

    def on_evaluation(self, env_steps, row):
        return self._record("on_evaluation", env_steps, dict(row))

    def on_checkpoint(self, env_steps, path):
        return self._record("on_checkpoint", env_steps, path)

    def on_training_end(self, result):
        self.calls["end"].append(result)


def dqn(seed: int = 0) -> DQN:
    return DQN(SPACES.observation_space, SPACES.action_space, SMALL_DQN, seed=seed)


def test_every_hook_is_called_with_what_happened(tmp_path):
    recorder = Recorder()
    run = RunConfig(
        total_steps=600, num_envs=2, eval_every=200, eval_episodes=2, checkpoint_every=300
    )
    agent = dqn()
    result = learn(agent, "CartPole-v1", run, run_dir=tmp_path, callbacks=[recorder])
    calls = recorder.calls
    assert calls["start"] == [(agent, 0)]
    assert calls["end"] == [result]
    steps = [s for (s,) in calls["on_step"]]  # after each vector step (autoresets uncounted)
    assert steps == sorted(set(steps)) and steps[-1] == result.env_steps >= 600
    assert {b - a for a, b in zip(steps, steps[1:], strict=False)} <= {1, 2}
    # DQN with 2 envs: an update every 4 env steps from step 100 on, each after a step.
    update_steps = [s for s, _ in calls["on_update"]]
    assert set(update_steps) <= set(steps) and update_steps[0] >= 100
    assert len(update_steps) == pytest.approx(500 / 4, abs=5)
    assert all("train/loss" in metrics for _, metrics in calls["on_update"])
    eval_steps = [s for s, _ in calls["on_evaluation"]]
    assert [min(s for s in steps if s >= due) for due in (200, 400, 600)] == eval_steps
    assert [row for _, row in calls["on_evaluation"]] == result.evaluations
    checkpoint_steps = [s for s, _ in calls["on_checkpoint"]]
    assert checkpoint_steps == [min(s for s in steps if s >= due) for due in (300, 600)]
    assert Path(calls["on_checkpoint"][0][1]).is_dir()
    assert result.stopped_by is None and 600 <= result.env_steps <= 601


@pytest.mark.parametrize("hook", HOOKS)
def test_any_hook_returning_false_stops_training(tmp_path, hook):
    recorder = Recorder(stop_hook=hook, after=1)
    run = RunConfig(
        total_steps=5000, num_envs=2, eval_every=200, eval_episodes=2, checkpoint_every=300
    )
    result = learn(dqn(), "CartPole-v1", run, run_dir=tmp_path, callbacks=[recorder])
    first = recorder.calls[hook][0][0]
    assert result.env_steps == first < 5000  # stopped at the end of that step
    assert result.stopped_by == f"Recorder.{hook}"
    assert recorder.calls["end"] == [result]
    assert recorder.calls["on_step"][-1] == (first,)  # no step after it


def test_stop_reward_is_a_callback_and_the_result_says_it_stopped_the_run():
    recorder = Recorder()
    run = RunConfig(total_steps=5000, eval_every=200, eval_episodes=2, stop_reward=5)
    result = learn(dqn(), "CartPole-v1", run, callbacks=[recorder])
    assert 200 <= result.env_steps < 210 and result.stopped_by == "StopOnReward.on_evaluation"
    row = recorder.calls["on_evaluation"][0][1]
    assert row["confirm_mean_reward"] >= 5  # the callbacks see the confirmation too
    assert result.solved_at == row


def test_stop_on_reward_reads_the_confirmation_when_there_is_one():
    stop = StopOnReward(100)
    assert stop.on_evaluation(0, {"mean_reward": 99.0}) is True
    assert stop.on_evaluation(0, {"mean_reward": 100.0}) is False
    assert stop.on_evaluation(0, {"mean_reward": 120.0, "confirm_mean_reward": 99.0}) is True
    assert stop.on_evaluation(0, {"mean_reward": 120.0, "confirm_mean_reward": 101.0}) is False


def test_a_callback_list_calls_every_callback_and_names_the_first_that_stopped():
    first, second = Recorder("on_step"), Recorder("on_step")
    callbacks = CallbackList([first, second])
    assert callbacks.on_step(7) is False
    assert first.calls["on_step"] == second.calls["on_step"] == [(7,)]
    assert callbacks.stopped_by == "Recorder.on_step"
    assert callbacks.on_update(8, {}) is True
    with pytest.raises(TypeError, match="must subclass rlkit.callbacks.Callback"):
        CallbackList([lambda s: True])


def test_train_run_takes_callbacks_and_results_json_names_the_stop(tmp_path, capsys):
    class StopAtStep(Callback):
        def on_step(self, env_steps):
            return env_steps < 256

    run_dir = train.run(
        "a2c",
        "CartPole-v1",
        total_steps=10_000,
        seed=3,
        overrides={"hidden_sizes": [16], "final_eval_episodes": 2, "num_envs": 4},
        run_dir=tmp_path / "run",
        callbacks=[StopAtStep()],
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert results["stopped_by"] == "StopAtStep.on_step"
    steps = results["train_env_steps"]
    assert 256 <= steps < 270
    assert f"stopped by StopAtStep.on_step at {steps:,} env steps" in capsys.readouterr().out


def test_on_update_is_the_end_of_each_rollout_for_policy_gradient_agents():
    recorder = Recorder()
    agent = A2C(SPACES.observation_space, SPACES.action_space, A2CConfig(n_steps=5), seed=0)
    learn(agent, "CartPole-v1", RunConfig(total_steps=100, num_envs=4), callbacks=[recorder])
    # A2C with 4 envs and 5-step rollouts: one update per 5 vector steps.
    steps = [s for (s,) in recorder.calls["on_step"]]
    assert [s for s, _ in recorder.calls["on_update"]] == steps[4::5]

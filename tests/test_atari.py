"""Atari support: protocols, learning-only life loss and reward clipping, real ALE envs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rlkit.envs.atari import AtariProtocol, is_atari, load_protocol, protocol_card
from rlkit.envs.testing import make_fake_atari_vector_env
from rlkit.errors import ConfigError
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner

ale_py = pytest.importorskip("ale_py")
pytest.importorskip("cv2")


# -- protocols -----------------------------------------------------------------------------
def test_shipped_protocols():
    dqn = load_protocol("dqn")
    assert dqn == AtariProtocol(
        name="dqn",
        noop_max=30,
        frame_skip=4,
        sticky_actions=0.0,
        screen_size=(84, 84),
        grayscale=True,
        frame_stack=4,
        fire_reset=True,
        life_loss_terminal=True,
        clip_rewards=True,
    )
    machado = load_protocol("machado")
    assert (machado.sticky_actions, machado.noop_max, machado.life_loss_terminal) == (
        0.25,
        0,
        False,
    )


def test_protocol_overrides_and_errors():
    p = load_protocol("dqn", frame_stack=3, screen_size=[105, 80])
    assert p.observation_shape == (3, 105, 80)
    with pytest.raises(ConfigError, match="unknown Atari protocol 'nature'.*dqn"):
        load_protocol("nature")
    with pytest.raises(ConfigError, match="screen_size"):
        load_protocol("dqn", screen_size=[84])


def test_is_atari():
    assert is_atari("ALE/SpaceInvaders-v5") and is_atari("SpaceInvadersNoFrameskip-v4")
    assert not is_atari("CartPole-v1")


# -- the learning signal, on a fake game (lives 3, a life lost every 4 steps, reward 5) -----
def run_fake(steps: int, **runner_kwargs):
    runner = VectorRunner(make_fake_atari_vector_env(1, lives=3, life_length=4), **runner_kwargs)
    runner.reset(seed=0)
    out = [runner.step(np.zeros(1, np.int64))[0] for _ in range(steps)]
    return runner, out


def test_life_loss_ends_the_learning_episode_only():
    runner, ts = run_fake(14, life_loss_terminal=True)
    terminated = [bool(t.terminated[0]) for t in ts]
    valid = [bool(t.valid[0]) for t in ts]
    # Steps 4 and 8 lose a life (terminal for learning, no reset); step 12 ends the game;
    # step 13 is the autoreset row; step 14 is the first step of the next game.
    assert terminated == [False] * 3 + [True] + [False] * 3 + [True] + [False] * 3 + [True] + [
        False,
        False,
    ]
    assert valid == [True] * 12 + [False, True]
    stats = runner.pop_episode_stats()
    assert stats.returns.tolist() == [60.0]  # the full game: 12 steps x 5, all lives
    assert stats.lengths.tolist() == [12]


def test_without_life_loss_terminal_only_game_over_terminates():
    _, ts = run_fake(13)
    assert [bool(t.terminated[0]) for t in ts] == [False] * 11 + [True, False]


def test_reward_clipping_is_for_learning_only():
    runner, ts = run_fake(13, clip_rewards=True)
    assert {float(t.reward[0]) for t in ts if t.valid[0]} == {1.0}
    assert runner.pop_episode_stats().returns.tolist() == [60.0]


def test_replay_rebuilds_zero_padded_stacks_exactly():
    runner = VectorRunner(make_fake_atari_vector_env(2, lives=2, life_length=3))
    space = runner.observation_space
    buffer = ReplayBuffer(40, 2, space, runner.action_space, frame_stack=4, padding="zero", seed=0)
    obs = runner.reset(seed=0)
    reference = {}
    for _ in range(30):
        t, obs = runner.step(np.zeros(2, np.int64))
        buffer.add(t)
        for i in np.flatnonzero(t.valid):
            reference[t.obs[i].tobytes()] = t.next_obs[i]
    batch = buffer.sample(64)
    for o, n in zip(batch.obs, batch.next_obs, strict=True):
        np.testing.assert_array_equal(reference[o.tobytes()], n)
    # An episode's first stack is three zero frames then the first frame (value 1).
    first = np.zeros((4, 84, 84), np.uint8)
    first[3] = 1
    assert first.tobytes() in reference


# -- real ALE games (ale-py >= 0.9 ships the ROMs) ----------------------------------------------
@pytest.mark.parametrize("vectorization", ["sync", "ale"])
def test_real_space_invaders_observations(vectorization):
    from rlkit.envs import make_vector_env

    envs = make_vector_env("ALE/SpaceInvaders-v5", 2, vectorization, protocol=load_protocol("dqn"))
    try:
        runner = VectorRunner(envs, clip_rewards=True, life_loss_terminal=True)
        obs = runner.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert not obs[:, :3].any() and obs[:, 3].any()  # zero-padded at the start
        assert runner.action_space.n == 6
        for _ in range(50):
            t, obs = runner.step(np.ones(2, np.int64))
            assert set(np.unique(t.reward)) <= {-1.0, 0.0, 1.0}
    finally:
        runner.close()


def test_protocol_card_names_what_matters():
    card = protocol_card("ALE/SpaceInvaders-v5", load_protocol("machado"), "ale", seed=3)
    assert card["sticky_actions"] == 0.25 and card["game"] == "space_invaders"
    assert card["observation_shape"] == [4, 84, 84] and card["seed"] == 3
    assert "unclipped" in card["episode_returns"]
    json.dumps(card)


def test_cli_trains_on_space_invaders_and_evaluates_with_video(tmp_path, capsys):
    from rlkit import evaluate, train

    run_dir = tmp_path / "run"
    argv = [
        "--agent",
        "dueling_dqn",
        "--env",
        "ALE/SpaceInvaders-v5",
        "--total-steps",
        "200",
        "--set",
        "learning_starts=100",
        "--set",
        "buffer_size=1000",
        "--set",
        "batch_size=8",
        "--eval-episodes",
        "0",
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    assert "Atari protocol card" in out and "sticky_actions" in out
    card = json.loads((run_dir / "protocol.json").read_text())
    assert card["protocol"] == "dqn"
    meta = json.loads((run_dir / "policy" / "policy.json").read_text())
    assert meta["network"]["torso"] == "nature_cnn"
    assert meta["atari_protocol"]["frame_stack"] == 4
    video_dir = tmp_path / "video"
    argv = ["--run", str(run_dir), "--episodes", "1", "--epsilon", "1.0", "--video", str(video_dir)]
    assert evaluate.main(argv) == 0
    gifs = list(video_dir.glob("*.gif"))
    assert len(gifs) == 1 and gifs[0].stat().st_size > 1000
    results = json.loads((run_dir / "results.json").read_text())
    assert results["episodes"] == 1 and results["mean_reward"] >= 0


# -- the protocol's wrappers on a ROM-free game ----------------------------------------------
def test_frame_skip_max_pool_noops_and_stack_on_a_fake_game():
    from rlkit.envs.atari import wrap_atari
    from rlkit.envs.testing import FakeALEGame

    game = FakeALEGame()
    env = wrap_atari(game, load_protocol("dqn"))
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # Precondition: with this seed the newest raw frame of every agent step is odd, so
    # the sprite is visible only because of the max-pool with the frame before it.
    assert game.frames % 2 == 1
    # Up to 30 no-ops then one FIRE press (4 frames each) happen inside reset.
    assert 4 <= game.frames <= 30 + 4 + 1
    before = game.frames
    for _ in range(5):
        obs, reward, *_ = env.step(0)
        # Frame skip 4: one agent step is 4 raw frames, rewards summed (unclipped).
        assert game.frames - before == 4 and reward == 4.0
        before = game.frames
        # Max-pool over the last two frames: the flickering sprite (200 on even frames,
        # 0 on odd ones) is visible in every observation.
        assert obs[-1, :40].min() == 200
        # The bottom half shows the frame counter of the newer of the two pooled frames.
        assert obs[-1, 60:].max() == game.frames % 200
    # The stack holds the last four agent steps: frame counters 4 apart.
    counters = obs[:, 70, 40].astype(int)
    assert np.all(np.diff(counters) == 4)


def test_machado_protocol_has_no_noops_and_no_fire():
    from rlkit.envs.atari import wrap_atari
    from rlkit.envs.testing import FakeALEGame

    game = FakeALEGame()
    env = wrap_atari(game, load_protocol("machado"))
    env.reset(seed=0)
    assert game.frames == 0


def test_loading_a_rom_prints_no_banner():
    """ALE prints 'A.L.E: Arcade Learning Environment ... [Powered by Stella]' per ROM from
    C++ unless its logger is quietened; an evaluation's terminal should show our lines only."""
    code = """
from rlkit.envs.make import make_env
env = make_env("ALE/SpaceInvaders-v5")
env.reset(seed=0)
env.close()
print("made")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "made" in out.stdout, out.stderr
    assert "Arcade Learning Environment" not in out.stdout + out.stderr

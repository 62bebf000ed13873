"""Atari support: protocols, learning-only life loss and reward clipping, real ALE envs."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from rlkit.envs.atari import (
    AtariProtocol,
    FireReset,
    is_atari,
    load_protocol,
    protocol_card,
)
from rlkit.envs.testing import make_fake_atari_vector_env
from rlkit.errors import ConfigError
from rlkit.replay import ReplayBuffer
from rlkit.runner import VectorRunner

# ale-py and OpenCV are in the test extra: a missing one fails the tests that need them
# (imported where used) instead of skipping the ROM-free ones here.


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frame_stack": 0}, "frame_stack must be >= 1, got 0"),
        ({"screen_size": [4, 84]}, r"screen_size must be \[height, width\] of at least 8"),
        ({"screen_size": [84, 84, 3]}, "screen_size"),
    ],
)
def test_load_protocol_refuses_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        load_protocol("dqn", **kwargs)


def test_load_protocol_refuses_unknown_keys_in_the_yaml(monkeypatch, tmp_path):
    import rlkit.envs.atari

    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "atari.yaml").write_text("dqn:\n  frame_skip: 4\n  frameskip: 4\n")
    monkeypatch.setattr(rlkit.envs.atari, "preset_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"unknown keys \['frameskip'\] in 'dqn'"):
        load_protocol("dqn")


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


# -- FireReset, on a scripted env ----------------------------------------------------------
class ScriptedGame(gym.Env):
    """Records resets and actions; FIRE (wherever it is) ends the game when told to."""

    observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, meanings, fire_ends_game=()):
        self.meanings, self.fire_ends_game = meanings, list(fire_ends_game)
        self.log = []

    def get_action_meanings(self):
        return self.meanings

    def reset(self, *, seed=None, options=None):
        self.log.append(("reset", seed))
        return np.full(2, len(self.log), np.uint8), {"resets": len(self.log)}

    def step(self, action):
        self.log.append(("step", int(action)))
        ends = self.fire_ends_game.pop(0) if self.fire_ends_game else False
        return np.full(2, 100 + len(self.log), np.uint8), 0.0, ends, False, {"stepped": True}


def test_fire_reset_presses_the_games_fire_action_once():
    game = ScriptedGame(["NOOP", "UP", "FIRE"])  # FIRE is action 2 here, not 1
    obs, info = FireReset(game).reset(seed=5)
    assert game.log == [("reset", 5), ("step", 2)]
    assert obs.tolist() == [102, 102] and info == {"stepped": True}  # after the press


def test_fire_reset_resets_again_when_fire_ends_the_game():
    game = ScriptedGame(["NOOP", "FIRE", "UP"], fire_ends_game=[True])
    obs, info = FireReset(game).reset(seed=5)
    assert game.log == [("reset", 5), ("step", 1), ("reset", 5)]
    assert obs.tolist() == [3, 3] and info == {"resets": 3}  # the second reset's


def test_fire_reset_does_nothing_without_fire():
    game = ScriptedGame(["NOOP", "UP", "DOWN"])
    obs, _ = FireReset(game).reset(seed=1)
    assert game.log == [("reset", 1)] and obs.tolist() == [1, 1]


def test_fire_reset_presses_fire_in_space_invaders():
    from rlkit.envs.atari import register_ale

    register_ale()
    env = gym.make("ALE/SpaceInvaders-v5", frameskip=1, repeat_action_probability=0.0)
    pressed = []
    step = env.step
    env.step = lambda action: pressed.append(int(action)) or step(action)
    try:
        FireReset(env).reset(seed=0)
    finally:
        env.close()
    assert env.unwrapped.get_action_meanings()[1] == "FIRE" and pressed == [1]


# -- what is missing or refused --------------------------------------------------------------
def test_missing_ale_py_is_one_line_naming_the_extra(monkeypatch, capsys):
    from rlkit import train

    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py raises ImportError
    code = train.main(["--agent", "dqn", "--env", "ALE/Pong-v5", "--total-steps", "100"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "ale-py" in err[0] and "pip install 'rlkit[atari]'" in err[0]


def test_ale_vectorization_refuses_rgb_observations():
    from rlkit.envs import make_vector_env

    rgb = AtariProtocol(grayscale=False)
    with pytest.raises(ConfigError, match="ale vectorization supports grayscale"):
        make_vector_env("ALE/SpaceInvaders-v5", 2, "ale", protocol=rgb)


def test_ale_vectorization_is_for_atari_only():
    from rlkit.envs import make_vector_env

    with pytest.raises(ConfigError, match="'ale' is for Atari envs only"):
        make_vector_env("CartPole-v1", 2, "ale")


# -- real ALE games (ale-py >= 0.9 ships the ROMs) ----------------------------------------------
@pytest.mark.parametrize("vectorization", ["sync", "async", "ale"])
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


def atari_stream(vectorization: str, game: str, steps: int, protocol: AtariProtocol) -> list:
    """(obs, reward, terminated, truncated) of 2 envs, seed 0, the same random actions."""
    from rlkit.envs import make_vector_env

    envs = make_vector_env(game, 2, vectorization, protocol=protocol)
    try:
        obs, _ = envs.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, envs.single_action_space.n, (steps, 2))
        out = [(obs.copy(), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))]
        for a in actions:
            obs, reward, terminated, truncated, _ = envs.step(a)
            out.append((obs.copy(), np.asarray(reward, float), terminated, truncated))
    finally:
        envs.close()
    return out


@pytest.mark.parametrize(
    ("game", "steps"), [("ALE/SpaceInvaders-v5", 600), ("ALE/Breakout-v5", 300)]
)
def test_sync_and_ale_vectorizations_agree_frame_for_frame(game, steps):
    # Without no-op starts (their counts come from different generators: gymnasium's
    # np_random and ALE's mt19937), the Python wrappers and ALE's C++ vector env give the
    # same stream: every stacked observation, reward and episode end, autoresets included.
    protocol = dataclasses.replace(load_protocol("dqn"), noop_max=0)
    sync = atari_stream("sync", game, steps, protocol)
    ale = atari_stream("ale", game, steps, protocol)
    ends = 0
    for t, (a, b) in enumerate(zip(sync, ale, strict=True)):
        np.testing.assert_array_equal(a[0], b[0], f"observations differ at step {t}")
        for k, name in enumerate(("reward", "terminated", "truncated"), 1):
            np.testing.assert_array_equal(a[k], b[k], f"{name} differs at step {t}")
        ends += int(a[2].sum() + a[3].sum())
    assert ends >= 2  # episodes ended and restarted inside the compared stream
    assert sum(abs(x[1]).sum() for x in sync) > 0  # and rewards were scored


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
        "--final-eval-episodes",
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
    results = json.loads((run_dir / "evaluations" / "seed0-1ep-eps1.json").read_text())
    assert results["n_eval_episodes"] == 1 and results["returns"] == [results["mean_reward"]]
    # The game's unclipped score: Space Invaders scores in multiples of 5 (invaders are
    # worth 5 to 30); the sign-clipped sum (one per hit) of a random game stays far below 50.
    score = results["mean_reward"]
    assert score % 5 == 0 and score >= 50, score


# -- the protocol's wrappers on a ROM-free game ----------------------------------------------
def test_frame_skip_max_pool_noops_and_stack_on_a_fake_game():
    from rlkit.envs.atari import wrap_atari
    from rlkit.envs.testing import FakeALEGame

    game = FakeALEGame()
    env = wrap_atari(game, load_protocol("dqn"))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # Precondition: with this seed the newest raw frame of every agent step is odd, so
    # the sprite is visible only because of the max-pool with the frame before it.
    assert game.frames % 2 == 1
    # Inside reset: one FIRE frame (under the frame skip, as ale-py's vector env presses
    # it), then 1 to 30 no-op frames.
    assert 1 + 1 <= game.frames <= 1 + 30
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

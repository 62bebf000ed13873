"""Atari: preprocessing protocols, env factories (Python wrappers or ALE's vector env), card."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlkit.envs.vector import vectorize
from rlkit.errors import ConfigError, MissingExtraError
from rlkit.preset_files import preset_dir, read_yaml

if TYPE_CHECKING:  # for the annotation only: the settings module imports this one
    from rlkit.config import RunConfig


@dataclasses.dataclass(frozen=True)
class AtariProtocol:
    """How Atari frames and rewards are turned into what the agent sees and learns from.

    The fields mirror ``envs/atari.yaml``. ``life_loss_terminal`` and ``clip_rewards``
    change only the learning signal (``rlkit.runner.VectorRunner`` applies them); episode
    statistics and evaluations always report the full game's unclipped score.
    """

    name: str = "dqn"
    noop_max: int = 30
    frame_skip: int = 4
    sticky_actions: float = 0.0
    screen_size: tuple[int, int] = (84, 84)
    grayscale: bool = True
    frame_stack: int = 4
    fire_reset: bool = True
    life_loss_terminal: bool = True
    clip_rewards: bool = True

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation: ``[frame_stack, height, width]`` (grayscale)."""
        return (self.frame_stack, *self.screen_size)


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` names an ALE game (``ALE/...-v5`` or ``...NoFrameskip-v4``)."""
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def register_ale(env_id: str | None = None) -> None:
    """Register ale-py's envs with gymnasium, or explain how to install them.

    Raises:
        MissingExtraError: without ale-py, naming ``env_id`` and the ``atari`` extra.
    """
    try:
        import ale_py
    except ImportError:
        raise MissingExtraError(
            f"{env_id or 'Atari envs'} needs ale-py: pip install 'rlkit[atari]' "
            "(ale-py >= 0.9 ships the ROMs)"
        ) from None
    gym.register_envs(ale_py)
    # ALE prints a banner ("A.L.E: Arcade Learning Environment ... Powered by Stella") for
    # every ROM it loads; keep its warnings and errors, drop the chatter.
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)


def load_protocol(
    name: str = "dqn",
    *,
    frame_stack: int | None = None,
    screen_size: tuple[int, int] | list[int] | None = None,
) -> AtariProtocol:
    """The protocol ``name`` from the shipped ``envs/atari.yaml``, with optional overrides.

    Raises:
        ConfigError: for an unknown protocol or bad values.
    """
    protocols = read_yaml(preset_dir() / "envs" / "atari.yaml")
    if name not in protocols:
        raise ConfigError(f"unknown Atari protocol {name!r}; choose one of {sorted(protocols)}")
    values = dict(protocols[name])
    if frame_stack is not None:
        values["frame_stack"] = frame_stack
    if screen_size is not None:
        values["screen_size"] = screen_size
    fields = {f.name for f in dataclasses.fields(AtariProtocol)}
    unknown = set(values) - fields
    if unknown:
        raise ConfigError(f"envs/atari.yaml: unknown keys {sorted(unknown)} in {name!r}")
    size = tuple(int(v) for v in values.get("screen_size", (84, 84)))
    if len(size) != 2 or min(size) < 8:
        raise ConfigError(f"screen_size must be [height, width] of at least 8, got {list(size)}")
    if int(values.get("frame_stack", 4)) < 1:
        raise ConfigError(f"frame_stack must be >= 1, got {values['frame_stack']}")
    values["screen_size"] = size
    return AtariProtocol(name=name, **values)


def env_protocol(env_id: str, run: RunConfig) -> AtariProtocol | None:
    """The Atari protocol of a run on ``env_id`` (``run``'s overrides applied), or None.

    Raises:
        ConfigError: for an unknown protocol or bad overrides.
    """
    if not is_atari(env_id):
        return None
    return load_protocol(
        run.atari_protocol, frame_stack=run.frame_stack, screen_size=run.screen_size
    )


class FireReset(gym.Wrapper):
    """Press FIRE after each reset, for games that wait for it (Breakout, Space Invaders...)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self._fire = meanings.index("FIRE") if "FIRE" in meanings else None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        """Reset, then press FIRE once (resetting again if that ended the game)."""
        obs, info = self.env.reset(**kwargs)
        if self._fire is None:
            return obs, info
        obs, _, terminated, truncated, info = self.env.step(self._fire)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def make_atari_env(env_id: str, protocol: AtariProtocol, render_mode: str | None = None) -> gym.Env:
    """One Atari env with the protocol's preprocessing (Python wrappers).

    Order: ALE (no frame skip) -> FireReset (one FIRE frame) -> AtariPreprocessing (no-ops,
    frame skip with max-pool, resize, grayscale) -> FrameStackObservation (zero padding, as
    ALE's vector env pads). Rewards stay unclipped and a lost life does not end the episode
    here: the runner derives the learning signal, so statistics see the full game.
    """
    register_ale()
    # AtariPreprocessing does the frame skipping itself, so the ALE env must not.
    env = gym.make(
        env_id,
        render_mode=render_mode,
        frameskip=1,
        repeat_action_probability=protocol.sticky_actions,
        full_action_space=False,
    )
    return wrap_atari(env, protocol)


def wrap_atari(env: gym.Env, protocol: AtariProtocol) -> gym.Env:
    """Apply the protocol's preprocessing to an ALE env that does not skip frames itself.

    FIRE is pressed for one frame, under the frame skip, as ale-py's vector env presses it:
    pressed for a whole agent step (4 frames) instead, every later frame came 3 frames
    early and no observation matched the ``ale`` vectorization's.
    """
    if protocol.fire_reset:
        env = FireReset(env)
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=protocol.noop_max,
        frame_skip=protocol.frame_skip,
        screen_size=(protocol.screen_size[1], protocol.screen_size[0]),  # (width, height)
        terminal_on_life_loss=False,
        grayscale_obs=protocol.grayscale,
    )
    return gym.wrappers.FrameStackObservation(env, protocol.frame_stack, padding_type="zero")


def make_atari_vector_env(
    env_id: str, num_envs: int, vectorization: str, protocol: AtariProtocol
) -> gym.vector.VectorEnv:
    """``num_envs`` Atari envs: Python wrappers (``sync``/``async``) or ALE's C++ ``ale``.

    Every mode uses NEXT_STEP autoreset and gives the same observations
    (``[frame_stack, height, width]`` uint8, zero-padded stacks). ``vectorization`` is
    checked by ``rlkit.envs.make_vector_env``, the usual way in.
    """
    register_ale()
    if vectorization == "ale":
        from ale_py.vector_env import AtariVectorEnv

        if not protocol.grayscale:
            raise ConfigError("the ale vectorization supports grayscale observations only")
        return AtariVectorEnv(
            gym.spec(env_id).kwargs["game"],
            num_envs,
            repeat_action_probability=protocol.sticky_actions,
            autoreset_mode=AutoresetMode.NEXT_STEP,
            img_height=protocol.screen_size[0],
            img_width=protocol.screen_size[1],
            grayscale=True,
            stack_num=protocol.frame_stack,
            frameskip=protocol.frame_skip,
            maxpool=True,
            noop_max=protocol.noop_max,
            episodic_life=False,
            reward_clipping=False,
            use_fire_reset=protocol.fire_reset,
        )
    fns = [functools.partial(make_atari_env, env_id, protocol) for _ in range(num_envs)]
    return vectorize(fns, vectorization)


def protocol_card(
    env_id: str, protocol: AtariProtocol, vectorization: str, seed: int
) -> dict[str, Any]:
    """What a reader needs to compare a run's numbers with published ones."""
    register_ale()
    spec = gym.spec(env_id)
    return {
        "env_id": env_id,
        "env_version": env_id.rsplit("-", 1)[-1],
        "game": spec.kwargs.get("game"),
        "protocol": protocol.name,
        "vectorization": vectorization,
        "frame_skip": protocol.frame_skip,
        "max_pool_last_two_frames": True,
        "sticky_actions": protocol.sticky_actions,
        "noop_max": protocol.noop_max,
        "fire_reset": protocol.fire_reset,
        "life_loss": "ends the learning episode only" if protocol.life_loss_terminal else "ignored",
        "reward_clipping": "sign(reward) for learning only" if protocol.clip_rewards else "none",
        "observation_shape": list(protocol.observation_shape),
        "grayscale": protocol.grayscale,
        "step_unit": f"agent steps (1 step = {protocol.frame_skip} frames)",
        "episode_returns": "full game (all lives), unclipped, in training and evaluation",
        "max_frames_per_episode": spec.kwargs.get("max_num_frames_per_episode", 108_000),
        "seed": seed,
    }


def format_card(card: dict[str, Any]) -> str:
    """The protocol card as aligned ``key: value`` lines."""
    width = max(len(k) for k in card)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in card.items())

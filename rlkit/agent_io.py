"""Save and load a whole agent (settings, spaces, variables, RNG) without pickle.

``SaveLoad`` gives the agents' bases ``agent.save(path)`` and ``DQN.load(path)``;
``rlkit.agents.load_agent(path)`` loads any registered agent. This module does not import
the agents (the registry imports it), so nothing here closes an import cycle.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np

from rlkit.config import plain_dict
from rlkit.core import Agent
from rlkit.errors import RlkitError

FORMAT_VERSION = 1

A = TypeVar("A", bound=Agent)


def encode_space(space: gym.spaces.Space) -> dict[str, Any]:
    """A JSON description of a ``Box``, ``Discrete``, ``MultiDiscrete`` or ``MultiBinary`` space."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else [int(x) for x in n]}
    if isinstance(space, gym.spaces.Box):

        def bound(a: np.ndarray) -> Any:
            flat = np.asarray(a).ravel()
            same = flat.size and np.all(flat == flat[0])
            return float(flat[0]) if same else np.asarray(a).tolist()

        return {
            "type": "Box",
            "low": bound(space.low),
            "high": bound(space.high),
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
        }
    raise RlkitError(f"cannot save an agent for the space {space}")


def decode_space(data: dict[str, Any]) -> gym.spaces.Space:
    """The space ``encode_space`` described."""
    if data.get("type") == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if data.get("type") == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(data["nvec"], start=data.get("start"))
    if data.get("type") == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if data.get("type") == "Box":
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], np.float64), data["shape"]).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], np.float64), data["shape"]).astype(dtype)
        return gym.spaces.Box(low, high, tuple(data["shape"]), dtype)
    raise RlkitError(f"unknown space description {data!r}")


def save_agent(agent: Agent, path: str | Path) -> Path:
    """Write ``agent.json`` and the agent's variables into the folder ``path``."""
    import tensorflow as tf

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "agent": agent.name,
        "config": plain_dict(agent.config),
        "observation_space": encode_space(agent.observation_space),
        "action_space": encode_space(agent.action_space),
        "rng": agent.rng.bit_generator.state,
    }
    agent.before_checkpoint()
    tf.train.Checkpoint(**agent.checkpoint_items()).write(str(path / "variables"))
    (path / "agent.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_agent_meta(path: str | Path) -> dict[str, Any]:
    """The ``agent.json`` of a saved agent (its registry name is under ``"agent"``).

    Raises:
        RlkitError: if the folder holds no agent or a format this rlkit does not read.
    """
    from rlkit.policy_check import read_description

    path = Path(path)
    if not (path / "agent.json").is_file():
        raise RlkitError(f"no saved agent in {str(path)!r} (expected agent.json)")
    meta = read_description(path / "agent.json")  # size-capped JSON, errors naming the file
    desc = path / "agent.json"
    if not isinstance(meta, dict):
        raise RlkitError(f"{desc} is not an rlkit agent description (not a JSON object)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RlkitError(
            f"{path} holds agent format {str(meta.get('format_version'))[:20]}; this rlkit "
            f"reads {FORMAT_VERSION}"
        )
    keys = ("agent", "config", "observation_space", "action_space", "rng")
    missing = [k for k in keys if k not in meta]
    if missing or not isinstance(meta["agent"], str):
        raise RlkitError(f"{desc} is not an rlkit agent description (lacks {missing or 'agent'})")
    return meta


def load_agent_as(cls: type[A], path: str | Path) -> A:
    """Rebuild the agent of class ``cls`` saved in ``path``: settings, spaces, variables, RNG.

    Raises:
        RlkitError: if the folder holds no agent, another agent, a newer format or
            settings rlkit rejects.
    """
    import tensorflow as tf

    from rlkit.config import build
    from rlkit.policy_check import check_network_settings, check_space_description

    path = Path(path)
    meta = read_agent_meta(path)
    if meta.get("agent") != cls.name:
        raise RlkitError(
            f"{path} holds a {str(meta.get('agent'))[:64]!r} agent, not {cls.name!r}; "
            "load it with its own class or with rlkit.agents.load_agent(path)"
        )
    config_cls = cls.config_cls
    if not isinstance(meta["config"], dict):
        raise RlkitError(f"{path}/agent.json: config must be an object of settings")
    config, problems = build(config_cls, meta["config"])
    unknown = set(meta["config"]) - {f.name for f in dataclasses.fields(config_cls)}
    if problems or unknown:
        raise RlkitError(f"{path}/agent.json has bad settings: {problems or sorted(unknown)}")
    # A saved agent may come from anyone: its sizes are bounded before anything is built.
    where = str(path / "agent.json")
    check_network_settings(config, where)
    for key in ("observation_space", "action_space"):
        check_space_description(meta[key], where, key)
    try:
        spaces = decode_space(meta["observation_space"]), decode_space(meta["action_space"])
    except (ValueError, TypeError) as e:
        raise RlkitError(f"{where} describes a space gymnasium rejects: {e}") from None
    agent = cls(*spaces, config)
    try:
        status = tf.train.Checkpoint(**agent.checkpoint_items()).read(str(path / "variables"))
        status.assert_consumed()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise RlkitError(
            f"{path / 'variables'} does not fit the agent described in {where}: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    agent.after_restore()
    try:
        agent.rng.bit_generator.state = meta["rng"]
    except (ValueError, TypeError, KeyError) as e:
        raise RlkitError(
            f"{where}: rng is not a {type(agent.rng.bit_generator).__name__} state: {e}"
        ) from None
    return agent


class SaveLoad:
    """``save`` and ``load`` for an ``rlkit.core.Agent`` class (mixed into the agents' bases).

    Example:
        >>> agent.save("my_agent")
        >>> same = DQN.load("my_agent")  # or rlkit.agents.load_agent("my_agent")
    """

    def save(self, path: str | Path) -> Path:
        """Save the whole agent (settings, spaces, variables, RNG) into the folder ``path``.

        ``load(path)`` on its class rebuilds it, ready to act or to keep learning. No
        pickle: JSON and a TensorFlow checkpoint.
        """
        return save_agent(self, path)

    @classmethod
    def load(cls: type[A], path: str | Path) -> A:
        """Rebuild an agent of this class saved with ``save``.

        Raises:
            RlkitError: if ``path`` holds no agent or one of another class.
        """
        return load_agent_as(cls, path)

"""Save and load a whole agent (settings, spaces, variables, RNG) without pickle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.config import plain_dict
from rlkit.errors import RlkitError

FORMAT_VERSION = 1


def encode_space(space: gym.spaces.Space) -> dict[str, Any]:
    """A JSON description of a ``Box`` or ``Discrete`` space."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
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
    if data.get("type") == "Box":
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], np.float64), data["shape"]).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], np.float64), data["shape"]).astype(dtype)
        return gym.spaces.Box(low, high, tuple(data["shape"]), dtype)
    raise RlkitError(f"unknown space description {data!r}")


def save_agent(agent: Any, path: str | Path) -> Path:
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


def load_agent(path: str | Path) -> Any:
    """Rebuild the agent saved in ``path``: same class, settings, spaces, variables, RNG.

    Raises:
        RlkitError: if the folder holds no agent, a newer format or settings rlkit rejects.
    """
    import tensorflow as tf

    from rlkit.agents import get_agent_class
    from rlkit.config import build

    path = Path(path)
    if not (path / "agent.json").is_file():
        raise RlkitError(f"no saved agent in {str(path)!r} (expected agent.json)")
    meta = json.loads((path / "agent.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise RlkitError(
            f"{path} holds agent format {meta.get('format_version')}; this rlkit reads "
            f"{FORMAT_VERSION}"
        )
    cls = get_agent_class(meta["agent"])
    config, problems = build(cls.config_cls, meta["config"])
    unknown = set(meta["config"]) - {f.name for f in dataclasses.fields(cls.config_cls)}
    if problems or unknown:
        raise RlkitError(f"{path}/agent.json has bad settings: {problems or sorted(unknown)}")
    agent = cls(decode_space(meta["observation_space"]), decode_space(meta["action_space"]), config)
    tf.train.Checkpoint(**agent.checkpoint_items()).read(str(path / "variables")).assert_consumed()
    agent.after_restore()
    agent.rng.bit_generator.state = meta["rng"]
    return agent

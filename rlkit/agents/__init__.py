"""The agents shipped with rlkit and the registry the CLI looks them up in.

The registry is discovered, not listed: every module of this package is imported and each
concrete ``Agent`` subclass that defines its own ``name`` is registered under it. So a new
algorithm is one new file here (see docs/adding-an-algorithm.md).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from rlkit.agent_io import read_agent_meta
from rlkit.agents.a2c import A2C, A2CConfig
from rlkit.agents.dqn import DQN, DoubleDQN, DQNConfig, DuelingDQN, Rainbow, RainbowConfig
from rlkit.agents.policy_gradient import PolicyGradient
from rlkit.agents.ppo import PPO, PPOConfig
from rlkit.agents.reinforce import Reinforce, ReinforceConfig
from rlkit.core import Agent
from rlkit.errors import RlkitError, UnknownNameError

AGENTS: dict[str, type[Agent]] = {}


def discover() -> dict[str, type[Agent]]:
    """Import every module of ``rlkit.agents`` and register its agents in ``AGENTS``.

    A class is registered if it is a concrete ``Agent`` subclass, defined in that module,
    with a ``name`` of its own. Runs on import; call it again after adding a folder to
    this package's ``__path__``.

    Raises:
        RlkitError: if two classes claim the same name.
    """
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for cls in vars(module).values():
            if not (
                inspect.isclass(cls)
                and issubclass(cls, Agent)
                and cls.__module__ == module.__name__
                and "name" in vars(cls)
                and not inspect.isabstract(cls)
            ):
                continue
            known = AGENTS.setdefault(cls.name, cls)
            if known is not cls:
                raise RlkitError(
                    f"two agents are named {cls.name!r}: {known.__module__}.{known.__name__} "
                    f"and {cls.__module__}.{cls.__name__}; rename one"
                )
    return AGENTS


def get_agent_class(name: str) -> type[Agent]:
    """Look an agent class up by its registry name (``dqn``, ``a2c``, ...)."""
    try:
        return AGENTS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}"
        ) from None


def load_agent(path: str | Path) -> Agent:
    """Rebuild any registered agent saved with ``agent.save(path)`` (its class is read there).

    Raises:
        RlkitError: if the folder holds no agent, an unknown one or bad settings.
    """
    cls = get_agent_class(read_agent_meta(path)["agent"])
    return cls.load(path)


discover()

__all__ = [
    "A2C",
    "A2CConfig",
    "AGENTS",
    "DQN",
    "DQNConfig",
    "DoubleDQN",
    "DuelingDQN",
    "PPO",
    "PPOConfig",
    "PolicyGradient",
    "Rainbow",
    "RainbowConfig",
    "Reinforce",
    "ReinforceConfig",
    "discover",
    "get_agent_class",
    "load_agent",
]

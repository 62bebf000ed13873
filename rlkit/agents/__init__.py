"""The agents shipped with rlkit and the registry the CLI looks them up in."""

from __future__ import annotations

from rlkit.agents.a2c import A2C, A2CConfig
from rlkit.agents.dqn import DQN, DoubleDQN, DQNConfig, DuelingDQN
from rlkit.agents.reinforce import Reinforce, ReinforceConfig
from rlkit.core import Agent
from rlkit.errors import UnknownNameError

AGENTS: dict[str, type[Agent]] = {
    cls.name: cls for cls in (DQN, DoubleDQN, DuelingDQN, Reinforce, A2C)
}


def get_agent_class(name: str) -> type[Agent]:
    """Look an agent class up by its registry name (``dqn``, ``a2c``, ...)."""
    try:
        return AGENTS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown agent {name!r}; choose one of: {', '.join(AGENTS)}"
        ) from None


__all__ = [
    "A2C",
    "A2CConfig",
    "AGENTS",
    "DQN",
    "DQNConfig",
    "DoubleDQN",
    "DuelingDQN",
    "Reinforce",
    "ReinforceConfig",
    "get_agent_class",
]

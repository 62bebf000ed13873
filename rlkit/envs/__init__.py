"""Environment factories and wrappers."""

from rlkit.envs.make import check_env_id, make_env, make_vector_env, vector_entry_point_ids
from rlkit.envs.source import EnvSource
from rlkit.envs.vector import VECTORIZATIONS
from rlkit.envs.wrappers import RewardNoise

__all__ = [
    "VECTORIZATIONS",
    "EnvSource",
    "RewardNoise",
    "check_env_id",
    "make_env",
    "make_vector_env",
    "vector_entry_point_ids",
]

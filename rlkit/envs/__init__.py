"""Environment factories and wrappers."""

from rlkit.envs.make import VECTORIZATIONS, check_env_id, make_env, make_vector_env
from rlkit.envs.wrappers import RewardNoise

__all__ = ["VECTORIZATIONS", "RewardNoise", "check_env_id", "make_env", "make_vector_env"]

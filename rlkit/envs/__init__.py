"""Environment factories and wrappers."""

from rlkit.envs.make import VECTORIZATIONS, check_env_id, make_env, make_vector_env

__all__ = ["VECTORIZATIONS", "check_env_id", "make_env", "make_vector_env"]

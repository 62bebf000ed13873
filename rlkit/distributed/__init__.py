"""Ray rollout workers behind the runner interface of ``rlkit.runner.VectorRunner``.

``RayRunner`` (in ``rlkit.distributed.runner``) spreads the envs over Ray actors, each
owning a gymnasium vector env and a copy of the acting policy. Ray is an optional
dependency (``pip install "rlkit[distributed]"``); it is imported only when a
``RayRunner`` is made, so importing this package without Ray works.
"""

from rlkit.distributed.runner import RayRunner, default_chunk_steps

__all__ = ["RayRunner", "default_chunk_steps"]

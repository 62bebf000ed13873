"""rlkit: reinforcement-learning agents for TensorFlow 2 and Keras 3.

`import rlkit` is cheap: TensorFlow is imported only by the modules that need it
(`rlkit.agents`, `rlkit.networks`, ...), and `rlkit.load_from_hub` (a policy shared on the
Hugging Face Hub, see `rlkit.hub`) imports huggingface_hub only when it is called.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_from_hub"]


def __getattr__(name: str) -> Any:
    # PEP 562: rlkit.load_from_hub is looked up on first use, so that `import rlkit`
    # imports neither rlkit.hub's dependencies nor TensorFlow.
    if name == "load_from_hub":
        from rlkit.hub import load_from_hub

        return load_from_hub
    raise AttributeError(f"module 'rlkit' has no attribute {name!r}")

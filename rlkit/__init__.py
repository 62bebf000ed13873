"""rlkit: reinforcement-learning agents for TensorFlow 2 and Keras 3.

`import rlkit` is cheap: TensorFlow is imported only by the modules that need it
(`rlkit.agents`, `rlkit.networks`, ...).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

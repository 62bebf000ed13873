"""RMSprop as PyTorch (and so Stable-Baselines3's A2C) computes it.

Keras' ``RMSprop`` adds epsilon *inside* the square root::

    v <- rho v + (1 - rho) g^2;    w <- w - lr g / sqrt(v + eps)

PyTorch's ``torch.optim.RMSprop``, the optimizer of SB3's A2C (``rms_prop_eps=1e-5``) and of
rl-zoo3's classic-control A2C settings, adds it *outside*::

    v <- rho v + (1 - rho) g^2;    w <- w - lr g / (sqrt(v) + eps)

No choice of Keras' epsilon gives the same steps: for a weight whose gradients are small
next to eps (most weights early on, once the global-norm clip has scaled the gradient
down), PyTorch's rule damps the step to about ``lr g / eps`` while Keras' takes nearly a
full ``lr g / |g|``-sized one. With this rule rlkit's A2C update equals SB3's to float
precision from the same weights; with Keras' it differs by ~2e-3 a step
(``benchmarks/update_vs_sb3.py``), though on CartPole the two did not learn measurably
apart (``benchmarks/README.md``, "A2C's optimizer"). rlkit offers both: ``optimizer:
rmsprop`` (Keras, the presets') and ``optimizer: rmsprop_torch`` (this one).
``make_optimizer`` builds the optimizer a policy-gradient agent's settings name.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class TorchRMSprop(keras.optimizers.Optimizer):
    """RMSprop with epsilon outside the square root, accumulator starting at 0 (PyTorch's).

    Args:
        learning_rate: step size.
        rho: decay of the mean square (PyTorch's ``alpha``).
        epsilon: added to ``sqrt(v)``.
        name: the optimizer's name.
        **kwargs: Keras' common optimizer arguments (clipping, EMA, ...).
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        rho: float = 0.99,
        epsilon: float = 1e-8,
        name: str = "torch_rmsprop",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def build(self, var_list: list[Any]) -> None:
        """One mean-square accumulator per variable, zeros."""
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """``v <- rho v + (1 - rho) g^2``, then ``w <- w - lr g / (sqrt(v) + eps)``."""
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        self.assign(
            velocity,
            ops.add(
                ops.multiply(self.rho, velocity), ops.multiply(1 - self.rho, ops.square(gradient))
            ),
        )
        step = ops.divide(ops.multiply(lr, gradient), ops.add(ops.sqrt(velocity), self.epsilon))
        self.assign_sub(variable, step)

    def get_config(self) -> dict[str, Any]:
        """Keras' config plus ``rho`` and ``epsilon``."""
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


OPTIMIZERS = ("rmsprop", "rmsprop_torch", "adam")


def make_optimizer(name: str, learning_rate: float, eps: float) -> keras.optimizers.Optimizer:
    """RMSprop as in the A3C paper (decay 0.99), Keras' or PyTorch's, or Adam.

    Args:
        name: one of ``OPTIMIZERS``: ``rmsprop`` (Keras': epsilon inside the square root),
            ``rmsprop_torch`` (PyTorch's: outside it, as Stable-Baselines3's A2C) or ``adam``.
        learning_rate: step size.
        eps: the optimizer's epsilon.
    """
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=0.99, epsilon=eps)
    if name == "rmsprop_torch":
        return TorchRMSprop(learning_rate, rho=0.99, epsilon=eps)
    return keras.optimizers.Adam(learning_rate, epsilon=eps)

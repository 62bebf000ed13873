"""Envs that break gymnasium's API in one way each, named as ``module:Class`` on the CLI."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.user_envs.corridor import Corridor


class WrongDtype(Corridor):
    """Declares float32 observations and returns float64 ones."""

    def observe(self) -> Any:
        return super().observe().astype(np.float64)


class OutsideSpace(Corridor):
    """Observations of 2.0 where the space says at most 1.0."""

    def observe(self) -> Any:
        return super().observe() * 2.0


class ResetWithoutSeed(Corridor):
    """A ``reset`` that takes no seed (the pre-gymnasium-1.0 API)."""

    def reset(self, *, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:  # type: ignore[override]
        self.position, self.steps = 0, 0
        return self.observe(), {}


class SeedIgnored(Corridor):
    """Takes a seed and ignores it: starts come from a generator of its own, never seeded.

    Nothing else is wrong, so it trains; only its runs are not reproducible.
    """

    def __init__(self, length: int = 5, max_steps: int = 50) -> None:
        super().__init__(length, max_steps)
        self.own_rng = np.random.default_rng()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        self.position, self.steps = int(self.own_rng.integers(0, self.length // 2 + 1)), 0
        return self.observe(), {}

"""Shared fixtures: the benchmark drivers under ``benchmarks/`` loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """``load_benchmark("learning")`` -> ``benchmarks/learning.py`` as a module (loaded once).

    The drivers are scripts, not a package; each is registered in ``sys.modules`` under
    ``<name>_benchmark`` because dataclasses look their module up there.
    """

    def load(name: str) -> ModuleType:
        key = f"{name}_benchmark"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, BENCHMARKS / f"{name}.py")
            module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            sys.modules[key] = module
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        return sys.modules[key]

    return load

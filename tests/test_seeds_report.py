"""Tests of the seed-experiment metrics and table (benchmarks/seeds/report.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "seeds" / "report.py"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seeds_report", REPORT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["seeds_report"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def fake_run(variant: str, seed: int, returns: list[float], final: float) -> dict[str, Any]:
    """A run as run.py stores it, evaluated every 1,000 steps."""
    curve = [
        {"env_steps": 1000 * (i + 1), "mean_reward": r, "std_reward": 0.0}
        for i, r in enumerate(returns)
    ]
    return {"variant": variant, "seed": seed, "curve": curve, "final_mean": final}


def test_run_metrics(report: ModuleType) -> None:
    m = report.run_metrics(fake_run("a", 1, [100, 480, 300, 500], final=450))
    assert m == {"final": 450, "best": 500, "auc": 345.0, "steps_to_475": 2000}
    never = report.run_metrics(fake_run("a", 1, [100, 474.9], final=10))
    assert never["steps_to_475"] is None and never["auc"] == pytest.approx(287.45)


def test_run_without_evaluations_is_an_error(report: ModuleType) -> None:
    with pytest.raises(ValueError, match="no evaluations"):
        report.run_metrics(fake_run("a", 3, [], final=0))


def test_table_means_stds_and_paired_differences(report: ModuleType) -> None:
    data = {
        "variants": [{"label": "a"}, {"label": "b"}],
        "runs": [
            fake_run("a", 2, [100, 200], final=200),
            fake_run("a", 1, [100, 100], final=100),
            fake_run("b", 1, [300, 500], final=500),
            fake_run("b", 2, [100, 100], final=100),
        ],
    }
    text = report.table(data)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()}
    # a: finals 100, 200 -> 150 ± 71; AUCs 100, 150 -> 125 ± 35; seeds sorted.
    assert "| a | 2 | 150 ± 71 | 150 ± 71 | 125 ± 35 | 0/2 | - | 1: 100, 2: 200 |" in text
    assert "| b | 2 | 300 ± 283 | 300 ± 283 | 250 ± 212 | 1/2 | 2,000 (2,000-2,000) |" in text
    # b - a by seed: finals +400, -100; AUCs 400 - 100 = +300 and 100 - 150 = -50.
    assert rows["b"].endswith("| +150 ± 354 (1/2) | +125 ± 247 (1/2) | 1: +300, 2: -50 |")

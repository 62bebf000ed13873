"""Learning table: rlkit's shipped presets side by side with Stable-Baselines3 (issue 14).

Usage:
    python benchmarks/learning.py run --sb3-python /path/to/sb3-venv/bin/python \
        [--cells dqn:CartPole-v1,a2c:LunarLander-v3] [--seeds 1001-1010] [--libs rlkit,sb3]
        [--runs-dir DIR]
    python benchmarks/learning.py report      # table.md and the plots from the rows so far

MuJoCo (issue 15: PPO on HalfCheetah-v5 and Hopper-v5, 1M env steps, 3 seeds a side), rows
under a tag of their own, table and plots in ``results/learning/mujoco/``:
    python benchmarks/learning.py run --cells ppo:HalfCheetah-v5,ppo:Hopper-v5 \
        --seeds 1001-1003 --tag mujoco --sb3-python /path/to/sb3-venv/bin/python
    python benchmarks/learning.py report --tag mujoco

Smoke test (tiny budget; its rows carry a tag, which ``report`` ignores unless given it):
    python benchmarks/learning.py run --max-steps 3000 --cells dqn:CartPole-v1 --seeds 1 \
        --tag smoke
    python benchmarks/learning.py report --tag smoke   # into results/learning/smoke/

Cells: every agent (dqn, double_dqn, dueling_dqn, rainbow, a2c, reinforce, ppo) on CartPole-v1,
MountainCar-v0, LunarLander-v3 and Acrobot-v1, and the policy-gradient agents with a preset
section on the continuous-action Pendulum-v1 and LunarLanderContinuous-v3 (issue 15), except
those in ``SKIPPED`` (an agent with no preset section for an env it cannot learn with the
defaults, or whose actions it cannot take). Acrobot-v1 is held out:
no preset has a section for it, so it runs the presets' ``default`` sections, to check
that they transfer; nothing was ever tuned on it. Default seeds 1001-1010, which no
preset was tuned on.

Protocol, the same for both libraries:
- rlkit: the CLI with the shipped preset, exactly as a user runs it
  (``python -m rlkit.train --agent A --env E --seed S --run-dir D --quiet``). For an env
  without a preset section (Acrobot-v1) the command adds ``--eval-every`` (budget / 20,
  rounded to thousands) and ``--stop-reward`` (the threshold).
- SB3: DQN, A2C or PPO with the same settings in SB3's words (``SB3_SETTINGS``, checked against
  rlkit's resolved preset before each cell runs), for the budget of rlkit's preset.
- Every ``eval_every`` env steps, 10 greedy episodes from
  ``evaluation_seeds(seed, "periodic", env_steps, 10)``; if their mean reaches the
  threshold, 30 more from ``evaluation_seeds(seed, "confirm", env_steps, 30)`` (the
  preset's ``confirm_episodes``); if those reach it too (their mean less the preset's
  ``confirm_margin_se`` standard errors, where it has one), training stops there (a
  "confirmed" threshold). On the SB3 side a
  ``BaseCallback`` does this: when an update follows the step at which an evaluation falls
  due, it evaluates after that update, as rlkit's loop does; its training seconds exclude
  evaluation time, as rlkit's do.
- The policy the run ends with plays 100 greedy episodes from
  ``evaluation_seeds(seed, "final", env_steps, 100)``: start states the run never trained
  or evaluated on.
- Each run is a fresh process; run folders go to ``--runs-dir`` (outside git). rlkit's
  curve is read from its final checkpoint's evaluator history.

What still differs between the two sides: rlkit's runner does not count the autoreset steps
of its envs, so its multi-env agents evaluate a few steps past each scheduled step (1003,
2005, ...) and end a few steps past the budget; the seeds of those evaluations (which
contain the step count) then differ from SB3's. SB3's DQN updates after every
``train_freq`` env steps once past ``learning_starts`` (1024, 1280, ... on CartPole),
rlkit's DQN first at ``learning_starts`` (1000, 1256, ...). SB3 is stopped at the budget
rather than finishing a partial DQN rollout with one more update. A run stopped by an
evaluation that followed an update takes one more env step in SB3 (not learned from; the
row gives the evaluation's step). Presets with ``normalize_obs`` / ``normalize_reward`` run
SB3 inside ``VecNormalize`` with the same clips (10), epsilon and gamma, its evaluations on
the frozen observation statistics as rlkit's are; rlkit merges the observation statistics
once per rollout (in the update), VecNormalize at every env step. SB3's MuJoCo PPO keeps
rl-zoo3's ``ortho_init=False``, and so does rlkit's (the setting of the same name; its rows
from before it had one, initialised orthogonally, carry the tag ``mujoco-orthogonal``).
Training seconds are wall time: both libraries use their
default thread counts (``--sb3-threads N`` sets PyTorch's, ``--rlkit-threads N``
TensorFlow's, both recorded in the row), so they are only comparable on an otherwise idle
machine, or with one thread a side. On the loaded 2-core machine PyTorch's default
threads slowed SB3 badly: its PPO on Pendulum-v1 took 2,762 s of training for 80k env steps
(rlkit's the same steps in 15 s, both niced beside two other jobs).

Output (``benchmarks/results/learning/``):
- ``runs.csv``: one row per run (lib, agent, env, seed, budget, solved, solve_steps,
  solve_seconds, env_steps, train_seconds, final_mean, final_std, final_returns, versions,
  date, tag). ``train_seconds`` is the wall time of the training call minus its periodic
  evaluations (what rlkit's ``results.json`` reports); ``solve_seconds`` likewise. A (lib,
  agent, env, seed, tag) already there is skipped, so ``run`` can be stopped and rerun. An
  interrupted rlkit run of 1M env steps or more (``LONG_RUN``: it checkpoints every tenth
  of its budget) continues from its newest checkpoint (``--resume``); shorter ones and SB3
  runs start again.
- ``curves.csv``: every periodic evaluation (lib, agent, env, seed, env_steps, eval_mean,
  tag).
- ``table.md``, ``curves_<env>.png`` and ``aggregate_iqm.png`` from ``report``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results" / "learning"
ROWS = OUT / "runs.csv"
CURVES = OUT / "curves.csv"
RUNS_DIR = REPO.parent / "runs" / "learning"  # next to the checkout, outside git
LONG_RUN = 1_000_000  # rlkit runs of this budget or more checkpoint and resume

AGENTS = ("dqn", "double_dqn", "dueling_dqn", "rainbow", "a2c", "reinforce", "ppo")
# Continuous actions (issue 15's Pendulum-v1 and LunarLanderContinuous-v3 targets): the
# policy-gradient agents with a preset section there.
CONTINUOUS = ("Pendulum-v1", "LunarLanderContinuous-v3")
# MuJoCo (issue 15: PPO, 1M env steps, 3 seeds a side): only when asked for with --cells
# (and a --tag of its own, e.g. mujoco), not part of the default table's 10-seed run.
MUJOCO = ("HalfCheetah-v5", "Hopper-v5")
ENVS = ("CartPole-v1", "MountainCar-v0", "LunarLander-v3", "Acrobot-v1", *CONTINUOUS, *MUJOCO)
HELD_OUT = ("Acrobot-v1",)  # no preset section: runs the presets' `default` sections
LIBS = ("rlkit", "sb3")
# gymnasium's reward_threshold, except Acrobot-v1 (gymnasium: -100 too, stated here).
THRESHOLDS = {"CartPole-v1": 475.0, "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}
THRESHOLDS["Acrobot-v1"] = -100.0
THRESHOLDS["Pendulum-v1"] = -200.0  # gymnasium sets none; rl-zoo3's reports reach -150..-200
THRESHOLDS["LunarLanderContinuous-v3"] = 200.0
THRESHOLDS.update({"HalfCheetah-v5": 4800.0, "Hopper-v5": 3800.0})  # gymnasium's
# A uniformly random policy's score, the 0 of the normalized score (the threshold is its 1).
RANDOM_SCORES = {
    "CartPole-v1": 22.0,
    "MountainCar-v0": -200.0,
    "LunarLander-v3": -180.0,
    "Acrobot-v1": -500.0,
    # 100 episodes of uniformly random actions, seeds 0-99 (measured: means -1207.6, -212.7).
    "Pendulum-v1": -1200.0,
    "LunarLanderContinuous-v3": -210.0,
    # 30 random episodes, seeds 0-29 (measured: -273.6 and 20.0).
    "HalfCheetah-v5": -270.0,
    "Hopper-v5": 20.0,
}
SKIPPED = {
    ("a2c", "LunarLanderContinuous-v3"): "no preset",
}
for _agent in ("dqn", "double_dqn", "dueling_dqn", "rainbow"):
    for _env in CONTINUOUS:
        SKIPPED[_agent, _env] = "Discrete actions only"
for _env in CONTINUOUS:
    SKIPPED["reinforce", _env] = "no preset"
for _agent in AGENTS:
    for _env in MUJOCO:
        if _agent != "ppo":
            SKIPPED[_agent, _env] = "not in issue 15's MuJoCo comparison"
CELLS = tuple(f"{a}:{e}" for a in AGENTS for e in ENVS if (a, e) not in SKIPPED and e not in MUJOCO)
DEFAULT_SEEDS = "1001-1010"
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0

ROW_FIELDS = [
    "lib",
    "agent",
    "env",
    "seed",
    "budget",
    "solved",
    "solve_steps",
    "solve_seconds",
    "env_steps",
    "train_seconds",
    "final_mean",
    "final_std",
    "final_returns",
    "versions",
    "date",
    "tag",
]
CURVE_FIELDS = ["lib", "agent", "env", "seed", "env_steps", "eval_mean", "tag"]

# SB3's side: rlkit's preset in SB3's words. Where rlkit's preset took rl-zoo3's tuned values
# these are rl-zoo3's; elsewhere (network sizes, a constant learning rate, the default
# sections) they are rlkit's. ``sb3_mismatches`` checks them against the resolved preset
# before a cell runs. Translations: SB3 counts target_update_interval in env steps (rlkit's
# target_update_period counts gradient steps); SB3's exploration_fraction is
# exploration_steps / budget (computed in the child, so a capped smoke budget keeps rlkit's
# schedule). The network's activation and the settings where SB3's defaults equal rlkit's
# (Huber loss, max_grad_norm, gae_lambda, vf_coef, ...) are filled in by ``sb3_settings``.
_DQN_DEFAULT = {  # rlkit's `default` section = rl-zoo3's LunarLander-v3 (and Acrobot-v1)
    "learning_rate": 6.3e-4,
    "batch_size": 128,
    "buffer_size": 50_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "train_freq": 4,
    "gradient_steps": 4,
    "target_update_interval": 250,
    "exploration_steps": 12_000,
    "exploration_final_eps": 0.1,
    "net_arch": [256, 256],
}
_PPO_LUNAR = {  # rl-zoo3's LunarLander-v2 and LunarLanderContinuous-v2 (the same settings)
    "n_envs": 16,
    "n_steps": 1024,
    "batch_size": 64,
    "n_epochs": 4,
    "gamma": 0.999,
    "learning_rate": 3e-4,
    "clip_range": 0.2,
    "anneal": False,
    "ent_coef": 0.01,
}
SB3_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("dqn", "CartPole-v1"): {
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1000,
        "gamma": 0.99,
        "train_freq": 256,
        "gradient_steps": 128,
        # rl-zoo3's 10: SB3 then syncs between every two bursts of 128 gradient steps, the
        # same as rlkit's 128 gradient steps (once per burst).
        "target_update_interval": 10,
        "exploration_steps": 8000,
        "exploration_final_eps": 0.04,
        "net_arch": [256, 256],
    },
    ("dqn", "MountainCar-v0"): {
        "learning_rate": 4e-3,
        "batch_size": 128,
        "buffer_size": 10_000,
        "learning_starts": 1000,
        "gamma": 0.98,
        "train_freq": 16,
        "gradient_steps": 8,
        "target_update_interval": 600,
        "exploration_steps": 24_000,
        "exploration_final_eps": 0.07,
        "net_arch": [256, 256],
    },
    ("dqn", "LunarLander-v3"): _DQN_DEFAULT,  # learning_starts: rlkit's 1000 (rl-zoo3: 0)
    ("dqn", "Acrobot-v1"): _DQN_DEFAULT,
    ("a2c", "CartPole-v1"): {
        "n_envs": 8,
        "n_steps": 5,
        "gamma": 0.99,
        "learning_rate": 7e-4,
        "ent_coef": 0.0,
    },
    ("a2c", "LunarLander-v3"): {
        "n_envs": 8,
        "n_steps": 5,
        "gamma": 0.995,
        "learning_rate": 8.3e-4,  # rl-zoo3's lin_0.00083: linear decay to 0
        "anneal": True,
        "ent_coef": 1e-5,
    },
    ("ppo", "CartPole-v1"): {  # rl-zoo3's; lin_0.001 and lin_0.2 are anneal_*: true
        "n_envs": 8,
        "n_steps": 32,
        "batch_size": 256,
        "n_epochs": 20,
        "gamma": 0.98,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "anneal": True,
        "ent_coef": 0.0,
    },
    ("ppo", "LunarLander-v3"): _PPO_LUNAR,
    ("ppo", "Acrobot-v1"): {  # rlkit's default section: SB3's own defaults
        "n_envs": 1,
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.99,
        "learning_rate": 3e-4,
        "clip_range": 0.2,
        "anneal": False,
        "ent_coef": 0.0,
    },
    # rl-zoo3's; gSDE (use_sde, sde_sample_freq) from the preset. Rows from before rlkit had
    # gSDE (both sides without it) carry the tag no-sde.
    ("ppo", "Pendulum-v1"): {
        "n_envs": 4,
        "n_steps": 1024,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.9,
        "learning_rate": 1e-3,
        "clip_range": 0.2,
        "anneal": False,
        "ent_coef": 0.0,
    },
    ("ppo", "LunarLanderContinuous-v3"): _PPO_LUNAR,  # rl-zoo3: the same as discrete
    ("a2c", "MountainCar-v0"): {  # rl-zoo3's; normalized (VecNormalize on SB3's side)
        "n_envs": 16,
        "n_steps": 5,
        "gamma": 0.99,
        "learning_rate": 7e-4,
        "ent_coef": 0.0,
    },
    ("ppo", "MountainCar-v0"): {  # rl-zoo3's; normalized (VecNormalize on SB3's side)
        "n_envs": 16,
        "n_steps": 16,
        "batch_size": 64,
        "n_epochs": 4,
        "gamma": 0.99,
        "learning_rate": 3e-4,
        "clip_range": 0.2,
        "anneal": False,
        "ent_coef": 0.0,
    },
    # rl-zoo3's; normalized (VecNormalize on SB3's side), gSDE. Both sides initialise
    # orthogonally, as rlkit's preset does (it does not take rl-zoo3's ortho_init=False);
    # rows with ortho_init=False on both sides carry the tag zoo-ortho-false.
    ("a2c", "Pendulum-v1"): {
        "n_envs": 8,
        "n_steps": 8,
        "gamma": 0.99,
        "learning_rate": 7e-4,  # rl-zoo3's lin_7e-4
        "anneal": True,
        "ent_coef": 0.0,
    },
    # rl-zoo3's MuJoCo PPO (v4 tuned, v5 the same tasks); normalize: true is VecNormalize.
    ("ppo", "HalfCheetah-v5"): {
        "n_envs": 1,
        "n_steps": 512,
        "batch_size": 64,
        "n_epochs": 20,
        "gamma": 0.98,
        "learning_rate": 2.0633e-5,
        "clip_range": 0.1,
        "anneal": False,
        "ent_coef": 0.000401762,
        "ortho_init": False,
    },
    ("ppo", "Hopper-v5"): {
        "n_envs": 1,
        "n_steps": 512,
        "batch_size": 32,
        "n_epochs": 5,
        "gamma": 0.999,
        "learning_rate": 9.80828e-5,
        "clip_range": 0.2,
        "anneal": False,
        "ent_coef": 0.00229519,
        "ortho_init": False,
    },
    ("a2c", "Acrobot-v1"): {  # rlkit's default section (rl-zoo3 normalizes here)
        "n_envs": 8,
        "n_steps": 5,
        "gamma": 0.99,
        "learning_rate": 7e-4,
        "ent_coef": 0.01,
    },
}


# -- statistics ---------------------------------------------------------------------------
def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """The central ``confidence`` percentile interval of ``samples`` along axis 0."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values``.

    Draws ``resamples`` samples of ``len(values)`` values with replacement (a fixed RNG, so
    the same values give the same interval) and returns the central ``confidence``
    percentile interval of their means.

    Args:
        values: one number per seed.
        resamples: bootstrap samples.
        confidence: coverage of the interval.
        seed: seed of the resampling RNG.

    Returns:
        (low, high); (nan, nan) for no values.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    low, high = _percentile_interval(means, confidence)
    return float(low), float(high)


def bootstrap_band(
    curves: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve over runs and its pointwise percentile-bootstrap band.

    Args:
        curves: ``[runs, points]``; NaN where a run has no value (ignored).
        resamples: bootstrap samples of the runs (the same draw for every point).
        confidence: coverage of the band.
        seed: seed of the resampling RNG.

    Returns:
        (mean, low, high), each ``[points]``.
    """
    y = np.asarray(curves, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, y.shape[0], size=(resamples, y.shape[0]))
    with warnings.catch_warnings():  # a point no run reached stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(y[idx], axis=1)
        low, high = _percentile_interval(means, confidence)
        return np.nanmean(y, axis=0), low, high


def iqm(values: Sequence[float] | np.ndarray, axis: int = -1) -> Any:
    """Interquartile mean: the mean of the middle half of ``values`` along ``axis``.

    Sorts the values and drops ``floor(n / 4)`` from each end before averaging (scipy's
    ``trim_mean(x, 0.25)``); e.g. 1..8 keeps 3, 4, 5, 6 and gives 4.5.

    Args:
        values: numbers (any shape).
        axis: axis to reduce.

    Returns:
        A float for 1-D input, else an array without ``axis``.
    """
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = x.shape[axis]
    cut = n // 4
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = kept.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def stratified_resample(
    groups: Mapping[str, Sequence[float] | np.ndarray],
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap samples that resample within each group (env), never across.

    Args:
        groups: group name -> its values (one per seed).
        resamples: number of samples.
        rng: the RNG.

    Returns:
        ``[resamples, total]``: each row holds ``len(groups[g])`` draws from group ``g``,
        for every group in ``groups``' order, so a column always comes from one group.
    """
    blocks = []
    for values in groups.values():
        x = np.asarray(values, dtype=float)
        blocks.append(x[rng.integers(0, x.size, size=(resamples, x.size))])
    return np.concatenate(blocks, axis=1)


def stratified_bootstrap_ci(
    groups: Mapping[str, Sequence[float] | np.ndarray],
    statistic: Callable[[np.ndarray], Any] = iqm,
    *,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """A statistic of all groups' values pooled, with a stratified-bootstrap interval.

    Args:
        groups: group name -> values (e.g. env -> normalized score per seed).
        statistic: reduces the last axis of an array (``iqm``, ``np.mean`` with axis).
        resamples: bootstrap samples.
        confidence: coverage of the interval.
        seed: seed of the resampling RNG.

    Returns:
        (statistic of the pooled values, low, high).
    """
    pooled = np.concatenate([np.asarray(v, dtype=float) for v in groups.values()])
    samples = stratified_resample(groups, resamples, np.random.default_rng(seed))
    low, high = _percentile_interval(np.asarray(statistic(samples)), confidence)
    return float(statistic(pooled)), float(low), float(high)


def normalized_score(value: float, env_id: str) -> float:
    """(value - random) / (threshold - random): 0 is a random policy, 1 the threshold."""
    return (value - RANDOM_SCORES[env_id]) / (THRESHOLDS[env_id] - RANDOM_SCORES[env_id])


def align_curves(
    series: Sequence[Sequence[tuple[int, float]]], budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Runs' periodic evaluations on one grid, a stopped run carrying its last value forward.

    The i-th evaluation of every run of a cell falls due at the same scheduled step (i times
    ``eval_every``); rlkit's runner counts env steps without the autoreset steps, so a
    multi-env run evaluates a few steps past it (1003, 2005, ...). Runs are therefore lined
    up by evaluation index, each grid point at the median step of the runs that reached it.
    A run with fewer evaluations (stopped at the threshold) keeps its last value up to the
    end, and the grid ends at ``budget`` (or its last evaluation, if later).

    Args:
        series: per run, its (env_steps, mean) evaluations in order.
        budget: the cell's env-step budget.

    Returns:
        (grid ``[points]``, values ``[runs, points]``); a run with no evaluation is NaN.
    """
    longest = max((len(s) for s in series), default=0)
    grid = [float(np.median([s[i][0] for s in series if len(s) > i])) for i in range(longest)]
    if not grid or grid[-1] < budget:
        grid.append(float(budget))
    values = np.full((len(series), len(grid)), np.nan)
    for r, s in enumerate(series):
        if s:
            means = [v for _, v in s]
            values[r] = means + [means[-1]] * (len(grid) - len(means))
    return np.asarray(grid), values


def eval_every_for(budget: int) -> int:
    """Evaluation period of a cell with no preset one: budget / 20, in thousands (>= 1000)."""
    return max(1000, round(budget / 20 / 1000) * 1000)


# -- planning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What one cell runs, on both sides, resolved from rlkit's preset."""

    agent: str
    env: str
    budget: int
    eval_every: int
    stop_reward: float
    eval_episodes: int
    confirm_episodes: int
    final_episodes: int
    cli_args: tuple[str, ...]  # what rlkit's CLI needs beyond the preset
    confirm_margin_se: float = 0.0  # the preset's margin of a confirmation (standard errors)


def parse_seeds(text: str) -> list[int]:
    """``"1001-1010"`` or ``"1,2,5"`` (or a mix) as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        seeds += list(range(int(first), int(last) + 1)) if dash else [int(first)]
    return seeds


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``"agent:env,..."`` as pairs; unknown agents or envs are an error."""
    cells = []
    for item in text.split(","):
        agent, _, env = item.strip().partition(":")
        if agent not in AGENTS or env not in ENVS:
            raise ValueError(f"unknown cell {item!r}: agents {AGENTS}, envs {ENVS}")
        cells.append((agent, env))
    return cells


def plan_cell(agent: str, env: str, max_steps: int | None = None) -> tuple[Plan, Any, Any]:
    """The cell's plan and rlkit's resolved (run, agent) settings (imports TensorFlow).

    Args:
        agent: rlkit agent name.
        env: env id.
        max_steps: smoke tests only: cap the budget (and evaluate every third of it).
    """
    from rlkit.agents import get_agent_class
    from rlkit.config import resolve

    run, cfg = resolve(get_agent_class(agent), env)
    budget, eval_every, stop = run.total_steps, run.eval_every, run.stop_reward
    args: list[str] = []
    if eval_every == 0:  # no preset section for this env (Acrobot-v1)
        eval_every = eval_every_for(budget)
    if max_steps is not None and max_steps < budget:
        budget = max_steps
        eval_every = min(eval_every, max(1, budget // 3))
        args += ["--total-steps", str(budget)]
    if eval_every != run.eval_every:
        args += ["--eval-every", str(eval_every)]
    if stop is None:
        stop = THRESHOLDS[env]
        args += ["--stop-reward", f"{stop:g}"]
    if budget >= LONG_RUN:  # checkpoints, so that a run cut by a sitting's end resumes
        args += ["--checkpoint-every", str(budget // 10)]
    plan = Plan(
        agent,
        env,
        budget,
        eval_every,
        float(stop),
        run.eval_episodes,
        run.confirm_episodes,
        run.final_eval_episodes,
        tuple(args),
        run.confirm_margin_se,
    )
    return plan, run, cfg


def sb3_settings(agent: str, env: str, run: Any, cfg: Any) -> dict[str, Any]:
    """SB3's settings for the cell: ``SB3_SETTINGS`` plus what rlkit's config fixes."""
    s = dict(SB3_SETTINGS[(agent, env)])
    s["activation"] = cfg.activation
    s["max_grad_norm"] = cfg.max_grad_norm
    if agent == "dqn":
        s["exploration_initial_eps"] = cfg.exploration_initial_eps
        s["loss"] = cfg.loss
    else:
        s["net_arch"] = list(cfg.hidden_sizes)
        s.update(
            gae_lambda=cfg.gae_lambda,
            vf_coef=cfg.vf_coef,
            normalize_advantage=cfg.normalize_advantage,
            share_torso=cfg.share_torso,
            optimizer=cfg.optimizer,
            log_std_init=cfg.log_std_init,  # Gaussian policies only; SB3 ignores it elsewhere
            normalize_obs=cfg.normalize_obs,  # VecNormalize on SB3's side
            normalize_reward=cfg.normalize_reward,
            use_sde=cfg.use_sde,  # gSDE: SB3's own
            sde_sample_freq=cfg.sde_sample_freq,
        )
        if agent == "ppo":
            s.update(clip_range_vf=cfg.clip_range_vf, target_kl=cfg.target_kl)
    return s


def sb3_mismatches(agent: str, run: Any, cfg: Any, s: Mapping[str, Any]) -> list[str]:
    """Where ``SB3_SETTINGS`` no longer says what rlkit's resolved preset does."""
    if agent == "dqn":
        # SB3 syncs the target every `interval` env steps, between bursts of gradient steps:
        # at most once per burst of `train_freq` env steps.
        rlkit_period = cfg.target_update_period * cfg.train_frequency / cfg.gradient_steps
        expected = {
            "learning_rate": cfg.learning_rate,
            "batch_size": cfg.batch_size,
            "buffer_size": cfg.buffer_size,
            "learning_starts": cfg.learning_starts,
            "gamma": cfg.gamma,
            "train_freq": cfg.train_frequency,
            "gradient_steps": cfg.gradient_steps,
            "target_update_interval": rlkit_period,
            "exploration_steps": cfg.exploration_steps,
            "exploration_final_eps": cfg.exploration_final_eps,
            "net_arch": list(cfg.hidden_sizes),
        }
        got = dict(s)
        got["target_update_interval"] = max(s["target_update_interval"], s["train_freq"])
        if run.num_envs != 1:
            return [f"num_envs: rlkit {run.num_envs}, SB3 side 1"]
        problems = []
        if cfg.loss != "huber":
            problems.append(f"loss: rlkit {cfg.loss}, SB3 DQN's is Huber")
    else:
        expected = {
            "n_envs": run.num_envs,
            "n_steps": cfg.n_steps,
            "gamma": cfg.gamma,
            "learning_rate": cfg.learning_rate,
            "anneal": cfg.anneal_lr,
            "ent_coef": cfg.ent_coef,
            "ortho_init": cfg.ortho_init,
        }
        got, problems = dict(s), []
        got.setdefault("anneal", False)
        got.setdefault("ortho_init", True)
        if cfg.share_torso:
            problems.append("share_torso: rlkit true, SB3's MlpPolicy has separate MLPs")
        sb3_optimizer = "adam" if agent == "ppo" else "rmsprop"
        if cfg.optimizer != sb3_optimizer:
            problems.append(f"optimizer: rlkit {cfg.optimizer}, SB3 {agent} {sb3_optimizer}")
        if agent == "ppo":
            expected.update(
                batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, clip_range=cfg.clip_range
            )
            if cfg.anneal_lr != cfg.anneal_clip_range:
                problems.append("anneal_lr and anneal_clip_range differ; SB3_SETTINGS has one")
        if cfg.squash_actions:
            problems.append("squash_actions: SB3's MlpPolicy Gaussian is not squashed")
    problems += [
        f"{key}: rlkit {value}, SB3_SETTINGS {got.get(key)}"
        for key, value in expected.items()
        if not (isinstance(value, float) and math.isclose(value, got.get(key, math.nan)))
        and value != got.get(key)
    ]
    return problems


# -- rlkit runs ---------------------------------------------------------------------------
def read_eval_history(run_dir: Path) -> list[dict[str, float]]:
    """Every periodic evaluation of an rlkit run: ``[{env_steps, mean_reward}, ...]``.

    Read from the newest checkpoint's ``state.json`` (the evaluator's own history, one row
    per evaluation). ``progress.csv`` is the fallback only: it averages ``eval/mean_reward``
    over each ``log_interval``, so two evaluations within one interval share a row.
    """
    checkpoints = sorted((run_dir / "checkpoints").glob("step_*"))
    if checkpoints:
        state = json.loads((checkpoints[-1] / "state.json").read_text())
        return [
            {"env_steps": int(r["env_steps"]), "mean_reward": float(r["mean_reward"])}
            for r in state["evaluator"]["history"]
        ]
    print(f"  warning: no checkpoint in {run_dir}; curve from progress.csv (averaged rows)")
    with open(run_dir / "progress.csv", newline="") as f:
        return [
            {"env_steps": int(float(r["time/env_steps"])), "mean_reward": float(v)}
            for r in csv.DictReader(f)
            if (v := r.get("eval/mean_reward"))
        ]


def resume_point(run_dir: Path) -> int | None:
    """Env steps of the newest checkpoint that verifies (what ``--resume`` loads), or None."""
    from rlkit.checkpoint import Checkpointer

    for path in reversed(Checkpointer(run_dir).checkpoints()):
        try:
            Checkpointer.verify(path)
            return int(json.loads((path / "manifest.json").read_text())["step"])
        except (OSError, ValueError, KeyError):
            continue  # damaged: rlkit falls back to the previous one too
    return None


def rlkit_command(plan: Plan, seed: int, run_dir: Path, threads: int | None = None) -> list[str]:
    """The CLI command that starts the run, or continues it from its newest checkpoint.

    A folder with ``results.json`` is a finished run (None: nothing to run); one with a
    checkpoint that verifies and its ``config.yaml`` is continued with ``--resume``; any
    other folder (an interrupted short run) is removed and the run started again.
    ``threads``: TensorFlow's threads (``--threads``; None: its default).
    """
    head = [sys.executable, "-m", "rlkit.train", *(["--threads", str(threads)] if threads else [])]
    if run_dir.is_dir() and (run_dir / "config.yaml").is_file():
        step = resume_point(run_dir)
        if step is not None:
            print(f"  resuming from step {step:,}", flush=True)
            return [*head, "--resume", str(run_dir), "--quiet"]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    cmd = [*head, "--agent", plan.agent, "--env", plan.env, "--seed", str(seed)]
    return [*cmd, "--run-dir", str(run_dir), "--quiet", *plan.cli_args]


# Settings of a run's config.yaml that say where or how long it ran, not what it learned with.
_NOT_SETTINGS = frozenset({"agent", "env", "seed", "checkpoint_every", "total_steps"})


def _plain(value: Any) -> Any:
    """A setting's value as YAML or JSON would give it back (tuples as lists)."""
    return json.loads(json.dumps(value))


def expected_settings(
    protocol: Mapping[str, Any], *configs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a run saves in its ``config.yaml``, and each setting's default.

    Args:
        protocol: the settings the benchmark's CLI flags change (evaluation period, stop).
        configs: the resolved config dataclasses (rlkit's run and agent settings).
    """
    expected: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for config in configs:
        expected.update(asdict(config))
        for f in fields(config):
            if f.default is not MISSING:
                defaults[f.name] = f.default
            elif f.default_factory is not MISSING:
                defaults[f.name] = f.default_factory()
    expected.update(protocol)
    return _plain(expected), _plain(defaults)


def stale_settings(
    saved: Mapping[str, Any], expected: Mapping[str, Any], defaults: Mapping[str, Any]
) -> list[str]:
    """The settings in which a run folder's ``config.yaml`` differs from the plan now.

    A setting the saved file does not name (one added to rlkit after the run) counts as its
    default. Where and how long a run went (``_NOT_SETTINGS``) is not compared.
    """
    changed = []
    for key in sorted(set(expected) - _NOT_SETTINGS):
        old = _plain(saved[key] if key in saved else defaults.get(key))
        if old != expected[key]:
            changed.append(f"{key} {old!r} -> {expected[key]!r}")
    return changed


def set_aside_if_stale(
    run_dir: Path, expected: Mapping[str, Any], defaults: Mapping[str, Any]
) -> None:
    """Move a run folder made with other settings (an older preset) out of the way.

    A finished or interrupted run is reused only if it was made with the settings the cell
    has now; otherwise it goes to ``<folder>.stale<N>`` (nothing is deleted) and the run is
    made again.
    """
    config = run_dir / "config.yaml"
    if not config.is_file():
        return
    import yaml

    changed = stale_settings(yaml.safe_load(config.read_text()) or {}, expected, defaults)
    if not changed:
        return
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.stale{n}")).exists():
        n += 1
    run_dir.rename(aside)
    print(f"  {run_dir} was made with other settings ({'; '.join(changed)}): moved to {aside}")


def run_rlkit(
    plan: Plan,
    seed: int,
    run_dir: Path,
    expected: tuple[dict[str, Any], dict[str, Any]],
    threads: int | None = None,
) -> dict[str, Any]:
    """Train with the shipped preset through the CLI in a fresh process; read its files.

    A run that finished before (its ``results.json`` is there) is read, not run again; one
    cut short after a checkpoint (long budgets checkpoint, ``LONG_RUN``) continues from it;
    either only if it was made with the settings the cell has now (``expected``: the
    settings and their defaults, ``expected_settings``), else it is set aside and redone.

    Raises:
        RuntimeError: if the CLI failed (its output's tail in the message).
    """
    set_aside_if_stale(run_dir, *expected)
    if not (run_dir / "results.json").is_file():
        cmd = rlkit_command(plan, seed, run_dir, threads)
        print("  " + " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise RuntimeError(f"rlkit.train exited {proc.returncode}:\n" + "\n".join(tail))
    res = json.loads((run_dir / "results.json").read_text())
    return {
        "env_steps": res["train_env_steps"],
        "train_seconds": res["train_seconds"],
        "solved_at": res.get("solved_at"),
        "evaluations": read_eval_history(run_dir),
        "returns": res["returns"],
    }


# -- SB3 runs -----------------------------------------------------------------------------
def sb3_version(python: str | None) -> str | None:
    """``"stable-baselines3 X; torch Y; gymnasium Z"`` of ``python``, or None (with a message)."""
    if not python:
        print("SB3 skipped: no --sb3-python given (a Python with stable_baselines3 and torch)")
        return None
    probe = (
        "import stable_baselines3, torch, gymnasium; "
        "print(f'stable-baselines3 {stable_baselines3.__version__}; torch {torch.__version__}; "
        "gymnasium {gymnasium.__version__}')"
    )
    try:
        proc = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"SB3 skipped: cannot run {python}: {e}")
        return None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"SB3 skipped: {python} cannot import stable_baselines3 ({last})")
        return None
    return proc.stdout.strip()


def run_sb3(
    python: str,
    plan: Plan,
    settings: dict[str, Any],
    seed: int,
    run_dir: Path,
    threads: int | None = None,
) -> dict:
    """Train SB3 in a fresh process of ``python`` (this script's ``_sb3-child``).

    ``threads`` sets PyTorch's thread count (None: PyTorch's default).

    Raises:
        RuntimeError: if the child failed (its output's tail in the message).
    """
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    spec = {**asdict(plan), "seed": seed, "settings": settings, "threads": threads}
    spec["result_path"] = str(run_dir / "result.json")
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    cmd = [python, str(Path(__file__).resolve()), "_sb3-child", str(run_dir / "spec.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"SB3 child exited {proc.returncode}:\n" + "\n".join(tail))
    return json.loads((run_dir / "result.json").read_text())


def sb3_evaluation_callback(
    base: type,
    play: Callable[[Any, list[int]], list[float]],
    *,
    seed: int,
    every: int,
    eval_episodes: int,
    budget: int,
    rollout_steps: int,
    update_follows: Callable[[int], bool],
    stop: float | None = None,
    confirm_episodes: int = 30,
    confirm_margin_se: float = 0.0,
) -> Any:
    """rlkit's periodic evaluation, confirmation and stop as an SB3 callback (SB3's Python).

    Every ``every`` env steps the model plays ``eval_episodes`` greedy episodes from
    ``evaluation_seeds(seed, "periodic", step, n)``; when an update follows that step (the
    last step of a rollout for which ``update_follows`` is true) it plays after the update,
    as rlkit's loop does. A mean at ``stop`` is confirmed on ``confirm_episodes`` more; a
    confirmed stop ends training. Training stops at ``budget`` without the extra update SB3
    would make to finish a partial rollout. Evaluation time is kept out of the row's
    ``train_seconds`` (as in rlkit's history).

    Args:
        base: SB3's ``BaseCallback`` (passed in: this module imports without SB3).
        play: ``play(model, seeds) -> returns``, one greedy episode per seed.
        seed: the run seed.
        every: env steps between evaluations (0: none).
        eval_episodes: episodes per periodic evaluation.
        budget: the run's env steps.
        rollout_steps: env steps per rollout (DQN's ``train_freq``, A2C's ``n_steps``).
        update_follows: whether an update follows a rollout that ends at this step.
        stop: the mean that stops training once confirmed (None: never stop).
        confirm_episodes: episodes of a confirmation.
        confirm_margin_se: standard errors the confirmation's mean must clear ``stop`` by
            (``rlkit.evaluate.confirmation_score``; the preset's ``confirm_margin_se``).

    Returns:
        The callback; after ``learn`` its ``history`` holds the evaluations, ``solved_at``
        the confirmed one (or None) and ``eval_seconds`` the time spent evaluating.
    """
    # The caller put the checkout on sys.path.
    from rlkit.evaluate import confirmation_score, evaluation_seeds

    class Evaluation(base):
        """rlkit's periodic evaluation, confirmation and stop, on rlkit's episode seeds."""

        def __init__(self) -> None:
            super().__init__()
            self.next_eval, self.pending = every, None
            self.history: list[dict[str, float]] = []
            self.solved_at: dict[str, float] | None = None
            self.eval_seconds, self.in_rollout, self.start = 0.0, 0, 0.0

        def _play(self, purpose: str, env_steps: int, episodes: int) -> list[float]:
            t0 = time.perf_counter()
            returns = play(self.model, evaluation_seeds(seed, purpose, env_steps, episodes))
            self.eval_seconds += time.perf_counter() - t0
            return returns

        def _evaluate(self, env_steps: int) -> None:
            returns = self._play("periodic", env_steps, eval_episodes)
            row = {
                "env_steps": env_steps,
                "train_seconds": time.perf_counter() - self.start - self.eval_seconds,
                "mean_reward": float(np.mean(returns)),
                "std_reward": float(np.std(returns)),
                "episodes": len(returns),
            }
            if stop is not None and row["mean_reward"] >= stop:
                confirm = self._play("confirm", env_steps, confirm_episodes)
                row["confirm_mean_reward"] = float(np.mean(confirm))
                row["confirm_episodes"] = len(confirm)
                score = row["confirm_mean_reward"]
                if confirm_margin_se > 0:  # as rlkit's evaluator: the key only with a margin
                    score = row["confirm_score"] = confirmation_score(confirm, confirm_margin_se)
                if score >= stop:
                    self.solved_at = row
            self.history.append(row)

        def _run_pending(self) -> None:
            if self.pending is not None:
                step, self.pending = self.pending, None
                self._evaluate(step)

        def _on_training_start(self) -> None:
            self.start = time.perf_counter()

        def _on_rollout_start(self) -> None:  # after the previous rollout's update
            self.in_rollout = 0
            self._run_pending()

        def _on_training_end(self) -> None:
            self._run_pending()

        def _on_step(self) -> bool:
            if self.solved_at is not None:  # confirmed after the last update: learn no more
                return False
            self.in_rollout += 1
            t = self.num_timesteps
            then_update = self.in_rollout == rollout_steps and update_follows(t)
            if every > 0 and t >= self.next_eval:
                self.next_eval = (t // every + 1) * every
                if then_update:
                    self.pending = t  # rlkit evaluates after the update of the same step
                else:
                    self._evaluate(t)
            if self.solved_at is not None:
                return False
            # At the budget, SB3 would finish a partial DQN rollout and update once more.
            return not (t >= budget and not then_update)

    return Evaluation()


def sb3_child(spec_path: str) -> int:
    """Run one SB3 training as the spec says; write the result JSON. Runs in SB3's Python."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    sys.path.insert(0, str(REPO))  # rlkit.evaluate needs only numpy
    from rlkit.evaluate import evaluation_seeds

    spec = json.loads(Path(spec_path).read_text())
    s, env_id, seed = spec["settings"], spec["env"], spec["seed"]
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    budget, every, stop = spec["budget"], spec["eval_every"], spec["stop_reward"]
    activation = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU}
    activation_fn = activation[s["activation"]]

    normalize_obs: Callable[[Any], Any] = lambda obs: obs  # noqa: E731 (VecNormalize's below)

    def play(model: Any, seeds: list[int]) -> list[float]:
        """Greedy episodes on a fresh env, episode i reset with seeds[i] (as rlkit's)."""
        env = gym.make(env_id)
        returns = []
        try:
            for episode_seed in seeds:
                obs, _ = env.reset(seed=episode_seed)
                total, done = 0.0, False
                while not done:
                    action, _ = model.predict(normalize_obs(obs), deterministic=True)
                    obs, reward, terminated, truncated, _ = env.step(
                        action if continuous else int(action)  # SB3 clips Box actions
                    )
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
        finally:
            env.close()
        return returns

    if spec["agent"] == "dqn":
        envs = make_vec_env(env_id, n_envs=1, seed=seed)
        model = DQN(
            "MlpPolicy",
            envs,
            learning_rate=s["learning_rate"],
            buffer_size=s["buffer_size"],
            learning_starts=s["learning_starts"],
            batch_size=s["batch_size"],
            gamma=s["gamma"],
            train_freq=s["train_freq"],
            gradient_steps=s["gradient_steps"],
            target_update_interval=s["target_update_interval"],
            exploration_fraction=s["exploration_steps"] / budget,  # > 1 for a capped budget
            exploration_initial_eps=s["exploration_initial_eps"],
            exploration_final_eps=s["exploration_final_eps"],
            max_grad_norm=s["max_grad_norm"],
            policy_kwargs={"net_arch": s["net_arch"], "activation_fn": activation_fn},
            seed=seed,
            device="cpu",
        )
        rollout_steps = s["train_freq"]
        learning_starts = s["learning_starts"]

        def update_follows(env_steps: int) -> bool:
            return env_steps > learning_starts

    else:  # A2C and PPO: the on-policy settings they share, then PPO's own
        envs = make_vec_env(env_id, n_envs=s["n_envs"], seed=seed)
        if s["normalize_obs"] or s["normalize_reward"]:  # rlkit's normalize_obs / _reward
            envs = VecNormalize(
                envs,
                norm_obs=s["normalize_obs"],
                norm_reward=s["normalize_reward"],
                clip_obs=10.0,
                clip_reward=10.0,
                gamma=s["gamma"],
                epsilon=1e-8,
            )
            if s["normalize_obs"]:  # evaluations see the statistics as they are, frozen
                normalize_obs = envs.normalize_obs
        shared = {
            "n_steps": s["n_steps"],
            "gamma": s["gamma"],
            "gae_lambda": s["gae_lambda"],
            "ent_coef": s["ent_coef"],
            "vf_coef": s["vf_coef"],
            "max_grad_norm": s["max_grad_norm"],
            "normalize_advantage": s["normalize_advantage"],
            "use_sde": s.get("use_sde", False),
            "sde_sample_freq": s.get("sde_sample_freq", -1),
            "policy_kwargs": {
                "net_arch": {"pi": s["net_arch"], "vf": s["net_arch"]},
                "activation_fn": activation_fn,
                "log_std_init": s["log_std_init"],
                "ortho_init": s.get("ortho_init", True),
            },
            "seed": seed,
            "device": "cpu",
        }

        def schedule(value: float) -> Any:  # rl-zoo3's lin_<value>: to 0 over the run
            return (lambda remaining: value * remaining) if s.get("anneal") else value

        if spec["agent"] == "ppo":
            model = PPO(
                "MlpPolicy",
                envs,
                learning_rate=schedule(s["learning_rate"]),
                batch_size=s["batch_size"],
                n_epochs=s["n_epochs"],
                clip_range=schedule(s["clip_range"]),
                clip_range_vf=s["clip_range_vf"],
                target_kl=s["target_kl"],
                **shared,
            )
        else:
            model = A2C("MlpPolicy", envs, learning_rate=schedule(s["learning_rate"]), **shared)
        rollout_steps = s["n_steps"]

        def update_follows(env_steps: int) -> bool:
            return True

    continuous = isinstance(envs.action_space, gym.spaces.Box)  # read by play()
    callback = sb3_evaluation_callback(
        BaseCallback,
        play,
        seed=seed,
        every=every,
        eval_episodes=spec["eval_episodes"],
        budget=budget,
        rollout_steps=rollout_steps,
        update_follows=update_follows,
        stop=stop,
        confirm_episodes=spec["confirm_episodes"],
        confirm_margin_se=spec.get("confirm_margin_se", 0.0),
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=budget, callback=callback)
    seconds = time.perf_counter() - t0
    solved = callback.solved_at
    # A run stopped by a deferred confirmation stepped its envs once more without learning.
    env_steps = int(solved["env_steps"]) if solved else int(model.num_timesteps)
    returns = play(model, evaluation_seeds(seed, "final", env_steps, spec["final_episodes"]))
    result = {
        "env_steps": env_steps,
        "train_seconds": seconds - callback.eval_seconds,  # as rlkit's results.json
        "solved_at": solved,
        "evaluations": callback.history,
        "returns": returns,
    }
    Path(spec["result_path"]).write_text(json.dumps(result, indent=2) + "\n")
    envs.close()
    return 0


# -- rows ---------------------------------------------------------------------------------
def read_csv(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV file (none if it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    """Append rows (header on first write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)


def run_key(row: Mapping[str, Any]) -> tuple[str, str, str, int, str]:
    """(lib, agent, env, seed, tag) of a row."""
    return row["lib"], row["agent"], row["env"], int(row["seed"]), row.get("tag") or ""


def drop_curves(key: tuple[str, str, str, int, str]) -> None:
    """Remove a run's curve rows (left by a run that stopped before its row was written)."""
    rows = read_csv(CURVES)
    kept = [r for r in rows if run_key(r) != key]
    if len(kept) != len(rows):
        with open(CURVES, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
            writer.writeheader()
            writer.writerows(kept)


def record(
    lib: str, plan: Plan, seed: int, tag: str, versions: str, res: Mapping[str, Any]
) -> dict[str, Any]:
    """Write a finished run's curve rows, then its row (the row marks the run done)."""
    key = (lib, plan.agent, plan.env, seed, tag)
    drop_curves(key)
    curve = [
        {
            "lib": lib,
            "agent": plan.agent,
            "env": plan.env,
            "seed": seed,
            "env_steps": int(e["env_steps"]),
            "eval_mean": round(e["mean_reward"], 3),
            "tag": tag,
        }
        for e in res["evaluations"]
    ]
    append_csv(CURVES, CURVE_FIELDS, curve)
    returns = np.asarray(res["returns"], dtype=float)
    solved = res.get("solved_at")
    row = {
        "lib": lib,
        "agent": plan.agent,
        "env": plan.env,
        "seed": seed,
        "budget": plan.budget,
        "solved": int(bool(solved)),
        "solve_steps": int(solved["env_steps"]) if solved else "",
        "solve_seconds": round(solved["train_seconds"], 2) if solved else "",
        "env_steps": int(res["env_steps"]),
        "train_seconds": round(res["train_seconds"], 2),
        "final_mean": round(float(returns.mean()), 3),
        "final_std": round(float(returns.std()), 3),
        "final_returns": json.dumps([round(float(r), 3) for r in returns]),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "tag": tag,
    }
    append_csv(ROWS, ROW_FIELDS, [row])
    return row


def rlkit_version() -> str:
    """rlkit's commit (``+dirty`` if rlkit/ or agents/ has uncommitted changes) and TF's."""
    from importlib import metadata

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = "+dirty" if git("status", "--porcelain", "--", "rlkit", "agents") else ""
    packages = "; ".join(
        f"{name} {metadata.version(name)}" for name in ("tensorflow", "keras", "gymnasium")
    )
    return f"rlkit {commit}{dirty}; {packages}"


# -- run ----------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Run every missing (lib, cell, seed), one at a time, appending rows."""
    seeds = parse_seeds(args.seeds)
    libs = [lib.strip() for lib in args.libs.split(",")]
    unknown = sorted(set(libs) - set(LIBS))
    if unknown:
        raise ValueError(f"unknown --libs {unknown}: choose from {LIBS}")
    cells = []
    for agent, env in parse_cells(args.cells):
        if (agent, env) in SKIPPED:
            print(f"skipped {agent}:{env}: {SKIPPED[agent, env]}")
        else:
            cells.append((agent, env))
    tag = args.tag if args.tag is not None else (f"max{args.max_steps}" if args.max_steps else "")
    if args.max_steps is not None and not tag:
        raise ValueError("--max-steps is for smoke tests: its rows need a --tag")
    sb3_python, sb3_versions = None, None
    if "sb3" in libs:
        sb3_versions = sb3_version(args.sb3_python)
        sb3_python = args.sb3_python if sb3_versions else None
    done = {run_key(r) for r in read_csv(ROWS)}
    todo = [
        (seed, agent, env, lib)
        for seed in seeds
        for agent, env in cells
        for lib in libs
        if (lib, agent, env, seed, tag) not in done
        and (lib == "rlkit" or (sb3_python and (agent, env) in SB3_SETTINGS))
    ]
    print(f"{len(todo)} runs to do (tag {tag!r}); rows in {ROWS}")
    if not todo:
        return 0
    from rlkit.tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    plans: dict[tuple[str, str], tuple[Plan, Any, Any]] = {}
    bad_sb3: dict[tuple[str, str], list[str]] = {}
    rlkit_versions = rlkit_version()
    runs_root = Path(args.runs_dir) / (tag or "main")
    failures = 0
    for seed, agent, env, lib in todo:
        if (agent, env) not in plans:
            plans[agent, env] = plan_cell(agent, env, args.max_steps)
            if sb3_python and (agent, env) in SB3_SETTINGS:
                _, run_cfg, cfg = plans[agent, env]
                settings = sb3_settings(agent, env, run_cfg, cfg)
                problems = sb3_mismatches(agent, run_cfg, cfg, settings)
                if problems:
                    bad_sb3[agent, env] = problems
                    print(f"SB3 {agent}:{env} skipped, SB3_SETTINGS disagree with the preset:")
                    print("  " + "\n  ".join(problems))
        plan, run_cfg, cfg = plans[agent, env]
        if lib == "sb3" and (agent, env) in bad_sb3:
            continue
        run_dir = runs_root / lib / agent / env / f"seed{seed}"
        print(f"{lib} {agent} {env} seed {seed} (budget {plan.budget:,})", flush=True)
        t0 = time.perf_counter()
        try:
            if lib == "rlkit":
                protocol = {"eval_every": plan.eval_every, "stop_reward": plan.stop_reward}
                expected = expected_settings(protocol, run_cfg, cfg)
                res = run_rlkit(plan, seed, run_dir, expected, args.rlkit_threads)
                versions = rlkit_versions
                if args.rlkit_threads:
                    versions += f"; tensorflow threads {args.rlkit_threads}"
            else:
                settings = sb3_settings(agent, env, run_cfg, cfg)
                res = run_sb3(sb3_python, plan, settings, seed, run_dir, args.sb3_threads)  # type: ignore[arg-type]
                versions = sb3_versions or ""
                if args.sb3_threads:
                    versions += f"; torch threads {args.sb3_threads}"
        except RuntimeError as e:
            failures += 1
            print(f"  failed: {e}", flush=True)
            continue
        row = record(lib, plan, seed, tag, versions, res)
        stop = f"confirmed at {row['solve_steps']:,} steps" if row["solved"] else "no stop"
        print(
            f"  final mean {row['final_mean']:.1f} over {len(res['returns'])} episodes, {stop}, "
            f"{row['env_steps']:,} steps, {time.perf_counter() - t0:.0f} s wall",
            flush=True,
        )
    if failures:
        print(f"{failures} run(s) failed; rerun the command to retry them")
    return 1 if failures else 0


# -- report -------------------------------------------------------------------------------
def _num(text: str) -> float:
    return float(text) if text not in ("", None) else math.nan


def _span(values: Sequence[float], fmt: str) -> str:
    """``median [min-max]`` or a dash."""
    if not values:
        return "-"
    med = float(np.median(values))
    return f"{med:{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def load(tag: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Runs and curve points of ``tag`` with numbers parsed."""
    rows = []
    for r in read_csv(ROWS):
        if (r.get("tag") or "") != tag:
            continue
        rows.append(
            {
                **r,
                "seed": int(r["seed"]),
                "budget": int(r["budget"]),
                "solved": r["solved"] in ("1", "True", "true"),
                "solve_steps": _num(r["solve_steps"]),
                "solve_seconds": _num(r["solve_seconds"]),
                "env_steps": int(r["env_steps"]),
                "train_seconds": _num(r["train_seconds"]),
                "final_mean": _num(r["final_mean"]),
                "final_std": _num(r["final_std"]),
            }
        )
    curves = [
        {
            **c,
            "seed": int(c["seed"]),
            "env_steps": int(c["env_steps"]),
            "eval_mean": float(c["eval_mean"]),
        }
        for c in read_csv(CURVES)
        if (c.get("tag") or "") == tag
    ]
    return rows, curves


def group_runs(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Runs by (env, agent, lib), in the table's order, seeds sorted."""
    order = {
        (e, a, lib): (ENVS.index(e), AGENTS.index(a), LIBS.index(lib))
        for e in ENVS
        for a in AGENTS
        for lib in LIBS
    }
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["env"], r["agent"], r["lib"]), []).append(r)
    return {
        k: sorted(v, key=lambda r: r["seed"])
        for k, v in sorted(groups.items(), key=lambda kv: order[kv[0]])
    }


def cell_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the per-cell table, rlkit's and SB3's rows next to each other."""
    lines = [
        "| env | agent | lib | seeds | success (final mean >= threshold) | confirmed stops "
        "| env steps to confirmed threshold, median [range] "
        "| training s to confirmed threshold, median [range] | final mean [95 % CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (env, agent, lib), runs in group_runs(rows).items():
        finals = [r["final_mean"] for r in runs]
        solved = [r for r in runs if r["solved"]]
        low, high = bootstrap_ci(finals)
        success = sum(f >= THRESHOLDS[env] for f in finals)
        lines.append(
            f"| {env} | {agent} | {lib} | {len(runs)} | {success}/{len(runs)} "
            f"| {len(solved)}/{len(runs)} "
            f"| {_span([r['solve_steps'] for r in solved], ',.0f')} "
            f"| {_span([r['solve_seconds'] for r in solved], ',.0f')} "
            f"| {np.mean(finals):.1f} [{low:.1f}, {high:.1f}] |"
        )
    return lines


def aggregate(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (lib, agent): IQM of normalized final scores over all its runs, stratified CI."""
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in rows:
        by_env = scores.setdefault((r["lib"], r["agent"]), {})
        by_env.setdefault(r["env"], []).append(normalized_score(r["final_mean"], r["env"]))
    out = {}
    for agent in AGENTS:
        for lib in LIBS:
            groups = scores.get((lib, agent))
            if not groups:
                continue
            groups = {e: groups[e] for e in ENVS if e in groups}
            point, low, high = stratified_bootstrap_ci(groups)
            runs = sum(len(v) for v in groups.values())
            out[lib, agent] = {
                "iqm": point,
                "low": low,
                "high": high,
                "runs": runs,
                "envs": list(groups),
            }
    return out


def needs_log_steps(budgets: Sequence[int]) -> bool:
    """Whether an env's curves need a log env-steps axis: budgets 10x apart or more.

    On a linear axis the short runs (LunarLander: the DQN family's 100k env steps) would be
    squashed into the left edge by the long ones (REINFORCE's 5M).
    """
    return max(budgets) >= 10 * min(budgets)


def plot_curves(rows: list[dict[str, Any]], curves: list[dict[str, Any]], out: Path) -> list[Path]:
    """One figure per env: mean greedy return vs env steps per lib+agent, bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[tuple[str, str, str, int], list[tuple[int, float]]] = {}
    for c in curves:
        points.setdefault((c["lib"], c["agent"], c["env"], c["seed"]), []).append(
            (c["env_steps"], c["eval_mean"])
        )
    paths = []
    groups = group_runs(rows)
    for env in ENVS:
        cells = [(agent, lib, runs) for (e, agent, lib), runs in groups.items() if e == env]
        if not cells:
            continue
        fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
        budgets = [max(r["budget"] for r in runs) for _, _, runs in cells]
        for (agent, lib, runs), budget in zip(cells, budgets, strict=True):
            series = [sorted(points.get((lib, agent, env, r["seed"]), [])) for r in runs]
            grid, ys = align_curves(series, budget)
            mean, low, high = bootstrap_band(ys)
            color = f"C{AGENTS.index(agent)}"
            style = "-" if lib == "rlkit" else "--"
            ax.plot(
                grid, mean, style, color=color, lw=1.8, label=f"{lib} {agent} (seeds: {len(runs)})"
            )
            ax.fill_between(grid, low, high, color=color, alpha=0.15)
        ax.axhline(THRESHOLDS[env], color="grey", ls=":", lw=1)
        log_x = needs_log_steps(budgets)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel("env steps (log scale)" if log_x else "env steps")
        ax.set_ylabel("greedy return, 10 fresh episodes")
        ax.set_title(
            f"{env}: mean over seeds, 95 % bootstrap band (a stopped run keeps its last value)",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        path = out / f"curves_{env}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_aggregate(agg: Mapping[tuple[str, str], Mapping[str, Any]], out: Path) -> Path:
    """IQM of normalized scores with stratified-bootstrap CIs, one row per lib+agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(agg)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(keys) + 1.5), constrained_layout=True)
    for i, (lib, agent) in enumerate(keys):
        a = agg[lib, agent]
        ax.errorbar(
            a["iqm"],
            i,
            xerr=[[a["iqm"] - a["low"]], [a["high"] - a["iqm"]]],
            fmt="o",
            color=f"C{AGENTS.index(agent)}",
            mfc="white" if lib == "sb3" else None,
            capsize=4,
        )
    ax.set_yticks(range(len(keys)), [f"{lib} {agent}" for lib, agent in keys])
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.axvline(1, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("IQM of normalized final score (0: random policy, 1: threshold), 95 % CI")
    ax.grid(axis="x", alpha=0.3)
    path = out / "aggregate_iqm.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(tag: str = "") -> str | None:
    """Write table.md and the plots for the rows of ``tag``; return the markdown."""
    rows, curves = load(tag)
    if not rows:
        print(f"no rows with tag {tag!r} in {ROWS} yet")
        return None
    out = OUT / tag if tag else OUT
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(rows)
    versions = sorted({r["versions"] for r in rows})
    dates = sorted(r["date"] for r in rows)
    md = [
        "# Learning table: rlkit's presets side by side with Stable-Baselines3",
        "",
        f"Generated by `python benchmarks/learning.py report{' --tag ' + tag if tag else ''}` "
        f"from {len(rows)} runs ({dates[0]} to {dates[-1]}).",
        "",
        "Protocol (both libraries): rlkit's shipped preset as its CLI runs it, SB3 with the same "
        "settings translated; every `eval_every` env steps 10 greedy episodes on fresh seeds, "
        "30 more to confirm a mean at the threshold, then training stops; the policy the run "
        "ends with plays 100 greedy episodes on seeds that run never used (the final mean). "
        f"Held out: {', '.join(HELD_OUT)}, which runs the presets' `default` sections (no "
        "preset was tuned on it).",
        "",
        "Thresholds: " + ", ".join(f"{e} {THRESHOLDS[e]:g}" for e in ENVS) + ". "
        "Success: final 100-episode mean >= threshold. Confirmed stops: runs the periodic "
        "evaluation stopped; their env steps and training seconds (evaluation time excluded) "
        "are the median [range] columns. Final mean: mean over seeds of the 100-episode means, "
        "95 % percentile-bootstrap CI over seeds (10,000 resamples, fixed RNG).",
        "",
        *cell_table(rows),
        "",
        "Not run: "
        + "; ".join(f"{a} on {e}, {why}" for (a, e), why in SKIPPED.items())
        + ". SB3 has no Double DQN, Dueling DQN or REINFORCE: those cells are rlkit only.",
        "",
        "## Aggregate",
        "",
        "Normalized score per run: (final mean - random) / (threshold - random), with random "
        "scores " + ", ".join(f"{e} {RANDOM_SCORES[e]:g}" for e in ENVS) + ". "
        "Interquartile mean over all runs of a library and agent, pooled across its envs; "
        "95 % CI from a stratified bootstrap (seeds resampled within each env, 10,000 "
        "resamples).",
        "",
        "| lib | agent | envs | runs | IQM normalized score [95 % CI] |",
        "|---|---|---|---|---|",
        *(
            f"| {lib} | {agent} | {', '.join(a['envs'])} | {a['runs']} "
            f"| {a['iqm']:.2f} [{a['low']:.2f}, {a['high']:.2f}] |"
            for (lib, agent), a in agg.items()
        ),
        "",
    ]
    try:
        paths = [*plot_curves(rows, curves, out), plot_aggregate(agg, out)]
        md += ["Plots: " + ", ".join(f"[{p.name}]({p.name})" for p in paths) + ".", ""]
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install 'rlkit[plots]')")
    md += ["Versions: " + " | ".join(versions), ""]
    text = "\n".join(md)
    (out / "table.md").write_text(text)
    print(text)
    print(f"written: {out / 'table.md'}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_sb3-child"]:  # inside SB3's Python: see run_sb3
        return sb3_child(argv[1])
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", choices=("run", "report"))
    p.add_argument("--sb3-python", default=None, help="a Python with stable_baselines3")
    p.add_argument(
        "--sb3-threads",
        type=int,
        default=None,
        help="PyTorch threads of the SB3 runs (default: PyTorch's choice, as rlkit's TF); "
        "1 keeps SB3 from crawling on a loaded machine (recorded in the rows' versions)",
    )
    p.add_argument(
        "--rlkit-threads",
        type=int,
        default=None,
        help="TensorFlow threads of the rlkit runs (default: TensorFlow's choice); give both "
        "sides 1 on a loaded machine (recorded in the rows' versions)",
    )
    p.add_argument("--cells", default=",".join(CELLS), help="agent:env pairs, comma separated")
    p.add_argument("--seeds", default=DEFAULT_SEEDS, help="e.g. 1001-1010 or 1,2,3")
    p.add_argument("--libs", default=",".join(LIBS))
    p.add_argument("--max-steps", type=int, default=None, help="smoke tests only: cap every budget")
    p.add_argument(
        "--tag", default=None, help="label of the rows (default: none, or maxN with --max-steps)"
    )
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where run folders go")
    args = p.parse_args(argv)
    if args.command == "report":
        report(args.tag or "")
        return 0
    try:
        return run(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped; rerun the same command to continue where it left off", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

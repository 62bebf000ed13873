"""The median pruner of ``rlkit.tune``: Optuna's median rule, applied run by run.

A trial of ``rlkit.tune`` may train several runs, one per seed, one after the other; its
reports are laid end to end on one step axis (the first run's evaluations at steps
``every .. total_steps``, the second's at ``total_steps + every .. 2 * total_steps``, and
so on), and each report is the mean of the finished runs' values and the running one's
value now (``rlkit.tuning.OptunaReporter``).

Optuna's ``MedianPruner`` judges a trial by the best value it ever reported. With several
runs that is the wrong value: a trial whose first run solved early has reported, say,
10,000 env steps, and keeps that best value while its second run stays far from solving,
so it can never be pruned, however far behind its later runs fall. ``RunMedianPruner``
keeps Optuna's rule inside each run (the best value reported *in this run*, against the
median of the completed trials' values at the same step; ``n_startup_trials``, and
``n_warmup_steps`` counted from the start of each run), so for a trial of one seed it is
the same as ``MedianPruner``, and with several the earlier runs count only through the
mean.

This module imports Optuna (the ``tune`` extra); ``rlkit.tuning`` imports it when a study
is loaded.
"""

from __future__ import annotations

import math
import statistics

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class RunMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose best value in its current run is worse than the median.

    Args:
        run_steps: the length of one run on the trials' step axis (the study's
            ``total_steps``); steps ``(i * run_steps, (i + 1) * run_steps]`` are run ``i``'s.
        n_startup_trials: no pruning until this many trials have completed.
        n_warmup_steps: no pruning in the first ``n_warmup_steps`` of each run.

    Example:
        >>> pruner = RunMedianPruner(50_000, n_startup_trials=5, n_warmup_steps=16_666)
        >>> study = optuna.create_study(direction="minimize", pruner=pruner)
    """

    def __init__(self, run_steps: int, n_startup_trials: int = 5, n_warmup_steps: int = 0):
        if run_steps < 1 or n_startup_trials < 0 or n_warmup_steps < 0:
            raise ValueError(
                f"run_steps >= 1, n_startup_trials >= 0 and n_warmup_steps >= 0 needed; got "
                f"{run_steps}, {n_startup_trials}, {n_warmup_steps}"
            )
        self.run_steps = int(run_steps)
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_steps = int(n_warmup_steps)

    def run_start(self, step: int) -> int:
        """The step at which the run that reported ``step`` began (exclusive)."""
        return max(step - 1, 0) // self.run_steps * self.run_steps

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Whether ``trial`` should stop now (Optuna calls this from ``should_prune``)."""
        step = trial.last_step
        if step is None:
            return False
        start = self.run_start(step)
        if step - start < self.n_warmup_steps:
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < self.n_startup_trials:
            return False
        minimize = study.direction == StudyDirection.MINIMIZE
        this_run = [v for s, v in trial.intermediate_values.items() if start < s <= step]
        if any(math.isnan(v) for v in this_run):
            return True
        best = min(this_run) if minimize else max(this_run)
        others = [t.intermediate_values[step] for t in completed if step in t.intermediate_values]
        others = [v for v in others if not math.isnan(v)]
        if not others:
            return False
        median = statistics.median(others)
        return best > median if minimize else best < median

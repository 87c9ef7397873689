"""The whole-run time budget (``state["time_budget"]``): how much of it the study may use.

The run is bounded from ``ModelTrainerContext.started_at`` (the CLI passes its process start) to the
saved model. The study gets what remains once the rest of the run is provided for:

* the work after the study: the final fits (the tuned model on train+val, the defaults model, and
  with ``refit="all"`` the deployed model on every row), the evaluation, saving and registering.
  The fits' cost depends on the configuration that wins, so :class:`PostStudyReserve` re-estimates
  it from the best trial as trials finish, and the optimizer's deadline moves with it
  (``OptunaOptimizer.optimize(time_reserve=...)``);
* a fixed allowance for what does not depend on the model (writing artifacts and checkpoints),
  :data:`FIXED_RESERVE_S`, and with MLflow on, the model upload: measured on this machine by
  earlier runs (``<hpo_home>/timings.json``, a running average written by ``register_model``),
  :data:`MLFLOW_RESERVE_S` until a run has measured it.

The fit estimate: a final fit on ``N`` rows, from a trial whose fits took ``t`` seconds each on
``n`` rows, takes about ``t * (N / n) ** 2`` (boosting rounds scale with the rows, and so does the
cost of a round), times a safety factor.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from src.mlops.types import SOURCE_ATTR, StudyContext

__all__ = [
    "PostStudyReserve",
    "run_deadline",
    "study_timeout",
    "measured_seconds",
    "record_seconds",
    "FIXED_RESERVE_S",
    "MLFLOW_RESERVE_S",
    "TIMINGS_FILE",
]

log = logging.getLogger(__name__)

#: seconds kept for saving artifacts, checkpoints and evaluation, whatever the model.
FIXED_RESERVE_S = 1.5
#: extra seconds kept when the model is logged to MLflow.
MLFLOW_RESERVE_S = 2.0
#: the fit estimate is multiplied by this.
SAFETY = 1.3
#: never give the study less than this (a study needs at least its defaults trial).
MIN_STUDY_S = 1.0
#: measured durations of run steps on this machine (running averages), under ``hpo_home``.
TIMINGS_FILE = "timings.json"
#: weight of the newest measurement in the running average.
_NEW_WEIGHT = 0.5


def measured_seconds(hpo_home: Path, key: str, default: float) -> float:
    """The running average of step ``key`` measured by earlier runs under ``hpo_home``, else ``default``."""
    try:
        value = json.loads((Path(hpo_home) / TIMINGS_FILE).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return default
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else default


def record_seconds(hpo_home: Path, key: str, seconds: float) -> None:
    """Fold a measurement of step ``key`` into the running average (best effort: never raises)."""
    path = Path(hpo_home) / TIMINGS_FILE
    try:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        old = data.get(key)
        data[key] = round(seconds if not isinstance(old, (int, float)) else
                          _NEW_WEIGHT * seconds + (1 - _NEW_WEIGHT) * float(old), 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:  # a read-only home must not fail a run
        log.warning("could not record the duration of %s in %s: %s", key, path, e)


def run_deadline(state: Mapping[str, Any], started_at: float) -> float | None:
    """Epoch seconds at which the run must have saved its model, or ``None`` without a time budget."""
    budget = state.get("time_budget")
    return None if budget is None else started_at + float(budget)


def study_timeout(deadline: float | None, timeout: float | None, *, fixed_reserve: float) -> float | None:
    """Seconds the study may take: ``timeout`` capped by what the deadline leaves after
    ``fixed_reserve`` (at least :data:`MIN_STUDY_S`)."""
    if deadline is None:
        return timeout
    left = max(MIN_STUDY_S, deadline - time.time() - fixed_reserve)
    return left if timeout is None else min(timeout, left)


class PostStudyReserve:
    """A trial listener estimating the seconds the final fits will need, from the best trial so far.

    ``rows_trainval`` / ``rows_all``: the rows of the final fits (train+val; with ``refit="all"``
    also train+val+test, else ``None``). Calling the object returns the current estimate (what
    ``optimize(time_reserve=...)`` takes).
    """

    def __init__(self, *, rows_trainval: int, rows_all: int | None, n_fits_per_trial: int) -> None:
        self.rows_trainval = rows_trainval
        self.rows_all = rows_all
        self.n_fits = max(1, n_fits_per_trial)
        self._best: float | None = None
        self._maximize = True
        self._best_cost = 0.0
        self._defaults_cost = 0.0

    def __call__(self) -> float:
        return SAFETY * (self._best_cost + self._defaults_cost)

    def _cost(self, trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
        """(seconds of the final fit on train+val, on all rows) for the params of ``trial``."""
        seconds = trial.user_attrs.get("fit_seconds")
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            return 0.0, 0.0
        per_fit = float(seconds) / self.n_fits
        rows = trial.user_attrs.get("fit_rows") or self.rows_trainval * (1.0 - 1.0 / (self.n_fits + 1))
        trainval = per_fit * (self.rows_trainval / max(1.0, float(rows))) ** 2
        everything = 0.0 if self.rows_all is None else per_fit * (self.rows_all / max(1.0, float(rows))) ** 2
        return trainval, everything

    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None:
        self._maximize = context.direction == "maximize"
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            self._observe(t)

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            self._observe(trial)

    def _observe(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.values is None or len(trial.values) != 1:
            return
        trainval, everything = self._cost(trial)
        if trial.user_attrs.get(SOURCE_ATTR) == "defaults":
            self._defaults_cost = trainval
        value = float(trial.values[0])
        if self._best is None or (value > self._best if self._maximize else value < self._best):
            self._best = value
            self._best_cost = trainval + everything

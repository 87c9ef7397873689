"""What a finished ``optimize`` call returns: the result object and the per-trial history table.

Kept apart from the optimizer loop (:mod:`.optimizer`): these read a study's trials, they run none.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from .analysis import analyze_study
from .narrowing import phase_summary
from .trial_cache import CACHED_ATTR
from .types import FAIL_REASON_ATTR, SOURCE_ATTR, OptimizationResult

log = logging.getLogger("src.mlops.optimizer")


def study_result(study: optuna.Study, *, started: float, stop_reason: str | None) -> OptimizationResult:
    """The :class:`OptimizationResult` of ``study`` (``started``: ``time.monotonic()`` of the run)."""
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    multi = len(study.directions) > 1
    best_params: dict[str, Any] = {}
    best_value = best_values = best_number = None
    best_attrs: dict[str, Any] = {}
    pareto: list[dict[str, Any]] = []
    if by_state[TrialState.COMPLETE]:
        if multi:
            front = study.best_trials
            pareto = [{"number": t.number, "values": t.values, "params": t.params} for t in front]
            best = front[0]
            best_values = list(best.values)
        else:
            best = study.best_trial
            best_value = float(best.value)
        best_params, best_number, best_attrs = dict(best.params), best.number, dict(best.user_attrs)
    return OptimizationResult(
        study_name=study.study_name,
        directions=tuple(d.name.lower() for d in study.directions),
        best_params=best_params,
        best_value=best_value,
        best_values=best_values,
        best_trial_number=best_number,
        n_trials=sum(1 for t in trials if t.state != TrialState.WAITING),
        n_completed=len(by_state[TrialState.COMPLETE]),
        n_pruned=len(by_state[TrialState.PRUNED]),
        n_failed=len(by_state[TrialState.FAIL]),
        duration_s=round(time.monotonic() - started, 3),
        ended_at=time.time(),
        stop_reason=stop_reason or "n_trials",
        best_user_attrs=best_attrs,
        pareto_front=pareto,
        failure_reasons={t.number: str(t.user_attrs.get(FAIL_REASON_ATTR, "unknown"))
                         for t in by_state[TrialState.FAIL]},
        n_cached=sum(1 for t in by_state[TrialState.COMPLETE] if t.user_attrs.get(CACHED_ATTR)),
        analysis=_analysis(study),
        phases=phase_summary(study),
    )


def optimization_history(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value(s), best so far, params, duration, fail reason."""
    rows = []
    multi = len(study.directions) > 1
    maximize = not multi and study.direction.name == "MAXIMIZE"
    best: float | None = None
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if multi:
            row["values"] = t.values
        else:
            row["value"] = t.value
            if t.state == TrialState.COMPLETE and t.value is not None:
                best = t.value if best is None else (max(best, t.value) if maximize else min(best, t.value))
            row["best_value"] = best
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else None
        row["source"] = t.user_attrs.get(SOURCE_ATTR, "sampler")
        row["cached"] = bool(t.user_attrs.get(CACHED_ATTR))
        row["fail_reason"] = t.user_attrs.get(FAIL_REASON_ATTR)
        row["datetime_start"] = t.datetime_start
        for k, v in t.params.items():
            row[f"params_{k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def _analysis(study: optuna.Study) -> dict[str, Any]:
    """The study's analysis; a failure of the analysis is logged and recorded, never the study's."""
    try:
        return analyze_study(study).to_dict()
    except Exception as e:  # noqa: BLE001 - the study finished; its analysis is secondary
        log.warning("study %r: analysis failed (%s: %s)", study.study_name, type(e).__name__, e)
        return {"error": f"{type(e).__name__}: {e}"}

"""The records of study and trial history: what a :class:`~.protocol.HistoryRepository` stores and returns.

Frozen dataclasses that validate and normalize on construction (states upper-case, datetimes aware,
floats as floats), so both repositories hold the same values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import distribution_to_json

from ..errors import ConfigurationError
from ..jsonutil import to_jsonable
from ..types import FAIL_REASON_ATTR
from ._checks import FINISHED_STATES, STUDY_STATUSES, TRIAL_STATES, check_status, direction_name

__all__ = [
    "TRIAL_STATES",
    "FINISHED_STATES",
    "STUDY_STATUSES",
    "TrialRecord",
    "StudyRecord",
    "StudySummary",
    "BestTrial",
]


def _aware(dt: datetime | None) -> datetime | None:
    """Optuna's datetimes are naive local time; store instants."""
    if dt is None:
        return None
    return dt.astimezone() if dt.tzinfo is None else dt


@dataclass(frozen=True)
class TrialRecord:
    """One trial as stored in history (``values`` holds every objective, ``value`` the single one)."""

    number: int
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    values: tuple[float, ...] | None = None
    intermediate_values: dict[int, float] = field(default_factory=dict)
    duration_seconds: float | None = None
    fail_reason: str | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int) or self.number < 0:
            raise ConfigurationError(f"trial number must be an int >= 0, got {self.number!r}")
        state = str(getattr(self.state, "name", self.state)).upper()
        if state not in TRIAL_STATES:
            raise ConfigurationError(f"trial state must be one of {TRIAL_STATES}, got {self.state!r}")
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "values", None if self.values is None else tuple(float(v) for v in self.values))
        object.__setattr__(self, "value", None if self.value is None else float(self.value))
        object.__setattr__(self, "intermediate_values", {int(k): float(v) for k, v in self.intermediate_values.items()})
        object.__setattr__(self, "datetime_start", _aware(self.datetime_start))
        object.__setattr__(self, "datetime_complete", _aware(self.datetime_complete))

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO strings, non-finite floats as "NaN"/"Infinity")."""
        return to_jsonable(asdict(self))

    @classmethod
    def from_frozen_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """The record of an Optuna trial; the fail reason comes from ``user_attrs[FAIL_REASON_ATTR]``."""
        vals = trial.values
        reason = trial.user_attrs.get(FAIL_REASON_ATTR)
        return cls(
            number=trial.number,
            state=trial.state.name,
            params=to_jsonable(dict(trial.params)),
            distributions={k: json.loads(distribution_to_json(d)) for k, d in trial.distributions.items()},
            value=float(vals[0]) if vals is not None and len(vals) == 1 else None,
            values=tuple(vals) if vals is not None else None,
            intermediate_values=dict(trial.intermediate_values),
            duration_seconds=trial.duration.total_seconds() if trial.duration is not None else None,
            fail_reason=None if reason is None else str(reason),
            user_attrs=to_jsonable(dict(trial.user_attrs)),
            datetime_start=trial.datetime_start,
            datetime_complete=trial.datetime_complete,
        )


@dataclass(frozen=True)
class StudySummary:
    """Outcome counters and best point of a study, written by :meth:`HistoryRepository.update_study_summary`.

    ``None`` fields (status, stop reason, duration) keep the stored value.
    """

    n_completed: int
    n_pruned: int
    n_failed: int
    best_trial_number: int | None = None
    best_value: float | None = None
    best_values: tuple[float, ...] | None = None
    best_params: dict[str, Any] | None = None
    status: str | None = None
    stop_reason: str | None = None
    duration_seconds: float | None = None
    #: adaptive narrowing's phases (``OptimizationResult.phases``); ``None`` keeps the stored value
    phases: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        for name in ("n_completed", "n_pruned", "n_failed"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigurationError(f"{name} must be an int >= 0, got {v!r}")
        b = self.best_trial_number
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 0):
            raise ConfigurationError(f"best_trial_number must be an int >= 0 or None, got {b!r}")
        if self.status is not None:
            check_status(self.status)
        if self.best_values is not None:
            object.__setattr__(self, "best_values", tuple(float(v) for v in self.best_values))

    @classmethod
    def from_trials(
        cls,
        trials: Iterable[TrialRecord],
        directions: Sequence[str],
        *,
        status: str | None = None,
        stop_reason: str | None = None,
        duration_seconds: float | None = None,
    ) -> StudySummary:
        """Counts and (single-objective) best trial as Optuna picks it: best value, lowest number on ties."""
        trials = list(trials)
        complete = [t for t in trials if t.state == "COMPLETE"]
        best: TrialRecord | None = None
        if len(directions) == 1:
            sign = -1.0 if direction_name(directions[0]) == "maximize" else 1.0
            scored = [t for t in complete if t.value is not None and not math.isnan(t.value)]
            if scored:
                best = min(scored, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]
        return cls(
            n_completed=len(complete),
            n_pruned=sum(t.state == "PRUNED" for t in trials),
            n_failed=sum(t.state == "FAIL" for t in trials),
            best_trial_number=best.number if best else None,
            best_value=best.value if best else None,
            best_values=best.values if best else None,
            best_params=dict(best.params) if best else None,
            status=status,
            stop_reason=stop_reason,
            duration_seconds=duration_seconds,
        )


@dataclass(frozen=True)
class StudyRecord:
    """A stored study: its context, budget, outcome and timestamps."""

    id: str
    study_name: str
    directions: tuple[str, ...]
    experiment_name: str | None = None
    algorithm: str | None = None
    problem_type: str | None = None
    metric: str | None = None
    metric_names: tuple[str, ...] = ()
    sampler_name: str | None = None
    pruner_name: str | None = None
    search_space: dict[str, Any] | None = None
    n_trials: int | None = None
    n_completed: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    best_trial_number: int | None = None
    best_value: float | None = None
    best_values: tuple[float, ...] | None = None
    best_params: dict[str, Any] | None = None
    dataset_fingerprint: str | None = None
    status: str = "running"
    stop_reason: str | None = None
    duration_seconds: float | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    #: adaptive narrowing's phases (ranges, trials, best per phase); ``None``: one phase
    phases: list[dict[str, Any]] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def direction(self) -> str:
        return self.directions[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO strings, non-finite floats as "NaN"/"Infinity")."""
        return to_jsonable(asdict(self))


@dataclass(frozen=True)
class BestTrial:
    """A completed trial of an earlier study, as returned by :meth:`HistoryRepository.best_trials`."""

    study_name: str
    direction: str
    metric: str | None
    trial: TrialRecord

    @property
    def value(self) -> float:
        t = self.trial
        return t.value if t.value is not None else t.values[0]  # type: ignore[index]

    @property
    def params(self) -> dict[str, Any]:
        return self.trial.params

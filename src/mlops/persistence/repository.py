"""Study and trial history behind a small async protocol.

:class:`HistoryRepository` is what the engine and the recorder depend on. Two implementations share
one contract test suite: :class:`PostgresHistoryRepository` (asyncpg, all values bound as ``$n``
parameters) and :class:`InMemoryHistoryRepository` (a fake for tests and for runs without a database).

Write semantics, identical in both:

* every write is an upsert keyed by ``study_name`` / ``(study, trial_number)`` and is *idempotent*:
  writing the same data again changes nothing, not even ``updated_at``;
* a finished trial (COMPLETE, PRUNED, FAIL) is never downgraded to RUNNING/WAITING by a stale write;
* optional study fields left ``None`` by a later write keep their stored value.
"""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

import asyncpg
import optuna
from optuna.distributions import distribution_to_json

from ..errors import ConfigurationError, DatabaseError, StudyNotFoundError
from ..types import FAIL_REASON_ATTR, StudyContext
from ._json import float_from_json, json_dumps, to_jsonable
from .database import Database

__all__ = [
    "TRIAL_STATES",
    "FINISHED_STATES",
    "STUDY_STATUSES",
    "TrialRecord",
    "StudyRecord",
    "StudySummary",
    "BestTrial",
    "HistoryRepository",
    "PostgresHistoryRepository",
    "InMemoryHistoryRepository",
]

TRIAL_STATES = ("RUNNING", "WAITING", "COMPLETE", "PRUNED", "FAIL")
FINISHED_STATES = frozenset({"COMPLETE", "PRUNED", "FAIL"})
STUDY_STATUSES = ("running", "completed", "failed", "interrupted")
_DIRECTIONS = ("minimize", "maximize")


# ------------------------------------------------------------------------------------------ records


def _aware(dt: datetime | None) -> datetime | None:
    """Optuna's datetimes are naive local time; store instants."""
    if dt is None:
        return None
    return dt.astimezone() if dt.tzinfo is None else dt


def _direction(d: Any) -> str:
    name = getattr(d, "name", None) or str(d)
    name = name.lower()
    if name not in _DIRECTIONS:
        raise ConfigurationError(f"a study direction must be 'minimize' or 'maximize', got {d!r}")
    return name


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

    def __post_init__(self) -> None:
        for name in ("n_completed", "n_pruned", "n_failed"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigurationError(f"{name} must be an int >= 0, got {v!r}")
        if self.status is not None:
            _check_status(self.status)
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
            sign = -1.0 if _direction(directions[0]) == "maximize" else 1.0
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


# ----------------------------------------------------------------------------------------- protocol


@runtime_checkable
class HistoryRepository(Protocol):
    """Persistent study/trial history. All writes are idempotent upserts (see the module docstring)."""

    async def upsert_experiment(self, name: str, *, description: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        """Create the experiment, or merge ``tags`` into it and set a non-None ``description``."""

    async def upsert_study(self, context: StudyContext, *, status: str = "running") -> None:
        """Create or update the study described by ``context`` (its experiment is created if named)."""

    async def update_study_summary(self, study_name: str, summary: StudySummary) -> None:
        """Store counters and best point; raises :class:`StudyNotFoundError` for an unknown study."""

    async def upsert_trials(self, study_name: str, trials: Sequence[TrialRecord]) -> None:
        """Insert or update a batch of trials of one study, atomically."""

    async def get_study(self, study_name: str) -> StudyRecord | None: ...

    async def list_studies(
        self,
        *,
        experiment_name: str | None = None,
        algorithm: str | None = None,
        problem_type: str | None = None,
        dataset_fingerprint: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StudyRecord]:
        """Studies matching every given filter, newest first."""

    async def get_trials(self, study_name: str, *, states: Iterable[str] | None = None) -> list[TrialRecord]:
        """Trials of a study by number; raises :class:`StudyNotFoundError` for an unknown study."""

    async def best_trials(
        self,
        *,
        algorithm: str,
        problem_type: str,
        dataset_fingerprint: str,
        metric: str | None = None,
        limit: int = 10,
        exclude_study: str | None = None,
        distinct_params: bool = True,
    ) -> list[BestTrial]:
        """Best finite COMPLETE trials of all studies with this algorithm, problem type and dataset
        (and metric, if given), best first in each study's own direction."""

    async def delete_study(self, study_name: str) -> bool:
        """Delete a study and its trials; False if it did not exist."""


# ---------------------------------------------------------------------------------------- validation


def _check_name(study_name: Any, what: str = "study_name") -> str:
    if not isinstance(study_name, str) or not study_name:
        raise ConfigurationError(f"{what} must be a non-empty string, got {study_name!r}")
    return study_name


def _check_status(status: Any) -> str:
    if status not in STUDY_STATUSES:
        raise ConfigurationError(f"study status must be one of {STUDY_STATUSES}, got {status!r}")
    return status


def _check_limit(limit: Any, offset: Any = 0) -> None:
    if not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"limit must be an int >= 1, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise ConfigurationError(f"offset must be an int >= 0, got {offset!r}")


def _check_states(states: Iterable[str] | None) -> list[str] | None:
    if states is None:
        return None
    out = [str(getattr(s, "name", s)).upper() for s in states]
    bad = [s for s in out if s not in TRIAL_STATES]
    if bad:
        raise ConfigurationError(f"trial states must be among {TRIAL_STATES}, got {bad}")
    return out


def _study_fields(context: StudyContext, status: str) -> dict[str, Any]:
    _check_name(context.study_name)
    _check_status(status)
    if not context.directions:
        raise ConfigurationError(f"study {context.study_name!r} needs at least one direction, got {context.directions!r}")
    if context.n_trials is not None and (not isinstance(context.n_trials, int) or context.n_trials < 0):
        raise ConfigurationError(f"n_trials must be an int >= 0 or None, got {context.n_trials!r}")
    directions = tuple(_direction(d) for d in context.directions)
    return {
        "experiment_name": context.experiment_name or None,
        "algorithm": context.algorithm,
        "problem_type": context.problem_type,
        "directions": directions,
        "metric": context.metric,
        "metric_names": tuple(context.metric_names),
        "sampler_name": context.sampler_name,
        "pruner_name": context.pruner_name,
        "search_space": to_jsonable(context.search_space) if context.search_space is not None else None,
        "n_trials": context.n_trials,
        "dataset_fingerprint": context.dataset_fingerprint,
        "status": status,
        "tags": to_jsonable(dict(context.tags)),
    }


def _loss(direction: str, trial: TrialRecord) -> float | None:
    v = trial.value if trial.value is not None else (trial.values[0] if trial.values else None)
    if v is None or not math.isfinite(v):
        return None
    return -v if direction == "maximize" else v


# ----------------------------------------------------------------------------------------- in memory


class InMemoryHistoryRepository:
    """A :class:`HistoryRepository` in a dict: same semantics as the PostgreSQL one, no persistence."""

    def __init__(self) -> None:
        self._experiments: dict[str, dict[str, Any]] = {}
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[str, dict[int, tuple[TrialRecord, datetime, datetime]]] = {}

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return f"InMemoryHistoryRepository(studies={len(self._studies)})"

    async def upsert_experiment(self, name: str, *, description: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        _check_name(name, "experiment name")
        tags = to_jsonable(dict(tags or {}))
        row = self._experiments.get(name)
        if row is None:
            now = self._now()
            self._experiments[name] = {"id": str(uuid.uuid4()), "description": description, "tags": tags, "created_at": now, "updated_at": now}
            return
        new = {"description": description if description is not None else row["description"], "tags": {**row["tags"], **tags}}
        if (new["description"], new["tags"]) != (row["description"], row["tags"]):
            row.update(new, updated_at=self._now())

    async def upsert_study(self, context: StudyContext, *, status: str = "running") -> None:
        f = _study_fields(context, status)
        name = context.study_name
        if f["experiment_name"] is not None and f["experiment_name"] not in self._experiments:
            await self.upsert_experiment(f["experiment_name"])
        old = self._studies.get(name)
        now = self._now()
        if old is None:
            self._studies[name] = StudyRecord(
                id=str(uuid.uuid4()), study_name=name, created_at=now, updated_at=now,
                completed_at=None if status == "running" else now, **f,
            )
            self._trials[name] = {}
            return
        merged = dict(
            experiment_name=f["experiment_name"] if f["experiment_name"] is not None else old.experiment_name,
            directions=f["directions"],
            metric_names=f["metric_names"] if f["metric_names"] else old.metric_names,
            status=f["status"],
            tags={**old.tags, **f["tags"]},
        )
        for k in ("algorithm", "problem_type", "metric", "sampler_name", "pruner_name", "search_space", "n_trials", "dataset_fingerprint"):
            merged[k] = f[k] if f[k] is not None else getattr(old, k)
        if any(getattr(old, k) != v for k, v in merged.items()):
            completed_at = None if status == "running" else (old.completed_at or now)
            self._studies[name] = replace(old, **merged, updated_at=now, completed_at=completed_at)

    async def update_study_summary(self, study_name: str, summary: StudySummary) -> None:
        old = self._require(study_name)
        new = dict(
            n_completed=summary.n_completed, n_pruned=summary.n_pruned, n_failed=summary.n_failed,
            best_trial_number=summary.best_trial_number, best_value=summary.best_value,
            best_values=summary.best_values, best_params=to_jsonable(summary.best_params) if summary.best_params is not None else None,
            status=summary.status if summary.status is not None else old.status,
            stop_reason=summary.stop_reason if summary.stop_reason is not None else old.stop_reason,
            duration_seconds=summary.duration_seconds if summary.duration_seconds is not None else old.duration_seconds,
        )
        if any(_differs(getattr(old, k), v) for k, v in new.items()):
            now = self._now()
            completed_at = None if new["status"] == "running" else (old.completed_at or now)
            self._studies[study_name] = replace(old, **new, updated_at=now, completed_at=completed_at)

    async def upsert_trials(self, study_name: str, trials: Sequence[TrialRecord]) -> None:
        self._require(study_name)
        store = self._trials[study_name]
        staged = dict(store)
        for t in trials:
            if not isinstance(t, TrialRecord):
                raise ConfigurationError(f"upsert_trials takes TrialRecord objects, got {type(t).__name__}")
            t = _normalized(t)
            cur = staged.get(t.number)
            now = self._now()
            if cur is None:
                staged[t.number] = (t, now, now)
            elif cur[0].is_finished and not t.is_finished:
                continue  # never downgrade a finished trial
            elif _differs(cur[0], t):
                staged[t.number] = (t, cur[1], now)
        store.clear()
        store.update(staged)

    async def get_study(self, study_name: str) -> StudyRecord | None:
        _check_name(study_name)
        s = self._studies.get(study_name)
        return copy.deepcopy(s)

    async def list_studies(
        self,
        *,
        experiment_name: str | None = None,
        algorithm: str | None = None,
        problem_type: str | None = None,
        dataset_fingerprint: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StudyRecord]:
        _check_limit(limit, offset)
        if status is not None:
            _check_status(status)
        want = {"experiment_name": experiment_name, "algorithm": algorithm, "problem_type": problem_type,
                "dataset_fingerprint": dataset_fingerprint, "status": status}
        rows = [s for s in self._studies.values() if all(v is None or getattr(s, k) == v for k, v in want.items())]
        rows.sort(key=lambda s: s.study_name)
        rows.sort(key=lambda s: s.created_at, reverse=True)  # type: ignore[arg-type,return-value]
        return copy.deepcopy(rows[offset : offset + limit])

    async def get_trials(self, study_name: str, *, states: Iterable[str] | None = None) -> list[TrialRecord]:
        self._require(study_name)
        wanted = _check_states(states)
        out = [t for t, _, _ in sorted(self._trials[study_name].values(), key=lambda r: r[0].number)]
        if wanted is not None:
            out = [t for t in out if t.state in wanted]
        return copy.deepcopy(out)

    async def best_trials(
        self,
        *,
        algorithm: str,
        problem_type: str,
        dataset_fingerprint: str,
        metric: str | None = None,
        limit: int = 10,
        exclude_study: str | None = None,
        distinct_params: bool = True,
    ) -> list[BestTrial]:
        _check_limit(limit)
        scored: list[tuple[tuple[Any, ...], BestTrial]] = []
        for s in self._studies.values():
            if (s.algorithm, s.problem_type, s.dataset_fingerprint) != (algorithm, problem_type, dataset_fingerprint):
                continue
            if (metric is not None and s.metric != metric) or s.study_name == exclude_study:
                continue
            for t, _, _ in self._trials[s.study_name].values():
                loss = _loss(s.direction, t) if t.state == "COMPLETE" else None
                if loss is None:
                    continue
                key = (loss, -s.created_at.timestamp(), s.study_name, t.number)  # type: ignore[union-attr]
                scored.append((key, BestTrial(s.study_name, s.direction, s.metric, t)))
        scored.sort(key=lambda kv: kv[0])
        if distinct_params:
            seen: set[str] = set()
            unique = []
            for key, bt in scored:
                sig = json.dumps(bt.trial.params, sort_keys=True)
                if sig not in seen:
                    seen.add(sig)
                    unique.append((key, bt))
            scored = unique
        return copy.deepcopy([bt for _, bt in scored[:limit]])

    async def delete_study(self, study_name: str) -> bool:
        _check_name(study_name)
        self._trials.pop(study_name, None)
        return self._studies.pop(study_name, None) is not None

    def _require(self, study_name: str) -> StudyRecord:
        _check_name(study_name)
        s = self._studies.get(study_name)
        if s is None:
            raise StudyNotFoundError(f"study {study_name!r} is not in the history database; upsert_study() it first")
        return s


def _normalized(t: TrialRecord) -> TrialRecord:
    """What a round trip through PostgreSQL makes of a record (JSON-able params/attrs)."""
    return replace(
        t,
        params=to_jsonable(t.params),
        distributions=to_jsonable(t.distributions),
        user_attrs=to_jsonable(t.user_attrs),
    )


def _differs(a: Any, b: Any) -> bool:
    """``a != b`` with NaN equal to NaN (as PostgreSQL compares floats)."""
    return json_dumps(_plain(a)) != json_dumps(_plain(b))


def _plain(x: Any) -> Any:
    if isinstance(x, TrialRecord):
        return {k: _plain(getattr(x, k)) for k in x.__dataclass_fields__}
    if isinstance(x, datetime):
        return x.timestamp()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------- PostgreSQL

_SEP = ",\n    "
_STUDY_COLUMNS = (
    "experiment_id", "algorithm_name", "problem_type", "direction", "directions", "metric", "metric_names",
    "sampler_name", "pruner_name", "search_space", "n_trials", "dataset_fingerprint", "status", "tags",
)
# how an upsert merges a new value (EXCLUDED) into the stored row (s); identifiers are constants
_STUDY_MERGE = {
    **{c: f"COALESCE(EXCLUDED.{c}, s.{c})" for c in _STUDY_COLUMNS},
    "direction": "EXCLUDED.direction",
    "directions": "EXCLUDED.directions",
    "metric_names": "CASE WHEN cardinality(EXCLUDED.metric_names) > 0 THEN EXCLUDED.metric_names ELSE s.metric_names END",
    "status": "EXCLUDED.status",
    "tags": "s.tags || EXCLUDED.tags",
}

_UPSERT_STUDY = f"""
INSERT INTO ml_hpo_studies AS s (study_name, {", ".join(_STUDY_COLUMNS)}, completed_at)
VALUES ($1, (SELECT id FROM ml_experiments WHERE name = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        CASE WHEN $14 = 'running' THEN NULL ELSE now() END)
ON CONFLICT (study_name) DO UPDATE SET
    {_SEP.join(f"{c} = {e}" for c, e in _STUDY_MERGE.items())},
    completed_at = CASE WHEN EXCLUDED.status = 'running' THEN NULL ELSE COALESCE(s.completed_at, now()) END,
    updated_at = now()
WHERE ({", ".join(f"s.{c}" for c in _STUDY_MERGE)})
    IS DISTINCT FROM ({_SEP.join(_STUDY_MERGE.values())})
"""

_SUMMARY_COLUMNS = ("n_completed", "n_pruned", "n_failed", "best_trial_number", "best_value", "best_values", "best_params",
                    "status", "stop_reason", "duration_seconds")
_SUMMARY_VALUES = ("$2", "$3", "$4", "$5", "$6", "$7", "$8", "COALESCE($9, status)", "COALESCE($10, stop_reason)",
                   "COALESCE($11, duration_seconds)")
_UPDATE_SUMMARY = f"""
UPDATE ml_hpo_studies SET
    {_SEP.join(f"{c} = {v}" for c, v in zip(_SUMMARY_COLUMNS, _SUMMARY_VALUES))},
    completed_at = CASE WHEN COALESCE($9, status) = 'running' THEN NULL ELSE COALESCE(completed_at, now()) END,
    updated_at = now()
WHERE study_name = $1
  AND ({", ".join(_SUMMARY_COLUMNS)}) IS DISTINCT FROM ({", ".join(_SUMMARY_VALUES)})
RETURNING id
"""

_TRIAL_COLUMNS = ("state", "params", "distributions", "value", "objective_values", "intermediate_values",
                  "duration_seconds", "fail_reason", "user_attrs", "datetime_start", "datetime_complete")
_UPSERT_TRIAL = f"""
INSERT INTO ml_hpo_trials AS t (study_id, trial_number, {", ".join(_TRIAL_COLUMNS)})
VALUES ($1, $2, {", ".join(f"${i}" for i in range(3, 3 + len(_TRIAL_COLUMNS)))})
ON CONFLICT (study_id, trial_number) DO UPDATE SET
    {_SEP.join(f"{c} = EXCLUDED.{c}" for c in _TRIAL_COLUMNS)},
    updated_at = now()
WHERE ({", ".join(f"t.{c}" for c in _TRIAL_COLUMNS)})
    IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _TRIAL_COLUMNS)})
  AND NOT (t.state IN ('COMPLETE', 'PRUNED', 'FAIL') AND EXCLUDED.state IN ('RUNNING', 'WAITING'))
"""

_SELECT_STUDY = """
SELECT s.*, e.name AS experiment_name
FROM ml_hpo_studies s LEFT JOIN ml_experiments e ON e.id = s.experiment_id
"""

_SELECT_TRIALS = f"""
SELECT t.trial_number, {", ".join(f"t.{c}" for c in _TRIAL_COLUMNS)}
FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id
WHERE s.study_name = $1 AND ($2::text[] IS NULL OR t.state = ANY($2::text[]))
ORDER BY t.trial_number
"""

_BEST_SCORED = f"""
WITH scored AS (
    SELECT s.study_name, s.direction, s.metric, s.created_at AS study_created_at,
           t.trial_number, {", ".join(f"t.{c}" for c in _TRIAL_COLUMNS)},
           CASE WHEN s.direction = 'maximize' THEN -COALESCE(t.value, t.objective_values[1])
                ELSE COALESCE(t.value, t.objective_values[1]) END AS loss
    FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id
    WHERE s.algorithm_name = $1 AND s.problem_type = $2 AND s.dataset_fingerprint = $3
      AND ($4::text IS NULL OR s.metric = $4)
      AND ($5::text IS NULL OR s.study_name <> $5)
      AND t.state = 'COMPLETE'
), finite AS (
    SELECT * FROM scored
    WHERE loss IS NOT NULL AND loss NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
)
"""
_BEST_ORDER = "loss, study_created_at DESC, study_name, trial_number"
_BEST_ALL = _BEST_SCORED + f"SELECT * FROM finite ORDER BY {_BEST_ORDER} LIMIT $6"
_BEST_DISTINCT = _BEST_SCORED + f"""
SELECT * FROM (SELECT DISTINCT ON (params) * FROM finite ORDER BY params, {_BEST_ORDER}) d
ORDER BY {_BEST_ORDER} LIMIT $6
"""


def _trial_args(study_id: Any, t: TrialRecord) -> tuple[Any, ...]:
    return (
        study_id, t.number, t.state, t.params, t.distributions, t.value,
        list(t.values) if t.values is not None else None,
        {str(k): v for k, v in t.intermediate_values.items()},
        t.duration_seconds, t.fail_reason, t.user_attrs, t.datetime_start, t.datetime_complete,
    )


def _trial_from_row(r: asyncpg.Record) -> TrialRecord:
    return TrialRecord(
        number=r["trial_number"],
        state=r["state"],
        params=r["params"],
        distributions=r["distributions"],
        value=r["value"],
        values=tuple(r["objective_values"]) if r["objective_values"] is not None else None,
        intermediate_values={int(k): float_from_json(v) for k, v in r["intermediate_values"].items()},  # type: ignore[misc]
        duration_seconds=r["duration_seconds"],
        fail_reason=r["fail_reason"],
        user_attrs=r["user_attrs"],
        datetime_start=r["datetime_start"],
        datetime_complete=r["datetime_complete"],
    )


def _study_from_row(r: asyncpg.Record) -> StudyRecord:
    return StudyRecord(
        id=str(r["id"]),
        study_name=r["study_name"],
        directions=tuple(r["directions"]),
        experiment_name=r["experiment_name"],
        algorithm=r["algorithm_name"],
        problem_type=r["problem_type"],
        metric=r["metric"],
        metric_names=tuple(r["metric_names"]),
        sampler_name=r["sampler_name"],
        pruner_name=r["pruner_name"],
        search_space=r["search_space"],
        n_trials=r["n_trials"],
        n_completed=r["n_completed"],
        n_pruned=r["n_pruned"],
        n_failed=r["n_failed"],
        best_trial_number=r["best_trial_number"],
        best_value=r["best_value"],
        best_values=tuple(r["best_values"]) if r["best_values"] is not None else None,
        best_params=r["best_params"],
        dataset_fingerprint=r["dataset_fingerprint"],
        status=r["status"],
        stop_reason=r["stop_reason"],
        duration_seconds=r["duration_seconds"],
        tags=r["tags"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        completed_at=r["completed_at"],
    )


class PostgresHistoryRepository:
    """:class:`HistoryRepository` on PostgreSQL (tables of ``001_hpo_history.sql``) through a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return f"PostgresHistoryRepository({self.db!r})"

    async def upsert_experiment(self, name: str, *, description: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        _check_name(name, "experiment name")
        await self.db.execute(
            """
            INSERT INTO ml_experiments AS e (name, description, tags) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE SET
                description = COALESCE(EXCLUDED.description, e.description),
                tags = e.tags || EXCLUDED.tags,
                updated_at = now()
            WHERE (e.description, e.tags) IS DISTINCT FROM (COALESCE(EXCLUDED.description, e.description), e.tags || EXCLUDED.tags)
            """,
            name,
            description,
            to_jsonable(dict(tags or {})),
        )

    async def upsert_study(self, context: StudyContext, *, status: str = "running") -> None:
        f = _study_fields(context, status)
        async with self.db.transaction() as con:
            if f["experiment_name"] is not None:
                await con.execute(
                    "INSERT INTO ml_experiments (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", f["experiment_name"]
                )
            await con.execute(
                _UPSERT_STUDY,
                context.study_name, f["experiment_name"], f["algorithm"], f["problem_type"], f["directions"][0],
                list(f["directions"]), f["metric"], list(f["metric_names"]), f["sampler_name"], f["pruner_name"],
                f["search_space"], f["n_trials"], f["dataset_fingerprint"], f["status"], f["tags"],
            )

    async def update_study_summary(self, study_name: str, summary: StudySummary) -> None:
        _check_name(study_name)
        async with self.db.transaction() as con:
            changed = await con.fetchval(
                _UPDATE_SUMMARY,
                study_name, summary.n_completed, summary.n_pruned, summary.n_failed, summary.best_trial_number,
                summary.best_value, list(summary.best_values) if summary.best_values is not None else None,
                to_jsonable(summary.best_params) if summary.best_params is not None else None,
                summary.status, summary.stop_reason, summary.duration_seconds,
            )
            if changed is None and not await con.fetchval("SELECT 1 FROM ml_hpo_studies WHERE study_name = $1", study_name):
                raise self._not_found(study_name)

    async def upsert_trials(self, study_name: str, trials: Sequence[TrialRecord]) -> None:
        _check_name(study_name)
        for t in trials:
            if not isinstance(t, TrialRecord):
                raise ConfigurationError(f"upsert_trials takes TrialRecord objects, got {type(t).__name__}")
        async with self.db.transaction() as con:
            study_id = await con.fetchval("SELECT id FROM ml_hpo_studies WHERE study_name = $1", study_name)
            if study_id is None:
                raise self._not_found(study_name)
            if trials:
                await con.executemany(_UPSERT_TRIAL, [_trial_args(study_id, t) for t in trials])

    async def get_study(self, study_name: str) -> StudyRecord | None:
        _check_name(study_name)
        row = await self.db.fetchrow(_SELECT_STUDY + " WHERE s.study_name = $1", study_name)
        return _study_from_row(row) if row is not None else None

    async def list_studies(
        self,
        *,
        experiment_name: str | None = None,
        algorithm: str | None = None,
        problem_type: str | None = None,
        dataset_fingerprint: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StudyRecord]:
        _check_limit(limit, offset)
        if status is not None:
            _check_status(status)
        rows = await self.db.fetch(
            _SELECT_STUDY
            + """
            WHERE ($1::text IS NULL OR e.name = $1) AND ($2::text IS NULL OR s.algorithm_name = $2)
              AND ($3::text IS NULL OR s.problem_type = $3) AND ($4::text IS NULL OR s.dataset_fingerprint = $4)
              AND ($5::text IS NULL OR s.status = $5)
            ORDER BY s.created_at DESC, s.study_name LIMIT $6 OFFSET $7
            """,
            experiment_name, algorithm, problem_type, dataset_fingerprint, status, limit, offset,
        )
        return [_study_from_row(r) for r in rows]

    async def get_trials(self, study_name: str, *, states: Iterable[str] | None = None) -> list[TrialRecord]:
        _check_name(study_name)
        wanted = _check_states(states)
        rows = await self.db.fetch(_SELECT_TRIALS, study_name, wanted)
        if not rows and not await self.db.fetchval("SELECT 1 FROM ml_hpo_studies WHERE study_name = $1", study_name):
            raise self._not_found(study_name)
        return [_trial_from_row(r) for r in rows]

    async def best_trials(
        self,
        *,
        algorithm: str,
        problem_type: str,
        dataset_fingerprint: str,
        metric: str | None = None,
        limit: int = 10,
        exclude_study: str | None = None,
        distinct_params: bool = True,
    ) -> list[BestTrial]:
        _check_limit(limit)
        rows = await self.db.fetch(
            _BEST_DISTINCT if distinct_params else _BEST_ALL,
            algorithm, problem_type, dataset_fingerprint, metric, exclude_study, limit,
        )
        return [BestTrial(r["study_name"], r["direction"], r["metric"], _trial_from_row(r)) for r in rows]

    async def delete_study(self, study_name: str) -> bool:
        _check_name(study_name)
        return await self.db.fetchval("DELETE FROM ml_hpo_studies WHERE study_name = $1 RETURNING true", study_name) is not None

    @staticmethod
    def _not_found(study_name: str) -> DatabaseError:
        return StudyNotFoundError(f"study {study_name!r} is not in the history database; upsert_study() it first")

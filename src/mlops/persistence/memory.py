"""An in-memory :class:`~.protocol.HistoryRepository`: the fake that runs the contract suite beside
PostgreSQL, and the history of a run without a database. Same semantics, no persistence."""

from __future__ import annotations

import copy
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from ..jsonutil import json_dumps, to_jsonable
from ..trial_cache import CachedTrial, InMemoryTrialCacheStore
from ..types import StudyContext
from ..warm_start import SCHEMA_TAG
from ._checks import check_artifact, check_cache_entry, check_limit, check_lookup, check_name, check_states, check_status, check_trials, study_fields, study_not_found
from .records import BestTrial, StudyRecord, StudySummary, TrialRecord

__all__ = ["InMemoryHistoryRepository"]


class InMemoryHistoryRepository:
    """A :class:`HistoryRepository` in a dict: same semantics as the PostgreSQL one, no persistence."""

    def __init__(self) -> None:
        self._experiments: dict[str, dict[str, Any]] = {}
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[str, dict[int, tuple[TrialRecord, datetime, datetime]]] = {}
        self._artifacts: dict[str, tuple[str, str | None, dict[str, str]]] = {}
        self._cache = InMemoryTrialCacheStore()

    @staticmethod
    def _now() -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return f"InMemoryHistoryRepository(studies={len(self._studies)})"

    async def upsert_experiment(self, name: str, *, description: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        check_name(name, "experiment name")
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
        f = study_fields(context, status)
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
            phases=to_jsonable(list(summary.phases), non_finite="null") if summary.phases is not None else old.phases,
        )
        if any(_differs(getattr(old, k), v) for k, v in new.items()):
            now = self._now()
            completed_at = None if new["status"] == "running" else (old.completed_at or now)
            self._studies[study_name] = replace(old, **new, updated_at=now, completed_at=completed_at)

    async def refresh_study_counts(self, study_name: str) -> None:
        old = self._require(study_name)
        counted = StudySummary.from_trials((t for t, _, _ in self._trials[study_name].values()), old.directions)
        new: dict[str, Any] = dict(n_completed=counted.n_completed, n_pruned=counted.n_pruned, n_failed=counted.n_failed)
        if len(old.directions) == 1:
            new.update(best_trial_number=counted.best_trial_number, best_value=counted.best_value,
                       best_params=to_jsonable(counted.best_params) if counted.best_params is not None else None)
        if any(_differs(getattr(old, k), v) for k, v in new.items()):
            self._studies[study_name] = replace(old, **new, updated_at=self._now())

    async def upsert_trials(self, study_name: str, trials: Sequence[TrialRecord]) -> None:
        self._require(study_name)
        check_trials(trials)
        store = self._trials[study_name]
        staged = dict(store)
        for t in trials:
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
        check_name(study_name)
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
        check_limit(limit, offset)
        if status is not None:
            check_status(status)
        want = {"experiment_name": experiment_name, "algorithm": algorithm, "problem_type": problem_type,
                "dataset_fingerprint": dataset_fingerprint, "status": status}
        rows = [s for s in self._studies.values() if all(v is None or getattr(s, k) == v for k, v in want.items())]
        rows.sort(key=lambda s: s.study_name)
        rows.sort(key=lambda s: s.created_at, reverse=True)  # type: ignore[arg-type,return-value]
        return copy.deepcopy(rows[offset : offset + limit])

    async def get_trials(self, study_name: str, *, states: Iterable[str] | None = None) -> list[TrialRecord]:
        self._require(study_name)
        wanted = check_states(states)
        out = [t for t, _, _ in sorted(self._trials[study_name].values(), key=lambda r: r[0].number)]
        if wanted is not None:
            out = [t for t in out if t.state in wanted]
        return copy.deepcopy(out)

    async def best_trials(
        self,
        *,
        algorithm: str,
        problem_type: str,
        dataset_fingerprint: str | None = None,
        metric: str | None = None,
        limit: int = 10,
        exclude_study: str | None = None,
        distinct_params: bool = True,
        schema_fingerprint: str | None = None,
    ) -> list[BestTrial]:
        check_limit(limit)
        check_lookup(dataset_fingerprint, schema_fingerprint)
        scored: list[tuple[tuple[Any, ...], BestTrial]] = []
        for s in self._studies.values():
            if (s.algorithm, s.problem_type) != (algorithm, problem_type):
                continue
            if dataset_fingerprint is not None and s.dataset_fingerprint != dataset_fingerprint:
                continue
            if schema_fingerprint is not None and s.tags.get(SCHEMA_TAG) != schema_fingerprint:
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
        check_name(study_name)
        self._trials.pop(study_name, None)
        return self._studies.pop(study_name, None) is not None

    async def record_artifact(self, path: str, digests: Mapping[str, str], *, run_id: str,
                              study_name: str | None = None) -> None:
        checked = check_artifact(path, digests)
        check_name(run_id, "run id")
        self._artifacts[path] = (run_id, study_name, checked)

    async def get_artifact_digests(self, path: str) -> dict[str, str] | None:
        found = self._artifacts.get(path)
        return None if found is None else dict(found[2])

    async def get_cached_trial(self, key: str) -> CachedTrial | None:
        return await self._cache.get_cached_trial(check_name(key, "cache key"))

    async def put_cached_trial(self, entry: CachedTrial) -> None:
        await self._cache.put_cached_trial(check_cache_entry(entry))

    def _require(self, study_name: str) -> StudyRecord:
        check_name(study_name)
        s = self._studies.get(study_name)
        if s is None:
            raise study_not_found(study_name)
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


def _loss(direction: str, trial: TrialRecord) -> float | None:
    v = trial.value if trial.value is not None else (trial.values[0] if trial.values else None)
    if v is None or not math.isfinite(v):
        return None
    return -v if direction == "maximize" else v

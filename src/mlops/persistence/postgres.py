"""The PostgreSQL :class:`~.protocol.HistoryRepository` (tables of ``001_hpo_history.sql``), on asyncpg.

Every statement is a literal string with ``$n`` parameters. The :class:`~.database.Database` turns
driver errors into :class:`~src.mlops.errors.DatabaseError`; the errors that mean something to the
caller are translated here, where they arise: a trial written for a study deleted meanwhile (a
foreign-key violation) is a :class:`~src.mlops.errors.StudyNotFoundError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from ..jsonutil import JsonText, float_from_json, json_dumps, to_jsonable
from ..trial_cache import CachedTrial
from ..types import StudyContext
from ._checks import check_artifact, check_cache_entry, check_limit, check_lookup, check_name, check_states, check_status, check_trials, study_fields, study_not_found
from .database import Database
from .records import BestTrial, StudyRecord, StudySummary, TrialRecord

__all__ = ["PostgresHistoryRepository"]

# Every statement is a literal: values are bound as $n parameters, nothing is spliced into the text.

_UPSERT_EXPERIMENT = """
INSERT INTO ml_experiments AS e (name, description, tags) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET
    description = COALESCE(EXCLUDED.description, e.description),
    tags = e.tags || EXCLUDED.tags,
    updated_at = now()
WHERE (e.description, e.tags)
    IS DISTINCT FROM (COALESCE(EXCLUDED.description, e.description), e.tags || EXCLUDED.tags)
"""

_ENSURE_EXPERIMENT = "INSERT INTO ml_experiments (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

# An upsert merges each new value (EXCLUDED) into the stored row (s): a NULL keeps the stored value,
# directions and status always win, tags merge. It writes (and moves updated_at) only on a change.
_UPSERT_STUDY = """
INSERT INTO ml_hpo_studies AS s (
    study_name, experiment_id, algorithm_name, problem_type, direction, directions, metric, metric_names,
    sampler_name, pruner_name, search_space, n_trials, dataset_fingerprint, status, tags, completed_at)
VALUES ($1, (SELECT id FROM ml_experiments WHERE name = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        CASE WHEN $14 = 'running' THEN NULL ELSE now() END)
ON CONFLICT (study_name) DO UPDATE SET
    experiment_id = COALESCE(EXCLUDED.experiment_id, s.experiment_id),
    algorithm_name = COALESCE(EXCLUDED.algorithm_name, s.algorithm_name),
    problem_type = COALESCE(EXCLUDED.problem_type, s.problem_type),
    direction = EXCLUDED.direction,
    directions = EXCLUDED.directions,
    metric = COALESCE(EXCLUDED.metric, s.metric),
    metric_names = CASE WHEN cardinality(EXCLUDED.metric_names) > 0 THEN EXCLUDED.metric_names ELSE s.metric_names END,
    sampler_name = COALESCE(EXCLUDED.sampler_name, s.sampler_name),
    pruner_name = COALESCE(EXCLUDED.pruner_name, s.pruner_name),
    search_space = COALESCE(EXCLUDED.search_space, s.search_space),
    n_trials = COALESCE(EXCLUDED.n_trials, s.n_trials),
    dataset_fingerprint = COALESCE(EXCLUDED.dataset_fingerprint, s.dataset_fingerprint),
    status = EXCLUDED.status,
    tags = s.tags || EXCLUDED.tags,
    completed_at = CASE WHEN EXCLUDED.status = 'running' THEN NULL ELSE COALESCE(s.completed_at, now()) END,
    updated_at = now()
WHERE (s.experiment_id, s.algorithm_name, s.problem_type, s.direction, s.directions, s.metric, s.metric_names,
       s.sampler_name, s.pruner_name, s.search_space, s.n_trials, s.dataset_fingerprint, s.status, s.tags)
    IS DISTINCT FROM (
       COALESCE(EXCLUDED.experiment_id, s.experiment_id),
       COALESCE(EXCLUDED.algorithm_name, s.algorithm_name),
       COALESCE(EXCLUDED.problem_type, s.problem_type),
       EXCLUDED.direction,
       EXCLUDED.directions,
       COALESCE(EXCLUDED.metric, s.metric),
       CASE WHEN cardinality(EXCLUDED.metric_names) > 0 THEN EXCLUDED.metric_names ELSE s.metric_names END,
       COALESCE(EXCLUDED.sampler_name, s.sampler_name),
       COALESCE(EXCLUDED.pruner_name, s.pruner_name),
       COALESCE(EXCLUDED.search_space, s.search_space),
       COALESCE(EXCLUDED.n_trials, s.n_trials),
       COALESCE(EXCLUDED.dataset_fingerprint, s.dataset_fingerprint),
       EXCLUDED.status,
       s.tags || EXCLUDED.tags)
"""

# NULL status / stop reason / duration keep the stored value; RETURNING tells "changed" from "no-op".
_UPDATE_SUMMARY = """
UPDATE ml_hpo_studies SET
    n_completed = $2,
    n_pruned = $3,
    n_failed = $4,
    best_trial_number = $5,
    best_value = $6,
    best_values = $7,
    best_params = $8,
    status = COALESCE($9, status),
    stop_reason = COALESCE($10, stop_reason),
    duration_seconds = COALESCE($11, duration_seconds),
    phases = COALESCE($12::jsonb, phases),
    completed_at = CASE WHEN COALESCE($9, status) = 'running' THEN NULL ELSE COALESCE(completed_at, now()) END,
    updated_at = now()
WHERE study_name = $1
  AND (n_completed, n_pruned, n_failed, best_trial_number, best_value, best_values, best_params,
       status, stop_reason, duration_seconds, phases)
      IS DISTINCT FROM ($2, $3, $4, $5, $6, $7, $8, COALESCE($9, status), COALESCE($10, stop_reason),
                        COALESCE($11, duration_seconds), COALESCE($12::jsonb, phases))
RETURNING id
"""

# Counters and (single-objective) best trial from the trial rows, as StudySummary.from_trials counts
# them: best value in the study's direction (NaN never best), lowest number on ties. Writes only on a change.
_REFRESH_COUNTS = """
WITH s AS (
    SELECT id, direction, cardinality(directions) = 1 AS single FROM ml_hpo_studies WHERE study_name = $1
), c AS (
    SELECT count(*) FILTER (WHERE t.state = 'COMPLETE') AS n_completed,
           count(*) FILTER (WHERE t.state = 'PRUNED') AS n_pruned,
           count(*) FILTER (WHERE t.state = 'FAIL') AS n_failed
    FROM ml_hpo_trials t JOIN s ON t.study_id = s.id
), b AS (
    SELECT t.trial_number, t.value, t.params
    FROM ml_hpo_trials t JOIN s ON t.study_id = s.id
    WHERE s.single AND t.state = 'COMPLETE' AND t.value IS NOT NULL AND t.value <> 'NaN'::float8
    ORDER BY CASE WHEN s.direction = 'maximize' THEN -t.value ELSE t.value END, t.trial_number
    LIMIT 1
), n AS (
    SELECT s.id, c.n_completed::int AS n_completed, c.n_pruned::int AS n_pruned, c.n_failed::int AS n_failed,
           CASE WHEN s.single THEN (SELECT trial_number FROM b) ELSE st.best_trial_number END AS best_trial_number,
           CASE WHEN s.single THEN (SELECT value FROM b) ELSE st.best_value END AS best_value,
           CASE WHEN s.single THEN (SELECT params FROM b) ELSE st.best_params END AS best_params
    FROM s CROSS JOIN c JOIN ml_hpo_studies st ON st.id = s.id
)
UPDATE ml_hpo_studies st SET
    n_completed = n.n_completed, n_pruned = n.n_pruned, n_failed = n.n_failed,
    best_trial_number = n.best_trial_number, best_value = n.best_value, best_params = n.best_params,
    updated_at = now()
FROM n
WHERE st.id = n.id
  AND (st.n_completed, st.n_pruned, st.n_failed, st.best_trial_number, st.best_value, st.best_params)
      IS DISTINCT FROM (n.n_completed, n.n_pruned, n.n_failed, n.best_trial_number, n.best_value, n.best_params)
RETURNING st.id
"""

_STUDY_EXISTS = "SELECT 1 FROM ml_hpo_studies WHERE study_name = $1"

_STUDY_ID = "SELECT id FROM ml_hpo_studies WHERE study_name = $1"

# A finished trial (COMPLETE, PRUNED, FAIL) is never downgraded by a stale RUNNING/WAITING write.
_UPSERT_TRIAL = """
INSERT INTO ml_hpo_trials AS t (
    study_id, trial_number, state, params, distributions, value, objective_values, intermediate_values,
    duration_seconds, fail_reason, user_attrs, datetime_start, datetime_complete)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (study_id, trial_number) DO UPDATE SET
    state = EXCLUDED.state,
    params = EXCLUDED.params,
    distributions = EXCLUDED.distributions,
    value = EXCLUDED.value,
    objective_values = EXCLUDED.objective_values,
    intermediate_values = EXCLUDED.intermediate_values,
    duration_seconds = EXCLUDED.duration_seconds,
    fail_reason = EXCLUDED.fail_reason,
    user_attrs = EXCLUDED.user_attrs,
    datetime_start = EXCLUDED.datetime_start,
    datetime_complete = EXCLUDED.datetime_complete,
    updated_at = now()
WHERE (t.state, t.params, t.distributions, t.value, t.objective_values, t.intermediate_values,
       t.duration_seconds, t.fail_reason, t.user_attrs, t.datetime_start, t.datetime_complete)
    IS DISTINCT FROM (
       EXCLUDED.state, EXCLUDED.params, EXCLUDED.distributions, EXCLUDED.value, EXCLUDED.objective_values,
       EXCLUDED.intermediate_values, EXCLUDED.duration_seconds, EXCLUDED.fail_reason, EXCLUDED.user_attrs,
       EXCLUDED.datetime_start, EXCLUDED.datetime_complete)
  AND NOT (t.state IN ('COMPLETE', 'PRUNED', 'FAIL') AND EXCLUDED.state IN ('RUNNING', 'WAITING'))
"""

_GET_STUDY = """
SELECT s.*, e.name AS experiment_name
FROM ml_hpo_studies s LEFT JOIN ml_experiments e ON e.id = s.experiment_id
WHERE s.study_name = $1
"""

_LIST_STUDIES = """
SELECT s.*, e.name AS experiment_name
FROM ml_hpo_studies s LEFT JOIN ml_experiments e ON e.id = s.experiment_id
WHERE ($1::text IS NULL OR e.name = $1) AND ($2::text IS NULL OR s.algorithm_name = $2)
  AND ($3::text IS NULL OR s.problem_type = $3) AND ($4::text IS NULL OR s.dataset_fingerprint = $4)
  AND ($5::text IS NULL OR s.status = $5)
ORDER BY s.created_at DESC, s.study_name
LIMIT $6 OFFSET $7
"""

_GET_TRIALS = """
SELECT t.trial_number, t.state, t.params, t.distributions, t.value, t.objective_values, t.intermediate_values,
       t.duration_seconds, t.fail_reason, t.user_attrs, t.datetime_start, t.datetime_complete
FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id
WHERE s.study_name = $1 AND ($2::text[] IS NULL OR t.state = ANY($2::text[]))
ORDER BY t.trial_number
"""

# Finite COMPLETE trials of the matching studies, best first in each study's own direction (loss =
# value, negated when maximizing); ties go to the newer study, then by name and trial number. With
# $7 (distinct params) only the best trial of each parameter set is kept: DISTINCT ON (params) then
# keeps the first row of each set; without it the key also holds study and trial, so every row stays.
_BEST_TRIALS = """
WITH scored AS (
    SELECT s.study_name, s.direction, s.metric, s.created_at AS study_created_at,
           t.trial_number, t.state, t.params, t.distributions, t.value, t.objective_values,
           t.intermediate_values, t.duration_seconds, t.fail_reason, t.user_attrs, t.datetime_start,
           t.datetime_complete,
           CASE WHEN s.direction = 'maximize' THEN -COALESCE(t.value, t.objective_values[1])
                ELSE COALESCE(t.value, t.objective_values[1]) END AS loss
    FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id
    WHERE s.algorithm_name = $1 AND s.problem_type = $2
      AND ($3::text IS NULL OR s.dataset_fingerprint = $3)
      AND ($8::text IS NULL OR s.tags->>'schema_fingerprint' = $8)
      AND ($4::text IS NULL OR s.metric = $4)
      AND ($5::text IS NULL OR s.study_name <> $5)
      AND t.state = 'COMPLETE'
), finite AS (
    SELECT * FROM scored
    WHERE loss IS NOT NULL AND loss NOT IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)
), kept AS (
    SELECT DISTINCT ON (params, CASE WHEN $7 THEN NULL ELSE study_name END,
                        CASE WHEN $7 THEN NULL ELSE trial_number END) *
    FROM finite
    ORDER BY params, CASE WHEN $7 THEN NULL ELSE study_name END, CASE WHEN $7 THEN NULL ELSE trial_number END,
             loss, study_created_at DESC, study_name, trial_number
)
SELECT * FROM kept
ORDER BY loss, study_created_at DESC, study_name, trial_number
LIMIT $6
"""

_DELETE_STUDY = "DELETE FROM ml_hpo_studies WHERE study_name = $1 RETURNING true"

# Artifact digests (004_model_artifacts.sql): an upsert that writes only on a change.
_RECORD_ARTIFACT = """
INSERT INTO ml_model_artifacts AS a (path, run_id, study_name, digests) VALUES ($1, $2, $3, $4)
ON CONFLICT (path) DO UPDATE SET
    run_id = EXCLUDED.run_id, study_name = EXCLUDED.study_name, digests = EXCLUDED.digests, updated_at = now()
WHERE (a.run_id, a.study_name, a.digests) IS DISTINCT FROM (EXCLUDED.run_id, EXCLUDED.study_name, EXCLUDED.digests)
"""

_ARTIFACT_DIGESTS = "SELECT digests FROM ml_model_artifacts WHERE path = $1"

# The trial cache (005_trial_cache.sql): the first result stored under a key stays.
_PUT_CACHED_TRIAL = """
INSERT INTO ml_hpo_trial_cache (cache_key, value, params, user_attrs, intermediate_values, key_parts, study_name,
                                trial_number)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (cache_key) DO NOTHING
"""

_GET_CACHED_TRIAL = """
SELECT cache_key, value, params, user_attrs, intermediate_values, key_parts, study_name, trial_number
FROM ml_hpo_trial_cache WHERE cache_key = $1
"""


def _trial_rows(trials: Sequence[TrialRecord]) -> list[tuple[Any, ...]]:
    """The parameters of ``_UPSERT_TRIAL`` after the study id, the JSONB ones already encoded: a
    blocking call, run in a thread (a resumed study's batch of 500 trials with their intermediate
    values took 0.5-1.2 s to encode, which held the event loop when the driver's codec did it)."""
    return [(
        t.number, t.state, JsonText(json_dumps(t.params)), JsonText(json_dumps(t.distributions)), t.value,
        list(t.values) if t.values is not None else None,
        JsonText(json_dumps({str(k): v for k, v in t.intermediate_values.items()})),
        t.duration_seconds, t.fail_reason, JsonText(json_dumps(t.user_attrs)), t.datetime_start, t.datetime_complete,
    ) for t in trials]


# record field -> column, where the names differ ("values" is reserved in SQL)
_TRIAL_COLUMN = {"number": "trial_number", "values": "objective_values"}
_STUDY_COLUMN = {"algorithm": "algorithm_name"}


def _fields(record_type: type, row: asyncpg.Record, column: Mapping[str, str]) -> dict[str, Any]:
    """The row's value for each field of ``record_type`` (columns named like the fields but for ``column``)."""
    return {f: row[column.get(f, f)] for f in record_type.__dataclass_fields__}


def _tuple(values: Any) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def _trial_from_row(r: asyncpg.Record) -> TrialRecord:
    f = _fields(TrialRecord, r, _TRIAL_COLUMN)
    f["values"] = _tuple(f["values"])
    f["intermediate_values"] = {int(k): float_from_json(v) for k, v in f["intermediate_values"].items()}
    return TrialRecord(**f)


def _study_from_row(r: asyncpg.Record) -> StudyRecord:
    f = _fields(StudyRecord, r, _STUDY_COLUMN)
    f.update(id=str(f["id"]), directions=tuple(f["directions"]), metric_names=tuple(f["metric_names"]),
             best_values=_tuple(f["best_values"]))
    return StudyRecord(**f)


class PostgresHistoryRepository:
    """:class:`HistoryRepository` on PostgreSQL (tables of ``001_hpo_history.sql``) through a :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __repr__(self) -> str:
        return f"PostgresHistoryRepository({self.db!r})"

    async def upsert_experiment(self, name: str, *, description: str | None = None, tags: Mapping[str, Any] | None = None) -> None:
        check_name(name, "experiment name")
        await self.db.execute(_UPSERT_EXPERIMENT, name, description, to_jsonable(dict(tags or {})))

    async def upsert_study(self, context: StudyContext, *, status: str = "running") -> None:
        f = study_fields(context, status)
        async with self.db.transaction() as con:
            if f["experiment_name"] is not None:
                await con.execute(_ENSURE_EXPERIMENT, f["experiment_name"])
            await con.execute(
                _UPSERT_STUDY,
                context.study_name, f["experiment_name"], f["algorithm"], f["problem_type"], f["directions"][0],
                list(f["directions"]), f["metric"], list(f["metric_names"]), f["sampler_name"], f["pruner_name"],
                f["search_space"], f["n_trials"], f["dataset_fingerprint"], f["status"], f["tags"],
            )

    async def update_study_summary(self, study_name: str, summary: StudySummary) -> None:
        check_name(study_name)
        async with self.db.transaction() as con:
            changed = await con.fetchval(
                _UPDATE_SUMMARY,
                study_name, summary.n_completed, summary.n_pruned, summary.n_failed, summary.best_trial_number,
                summary.best_value, list(summary.best_values) if summary.best_values is not None else None,
                to_jsonable(summary.best_params) if summary.best_params is not None else None,
                summary.status, summary.stop_reason, summary.duration_seconds,
                to_jsonable(list(summary.phases), non_finite="null") if summary.phases is not None else None,
            )
            if changed is None and not await con.fetchval(_STUDY_EXISTS, study_name):
                raise study_not_found(study_name)

    async def refresh_study_counts(self, study_name: str) -> None:
        check_name(study_name)
        async with self.db.transaction() as con:
            changed = await con.fetchval(_REFRESH_COUNTS, study_name)
            if changed is None and not await con.fetchval(_STUDY_EXISTS, study_name):
                raise study_not_found(study_name)

    async def upsert_trials(self, study_name: str, trials: Sequence[TrialRecord]) -> None:
        check_name(study_name)
        check_trials(trials)
        rows = await asyncio.to_thread(_trial_rows, trials) if trials else []
        async with self.db.transaction() as con:
            study_id = await con.fetchval(_STUDY_ID, study_name)
            if study_id is None:
                raise study_not_found(study_name)
            if rows:
                try:
                    await con.executemany(_UPSERT_TRIAL, [(study_id, *row) for row in rows])
                except asyncpg.ForeignKeyViolationError as e:  # the study was deleted after we read its id
                    raise study_not_found(study_name) from e

    async def get_study(self, study_name: str) -> StudyRecord | None:
        check_name(study_name)
        row = await self.db.fetchrow(_GET_STUDY, study_name)
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
        check_limit(limit, offset)
        if status is not None:
            check_status(status)
        rows = await self.db.fetch(
            _LIST_STUDIES, experiment_name, algorithm, problem_type, dataset_fingerprint, status, limit, offset
        )
        return [_study_from_row(r) for r in rows]

    async def get_trials(self, study_name: str, *, states: Iterable[str] | None = None) -> list[TrialRecord]:
        check_name(study_name)
        wanted = check_states(states)
        rows = await self.db.fetch(_GET_TRIALS, study_name, wanted)
        if not rows and not await self.db.fetchval(_STUDY_EXISTS, study_name):
            raise study_not_found(study_name)
        return [_trial_from_row(r) for r in rows]

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
        rows = await self.db.fetch(
            _BEST_TRIALS,
            algorithm, problem_type, dataset_fingerprint, metric, exclude_study, limit, bool(distinct_params),
            schema_fingerprint,
        )
        return [BestTrial(r["study_name"], r["direction"], r["metric"], _trial_from_row(r)) for r in rows]

    async def delete_study(self, study_name: str) -> bool:
        check_name(study_name)
        return await self.db.fetchval(_DELETE_STUDY, study_name) is not None

    async def record_artifact(self, path: str, digests: Mapping[str, str], *, run_id: str,
                              study_name: str | None = None) -> None:
        checked = check_artifact(path, digests)
        check_name(run_id, "run id")
        await self.db.execute(_RECORD_ARTIFACT, path, run_id, study_name, checked)

    async def get_artifact_digests(self, path: str) -> dict[str, str] | None:
        found = await self.db.fetchval(_ARTIFACT_DIGESTS, path)
        return None if found is None else dict(found)

    async def get_cached_trial(self, key: str) -> CachedTrial | None:
        check_name(key, "cache key")
        r = await self.db.fetchrow(_GET_CACHED_TRIAL, key)
        if r is None:
            return None
        return CachedTrial(
            key=r["cache_key"], value=float(r["value"]), params=dict(r["params"]), user_attrs=dict(r["user_attrs"]),
            intermediate_values={int(k): float_from_json(v) for k, v in r["intermediate_values"].items()},
            key_parts=dict(r["key_parts"]), study_name=r["study_name"], trial_number=r["trial_number"])

    async def put_cached_trial(self, entry: CachedTrial) -> None:
        check_cache_entry(entry)
        await self.db.execute(
            _PUT_CACHED_TRIAL, entry.key, float(entry.value), to_jsonable(entry.params), to_jsonable(entry.user_attrs),
            {str(k): v for k, v in to_jsonable(entry.intermediate_values).items()}, to_jsonable(entry.key_parts),
            entry.study_name, entry.trial_number)

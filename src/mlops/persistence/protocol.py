"""The study/trial history a run depends on: :class:`HistoryRepository`.

The engine and the recorder depend on this protocol only. Two implementations share one contract
test suite: :class:`~.postgres.PostgresHistoryRepository` (asyncpg) and
:class:`~.memory.InMemoryHistoryRepository` (a fake for tests and for runs without a database).

Write semantics, identical in both:

* every write is an upsert keyed by ``study_name`` / ``(study, trial_number)`` and is *idempotent*:
  writing the same data again changes nothing, not even ``updated_at``;
* a finished trial (COMPLETE, PRUNED, FAIL) is never downgraded to RUNNING/WAITING by a stale write;
* optional study fields left ``None`` by a later write keep their stored value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..trial_cache import CachedTrial
from ..types import StudyContext
from .records import BestTrial, StudyRecord, StudySummary, TrialRecord

__all__ = ["HistoryRepository"]


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

    async def refresh_study_counts(self, study_name: str) -> None:
        """Set the study's counters and (single-objective) best trial from its stored trials, as
        :meth:`StudySummary.from_trials` counts them; status, stop reason and duration stay. Called as
        trials finish, so a study that never reaches its end still shows what it did. Raises
        :class:`StudyNotFoundError` for an unknown study."""

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
        dataset_fingerprint: str | None = None,
        metric: str | None = None,
        limit: int = 10,
        exclude_study: str | None = None,
        distinct_params: bool = True,
        schema_fingerprint: str | None = None,
    ) -> list[BestTrial]:
        """Best finite COMPLETE trials of all studies with this algorithm, problem type and dataset
        (and metric, if given), best first in each study's own direction. ``schema_fingerprint``
        (the study tag of that name: same columns and types) matches instead of, or besides, the
        dataset; at least one of the two must be given."""

    async def delete_study(self, study_name: str) -> bool:
        """Delete a study and its trials; False if it did not exist."""

    async def record_artifact(self, path: str, digests: Mapping[str, str], *, run_id: str,
                              study_name: str | None = None) -> None:
        """Record the SHA-256 of the files of the model artifact in folder ``path`` (absolute) that run
        ``run_id`` wrote; a folder recorded again gets the new digests."""

    async def get_artifact_digests(self, path: str) -> dict[str, str] | None:
        """The digests recorded for the artifact folder ``path``, or ``None``."""

    async def get_cached_trial(self, key: str) -> CachedTrial | None:
        """The trial cache's result under ``key`` (:mod:`src.mlops.trial_cache`), or ``None``."""

    async def put_cached_trial(self, entry: CachedTrial) -> None:
        """Store a trial cache entry unless its key is stored already (the first result stays)."""

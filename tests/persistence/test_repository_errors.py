"""Errors of the history repositories: the same refusal from both, driver errors translated where they arise."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from src.mlops.errors import ConfigurationError, StudyNotFoundError
from src.mlops.persistence import Database, PostgresHistoryRepository, StudySummary, TrialRecord
from src.mlops.types import StudyContext


def test_a_negative_best_trial_number_is_refused_before_any_backend_sees_it() -> None:
    # PostgreSQL's CHECK (best_trial_number >= 0) refused it while the in-memory fake stored it
    with pytest.raises(ConfigurationError, match=r"best_trial_number must be an int >= 0 or None, got -1"):
        StudySummary(n_completed=1, n_pruned=0, n_failed=0, best_trial_number=-1)
    with pytest.raises(ConfigurationError, match="best_trial_number"):
        StudySummary(n_completed=1, n_pruned=0, n_failed=0, best_trial_number=True)
    assert StudySummary(n_completed=1, n_pruned=0, n_failed=0, best_trial_number=0).best_trial_number == 0


async def test_summary_with_a_negative_best_trial_number_is_refused_by_both(repo: Any) -> None:
    await repo.upsert_study(StudyContext(study_name="s", directions=("minimize",)))
    with pytest.raises(ConfigurationError, match="best_trial_number"):
        await repo.update_study_summary("s", StudySummary(1, 0, 0, best_trial_number=-3))
    assert (await repo.get_study("s")).best_trial_number is None


async def test_trials_of_a_study_deleted_meanwhile_are_a_study_not_found_error(db: Database) -> None:
    """upsert_trials reads the study's id, then inserts; a delete committed in between is a
    foreign-key violation, which the repository reports as the study not being there."""
    repo = PostgresHistoryRepository(db)
    await repo.upsert_study(StudyContext(study_name="doomed", directions=("minimize",)))
    async with db.acquire() as deleter:
        tx = deleter.transaction()
        await tx.start()
        await deleter.execute("DELETE FROM ml_hpo_studies WHERE study_name = 'doomed'")
        # the writer still sees the study (the delete is not committed), and its insert waits on the row lock
        writer = asyncio.create_task(repo.upsert_trials("doomed", [TrialRecord(number=0, state="COMPLETE", value=1.0)]))
        try:
            deadline = time.monotonic() + 30
            # asked on a third connection: inside a transaction, pg_stat_activity is a frozen snapshot
            while not writer.done() and not await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ):
                assert time.monotonic() < deadline, "the trial insert never waited on the deleted study's lock"
                await asyncio.sleep(0.02)
            await tx.commit()
        except BaseException:
            await tx.rollback()
            await asyncio.gather(writer, return_exceptions=True)
            raise
    with pytest.raises(StudyNotFoundError, match="'doomed' is not in the history database"):
        await writer

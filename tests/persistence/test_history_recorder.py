"""HistoryRecorder (a TrialListener) and save_to_database: incremental, idempotent, never raising (F16)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import optuna
import pytest

from src.mlops.errors import ConfigurationError
from src.mlops.persistence import (
    Database,
    HistoryRecorder,
    InMemoryHistoryRepository,
    PostgresHistoryRepository,
    create_pool,
    parse_dsn,
    save_to_database,
)
from src.mlops.persistence import recorder as recorder_module
from src.mlops.persistence.records import TrialRecord
from src.mlops.types import FAIL_REASON_ATTR, OptimizationResult, StudyContext, TrialListener

from ._helpers import admin_sql

SECRET = "hunter2-db-pass"


def make_study(name: str = "rec-study") -> optuna.Study:
    """A finished in-memory study with COMPLETE, PRUNED, FAIL (with reason) and one RUNNING trial."""
    study = optuna.create_study(study_name=name, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    space = {"x": optuna.distributions.FloatDistribution(0, 1), "k": optuna.distributions.CategoricalDistribution(["a", "b"])}
    for i in range(8):
        t = study.ask(space)
        t.report(0.1 * i, step=0)
        if i == 3:
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
        elif i == 5:
            t.set_user_attr(FAIL_REASON_ATTR, "exception: RuntimeError('bad fit')")
            study.tell(t, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(t, t.params["x"])
    study.ask(space)  # left RUNNING
    return study


def context(name: str = "rec-study") -> StudyContext:
    return StudyContext(study_name=name, directions=("maximize",), algorithm="rf", problem_type="regression",
                        metric="r2", dataset_fingerprint="fp", n_trials=8, experiment_name="e")


def result_for(study: optuna.Study) -> OptimizationResult:
    best = study.best_trial
    trials = study.trials
    return OptimizationResult(
        study_name=study.study_name, directions=("maximize",), best_params=best.params, best_value=best.value,
        best_values=best.values, best_trial_number=best.number, n_trials=len(trials),
        n_completed=sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        n_pruned=1, n_failed=1, duration_s=3.25, stop_reason="n_trials",
    )


async def snapshot(repo: Any, name: str) -> tuple[Any, Any]:
    return await repo.get_study(name), await repo.get_trials(name)


async def pg_rows(db: Database) -> list[Any]:
    """Every row of the history tables (all columns), to prove that nothing changed."""
    out = []
    for table in ("ml_experiments", "ml_hpo_studies", "ml_hpo_trials"):
        rows = await db.fetch(f"SELECT to_jsonb(x) AS r FROM {table} x ORDER BY id")
        out.append([r["r"] for r in rows])
    return out


def test_recorder_is_a_trial_listener() -> None:
    assert isinstance(HistoryRecorder(InMemoryHistoryRepository()), TrialListener)
    with pytest.raises(ConfigurationError, match="retry_initial"):
        HistoryRecorder(InMemoryHistoryRepository(), retry_initial=0)


async def test_save_to_database_is_idempotent(repo: Any) -> None:
    study = make_study()
    assert await save_to_database(study, context(), repo) == 9
    first = await snapshot(repo, "rec-study")
    assert await save_to_database(study, context(), repo) == 9
    assert await snapshot(repo, "rec-study") == first
    s, trials = first
    assert (s.n_completed, s.n_pruned, s.n_failed, s.status) == (6, 1, 1, "running")  # one trial still RUNNING
    assert s.best_trial_number == study.best_trial.number and s.best_value == study.best_value
    assert [t.state for t in trials].count("RUNNING") == 1
    assert trials[5].fail_reason == "exception: RuntimeError('bad fit')"


async def test_save_after_incremental_writes_changes_nothing(db: Database) -> None:
    repo = PostgresHistoryRepository(db)
    study = optuna.create_study(study_name="inc", direction="maximize")
    recorder = HistoryRecorder(repo)
    ctx = context("inc")
    await recorder.on_study_start(study, ctx)
    for _ in range(6):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        frozen = study.tell(t, t.params["x"])
        await recorder.on_trial_finished(study, frozen)
    result = result_for(study)
    await recorder.on_study_end(study, result)
    assert recorder.pending == 0 and recorder.stats.written_trials >= 6 and recorder.stats.dropped_trials == 0
    before = await pg_rows(db)
    await save_to_database(study, ctx, repo, result=result)
    await save_to_database(study, ctx, repo)  # without the result: same counts, best and status
    assert await pg_rows(db) == before
    s = await repo.get_study("inc")
    assert (s.status, s.n_completed, s.stop_reason, s.duration_seconds) == ("completed", 6, "n_trials", 3.25)  # type: ignore[union-attr]


async def test_counters_follow_finished_trials_and_an_interruption_is_recorded(repo: Any) -> None:
    """Issue 9 item 8: before, counters were written only at the study's end and the status stayed
    'running' when the study never got there."""
    study = optuna.create_study(study_name="cut", direction="maximize")
    recorder = HistoryRecorder(repo)
    await recorder.on_study_start(study, context("cut"))
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(5):
        t = study.ask(space)
        frozen = study.tell(t, state=optuna.trial.TrialState.PRUNED) if i == 2 else study.tell(t, t.params["x"])
        await recorder.on_trial_finished(study, frozen)
    assert await recorder.flush(timeout=10)
    s = await repo.get_study("cut")
    assert (s.status, s.n_completed, s.n_pruned, s.n_failed) == ("running", 4, 1, 0)
    assert s.best_value == study.best_value and s.best_trial_number == study.best_trial.number
    study.ask(space)  # in flight when the run is interrupted
    assert recorder.mark_interrupted() == ["cut"]
    await recorder.aclose(timeout=10)
    s = await repo.get_study("cut")
    assert (s.status, s.n_completed, s.n_pruned) == ("interrupted", 4, 1)
    # a resumed study is running again; its end makes it completed
    recorder = HistoryRecorder(repo)
    await recorder.on_study_start(study, context("cut"))
    assert await recorder.flush(timeout=10)
    assert (await repo.get_study("cut")).status == "running"
    await recorder.on_study_end(study, result_for(study))
    assert recorder.mark_interrupted() == []  # it ended: nothing to mark
    await recorder.aclose(timeout=10)
    assert (await repo.get_study("cut")).status == "completed"


async def test_recorder_resyncs_trials_already_in_the_storage(repo: Any) -> None:
    """A process killed between tell and its history write: the next start records the trial."""
    study = make_study("resume")
    recorder = HistoryRecorder(repo)
    await recorder.on_study_start(study, context("resume"))
    assert await recorder.flush(timeout=10)
    assert len(await repo.get_trials("resume")) == 8  # the finished ones


async def test_recorder_survives_a_lost_database_and_catches_up(
    pg_admin_dsn: str, migrated_dsn: str, migrated_template: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Writes fail while the database is gone; nothing raises, nothing leaks; when it is back the
    queue is flushed and no trial is lost."""
    caplog.set_level(logging.DEBUG)
    dsn = migrated_dsn
    if parse_dsn(dsn).is_unix_socket and not os.environ.get("DATABASE_URL"):
        dsn = dsn.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")  # trust auth ignores it
    name = parse_dsn(dsn).database
    async with await create_pool(dsn, max_size=2, connect_timeout=2) as db:
        repo = PostgresHistoryRepository(db)
        recorder = HistoryRecorder(repo, retry_initial=0.05, retry_max=0.2, end_flush_timeout=0.5)
        study = optuna.create_study(study_name="flaky", direction="maximize")
        await recorder.on_study_start(study, context("flaky"))
        assert await recorder.flush(timeout=10)

        admin_sql(pg_admin_dsn, f'DROP DATABASE "{name}" WITH (FORCE)')  # the database disappears
        for _ in range(5):
            t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
            await recorder.on_trial_finished(study, study.tell(t, t.params["x"]))  # never raises
        await recorder.on_study_end(study, result_for(study))  # waits 0.5 s, then gives up quietly
        assert recorder.pending == 5 and recorder.stats.failed_writes > 0

        admin_sql(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')  # back, but empty
        assert await recorder.flush(timeout=20)
        got = await repo.get_trials("flaky")
        assert [t.state for t in got] == ["COMPLETE"] * 5
        s = await repo.get_study("flaky")
        assert s is not None and s.status == "completed" and s.n_completed == 5
        await recorder.aclose()
        assert recorder.stats.dropped_trials == 0
    assert SECRET not in caplog.text and SECRET not in repr(recorder) and SECRET not in str(recorder.stats)
    assert "history write failed" in caplog.text


async def test_recorder_drops_only_what_it_must(repo: Any) -> None:
    """A bounded queue: beyond max_pending the oldest writes are dropped and counted."""
    recorder = HistoryRecorder(repo, max_pending=3, sync_on_start=False)
    study = make_study("bounded")
    # Through the listener API only. None of these calls suspends, so the writer task they start
    # cannot run before the last one: nine trials arrive faster than anything is written.
    await recorder.on_study_start(study, context("bounded"))
    for t in study.trials:
        await recorder.on_trial_finished(study, t)
    assert recorder.pending == 3 and recorder.stats.dropped_trials == 6
    assert await recorder.flush(timeout=10)
    assert [t.number for t in await repo.get_trials("bounded")] == [6, 7, 8]


async def test_recorder_makes_records_and_summaries_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 8.7: the hooks only queue the Optuna trial; converting it (JSON-ready params, attributes,
    distributions) and summarizing the study run in threads, never on the loop's thread."""
    loop_thread = threading.get_ident()
    converted_in: list[int] = []
    summarized_in: list[int] = []
    convert, summarize = TrialRecord.from_frozen_trial.__func__, recorder_module.summarize_study

    def recording_convert(cls, trial):
        converted_in.append(threading.get_ident())
        return convert(cls, trial)

    def recording_summarize(*args, **kwargs):
        summarized_in.append(threading.get_ident())
        return summarize(*args, **kwargs)

    monkeypatch.setattr(TrialRecord, "from_frozen_trial", classmethod(recording_convert))
    monkeypatch.setattr(recorder_module, "summarize_study", recording_summarize)
    repo = InMemoryHistoryRepository()
    recorder = HistoryRecorder(repo, sync_on_start=False)
    study = make_study("off-loop")
    await recorder.on_study_start(study, context("off-loop"))
    for t in study.trials:
        await recorder.on_trial_finished(study, t)
    assert await recorder.flush(timeout=10)
    await recorder.on_study_end(study, result_for(study))
    assert len(await repo.get_trials("off-loop")) == 9
    assert (await repo.get_study("off-loop")).n_completed == 6  # type: ignore[union-attr]
    assert converted_in and loop_thread not in converted_in
    assert summarized_in and loop_thread not in summarized_in


async def test_a_trial_that_cannot_be_recorded_is_reported_and_the_others_are_written(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    convert = TrialRecord.from_frozen_trial.__func__

    def failing_on_trial_2(cls, trial):
        if trial.number == 2:
            raise ValueError("cannot record trial 2")
        return convert(cls, trial)

    monkeypatch.setattr(TrialRecord, "from_frozen_trial", classmethod(failing_on_trial_2))
    repo = InMemoryHistoryRepository()
    recorder = HistoryRecorder(repo, sync_on_start=False)
    study = make_study("one-bad")
    await recorder.on_study_start(study, context("one-bad"))
    for t in study.trials[:5]:
        await recorder.on_trial_finished(study, t)
    assert await recorder.flush(timeout=10)
    assert [t.number for t in await repo.get_trials("one-bad")] == [0, 1, 3, 4]
    assert recorder.pending == 0 and recorder.stats.dropped_trials == 0
    assert "cannot record trial 2" in (recorder.stats.last_error or "") and "cannot record trial 2" in caplog.text

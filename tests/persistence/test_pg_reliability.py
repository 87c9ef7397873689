"""Crash and restart behaviour with real processes and a real PostgreSQL restart (F16, F18)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import psycopg
import pytest
from optuna.trial import TrialState

from src.mlops.persistence import (
    HistoryRecorder,
    PostgresHistoryRepository,
    create_optuna_storage,
    create_pool,
    migrate,
    start_embedded_postgres,
)
from src.mlops.types import FAIL_REASON_ATTR, SOURCE_ATTR, OptimizationResult, StudyContext

from ._helpers import result_of, spawn

SPACE = {"x": optuna.distributions.FloatDistribution(-5, 5)}


def _result(study: optuna.Study, duration: float) -> OptimizationResult:
    done = study.get_trials(states=(TrialState.COMPLETE,))
    best = study.best_trial
    return OptimizationResult(
        study_name=study.study_name, directions=("minimize",), best_params=best.params, best_value=best.value,
        best_values=best.values, best_trial_number=best.number, n_trials=len(study.trials), n_completed=len(done),
        n_pruned=0, n_failed=0, duration_s=duration, stop_reason="n_trials",
    )


@pytest.mark.slow
async def test_postgres_restart_mid_study_loses_no_completed_trial(server_home: Callable[[], Path]) -> None:
    """Stop PostgreSQL (pg_ctl) while a study runs on the journal storage with the history recorder,
    start it again: the study finishes, every completed trial is in both stores exactly once."""
    n_trials = 40
    server = await asyncio.to_thread(start_embedded_postgres, server_home())  # a server of its own
    try:
        dsn = server.dsn()
        await migrate(dsn)
        storage = await asyncio.to_thread(create_optuna_storage, dsn, reconnect_timeout=60)
        study = await asyncio.to_thread(optuna.create_study, study_name="restart", storage=storage)
        context = StudyContext(study_name="restart", directions=("minimize",), algorithm="toy",
                               problem_type="regression", dataset_fingerprint="fp", n_trials=n_trials)
        old_pid = server.pid
        marks: dict[str, float] = {}

        def restart() -> None:
            server.stop(mode="fast")
            marks["stopped"] = time.monotonic()
            time.sleep(0.5)
            server.start()
            marks["started"] = time.monotonic()

        t0 = time.monotonic()
        async with await create_pool(dsn, max_size=2, connect_timeout=2) as db:
            recorder = HistoryRecorder(PostgresHistoryRepository(db), retry_initial=0.05, retry_max=0.3)
            await recorder.on_study_start(study, context)
            restarting: asyncio.Task[None] | None = None
            told_after_restart = 0
            for i in range(n_trials):
                trial = await asyncio.to_thread(study.ask, SPACE)
                await asyncio.sleep(0.03)  # "training"
                frozen = await asyncio.to_thread(study.tell, trial, (trial.params["x"] - 1) ** 2)
                await recorder.on_trial_finished(study, frozen)
                if i == 8:
                    restarting = asyncio.create_task(asyncio.to_thread(restart))
                if "started" in marks:
                    told_after_restart += 1
            assert restarting is not None
            await restarting
            await recorder.on_study_end(study, _result(study, time.monotonic() - t0))
            assert recorder.pending == 0 and recorder.stats.dropped_trials == 0
            assert told_after_restart > 0 and server.pid != old_pid  # it really restarted mid-study

            fresh = await asyncio.to_thread(
                lambda: optuna.load_study(study_name="restart", storage=create_optuna_storage(dsn)).trials
            )
            assert len(fresh) == n_trials and all(t.state == TrialState.COMPLETE for t in fresh)
            rows = await db.fetch(
                "SELECT t.trial_number, t.state FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id "
                "WHERE s.study_name = 'restart' ORDER BY 1"
            )
            assert [(r["trial_number"], r["state"]) for r in rows] == [(i, "COMPLETE") for i in range(n_trials)]
            assert await db.fetchval("SELECT n_completed FROM ml_hpo_studies WHERE study_name = 'restart'") == n_trials
    finally:
        await asyncio.to_thread(server.release)


@pytest.mark.slow
def test_kill_9_mid_study_then_resume_counts_every_trial_once(migrated_dsn: str) -> None:
    """SIGKILL a worker mid-study (journal storage + history recorder), restart it with the same
    study name: it reaps the trial the dead worker left RUNNING (FAIL "stale", params retried once)
    and ends with exactly n_trials COMPLETE trials, each once in Optuna's storage and in ml_hpo_trials."""
    n_trials = 24
    args = {"dsn": migrated_dsn, "study": "k9", "n_trials": n_trials, "seed": 0, "delay": 0.06}
    victim = spawn("kill-worker", args)
    assert victim.stdout is not None
    victim.stdout.readline()  # started
    storage = create_optuna_storage(migrated_dsn)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="k9", storage=storage).trials
        except KeyError:
            trials = []
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 8 and trials[-1].state == TrialState.RUNNING:
            break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert victim.returncode == -signal.SIGKILL

    result = result_of(spawn("kill-worker", {**args, "reap": True}), timeout=120)

    trials = optuna.load_study(study_name="k9", storage=create_optuna_storage(migrated_dsn)).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == n_trials
    assert all(t.state.is_finished() for t in trials)  # nothing left RUNNING
    assert [t.number for t in trials] == list(range(len(trials)))
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in stale] == result["reaped"] and len(stale) <= 1
    for t in stale:
        assert t.user_attrs[FAIL_REASON_ATTR] == "stale"
        retried = [c for c in complete if c.user_attrs.get(SOURCE_ATTR) == "retry"]
        # the retry reuses what the dead trial had suggested (killed between two suggests, it had fewer params)
        assert len(retried) == 1 and {k: retried[0].params[k] for k in t.params} == t.params

    with psycopg.connect(migrated_dsn) as con:
        rows = con.execute(
            "SELECT t.trial_number, t.state, t.fail_reason FROM ml_hpo_trials t "
            "JOIN ml_hpo_studies s ON s.id = t.study_id WHERE s.study_name = 'k9' ORDER BY 1"
        ).fetchall()
    assert [(n, s) for n, s, _ in rows] == [(t.number, t.state.name) for t in trials]
    assert sum(s == "COMPLETE" for _, s, _ in rows) == n_trials
    assert [r for _, s, r in rows if s == "FAIL"] == ["stale"] * len(stale)


@pytest.mark.slow
def test_worker_detects_logs_lost_in_a_postgres_crash(server_home: Callable[[], Path]) -> None:
    """sync_commit="results" lets non-result logs commit asynchronously; a PostgreSQL *crash* can drop
    them. A worker that had read such a log must notice when it reconnects, not diverge silently."""
    from src.mlops.errors import DatabaseError
    from src.mlops.persistence import PostgresJournalBackend
    from src.mlops.persistence.pg_sync import SyncConnection

    server = start_embedded_postgres(server_home())
    try:
        dsn = server.dsn()
        asyncio.run(migrate(dsn))
        with psycopg.connect(dsn, autocommit=True) as con:  # make the WAL writer lazy: the loss is certain
            con.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")
            con.execute("ALTER SYSTEM SET wal_writer_flush_after = '1GB'")
            con.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        key = create_optuna_storage(dsn).create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")  # log 0, durable
        a = PostgresJournalBackend(SyncConnection(dsn, reconnect_timeout=20), key)
        a.read_logs(0)
        a.append_logs([{"op_code": 5, "trial_id": 0, "worker_id": "a"}])  # asynchronous
        assert len(a.read_logs(1)) == 1  # the worker has seen log 1
        server.stop(mode="immediate")  # a crash: unflushed WAL is gone
        server.start()
        b = PostgresJournalBackend(SyncConnection(dsn), key)
        if len(b.read_logs(0)) == 2:
            # The lazy WAL writer flushed anyway: nothing was lost, and the first worker goes on
            # reading a log that agrees with what it saw (both outcomes are checked, none skipped).
            b.append_logs([{"op_code": 8, "trial_id": 0, "worker_id": "b"}])
            assert [log["worker_id"] for log in a.read_logs(2)] == ["b"]
            return
        assert len(b.read_logs(0)) == 1
        b.append_logs([{"op_code": 8, "trial_id": 0, "worker_id": "b"}])  # someone else takes number 1
        with pytest.raises(DatabaseError, match="no longer holds log 1"):
            a.read_logs(2)
    finally:
        server.release()

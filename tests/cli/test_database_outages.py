"""PostgreSQL trouble under a real ``hpo train`` (issue 9 items 4, 5, 6), on the embedded server of
a fresh HPO_HOME (these tests stop and start it, so they never use DATABASE_URL)."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import pytest

from src.cli.adapters import Store, open_checkpointer
from src.mlops.persistence import create_pool, start_embedded_postgres

from ._helpers import Running, env_for, postmaster_pid


async def test_checkpointer_setup_of_two_first_runs_at_once_does_not_deadlock(home):
    """The deadlock of issue 9 item 4, made certain: two setups of LangGraph's checkpoint schema on a
    fresh database, side by side. Before, the second blocked in pg_advisory_lock, a statement whose
    transaction the first one's CREATE INDEX CONCURRENTLY waited for: both hung until asyncpg's
    30 s command timeout ended one with an empty TimeoutError."""
    server = await asyncio.to_thread(start_embedded_postgres, home, cleanup="stop")
    try:
        pools = [await create_pool(server.dsn(), min_size=1, max_size=2) for _ in range(2)]
        try:
            async def first_run(db):
                async with open_checkpointer(Store(db, server.dsn()), wait_s=30) as (saver, _):
                    return await saver.aget_tuple({"configurable": {"thread_id": "none", "checkpoint_ns": ""}})

            started = time.monotonic()
            results = await asyncio.wait_for(asyncio.gather(*(first_run(db) for db in pools)), timeout=120)
            assert results == [None, None] and time.monotonic() - started < 25
        finally:
            for db in pools:
                await db.close()
    finally:
        await asyncio.to_thread(server.release)


@pytest.mark.slow
def test_two_first_runs_at_once_both_finish(tmp_path, home):
    """Before: one of two first runs ended 'error: run failed: TimeoutError:' and the other waited
    ~40 s -- one held the checkpoint-setup lock while its CREATE INDEX CONCURRENTLY waited for the
    other's blocked pg_advisory_lock statement."""
    env = env_for(home, embedded=True)
    args = ["train", "--dataset", "iris", "--algorithm", "random_forest", "--n-trials", "2", "--pruner", "none",
            "--no-mlflow", "--quiet"]
    started = time.monotonic()
    runs = [Running(home, *args, env=env) for _ in range(2)]
    results = [run.finish(timeout=400) for run in runs]
    elapsed = time.monotonic() - started
    for rc, out, err in results:
        assert rc == 0, err[-3000:]
        assert ": completed" in out, out
    assert elapsed < 300, elapsed


def _wait_down(home, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while postmaster_pid(home) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postmaster_pid(home) is None


@pytest.mark.slow
def test_a_short_postgres_restart_does_not_end_the_run(home):
    """Before: the journal reconnected but the LangGraph checkpointer's connection did not: the run
    ended 'OperationalError ... server closed the connection', exit 1, no thread id."""
    run = Running(home, "train", "--dataset", "breast_cancer", "--timeout", "20", "--no-mlflow",
                  env=env_for(home, embedded=True))
    run.wait_for_trials(2)
    server = start_embedded_postgres(home, cleanup="keep")  # attach: this process stops and starts it
    server.stop(mode="fast")
    _wait_down(home)
    time.sleep(8)
    server.start()
    rc, out, err = run.finish(timeout=300)
    assert rc == 0, err[-4000:]
    assert ": completed" in out and "is back after" in err, (out[-2000:], err[-3000:])
    assert "Traceback" not in err, err[-4000:]


@pytest.mark.slow
def test_postgres_staying_down_ends_the_run_in_bounded_time_with_one_message(home):
    """Before: a --timeout 40 run took 141 s to exit 1 and printed ~250 lines of repeated asyncpg
    pool tracebacks before the final line, which had no thread id."""
    window = 10
    run = Running(home, "train", "--dataset", "breast_cancer", "--timeout", "60", "--no-mlflow",
                  env=env_for(home, embedded=True, HPO_DB_OUTAGE_S=str(window)))
    run.wait_for_trials(2)
    lines_before = len(run.lines)
    server = start_embedded_postgres(home, cleanup="keep")
    stopped_at = time.monotonic()
    server.stop(mode="fast")
    try:
        rc, out, err = run.finish(timeout=120)
    finally:
        run.proc.send_signal(signal.SIGKILL) if run.proc.poll() is None else None
    took = time.monotonic() - stopped_at
    assert rc == 1, err[-4000:]
    assert window <= took <= window + 15, (took, err[-3000:])  # the documented bound: window + cleanup
    after = run.lines[lines_before:]
    errors = [line for line in after if line.startswith("error:")]
    assert len(errors) == 1 and "unreachable" in errors[0], after
    assert re.search(r"To resume once PostgreSQL is back: hpo train --thread-id \w+", err), err[-3000:]
    assert "Traceback" not in err and len(after) <= 8, "".join(after)

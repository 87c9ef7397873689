"""The composition root: the only place (with the graph's context wiring) that builds adapters.

* :func:`open_store` -- PostgreSQL (``DATABASE_URL`` or the embedded server in ``HPO_HOME``), an
  asyncpg pool, the migrations; on the way out the pool is closed and the embedded server released
  (the last process using it stops it).
* :func:`open_checkpointer` -- LangGraph's ``AsyncPostgresSaver`` on a psycopg *pool* that checks
  each connection before use, so a PostgreSQL restart costs a reconnect instead of the run; its
  schema is set up under the migration lock.
* :func:`run_services` -- everything a ``train``/``tune`` run uses: the store, the Optuna journal
  storage, the history recorder, the MLflow tracker, the checkpointer and the outage watch, closed
  in the right order, with the waits cut short when the database is gone; the long-lived heap is
  frozen while the run goes on (:mod:`.heap`: short garbage-collector pauses on the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from src.mlops.persistence import (
    ENV_DATABASE_URL,
    Database,
    EmbeddedPostgres,
    HistoryRecorder,
    PostgresHistoryRepository,
    PostgresOptunaStorage,
    create_optuna_storage,
    create_pool,
    hpo_home,
    migrate,
    migration_lock,
    resolve_database_url,
    start_embedded_postgres,
)

from .heap import SettledHeap, run_modules, settled_heap, tracker_modules, warm_imports
from .lifecycle import RunStopper, StopReason
from .outage import DatabaseWatch

__all__ = ["home_directory", "process_start", "Store", "open_store", "open_checkpointer", "RunServices",
           "run_services", "CLOSE_WAIT_S"]

_log = logging.getLogger("hpo")

#: how long closing waits for queued history writes (the database is up).
CLOSE_WAIT_S = 30.0
#: the same when the database is gone: what is queued is re-synced from the study on resume.
CLOSE_WAIT_DB_GONE_S = 0.5


def home_directory() -> Path:
    """``HPO_HOME`` (default ``./.hpo``), created."""
    home = hpo_home()
    home.mkdir(parents=True, exist_ok=True)
    return home


def process_start() -> float:
    """Epoch seconds at which this process started (a whole-run time budget counts from there,
    imports included); the current time when the platform cannot say.

    On Linux: now minus the process's age, from its start in clock ticks since boot
    (``/proc/self/stat``) and the uptime (``/proc/uptime``), both to 10 ms. psutil adds the start to
    the boot time, which Linux gives in whole seconds: the start came out up to 1 s early (0.36 s
    measured), and the study lost that much of its budget."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime
        if 0.0 <= age < 365 * 86400:
            return time.time() - age
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil missing or the platform refuses: count from now
        return time.time()


@dataclass
class Store:
    """The database of a command: the pool, its DSN (never printed) and the embedded server, if any."""

    db: Database
    dsn: str
    embedded: EmbeddedPostgres | None = None


@contextlib.asynccontextmanager
async def open_store(home: Path, *, apply_migrations: bool = True) -> AsyncIterator[Store]:
    """PostgreSQL with the migrations applied (unless ``apply_migrations`` is False)."""
    embedded = None
    if os.environ.get(ENV_DATABASE_URL):
        dsn = resolve_database_url()
    else:
        embedded = await asyncio.to_thread(start_embedded_postgres, home)
        dsn = embedded.dsn()
    try:
        db = await create_pool(dsn, min_size=1, max_size=4)
        try:
            if apply_migrations:
                applied = await migrate(db)
                if applied:
                    print(f"  applied migrations: {applied}", file=sys.stderr)
            yield Store(db, dsn, embedded)
        finally:
            await db.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.release)


@contextlib.asynccontextmanager
async def open_checkpointer(store: Store, *, wait_s: float) -> AsyncIterator[tuple[Any, Any]]:
    """``(AsyncPostgresSaver, its psycopg pool)`` in the store's database.

    The pool checks a connection before lending it (a connection the server closed in a restart is
    replaced) and waits up to ``wait_s`` for one while the server is down. The saver's own schema
    is set up under the migration lock, which waiters poll rather than block on: two first runs at
    once used to deadlock, one blocked in ``pg_advisory_lock`` while the other's ``CREATE INDEX
    CONCURRENTLY`` waited for that blocked statement to end.
    """
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        store.dsn, min_size=1, max_size=2, open=False, timeout=wait_s, reconnect_timeout=wait_s,
        name="hpo-checkpoints", check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row, "connect_timeout": 5,
                "application_name": "hpo-checkpoints"},
    )
    await pool.open(wait=True, timeout=30)
    try:
        saver = AsyncPostgresSaver(pool)
        async with migration_lock(store.db):
            await saver.setup()
        yield saver, pool
    finally:
        await pool.close(timeout=5)


def _tracker(home: Path) -> Any:
    from src.mlops.tracking import MLflowTracker, resolve_tracking_uri

    return MLflowTracker(resolve_tracking_uri(hpo_home=home), experiment_name="hpo")


@dataclass
class RunServices:
    """What a ``train``/``tune`` run uses; built by :func:`run_services`."""

    home: Path
    stopper: RunStopper
    store: Store | None = None
    #: the Optuna storage in PostgreSQL (to stop its retries when the run gives up on the database)
    journal: PostgresOptunaStorage | None = None
    #: the Optuna storage over ``journal`` (``None``: in memory)
    optuna_storage: Any = None
    #: the history repository (the graph reads digests and runs from it; the recorder writes it)
    history: PostgresHistoryRepository | None = None
    recorder: HistoryRecorder | None = None
    tracker: Any = None
    #: the run's final status as the command saw it ("completed", "failed"; None: it stopped early)
    final_status: str | None = None
    checkpointer: Any = None
    checkpoint_pool: Any = None
    db_gone: bool = False
    closing_seconds: float = field(default=0.0)
    #: the heap settling for the run (``heap.settled`` ends once the long-lived objects are frozen)
    heap: SettledHeap | None = None

    @property
    def listeners(self) -> list[Any]:
        """The trial listeners the context carries (the tracker travels apart, as ``tracker``)."""
        return [self.recorder] if self.recorder is not None else []

    def database_gone(self, message: str) -> None:
        """The outage watch gave up: stop the run, and stop the parts still waiting for the database."""
        self.db_gone = True
        if self.journal is not None:
            self.journal.connection.reconnect_timeout = 1.0  # operations still to come (failing trials) fail fast
        if self.checkpoint_pool is not None:
            self.checkpoint_pool.timeout = 1.0
        self.stopper.request(StopReason(None, message))

    async def close_listeners(self) -> None:
        """Flush and close the recorder (marking its unfinished studies interrupted when the run
        was stopped) and the tracker (ending an MLflow run the graph left open: FAILED for a failed
        run, KILLED for one that stopped early)."""
        started = time.monotonic()
        wait = CLOSE_WAIT_DB_GONE_S if self.db_gone else CLOSE_WAIT_S
        try:
            if self.recorder is not None:
                if self.stopper.reason is not None:
                    self.recorder.mark_interrupted()
                await self.recorder.aclose(timeout=wait)
        finally:
            if self.tracker is not None:
                if self.tracker.run_open:
                    await self.tracker.end_run("FAILED" if self.final_status == "failed" else "KILLED")
                await self.tracker.aclose()
            self.closing_seconds = round(time.monotonic() - started, 2)


@contextlib.asynccontextmanager
async def run_services(home: Path, stopper: RunStopper, *, use_db: bool, use_mlflow: bool, checkpoints: bool,
                       outage_s: float, saves_model: bool = False) -> AsyncIterator[RunServices]:
    """Open what a run needs; on the way out close it in order (listeners, watch, checkpointer, store).
    The run's lazy imports (``saves_model``: also the model saving and logging of ``train``) are
    done in a thread from the moment the database starts, then the heap is frozen for the run, in
    the background (:func:`.heap.settled_heap`)."""
    imports = asyncio.ensure_future(asyncio.to_thread(warm_imports, run_modules(saves_model=saves_model)))
    async with contextlib.AsyncExitStack() as stack:
        services = RunServices(home=home, stopper=stopper)
        if use_db:
            store = services.store = await stack.enter_async_context(open_store(home))
            services.journal = services.optuna_storage = await asyncio.to_thread(
                create_optuna_storage, store.dsn, reconnect_timeout=outage_s)
            stack.callback(services.journal.close)
            services.history = PostgresHistoryRepository(store.db)
            services.recorder = HistoryRecorder(services.history)
            if checkpoints:
                services.checkpointer, services.checkpoint_pool = await stack.enter_async_context(
                    open_checkpointer(store, wait_s=outage_s))
            watch = DatabaseWatch(store.dsn, window=outage_s, on_outage=services.database_gone)
            watch_task = asyncio.create_task(watch.run(), name="hpo-database-watch")
            stack.push_async_callback(_cancel, watch_task)
        if use_mlflow:
            services.tracker = _tracker(home)
        services.heap = await stack.enter_async_context(settled_heap(
            imports, tracker=services.tracker, tracker_imports=tracker_modules(saves_model=saves_model)))
        try:
            yield services
        finally:
            await services.close_listeners()


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task

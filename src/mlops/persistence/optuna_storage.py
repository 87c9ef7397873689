"""The Optuna study itself in PostgreSQL: ``JournalStorage`` over an append-only log table.

Why a journal and not ``RDBStorage``: Optuna's RDB storage issues ~41 statements and 12 commits per
trial (50-120 ms per trial measured here); a journal appends one row per storage operation and reads
only the rows it has not seen yet, about 1 ms per trial on top of in-memory (``bench/bench_storage.py``).
It is durable (every append is a committed, ``synchronous_commit`` transaction), shared by any number
of processes and machines, and survives a PostgreSQL restart (operations wait, reconnect and retry).

Log order: see ``database/migrations/002_optuna_journal.sql``. Appends go through
``optuna_journal_append(append_id, bodies, durable, read_from)``, which serializes writers with an
advisory transaction lock, numbers logs without gaps in commit order (``append_id`` makes a retried
append idempotent) and returns the logs this process has not read yet, so the read Optuna does after
every write costs no second round trip.

optuna-dashboard opens it through its Python API: ``optuna_dashboard.run_server(create_optuna_storage(url))``
(or ``optuna_dashboard.wsgi(storage)``). Its command line would treat a ``postgresql://`` URL as an
RDBStorage and not see the journal.

No snapshots (Optuna's ``BaseJournalSnapshot``): they are pickles, and unpickling data read from a
database executes code. Replaying the log of a 1000-trial study takes well under a second.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import psycopg
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from ..errors import ConfigurationError, DatabaseError, DatabaseUnavailableError, MigrationError
from .database import normalize_dsn, parse_dsn, redact_dsn, redact_secrets

__all__ = ["JOURNAL_TABLE", "JOURNAL_LOCK_KEY", "PostgresJournalBackend", "create_optuna_storage"]

_log = logging.getLogger(__name__)

JOURNAL_TABLE = "optuna_journal_logs"
#: advisory lock key taken by ``optuna_journal_append`` ("hpo_jrnl" in ASCII).
JOURNAL_LOCK_KEY = int.from_bytes(b"hpo_jrnl", "big")

_T = TypeVar("_T")
SyncCommit = Literal["results", "all"]
_FORK_ORPHANS: list[Any] = []  # connections inherited through fork(): never closed (that would end the parent's session)
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


class PostgresJournalBackend(BaseJournalBackend):
    """Optuna journal backend on the ``optuna_journal_logs`` table (thread- and process-safe).

    Args:
        dsn: ``postgresql://`` URL (the embedded server's unix-socket URL works too; a SQLAlchemy
            ``postgresql+psycopg://`` form is accepted).
        connect_timeout: seconds to wait for one connection attempt.
        reconnect_timeout: how long an operation keeps retrying while the server is unreachable
            (e.g. restarting) before raising :class:`DatabaseUnavailableError`.
        statement_timeout: server-side limit of one statement, seconds.
        sync_commit: ``"results"`` (default) waits for the WAL flush only for logs that record a
            result or a decision -- a finished trial state, an enqueued trial, study creation and
            attributes; the others (trial creation, params, attributes, intermediate values) commit
            asynchronously and become durable with the next synchronous commit of any worker, or
            within ``wal_writer_delay`` (200 ms). A PostgreSQL *crash* can thus drop the last
            moments of running trials, never a told result; a worker that had read the dropped logs
            notices on reconnect and raises. ``"all"`` flushes every log (1-2 ms each here).
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        reconnect_timeout: float = 60.0,
        statement_timeout: float = 30.0,
        sync_commit: SyncCommit = "results",
        application_name: str = "hpo-optuna-journal",
    ) -> None:
        dsn = normalize_dsn(dsn)
        self._info = parse_dsn(dsn)
        if sync_commit not in ("results", "all"):
            raise ConfigurationError(f"sync_commit must be 'results' or 'all', got {sync_commit!r}")
        self.sync_commit: SyncCommit = sync_commit
        for name, value in (("connect_timeout", connect_timeout), ("reconnect_timeout", reconnect_timeout),
                            ("statement_timeout", statement_timeout)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        self._dsn = dsn
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.statement_timeout = statement_timeout
        self.application_name = application_name
        self._init_runtime()
        self._run(self._check_schema, retry=False)

    # -- pickling (JournalStorage pickles its backend for multiprocessing) ------------------------
    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._seen = 0  # number of logs this process has read, and the append_id of the last one:
        self._last_append_id: uuid.UUID | None = None  # checked after a reconnect
        self._had_connection = False
        self._prefetched: tuple[int, list[tuple[int, uuid.UUID, str]]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_lock", "_conn", "_pid", "_seen", "_last_append_id", "_had_connection", "_prefetched"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"PostgresJournalBackend({redact_dsn(self._dsn)!r})"

    # -- BaseJournalBackend --------------------------------------------------------------------
    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        with self._lock:
            prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == log_number_from:
            rows = prefetched[1]  # read by the append that just committed (same round trip)
        else:

            def op(conn: psycopg.Connection[Any]) -> list[tuple[int, uuid.UUID, str]]:
                return conn.execute(
                    f"SELECT log_number, append_id, body FROM {JOURNAL_TABLE} WHERE log_number >= %s ORDER BY log_number",
                    (log_number_from,),
                ).fetchall()

            rows = self._run(op)
        expected = log_number_from
        logs = []
        for number, append_id, body in rows:
            if number != expected:
                raise DatabaseError(
                    f"journal {JOURNAL_TABLE} at {self._info.endpoint} has a gap: expected log {expected}, "
                    f"found {number}; the table was modified outside optuna_journal_append()"
                )
            logs.append(json.loads(body))
            expected += 1
        if rows:
            with self._lock:
                if expected > self._seen:
                    self._seen, self._last_append_id = expected, rows[-1][1]
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if not logs:
            return
        append_id = uuid.uuid4()
        bodies = [json.dumps(log) for log in logs]
        durable = self.sync_commit == "all" or any(_records_result(log) for log in logs)
        with self._lock:
            read_from = self._seen  # JournalStorage reads from here right after appending

        def op(conn: psycopg.Connection[Any]) -> list[tuple[int, uuid.UUID, str]]:
            return conn.execute(
                "SELECT * FROM optuna_journal_append(%s, %s, %s, %s)", (append_id, bodies, durable, read_from)
            ).fetchall()

        rows = self._run(op)  # idempotent: a retry after a lost connection finds append_id, inserts nothing
        with self._lock:
            self._prefetched = (read_from, rows)

    # -- connection handling -------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=max(1, math.ceil(self.connect_timeout)),
            application_name=self.application_name,
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=3,
            keepalives_count=3,
        )
        # (generic plans are fine: "log_number >= $1 ORDER BY log_number" stays an index scan, checked
        # at 500k logs, since log numbers are inserted in index order)
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false), "
            "set_config('default_transaction_isolation', 'read committed', false)",
            (f"{int(self.statement_timeout * 1000)}ms",),
        )
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():  # forked child: the inherited socket belongs to the parent
            if self._conn is not None:
                _FORK_ORPHANS.append(self._conn)
            self._conn, self._pid, self._had_connection = None, os.getpid(), False
        if self._conn is None or self._conn.closed:
            conn = self._connect()
            if self._had_connection and self._seen:  # reconnected: is the last log we read still there?
                row = conn.execute(
                    f"SELECT append_id FROM {JOURNAL_TABLE} WHERE log_number = %s", (self._seen - 1,)
                ).fetchone()
                if row is None or row[0] != self._last_append_id:
                    conn.close()
                    raise DatabaseError(
                        f"journal {JOURNAL_TABLE} at {self._info.endpoint} no longer holds log {self._seen - 1} that "
                        "this process read: PostgreSQL lost recent transactions (a crash with unflushed "
                        "asynchronous commits, or a restore from backup); restart this process, it will "
                        "replay the journal as it is now"
                    )
            self._conn, self._had_connection = conn, True
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        ok = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regproc('optuna_journal_append') IS NOT NULL", (JOURNAL_TABLE,)
        ).fetchone()[0]
        if not ok:
            raise MigrationError(
                f"the Optuna journal table {JOURNAL_TABLE} is missing in database {self._info.database!r} at "
                f"{self._info.endpoint}; apply the migrations first (`hpo db migrate`, or "
                "`await src.mlops.persistence.migrate(dsn)`)"
            )

    def _run(self, fn: Callable[[psycopg.Connection[Any]], _T], *, retry: bool = True) -> _T:
        """Run ``fn`` on the connection; on connection loss reconnect and retry for ``reconnect_timeout`` s
        (read at every retry: lowering it makes waiting operations give up within a second)."""
        lost_at: float | None = None
        delay = 0.1
        while True:
            with self._lock:
                try:
                    return fn(self._connection())
                except _CONNECTION_ERRORS as e:
                    self._discard()
                    error: BaseException = e
                except psycopg.Error as e:
                    raise DatabaseError(
                        f"Optuna journal on PostgreSQL at {self._info.endpoint} failed: "
                        f"[{getattr(e, 'sqlstate', None)}] {redact_secrets(str(e)).strip()}"
                    ) from None
            if not retry:
                raise DatabaseUnavailableError(
                    f"PostgreSQL at {self._info.endpoint} (database {self._info.database!r}) is unreachable for the "
                    f"Optuna journal ({_brief(error)}); check the URL and that the server is running"
                ) from None
            now = time.monotonic()
            if lost_at is None:
                lost_at = now
                _log.warning("Optuna journal: lost PostgreSQL at %s (%s); retrying for up to %g s",
                             self._info.endpoint, _brief(error), self.reconnect_timeout)
            deadline = lost_at + self.reconnect_timeout
            if now >= deadline:
                raise DatabaseUnavailableError(
                    f"PostgreSQL at {self._info.endpoint} (database {self._info.database!r}) is unreachable for the "
                    f"Optuna journal ({_brief(error)}); gave up after reconnect_timeout={self.reconnect_timeout:g} s"
                ) from None
            time.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 1.0)


_STUDY_OPS = {0, 1, 2, 3}  # JournalOperation: CREATE_STUDY, DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR
_CREATE_TRIAL, _SET_TRIAL_STATE_VALUES = 4, 6
_RECORDED_STATES = {1, 2, 3, 4}  # TrialState: COMPLETE, PRUNED, FAIL, WAITING


def _records_result(log: dict[str, Any]) -> bool:
    """Whether a journal log must be flushed before append_logs returns (see ``sync_commit``)."""
    op = log.get("op_code")
    if op in _STUDY_OPS:
        return True
    if op == _CREATE_TRIAL:  # a template trial (enqueue_trial / add_trial) carries its state
        return "state" in log
    if op == _SET_TRIAL_STATE_VALUES:
        return log.get("state") in _RECORDED_STATES
    return False


def _brief(e: BaseException) -> str:
    text = redact_secrets(str(e)).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def create_optuna_storage(
    dsn: str,
    *,
    connect_timeout: float = 5.0,
    reconnect_timeout: float = 60.0,
    statement_timeout: float = 30.0,
    sync_commit: SyncCommit = "results",
) -> JournalStorage:
    """A durable Optuna storage in the PostgreSQL at ``dsn``, shareable by many processes.

    The schema must exist (``await migrate(dsn)``). Pass the result as ``storage=`` to
    ``optuna.create_study`` / ``load_study`` or to the engine's ``create_study``.
    """
    return JournalStorage(
        PostgresJournalBackend(
            dsn,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
            statement_timeout=statement_timeout,
            sync_commit=sync_commit,
        )
    )

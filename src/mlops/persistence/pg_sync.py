"""One synchronous psycopg connection shared by threads, that survives a PostgreSQL restart.

Used where the caller is synchronous code running in a worker thread: Optuna's storage calls (the
per-study journals) and the trial-slot ledger, whose reservation transaction spans Optuna's
``study.ask()``. The asyncio side of the engine uses asyncpg pools instead (``database.py``).

* Every operation runs under one lock, on one connection, opened on first use.
* On connection loss the operation is retried on a new connection for up to ``reconnect_timeout``
  seconds (the server may be restarting), then :class:`DatabaseUnavailableError` is raised. An
  operation must therefore be safe to run again (idempotent, or one transaction).
* ``generation`` counts the connections opened, so a caller can tell that it is on a new session.
* A forked child never uses (or closes) the parent's socket: it opens its own.
* Errors never carry the password.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from ..errors import ConfigurationError, DatabaseError, DatabaseUnavailableError
from ..redaction import redact_dsn, redact_secrets
from .database import normalize_dsn, parse_dsn

__all__ = ["SyncConnection"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
_FORK_ORPHANS: list[Any] = []  # connections inherited through fork(): never closed (that would end the parent's session)


class SyncConnection:
    """A thread-safe, reconnecting psycopg connection (autocommit; use ``conn.transaction()``).

    Args:
        dsn: ``postgresql://`` URL (a SQLAlchemy ``postgresql+psycopg://`` form is accepted).
        connect_timeout: seconds to wait for one connection attempt.
        reconnect_timeout: how long an operation keeps retrying while the server is unreachable.
        statement_timeout: server-side limit of one statement, seconds.
        application_name: shown in ``pg_stat_activity``.
        what: names the user of the connection in error messages.
        on_connect: called with each new connection before it is used (session setup).
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        reconnect_timeout: float = 60.0,
        statement_timeout: float = 30.0,
        application_name: str = "hpo",
        what: str = "HPO storage",
        on_connect: Callable[[psycopg.Connection[Any]], None] | None = None,
    ) -> None:
        for name, value in (("connect_timeout", connect_timeout), ("reconnect_timeout", reconnect_timeout),
                            ("statement_timeout", statement_timeout)):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        self.dsn = normalize_dsn(dsn)
        self.info = parse_dsn(self.dsn)
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.statement_timeout = statement_timeout
        self.application_name = application_name
        self.what = what
        self.on_connect = on_connect
        self._init_runtime()

    # -- pickling: settings travel, the socket does not ----------------------------------------
    def _init_runtime(self) -> None:
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self.generation = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_lock", "_conn", "_pid", "generation"):
            state.pop(k, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"SyncConnection({redact_dsn(self.dsn)!r}, application_name={self.application_name!r})"

    # -- use -----------------------------------------------------------------------------------
    def run(self, fn: Callable[[psycopg.Connection[Any]], _T], *, retry: bool = True) -> _T:
        """``fn(connection)`` under the lock; on connection loss reconnect and run it again."""
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
                    if self._conn is not None and (self._conn.closed or self._conn.broken):
                        # the server ended the session (e.g. idle_in_transaction_session_timeout, a
                        # terminated backend): as good as a lost connection
                        self._discard()
                        error = e
                    else:
                        raise DatabaseError(
                            f"{self.what} on PostgreSQL at {self.info.endpoint} failed: "
                            f"[{getattr(e, 'sqlstate', None)}] {redact_secrets(str(e)).strip()}"
                        ) from None
            if not retry:
                raise DatabaseUnavailableError(
                    f"PostgreSQL at {self.info.endpoint} (database {self.info.database!r}) is unreachable for the "
                    f"{self.what} ({brief_error(error)}); check the URL and that the server is running"
                ) from None
            now = time.monotonic()
            if lost_at is None:
                lost_at = now
                _log.warning("%s: lost PostgreSQL at %s (%s); retrying for up to %g s",
                             self.what, self.info.endpoint, brief_error(error), self.reconnect_timeout)
            # read at every retry: a caller that gives up on the database lowers it, and waiting
            # operations then fail within a second
            deadline = lost_at + self.reconnect_timeout
            if now >= deadline:
                raise DatabaseUnavailableError(
                    f"PostgreSQL at {self.info.endpoint} (database {self.info.database!r}) is unreachable for the "
                    f"{self.what} ({brief_error(error)}); gave up after reconnect_timeout={self.reconnect_timeout:g} s"
                ) from None
            time.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 1.0)

    def close(self) -> None:
        """Close the connection (a later ``run`` opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    @property
    def is_open(self) -> bool:
        return self._conn is not None and not self._conn.closed

    # -- internals ------------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._pid != os.getpid():  # forked child: the inherited socket belongs to the parent
            if self._conn is not None:
                _FORK_ORPHANS.append(self._conn)
            self._conn, self._pid = None, os.getpid()
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self.connect_timeout)),
                application_name=self.application_name,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=3,
                keepalives_count=3,
            )
            try:
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, false), "
                    "set_config('default_transaction_isolation', 'read committed', false)",
                    (f"{int(self.statement_timeout * 1000)}ms",),
                )
                if self.on_connect is not None:
                    self.on_connect(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self.generation += 1
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass


def brief_error(e: BaseException) -> str:
    """``Type: first line`` of an error, without secrets."""
    text = redact_secrets(str(e)).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")

"""The trial ledger in PostgreSQL: exact budgets and leases for workers on any number of hosts.

Implements :class:`~src.mlops.trial_slots.TrialSlots` on the tables of migration 003
(``hpo_workers``, ``hpo_trial_slots``, view ``hpo_worker_leases``) for studies kept in a
:class:`~.optuna_storage.PostgresOptunaStorage` (a study's Optuna id is its ``study_key``).

* One worker = one row of ``hpo_workers`` and one database session, opened on first use. The
  session holds an advisory lock naming the worker for as long as it lives, so the database sees
  at once when a worker's process is gone (its connection closes with it, on any host).
* The lease: ``expires_at = now() + lease_duration``, renewed by the heartbeat; all times are the
  server's (``now()``), never a host's clock, so clock skew and time zones do not matter.
* A worker's lease has lapsed (its RUNNING trials are stale) when it was closed, when it expired,
  or -- without waiting for the expiry -- when its session has ended and it has missed two
  heartbeats since it last renewed on this server incarnation (``hpo_worker_leases``). A frozen or
  partitioned host keeps its session: its trials are judged by the lease alone, and a server
  restart ends every session: then too only the lease counts.
* A reservation is one transaction holding the study's advisory transaction lock: reconcile,
  count, ``study.ask()`` (through the storage's own connection, committed first) and the slot's
  INSERT. A worker killed before the COMMIT leaves a RUNNING trial with no slot, which the next
  worker to take the lock fails as stale (``reaps_unslotted``): no budget slot leaks. A worker
  frozen inside its reservation holds the lock for one lease at most: the server ends a session
  idle in a transaction for that long (``idle_in_transaction_session_timeout``).
* Round trips per trial: BEGIN + the lock (with this worker's finished slots, queued by ``finish``)
  in one, the survey in one, the new slot + COMMIT in one. The ledger's commits do not wait for the
  WAL flush: what a server crash could drop, reconciling rebuilds from the journal.

Not for pgbouncer in transaction-pooling mode (session advisory locks); session pooling is fine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import optuna
import psycopg
from optuna.trial import FrozenTrial
from psycopg import sql
from psycopg.pq import TransactionStatus

from ..trial_slots import Survey, TrialSlots, uses_budget
from ..types import FAIL_REASON_ATTR
from ..redaction import redact_dsn
from .database import normalize_dsn
from .pg_sync import SyncConnection

__all__ = ["PostgresTrialSlots", "STUDY_LOCK_NAMESPACE", "WORKER_LOCK_NAMESPACE", "lease_states"]

_T = TypeVar("_T")

#: first key of the advisory transaction lock of a study's slots ('hpos'); the second is the study key
STUDY_LOCK_NAMESPACE = int.from_bytes(b"hpos", "big")
#: first key of the session lock a live worker holds ('hpow'); the second is worker_key % (2**31 - 1)
WORKER_LOCK_NAMESPACE = int.from_bytes(b"hpow", "big")
_INT4 = 2**31 - 1


_SETTLE = ("UPDATE hpo_trial_slots SET state = %s, fail_reason = %s, uses_budget = %s, finished_at = now() "
           "WHERE study_key = %s AND trial_number = %s AND state = 'RUNNING'")


def _batch(statements: list[tuple[str, tuple[Any, ...]]]) -> sql.Composed:
    """Statements with their values inlined as literals, sent as one query (one round trip)."""
    return sql.SQL("; ").join(sql.SQL(text.replace("%s", "{}")).format(*(sql.Literal(v) for v in values))
                              for text, values in statements)


class _PgTransaction:
    def __init__(self, conn: psycopg.Connection[Any], study_key: int, worker_key: int) -> None:
        self.conn, self.study_key, self.worker_key = conn, study_key, worker_key
        self.confirmed: set[int] = set()
        #: statements sent with the COMMIT (one round trip): this worker's new slot
        self.deferred: list[tuple[str, tuple[Any, ...]]] = []

    def survey(self, numbers: Sequence[int]) -> Survey:
        lapsed, known, used, running = self.conn.execute(
            "SELECT (SELECT array_agg(s.trial_number) FROM hpo_trial_slots s "
            "        JOIN hpo_worker_leases w ON w.worker_key = s.worker_key "
            "        WHERE s.study_key = %(study)s AND s.state = 'RUNNING' AND s.worker_key <> %(me)s "
            "          AND w.lapse_reason IS NOT NULL), "
            "       (SELECT array_agg(trial_number) FROM hpo_trial_slots "
            "        WHERE study_key = %(study)s AND trial_number = ANY(%(numbers)s)), "
            "       count(*) FILTER (WHERE uses_budget), "
            "       count(*) FILTER (WHERE state = 'RUNNING' AND worker_key IS NOT NULL AND worker_key <> %(me)s) "
            "FROM hpo_trial_slots WHERE study_key = %(study)s",
            {"study": self.study_key, "me": self.worker_key, "numbers": list(numbers)}).fetchone()
        have = set(known or ())
        self.confirmed |= have
        return Survey([(n, True) for n in lapsed or ()], have, int(used), int(running))

    def add(self, number: int, state: str, reason: str | None, uses_budget: bool, *, mine: bool) -> None:
        insert = ("INSERT INTO hpo_trial_slots (study_key, trial_number, worker_key, state, fail_reason, uses_budget, "
                  "finished_at) VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s = 'RUNNING' THEN NULL ELSE now() END)",
                  (self.study_key, number, self.worker_key if mine else None, state, reason, uses_budget, state))
        if mine:  # the reservation's last statement: it travels with the COMMIT
            self.deferred.append(insert)
        else:
            self.conn.execute(*insert)
        self.confirmed.add(number)

    def settle(self, number: int, state: str, reason: str | None, uses_budget: bool) -> None:
        self.conn.execute(_SETTLE, (state, reason, uses_budget, self.study_key, number))

    def usage(self) -> tuple[int, int]:
        used, running = self.conn.execute(
            "SELECT count(*) FILTER (WHERE uses_budget), "
            "count(*) FILTER (WHERE state = 'RUNNING' AND worker_key IS NOT NULL AND worker_key <> %s) "
            "FROM hpo_trial_slots WHERE study_key = %s", (self.worker_key, self.study_key)).fetchone()
        return int(used), int(running)


class PostgresTrialSlots(TrialSlots):
    """This worker's ledger in the PostgreSQL at ``dsn`` (the database of the studies' storage).

    ``host`` names the worker's host in ``hpo_workers`` and in trials' ``worker_id`` (default: the
    host name); liveness never depends on it.
    """

    reaps_unslotted = True

    def __init__(self, dsn: str, *, worker_id: str, heartbeat_interval: float = 2.0, lease_duration: float = 60.0,
                 host: str | None = None, connect_timeout: float = 5.0, reconnect_timeout: float = 60.0) -> None:
        super().__init__(worker_id=worker_id, heartbeat_interval=heartbeat_interval, lease_duration=lease_duration)
        self.host = host or socket.gethostname()
        self.worker_key: int | None = None
        self.connection = SyncConnection(dsn, connect_timeout=connect_timeout, reconnect_timeout=reconnect_timeout,
                                         application_name="hpo-worker", what="trial ledger",
                                         on_connect=self._on_connect)
        # finished slots not written yet: they go with this worker's next reservation, or ``flush``
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._pending_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresTrialSlots({redact_dsn(self.connection.dsn)!r}, worker_id={self.worker_id!r})"

    def _on_connect(self, conn: psycopg.Connection[Any]) -> None:
        """Register on the first connection; on every connection take the lock naming this worker's session."""
        # Nothing here needs to wait for the WAL flush: a slot lost in a server crash is rebuilt from
        # the journal (an unslotted RUNNING trial is an orphan; a finished one is adopted or settled),
        # and a lost renewal only makes the lease look shorter until the next beat.
        conn.execute("SET synchronous_commit = off")
        # a worker frozen (or cut off) inside a reservation must not hold the study's lock for long:
        # the server ends its session once it has been idle in the transaction for a lease
        conn.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                     (f"{int(self.lease_duration * 1000)}ms",))
        if self.worker_key is None:
            self.worker_key = int(conn.execute(
                "INSERT INTO hpo_workers (worker_id, host, pid, heartbeat_s, lease_s, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING worker_key",
                (self.worker_id, self.host, os.getpid(), self.heartbeat_interval, self.lease_duration,
                 self.lease_duration)).fetchone()[0])
        conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (WORKER_LOCK_NAMESPACE, self.worker_key % _INT4))
        # a lease renewed after the lock is taken: "session ended" may be judged from now on
        conn.execute("UPDATE hpo_workers SET renewed_at = now(), expires_at = now() + make_interval(secs => lease_s) "
                     "WHERE worker_key = %s", (self.worker_key,))

    @property
    def _key(self) -> int:
        assert self.worker_key is not None  # set by _on_connect before any operation runs
        return self.worker_key

    def _in_transaction(self, study: optuna.Study, fn: Callable[[Any], _T]) -> _T:
        """BEGIN, this worker's finished slots and the study's lock in one round trip; ``fn``; this
        worker's new slot and COMMIT in another. (One multi-statement query each: in pipeline mode
        the server would not arm idle_in_transaction_session_timeout.)"""
        study_key = study._study_id  # noqa: SLF001 - PostgresOptunaStorage: the study's key

        def op(conn: psycopg.Connection[Any]) -> _T:
            pending = self._take_pending()
            try:
                conn.execute(_batch([
                    ("BEGIN", ()), *pending,
                    # waiting for the lock may outlast statement_timeout, up to a frozen holder's end
                    ("SELECT set_config('statement_timeout', %s, true)", (f"{int(2 * self.lease_duration * 1000)}ms",)),
                    ("SELECT pg_advisory_xact_lock(%s, %s)", (STUDY_LOCK_NAMESPACE, study_key)),
                    ("SELECT set_config('statement_timeout', %s, true)",
                     (f"{int(self.connection.statement_timeout * 1000)}ms",)),
                ]))
                txn = _PgTransaction(conn, study_key, self._key)
                out = fn(txn)
                conn.execute(_batch([*txn.deferred, ("COMMIT", ())]))
                return out
            except BaseException:
                with self._pending_lock:
                    self._pending[:0] = pending  # not written: they go with the next attempt
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise

        return self.connection.run(op)

    def _take_pending(self) -> list[tuple[str, tuple[Any, ...]]]:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        return pending

    def renew(self) -> None:
        self.connection.run(lambda conn: conn.execute(
            "UPDATE hpo_workers SET renewed_at = now(), expires_at = now() + make_interval(secs => lease_s) "
            "WHERE worker_key = %s", (self._key,)))

    def finish(self, study: optuna.Study, number: int, frozen: FrozenTrial) -> None:
        """Queue the slot's final state; it is written with this worker's next reservation (no round
        trip of its own) or by ``flush``. Until then the slot reads RUNNING under a live lease: other
        workers leave it alone, and if this worker dies first, reconciling takes the state from Optuna."""
        with self._pending_lock:
            self._pending.append((_SETTLE, (frozen.state.name, frozen.user_attrs.get(FAIL_REASON_ATTR),
                                            uses_budget(frozen), study._study_id, number)))  # noqa: SLF001

    def flush(self) -> None:
        pending = self._take_pending()
        if not pending:
            return

        try:
            self.connection.run(lambda conn: conn.execute(_batch(pending)), retry=False)
        except Exception:
            with self._pending_lock:
                self._pending[:0] = pending
            raise

    def close(self) -> None:
        """Write what is queued, mark this worker stopped and close its session (a no-op if it never
        connected)."""
        if self.worker_key is not None and self.connection.is_open:
            try:
                self.flush()
                self.connection.run(lambda conn: conn.execute(
                    "UPDATE hpo_workers SET stopped_at = now() WHERE worker_key = %s", (self.worker_key,)), retry=False)
            except Exception:  # noqa: BLE001 - closing anyway: reconciling and the session's end tell the same
                pass
        self.connection.close()


def lease_states(dsn: str) -> list[dict[str, Any]]:
    """Every worker of the database with its lease state (``lapse_reason`` None: alive)."""
    with psycopg.connect(normalize_dsn(dsn), autocommit=True) as conn:
        cur = conn.execute("SELECT worker_key, worker_id, host, pid, renewed_at, expires_at, stopped_at, lapse_reason "
                           "FROM hpo_worker_leases ORDER BY worker_key")
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


"""The Optuna studies themselves in PostgreSQL: one append-only journal per study.

Why a journal and not ``RDBStorage``: Optuna's RDB storage issues ~41 statements and 12 commits per
trial (50-120 ms per trial measured here); a journal appends one row per storage operation and reads
only the rows it has not seen yet, a few ms per trial on top of in-memory (``bench/bench_storage.py``).
It is durable (results are committed synchronously), shared by any number of processes and
machines, and survives a PostgreSQL restart (operations wait, reconnect and retry).

Why one journal per study (``database/migrations/003_study_journals_and_trial_slots.sql``): Optuna's
``JournalStorage`` replays one log holding every study, so opening any study would read the logs of
every study ever run in the database, and one lock would serialize the appends of unrelated studies.
:class:`PostgresOptunaStorage` is an Optuna storage that keeps a directory of studies
(``optuna_journal_studies``) and opens, per study, a ``JournalStorage`` over that study's log only:

* opening study X reads X's logs (time flat in the number of other studies);
* appends to different studies take different locks;
* a study's Optuna id is its ``study_key``; trial ids are ``study_key * 2**28 + n``, unique in the
  database, so a trial id alone routes a call to its study;
* a process keeps at most ``max_open_studies`` replayed studies in memory (least recently used go).

Log order within a study: ``optuna_journal_append(study_key, append_id, bodies, op_codes, durable,
read_from)`` serializes the study's writers with an advisory transaction lock, numbers logs without
gaps in commit order (``append_id`` makes a retried append idempotent) and returns the logs this
process has not read yet, so the read Optuna does after every write costs no second round trip.

optuna-dashboard opens it through its Python API: ``optuna_dashboard.run_server(create_optuna_storage(url))``
(or ``optuna_dashboard.wsgi(storage)``). Its command line would treat a ``postgresql://`` URL as an
RDBStorage and not see the journals.

No snapshots (Optuna's ``BaseJournalSnapshot``): they are pickles, and unpickling data read from a
database executes code. Replaying the log of a 1000-trial study takes well under a second.
"""

from __future__ import annotations

import collections
import json
import threading
import uuid
from collections.abc import Container, Sequence
from typing import Any, Literal

import psycopg
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX
from optuna.storages.journal import BaseJournalBackend
from optuna.storages.journal._storage import NOT_FOUND_MSG, JournalOperation, JournalStorageReplayResult
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigurationError, DatabaseError, MigrationError
from ..redaction import redact_dsn
from .pg_sync import SyncConnection

__all__ = [
    "JOURNAL_TABLE",
    "TRIAL_ID_STRIDE",
    "PostgresJournalBackend",
    "PostgresOptunaStorage",
    "create_optuna_storage",
]

JOURNAL_TABLE = "optuna_journal_logs"
#: trial ids of study ``k`` are ``k * TRIAL_ID_STRIDE + n`` (n: the trial's position in its journal).
TRIAL_ID_STRIDE = 2**28

SyncCommit = Literal["results", "all"]

_STUDY_OPS = {JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY,
              JournalOperation.SET_STUDY_USER_ATTR, JournalOperation.SET_STUDY_SYSTEM_ATTR}
_RECORDED_STATES = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.WAITING}


def _records_result(log: dict[str, Any]) -> bool:
    """Whether a journal log must be flushed before append_logs returns (see ``sync_commit``)."""
    op = log.get("op_code")
    if op in _STUDY_OPS:
        return True
    if op == JournalOperation.CREATE_TRIAL:  # a template trial (enqueue_trial / add_trial) carries its state
        return "state" in log
    if op == JournalOperation.SET_TRIAL_STATE_VALUES:
        return log.get("state") in _RECORDED_STATES
    return False


class PostgresJournalBackend(BaseJournalBackend):
    """Optuna journal backend over ONE study's log in ``optuna_journal_logs`` (thread-safe).

    Built by :class:`PostgresOptunaStorage` for each study it opens; all of them share its
    connection. Logs copied from the pre-003 global journal (``legacy``) carry that journal's study
    and trial ids: they are mapped to this study's ids as they are read (``legacy_trial_ids``).
    """

    def __init__(self, connection: SyncConnection, study_key: int, *, sync_commit: SyncCommit = "results",
                 legacy_trial_ids: dict[int, int] | None = None) -> None:
        if sync_commit not in ("results", "all"):
            raise ConfigurationError(f"sync_commit must be 'results' or 'all', got {sync_commit!r}")
        self.connection = connection
        self.study_key = int(study_key)
        self.sync_commit: SyncCommit = sync_commit
        self._legacy_trial_ids = dict(legacy_trial_ids or {})
        self._lock = threading.Lock()
        self._seen = 0  # number of logs this backend has read, and the append_id of the last one:
        self._last_append_id: uuid.UUID | None = None  # checked on a new connection
        self._generation: int | None = None
        self._prefetched: tuple[int, list[tuple[int, uuid.UUID, str, bool]]] | None = None

    def __repr__(self) -> str:
        return f"PostgresJournalBackend({redact_dsn(self.connection.dsn)!r}, study_key={self.study_key})"

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        with self._lock:
            prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == log_number_from:
            rows = prefetched[1]  # read by the append that just committed (same round trip)
        else:

            def op(conn: psycopg.Connection[Any]) -> list[tuple[int, uuid.UUID, str, bool]]:
                self._check_session(conn)
                return conn.execute(
                    f"SELECT log_number, append_id, body, legacy FROM {JOURNAL_TABLE} "
                    "WHERE study_key = %s AND log_number >= %s ORDER BY log_number",
                    (self.study_key, log_number_from),
                ).fetchall()

            rows = self.connection.run(op)
        expected = log_number_from
        logs = []
        for number, _append_id, body, legacy in rows:
            if number != expected:
                raise DatabaseError(
                    f"journal of study {self.study_key} in {JOURNAL_TABLE} at {self.connection.info.endpoint} has a "
                    f"gap: expected log {expected}, found {number}; the table was modified outside optuna_journal_append()"
                )
            log = json.loads(body)
            logs.append(self._translate(log) if legacy else log)
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
        op_codes = [int(log["op_code"]) for log in logs]
        durable = self.sync_commit == "all" or any(_records_result(log) for log in logs)
        with self._lock:
            read_from = self._seen  # JournalStorage reads from here right after appending

        def op(conn: psycopg.Connection[Any]) -> list[tuple[int, uuid.UUID, str, bool]]:
            self._check_session(conn)
            return conn.execute(
                "SELECT * FROM optuna_journal_append(%s, %s, %s, %s::smallint[], %s, %s)",
                (self.study_key, append_id, bodies, op_codes, durable, read_from),
            ).fetchall()

        rows = self.connection.run(op)  # idempotent: a retry after a lost connection finds append_id, inserts nothing
        with self._lock:
            self._prefetched = (read_from, rows)

    def _translate(self, log: dict[str, Any]) -> dict[str, Any]:
        """A pre-003 log with this study's ids."""
        if "study_id" in log:
            log["study_id"] = self.study_key
        if "trial_id" in log:
            log["trial_id"] = self._legacy_trial_ids[log["trial_id"]]
        return log

    def _check_session(self, conn: psycopg.Connection[Any]) -> None:
        """On a new connection: is the last log this backend read still there? (A crash of PostgreSQL
        with unflushed asynchronous commits, or a restore from backup, can lose the newest logs.)"""
        generation = self.connection.generation
        if generation == self._generation:
            return
        if self._generation is not None and self._seen:
            row = conn.execute(
                f"SELECT append_id FROM {JOURNAL_TABLE} WHERE study_key = %s AND log_number = %s",
                (self.study_key, self._seen - 1),
            ).fetchone()
            if row is None or row[0] != self._last_append_id:
                raise DatabaseError(
                    f"journal of study {self.study_key} in {JOURNAL_TABLE} at {self.connection.info.endpoint} no "
                    f"longer holds log {self._seen - 1} that this process read: PostgreSQL lost recent transactions "
                    "(a crash with unflushed asynchronous commits, or a restore from backup); restart this "
                    "process, it will replay the journal as it is now"
                )
        self._generation = generation


class _TrialIdsFrom(dict):  # type: ignore[type-arg]
    """The replay's ``trial_id -> FrozenTrial`` map. Optuna numbers a new trial ``len(_trials)``;
    counting from ``offset`` makes the ids of one study's journal unique in the whole database."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset

    def __len__(self) -> int:
        return self.offset + super().__len__()


class _StudyJournal(JournalStorage):
    """Optuna's ``JournalStorage`` over one study's journal, with database-wide ids (no snapshots)."""

    def __init__(self, backend: PostgresJournalBackend) -> None:  # noqa: D107 - JournalStorage.__init__, keyed ids
        self._worker_id_prefix = str(uuid.uuid4()) + "-"
        self._backend = backend
        self._thread_lock = threading.Lock()
        replay = JournalStorageReplayResult(self._worker_id_prefix)
        replay._next_study_id = backend.study_key  # noqa: SLF001 - the study's id is its key
        replay._trials = _TrialIdsFrom(backend.study_key * TRIAL_ID_STRIDE)  # noqa: SLF001
        self._replay_result = replay
        with self._thread_lock:
            self._sync_with_backend()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a study's journal is not picklable; pickle its PostgresOptunaStorage instead")


class PostgresOptunaStorage(BaseStorage):
    """An Optuna storage in PostgreSQL with one journal per study (see the module docstring).

    Thread- and process-safe; pass it as ``storage=`` to ``optuna.create_study`` / ``load_study``.
    Pickles as its settings (a child process opens its own connection). ``close()`` closes the
    connection; the storage reconnects if it is used again.
    """

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        reconnect_timeout: float = 60.0,
        statement_timeout: float = 30.0,
        sync_commit: SyncCommit = "results",
        max_open_studies: int = 128,
    ) -> None:
        if sync_commit not in ("results", "all"):
            raise ConfigurationError(f"sync_commit must be 'results' or 'all', got {sync_commit!r}")
        if isinstance(max_open_studies, bool) or not isinstance(max_open_studies, int) or max_open_studies < 1:
            raise ConfigurationError(f"max_open_studies must be a positive integer, got {max_open_studies!r}")
        self.connection = SyncConnection(
            dsn, connect_timeout=connect_timeout, reconnect_timeout=reconnect_timeout,
            statement_timeout=statement_timeout, application_name="hpo-optuna-journal", what="Optuna journal",
        )
        self.sync_commit: SyncCommit = sync_commit
        self.max_open_studies = max_open_studies
        self._init_runtime()
        self.connection.run(self._check_schema, retry=False)

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._open: collections.OrderedDict[int, _StudyJournal] = collections.OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state.pop("_open", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"PostgresOptunaStorage({redact_dsn(self.connection.dsn)!r})"

    @property
    def dsn(self) -> str:
        """The database URL (with its password: never log it; ``repr`` redacts it)."""
        return self.connection.dsn

    def close(self) -> None:
        """Close the connection and forget the replayed studies."""
        with self._lock:
            self._open.clear()
        self.connection.close()

    # -- the per-study journals ----------------------------------------------------------------
    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        ok = conn.execute(
            "SELECT to_regclass('optuna_journal_studies') IS NOT NULL AND to_regproc('optuna_journal_create_study') IS NOT NULL"
        ).fetchone()[0]
        if not ok:
            raise MigrationError(
                f"the Optuna journal tables are missing in database {self.connection.info.database!r} at "
                f"{self.connection.info.endpoint}; apply the migrations first (`hpo db migrate`, or "
                "`await src.mlops.persistence.migrate(dsn)`)"
            )

    def _journal(self, study_id: int) -> _StudyJournal:
        with self._lock:
            journal = self._open.get(study_id)
            if journal is not None:
                self._open.move_to_end(study_id)
                return journal
        journal = self._load(study_id)  # outside the lock: the replay of a big study takes a while
        with self._lock:
            journal = self._open.setdefault(study_id, journal)
            self._open.move_to_end(study_id)
            while len(self._open) > self.max_open_studies:
                self._open.popitem(last=False)
        return journal

    def _load(self, study_id: int) -> _StudyJournal:
        def op(conn: psycopg.Connection[Any]) -> tuple[bool, dict[int, int]] | None:
            row = conn.execute("SELECT legacy_study_id IS NOT NULL FROM optuna_journal_studies WHERE study_key = %s",
                               (study_id,)).fetchone()
            if row is None:
                return None
            legacy: dict[int, int] = {}
            if row[0]:
                legacy = dict(conn.execute(
                    "SELECT legacy_trial_id, trial_id FROM optuna_journal_legacy_trial_ids WHERE study_key = %s",
                    (study_id,)).fetchall())
            return True, legacy

        if not isinstance(study_id, int) or study_id <= 0:
            raise KeyError(NOT_FOUND_MSG)
        found = self.connection.run(op)
        if found is None:
            raise KeyError(NOT_FOUND_MSG)
        backend = PostgresJournalBackend(self.connection, study_id, sync_commit=self.sync_commit,
                                         legacy_trial_ids=found[1])
        return _StudyJournal(backend)

    def _trial_journal(self, trial_id: int) -> _StudyJournal:
        return self._journal(trial_id // TRIAL_ID_STRIDE)

    # -- studies -------------------------------------------------------------------------------
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        name = study_name if study_name is not None else DEFAULT_STUDY_NAME_PREFIX + str(uuid.uuid4())
        append_id = uuid.uuid4()
        body = json.dumps({"op_code": JournalOperation.CREATE_STUDY, "worker_id": f"hpo-create-{append_id}",
                           "study_name": name, "directions": [int(d) for d in directions]})
        key = self.connection.run(lambda conn: conn.execute(
            "SELECT optuna_journal_create_study(%s, %s, %s)", (name, append_id, body)).fetchone()[0])
        if key is None:
            raise DuplicatedStudyError(f"Another study with name '{name}' already exists. "
                                       "Please specify a different name, or reuse the existing one by "
                                       "setting `load_if_exists` (for Python API) or `--skip-if-exists` flag (for CLI).")
        return int(key)

    def delete_study(self, study_id: int) -> None:
        journal = self._journal(study_id)
        freed = self.connection.run(lambda conn: conn.execute(
            "UPDATE optuna_journal_studies SET deleted_at = now() WHERE study_key = %s AND deleted_at IS NULL",
            (study_id,)).rowcount)
        if not freed:
            raise KeyError(NOT_FOUND_MSG)
        journal.delete_study(study_id)
        with self._lock:
            self._open.pop(study_id, None)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._journal(study_id).set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._journal(study_id).set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        row = self.connection.run(lambda conn: conn.execute(
            "SELECT study_key FROM optuna_journal_studies WHERE study_name = %s AND deleted_at IS NULL",
            (study_name,)).fetchone())
        if row is None:
            raise KeyError(NOT_FOUND_MSG)
        return int(row[0])

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._journal(study_id).get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._journal(study_id).get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._journal(study_id).get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._journal(study_id).get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        """Every live study, from the directory and the study-level logs only (no trial is read)."""
        rows = self.connection.run(lambda conn: conn.execute(
            f"SELECT s.study_key, s.study_name, l.op_code, l.body FROM optuna_journal_studies s "
            f"JOIN {JOURNAL_TABLE} l ON l.study_key = s.study_key AND l.op_code <= 3 "
            "WHERE s.deleted_at IS NULL ORDER BY s.study_key, l.log_number").fetchall())
        studies: dict[int, FrozenStudy] = {}
        for key, name, op, body in rows:
            log = json.loads(body)
            if op == JournalOperation.CREATE_STUDY:
                studies[key] = FrozenStudy(study_name=name, direction=None, user_attrs={}, system_attrs={},
                                           study_id=key, directions=[StudyDirection(d) for d in log["directions"]])
            elif key in studies and op == JournalOperation.SET_STUDY_USER_ATTR:
                studies[key].user_attrs = {**studies[key].user_attrs, **log["user_attr"]}
            elif key in studies and op == JournalOperation.SET_STUDY_SYSTEM_ATTR:
                studies[key].system_attrs = {**studies[key].system_attrs, **log["system_attr"]}
            elif op == JournalOperation.DELETE_STUDY:
                studies.pop(key, None)
        return list(studies.values())

    # -- trials --------------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._journal(study_id).create_new_trial(study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self._trial_journal(trial_id).set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._journal(study_id).get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self._trial_journal(trial_id).set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._trial_journal(trial_id).set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._trial_journal(trial_id).set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._trial_journal(trial_id).set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._trial_journal(trial_id).get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._journal(study_id).get_all_trials(study_id, deepcopy=deepcopy, states=states)


def create_optuna_storage(
    dsn: str,
    *,
    connect_timeout: float = 5.0,
    reconnect_timeout: float = 60.0,
    statement_timeout: float = 30.0,
    sync_commit: SyncCommit = "results",
) -> PostgresOptunaStorage:
    """A durable Optuna storage in the PostgreSQL at ``dsn``, shareable by many processes and hosts.

    The schema must exist (``await migrate(dsn)``). Pass the result as ``storage=`` to
    ``optuna.create_study`` / ``load_study`` or to the engine's ``create_study``.

    ``sync_commit``: ``"results"`` (default) waits for the WAL flush only for logs that record a
    result or a decision -- a finished trial state, an enqueued trial, study creation and
    attributes; the others (trial creation, params, attributes, intermediate values) commit
    asynchronously and become durable with the next synchronous commit of any worker, or within
    ``wal_writer_delay`` (200 ms). A PostgreSQL *crash* can thus drop the last moments of running
    trials, never a told result; a worker that had read the dropped logs notices on reconnect and
    raises. ``"all"`` flushes every log (1-2 ms each here).
    """
    return PostgresOptunaStorage(dsn, connect_timeout=connect_timeout, reconnect_timeout=reconnect_timeout,
                                 statement_timeout=statement_timeout, sync_commit=sync_commit)

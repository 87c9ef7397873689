"""PostgreSQL persistence of the HPO engine (SPEC F15-F18).

* :func:`resolve_database_url` -- ``DATABASE_URL`` or the embedded server (``embedded.py``:
  :func:`start_embedded_postgres`); :func:`create_pool` -- an asyncpg pool with timeouts
  (:class:`Database`) and the DSN helpers (``database.py``).
* :func:`migrate` -- numbered SQL files in ``database/migrations``.
* study history: the records (``records.py``), the :class:`HistoryRepository` protocol
  (``protocol.py``) and its two implementations, :class:`PostgresHistoryRepository` (``postgres.py``,
  literal SQL) and :class:`InMemoryHistoryRepository` (``memory.py``); :class:`HistoryRecorder` (a
  ``TrialListener``) and :func:`save_to_database` write it.
* :func:`create_optuna_storage` -- the Optuna studies themselves (one journal per study), shared by
  workers, in the same database; ``pg_trial_slots.py`` -- the trial lifecycle in PostgreSQL (budget
  slots, worker leases; the engine-side protocol is ``src/mlops/trial_slots.py``).
"""

from ..fingerprint import dataset_fingerprint
from .._home import DEFAULT_HPO_HOME, ENV_HPO_HOME
from .._home import resolve_hpo_home as hpo_home
from .database import (
    ENV_DATABASE_URL,
    Database,
    DsnInfo,
    create_pool,
    normalize_dsn,
    parse_dsn,
    redact_dsn,
    redact_secrets,
    to_sqlalchemy_url,
    with_database,
)
from .embedded import EmbeddedPostgres, resolve_database_url, start_embedded_postgres
from .memory import InMemoryHistoryRepository
from .migrations import (
    DEFAULT_MIGRATIONS_DIR,
    Migration,
    MigrationStatus,
    load_migrations,
    migrate,
    migration_lock,
    migration_status,
)
from .optuna_storage import PostgresJournalBackend, PostgresOptunaStorage, create_optuna_storage
from .postgres import PostgresHistoryRepository
from .protocol import HistoryRepository
from .recorder import HistoryRecorder, RecorderStats, save_to_database, summarize_study
from .records import FINISHED_STATES, STUDY_STATUSES, TRIAL_STATES, BestTrial, StudyRecord, StudySummary, TrialRecord

__all__ = [
    "DEFAULT_HPO_HOME",
    "DEFAULT_MIGRATIONS_DIR",
    "ENV_DATABASE_URL",
    "ENV_HPO_HOME",
    "FINISHED_STATES",
    "STUDY_STATUSES",
    "TRIAL_STATES",
    "BestTrial",
    "Database",
    "DsnInfo",
    "EmbeddedPostgres",
    "HistoryRecorder",
    "HistoryRepository",
    "InMemoryHistoryRepository",
    "Migration",
    "MigrationStatus",
    "PostgresHistoryRepository",
    "PostgresJournalBackend",
    "PostgresOptunaStorage",
    "RecorderStats",
    "StudyRecord",
    "StudySummary",
    "TrialRecord",
    "create_optuna_storage",
    "create_pool",
    "dataset_fingerprint",
    "hpo_home",
    "load_migrations",
    "migrate",
    "migration_lock",
    "migration_status",
    "normalize_dsn",
    "parse_dsn",
    "redact_dsn",
    "redact_secrets",
    "resolve_database_url",
    "save_to_database",
    "start_embedded_postgres",
    "summarize_study",
    "to_sqlalchemy_url",
    "with_database",
]

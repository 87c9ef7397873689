"""The Optuna storage of a URL and a worker's ledger of a storage, for the optimizer.

:func:`resolve_storage` opens the storage a URL names; :func:`new_ledger` makes the ledger that
counts a storage's trials (in PostgreSQL for a PostgreSQL storage). Kept apart from the optimizer
loop (:mod:`.optimizer`), which opens one of each per URL and storage.
"""

from __future__ import annotations

from typing import Any

import optuna

from .errors import ConfigurationError
from .trial_slots import InMemoryTrialSlots, TrialSlots


def resolve_storage(storage: Any) -> optuna.storages.BaseStorage | None:
    """``None`` -> in memory; a URL -> PostgreSQL journal storage (``postgresql://``) or Optuna's
    RDB storage (``sqlite://`` ...); an Optuna storage object is used as it is."""
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if isinstance(storage, str):
        if storage.startswith(("postgresql://", "postgres://", "postgresql+")):
            from .persistence import create_optuna_storage

            return create_optuna_storage(storage)
        if storage.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(storage.removeprefix("journal:")))
        return optuna.storages.get_storage(storage)
    raise ConfigurationError(f"storage must be None, a URL or an optuna storage object, got {type(storage).__name__}")


def new_ledger(storage: optuna.storages.BaseStorage, *, worker_id: str, host_id: str | None,
               heartbeat_interval: float, lease_duration: float) -> TrialSlots:
    """The ledger of worker ``worker_id`` for ``storage``: in PostgreSQL for a PostgreSQL storage
    (shared by every process and host), else in this process."""
    lease = {"heartbeat_interval": heartbeat_interval, "lease_duration": lease_duration}
    if not isinstance(storage, optuna.storages.InMemoryStorage):
        from .persistence import PostgresOptunaStorage
        from .persistence.pg_trial_slots import PostgresTrialSlots

        if isinstance(storage, PostgresOptunaStorage):
            return PostgresTrialSlots(storage.dsn, worker_id=worker_id, host=host_id, **lease)
    return InMemoryTrialSlots(storage, worker_id=worker_id, **lease)

"""Where MLflow data goes: the tracking URI, the default SQLite store under ``HPO_HOME``, artifact
locations, and the HTTP bounds MLflow reads from the environment."""

from __future__ import annotations

import logging
import math
import os
import re
import sqlite3
import threading
from pathlib import Path

from .._home import resolve_hpo_home

__all__ = ["default_tracking_uri", "resolve_tracking_uri", "http_settings", "sqlite_path", "artifact_location",
           "is_remote", "default_call_timeout", "prepare_sqlite_store"]

log = logging.getLogger(__name__)


def default_tracking_uri(hpo_home: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<HPO_HOME>/mlflow.db`` with an absolute path (``sqlite:////abs/path/mlflow.db``);
    ``HPO_HOME`` defaults to ``./.hpo`` (see :func:`src.mlops.resolve_hpo_home`)."""
    return f"sqlite:///{(resolve_hpo_home(hpo_home) / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(tracking_uri: str | None = None, *, hpo_home: str | os.PathLike[str] | None = None) -> str:
    """Explicit ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri`."""
    if tracking_uri:
        return str(tracking_uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return default_tracking_uri(hpo_home)


def http_settings(request_timeout_s: float = 3, max_retries: int = 0) -> dict[str, str]:
    """The environment variables with which MLflow bounds one HTTP request (timeout, retries, backoff).

    MLflow reads them from ``os.environ`` at call time and offers no per-client setting; changing
    the environment while other threads run is not safe, so the tracker never does. Apply them
    once at program start (the ``hpo`` command does, keeping values the user already set)::

        for name, value in http_settings().items():
            os.environ.setdefault(name, value)
    """
    return {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(request_timeout_s))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(int(max_retries)),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    }


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``None`` for other stores and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if raw in ("", ":memory:"):
        return None
    return Path(raw).expanduser().resolve()


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """``<directory of the .db>/mlartifacts/<experiment>`` for a SQLite store (the server default otherwise)."""
    db = sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment_name).strip("._") or "experiment"
    return (db.parent / "mlartifacts" / slug).as_uri()


def is_remote(uri: str) -> bool:
    """An HTTP(S) tracking server (as opposed to a local file or database store)."""
    return uri.split(":", 1)[0].lower() in ("http", "https")


def default_call_timeout(uri: str, request_timeout_s: float, max_retries: int) -> float:
    """The deadline of one awaited MLflow operation: one HTTP request with its retries and backoff
    (+1 s) for a server; 30 s for a database store (the first call may create MLflow's schema);
    120 s for SQLite or a file store (creating the schema takes seconds on first use)."""
    scheme = uri.split(":", 1)[0].lower()
    if is_remote(uri):
        backoff = sum(min(2.0**i, 120.0) for i in range(max_retries))
        return request_timeout_s * (max_retries + 1) + backoff + 1.0
    if scheme.split("+", 1)[0] in ("postgresql", "postgres", "mysql", "mssql"):
        return 30.0
    return 120.0


#: SQLite files of our tracking stores whose connections commit with ``synchronous=NORMAL``.
_FAST_FILES: set[str] = set()
_FAST_LOCK = threading.Lock()
_listening = False


def _on_connect(dbapi_connection: object, _record: object) -> None:
    """SQLAlchemy ``connect`` hook: ``synchronous=NORMAL`` for the files of :data:`_FAST_FILES` only."""
    if not isinstance(dbapi_connection, sqlite3.Connection) or not _FAST_FILES:
        return
    try:
        rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
        if any(row[1] == "main" and row[2] and os.path.realpath(row[2]) in _FAST_FILES for row in rows):
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as e:  # a pragma is an optimisation: never fail a connection for it
        log.debug("could not tune the SQLite connection: %s", e)


def prepare_sqlite_store(uri: str) -> None:
    """Make a local SQLite MLflow store cheap to write to: WAL journal (a setting of the file) and
    ``synchronous=NORMAL`` for MLflow's connections to it.

    With its default rollback journal and a full sync per commit, SQLite costs MLflow ~60-170 ms per
    nested trial run on this kind of machine; WAL + NORMAL ~5-30 ms. NORMAL in WAL mode cannot
    corrupt the database; a power cut (not a process crash) may lose the last commits, which for
    tracking records is the right trade (the trials themselves are in the study's storage).
    The ``connect`` hook is registered once per process on SQLAlchemy's ``Engine`` and only touches
    connections whose main database is a file prepared here. Other stores: nothing happens.
    """
    global _listening
    db = sqlite_path(uri)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(str(db), timeout=10)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.Error as e:
        log.warning("MLflow store %s: could not switch SQLite to WAL (%s); writes stay slower", db, e)
        return
    with _FAST_LOCK:
        _FAST_FILES.add(os.path.realpath(db))
        if not _listening:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            event.listen(Engine, "connect", _on_connect)
            _listening = True

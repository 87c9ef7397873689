"""Where MLflow data goes: the tracking URI, the default SQLite store under ``HPO_HOME``, artifact
locations, and the HTTP bounds MLflow reads from the environment."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from .._home import resolve_hpo_home

__all__ = ["default_tracking_uri", "resolve_tracking_uri", "http_settings", "sqlite_path", "artifact_location",
           "is_remote", "default_call_timeout"]


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

"""The embedded PostgreSQL server (the ``pgserver`` package): start, share, stop.

* :func:`start_embedded_postgres` -- start (or attach to) the server whose data directory is
  ``$HPO_HOME/pgdata``; an :class:`EmbeddedPostgres` is this process's handle on it.
* :func:`resolve_database_url` -- ``DATABASE_URL`` if set, else the embedded server's URL (started or
  attached to). Every caller gets a plain ``postgresql://`` URL afterwards, so there is one code path
  for both; talking to it (the asyncpg pool, DSN helpers) is :mod:`.database`.

Lifecycle (cleanup mode). ``pgserver`` keeps, in ``pgdata/.handle_pids.json`` and under one
inter-process file lock, the pids of the processes using a data directory; start and attach happen
under that lock, so two processes starting at once share one server. The postmaster is started by
``pg_ctl`` in its own session, so it outlives the process that started it. With the default
``cleanup="stop"`` the *last* process to exit stops the server (a fast shutdown, which checkpoints);
processes killed with SIGKILL never unregister, so before attaching we drop pids that no longer exist
(otherwise a dead pid would keep the server running forever -- harmless, but untidy).
``cleanup="keep"`` leaves the server running after every process exits (faster next start, one
lingering ``postgres``); the mode of the last process to exit decides. A server whose every user
was SIGKILLed keeps running until some process attaches and exits again. pgserver puts the unix
socket in the data directory, or, when that path would exceed the ~107-byte ``AF_UNIX`` limit, in a
per-user runtime directory keyed by a hash of the data directory path (tested with long paths).
Run as root, pgserver starts the server as a system user ``pgserver`` and adds o+rx to the parent
directories of the data directory so that user can reach it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from .._home import resolve_hpo_home as hpo_home
from ..errors import ConfigurationError, DatabaseUnavailableError
from .database import ENV_DATABASE_URL, normalize_dsn, parse_dsn

__all__ = ["CleanupMode", "EmbeddedPostgres", "start_embedded_postgres", "resolve_database_url"]

_log = logging.getLogger(__name__)

CleanupMode = Literal["stop", "keep"]


def _pgserver() -> Any:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver.postgres_server
    return pgserver


class EmbeddedPostgres:
    """This process's handle on the embedded server of one data directory (shared with other processes)."""

    def __init__(self, server: Any, *, cleanup: CleanupMode) -> None:
        self._server = server
        self.pgdata: Path = Path(server.pgdata)
        self.cleanup: CleanupMode = cleanup

    def _info(self) -> Any:
        pg = _pgserver()
        info = pg.postgres_server.PostmasterInfo.read_from_pgdata(self.pgdata)
        return info if info is not None else self._server.get_postmaster_info()

    def dsn(self, database: str = "postgres") -> str:
        """URL of ``database`` on this server (unix socket; no password: the server trusts local users)."""
        info = self._info()
        if info.socket_dir is not None:
            host = quote(str(info.socket_dir), safe="/")
            return f"postgresql://postgres@/{quote(database, safe='')}?host={host}&port={info.port}"
        return f"postgresql://postgres@{info.hostname}:{info.port}/{quote(database, safe='')}"

    @property
    def pid(self) -> int | None:
        """Pid of the running postmaster, or None."""
        pg = _pgserver()
        info = pg.postgres_server.PostmasterInfo.read_from_pgdata(self.pgdata)
        return info.pid if info is not None and info.is_running() else None

    def is_running(self) -> bool:
        return self.pid is not None

    def stop(self, *, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 60) -> None:
        """Stop the server now, whoever uses it (operations and tests; see :meth:`start`)."""
        pg = _pgserver()
        pg.pg_ctl(
            ["-w", "-m", mode, "-t", str(int(timeout)), "stop"],
            pgdata=self.pgdata,
            user=self._server.system_user,
            timeout=timeout + 5,
        )

    def start(self) -> None:
        """Start the server again after :meth:`stop` (no-op when it runs)."""
        pg = _pgserver()
        with pg.postgres_server.PostgresServer._lock:
            self._server.ensure_postgres_running()

    def release(self) -> None:
        """This process no longer uses the server; with ``cleanup="stop"`` the last user stops it."""
        with _EMBEDDED_LOCK:
            _EMBEDDED.pop(self.pgdata, None)
        self._server.cleanup()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(pgdata={str(self.pgdata)!r}, pid={self.pid}, cleanup={self.cleanup!r})"


_EMBEDDED: dict[Path, EmbeddedPostgres] = {}
_EMBEDDED_LOCK = threading.Lock()


def _prune_dead_handles(pgdata: Path, lock: Any) -> None:
    """Drop pids of processes that died without unregistering (SIGKILL) from pgserver's handle list."""
    import psutil

    path = pgdata / ".handle_pids.json"
    with lock:
        try:
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return
        alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
        if alive != pids:
            _log.info("embedded PostgreSQL %s: dropping handles of exited processes %s", pgdata, sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))


def start_embedded_postgres(home: str | os.PathLike[str], *, cleanup: CleanupMode = "stop") -> EmbeddedPostgres:
    """Start (or attach to) the embedded PostgreSQL whose data directory is ``home/pgdata``.

    Safe to call from several processes at once: they share one server. See the module docstring
    for ``cleanup``.
    """
    if cleanup not in ("stop", "keep"):
        raise ConfigurationError(f"cleanup must be 'stop' or 'keep', got {cleanup!r}")
    home_path = Path(home).expanduser().resolve()
    pgdata = home_path / "pgdata"
    with _EMBEDDED_LOCK:
        handle = _EMBEDDED.get(pgdata)
        if handle is not None:
            if not handle.is_running():
                handle.start()
            return handle
        pg = _pgserver()
        try:
            # pgserver's own mkdir(exist_ok=False) races when two processes start a new home at once
            pgdata.mkdir(parents=True, exist_ok=True)
            _prune_dead_handles(pgdata, pg.postgres_server.PostgresServer._lock)
            server = pg.get_server(pgdata, cleanup_mode="stop" if cleanup == "stop" else None)
        except Exception as e:  # pgserver raises CalledProcessError, RuntimeError, OSError...
            log_path = pgdata / "log"
            raise DatabaseUnavailableError(
                f"cannot start the embedded PostgreSQL in {pgdata} ({type(e).__name__}: {e}); "
                f"see its log {log_path}, or set {ENV_DATABASE_URL} to use an external server"
            ) from e
        handle = EmbeddedPostgres(server, cleanup=cleanup)
        _EMBEDDED[pgdata] = handle
        _log.info("embedded PostgreSQL ready: %r", handle)
        return handle


def resolve_database_url(env: Mapping[str, str] | None = None, *, cleanup: CleanupMode = "stop") -> str:
    """The database URL to use: ``DATABASE_URL`` if set (validated, not connected), else the embedded
    server in ``$HPO_HOME/pgdata``, started or attached to (``env`` defaults to ``os.environ``)."""
    env = os.environ if env is None else env
    url = normalize_dsn(env.get(ENV_DATABASE_URL) or "")
    if url:
        parse_dsn(url)
        return url
    return start_embedded_postgres(hpo_home(env=env), cleanup=cleanup).dsn()

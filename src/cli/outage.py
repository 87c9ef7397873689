"""A run's bound on a PostgreSQL outage: :class:`DatabaseWatch`.

Every part of a run that uses PostgreSQL rides out a short outage on its own: the Optuna journal
retries each operation, the history recorder queues its writes, the LangGraph checkpointer's pool
replaces dead connections. None of them knows when to give up on the whole run, so the watch
does: it asks the server ``SELECT 1`` every second on a connection of its own and, once the server
has been unreachable for ``window`` seconds without a break, calls ``on_outage`` once with a message
naming the server and the last error. The command then stops the run (see :mod:`.lifecycle`).

The window is ``HPO_DB_OUTAGE_S`` (default 60 s, the journal's reconnect window).

While the watch sees the server down, :class:`QuietDuringOutage` keeps the warnings that are only
consequences of the outage (journal retries, failed history writes, trials failing on the storage)
off stderr: the watch's own line says it once. ``HPO_LOG_LEVEL=DEBUG`` shows everything.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping

from src.mlops.errors import ConfigurationError, DatabaseError
from src.mlops.persistence import create_pool, parse_dsn

__all__ = ["DatabaseWatch", "ENV_OUTAGE", "DEFAULT_OUTAGE_S", "outage_window", "QuietDuringOutage"]

_log = logging.getLogger("hpo")

ENV_OUTAGE = "HPO_DB_OUTAGE_S"
DEFAULT_OUTAGE_S = 60.0


#: set while a watch sees the server unreachable (read by :class:`QuietDuringOutage`, any thread)
_DOWN = threading.Event()
#: loggers whose records during an outage are its consequences
_CONSEQUENCES = ("src.mlops.persistence", "src.mlops.optimizer", "asyncpg", "psycopg")


class QuietDuringOutage(logging.Filter):
    """Drops records of :data:`_CONSEQUENCES` loggers below CRITICAL while the database is down."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DOWN.is_set() and record.levelno < logging.CRITICAL and record.name.startswith(_CONSEQUENCES))


def outage_window(env: Mapping[str, str]) -> float:
    """``HPO_DB_OUTAGE_S`` (seconds a run waits for an unreachable PostgreSQL), default 60."""
    raw = env.get(ENV_OUTAGE)
    if raw is None or raw == "":
        return DEFAULT_OUTAGE_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 1.0 <= value <= 3600.0:
        raise ConfigurationError(f"{ENV_OUTAGE} must be a number of seconds between 1 and 3600, got {raw!r}")
    return value


class DatabaseWatch:
    """Pings PostgreSQL; calls ``on_outage(message)`` once after ``window`` s of unreachability."""

    def __init__(self, dsn: str, *, window: float, on_outage: Callable[[str], None], interval: float = 1.0) -> None:
        self.dsn = dsn
        self.window = window
        self.interval = interval
        self.on_outage = on_outage
        self.endpoint = parse_dsn(dsn).endpoint
        self.down_since: float | None = None
        self.last_error: str | None = None
        self.gave_up = False

    async def run(self) -> None:
        """Watch until cancelled, or until it gives up (then it returns)."""
        db = None
        try:
            while True:
                try:
                    if db is None:
                        db = await create_pool(self.dsn, min_size=1, max_size=1, connect_timeout=2.0,
                                               command_timeout=2.0, acquire_timeout=2.0, application_name="hpo-watch")
                    await db.fetchval("SELECT 1", timeout=2.0)
                    if self.down_since is not None:
                        _DOWN.clear()
                        _log.warning("PostgreSQL at %s is back after %.0f s", self.endpoint,
                                     time.monotonic() - self.down_since)
                    self.down_since = None
                except DatabaseError as e:
                    now = time.monotonic()
                    self.last_error = str(e)
                    if self.down_since is None:
                        self.down_since = now
                        _DOWN.set()
                        _log.warning("PostgreSQL at %s is unreachable (%s); the run waits up to %g s for it "
                                     "(%s)", self.endpoint, _detail(e), self.window, ENV_OUTAGE)
                    if db is not None:
                        await db.close(timeout=1.0)
                        db = None
                    if now - self.down_since >= self.window:
                        self.gave_up = True
                        self.on_outage(f"PostgreSQL at {self.endpoint} has been unreachable for "
                                       f"{now - self.down_since:.0f} s ({ENV_OUTAGE}={self.window:g})")
                        return
                await asyncio.sleep(self.interval)
        finally:
            if not self.gave_up:  # given up: the server is still down while the run stops
                _DOWN.clear()
            if db is not None:
                await db.close(timeout=1.0)


def _detail(e: BaseException) -> str:
    """The driver's words in a database error ("... (ConnectionRefusedError: ...); check ..."), else
    the message's first line."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    m = _DRIVER_DETAIL.search(text)
    return m.group(1) if m else text


_DRIVER_DETAIL = re.compile(r"\(([A-Z]\w*: [^;]*)\)(?:;|$)")

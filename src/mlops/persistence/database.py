"""How to talk to PostgreSQL: DSNs and the asyncpg pool.

* :func:`create_pool` -- an asyncpg pool wrapped in :class:`Database`: connect, acquire and command
  timeouts, driver errors translated to :mod:`src.mlops.errors` (:func:`translate_error`), passwords
  never shown; JSON and JSONB values go through the project's one JSON converter.
* :func:`redact_dsn`, :func:`parse_dsn`, :func:`normalize_dsn`, :func:`with_database`,
  :func:`to_sqlalchemy_url` -- DSN helpers.

Where the database is -- ``DATABASE_URL`` or the embedded server in ``$HPO_HOME/pgdata`` -- is
:mod:`.embedded` (:func:`~.embedded.resolve_database_url`, :func:`~.embedded.start_embedded_postgres`).
Those names, and the ``HPO_HOME`` ones, were defined here before; they are still importable from this
module (loaded on first use: :mod:`.embedded` imports this one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from json import loads as json_loads
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigurationError, DatabaseError, DatabaseTimeoutError, DatabaseUnavailableError
from ..jsonutil import encode_json
from ..redaction import dsn_password as _password
from ..redaction import redact_dsn, redact_secrets
from ..redaction import scrub_dsn as _scrub

__all__ = [
    "ENV_DATABASE_URL",
    "DsnInfo",
    "normalize_dsn",
    "parse_dsn",
    "redact_dsn",
    "redact_secrets",
    "with_database",
    "to_sqlalchemy_url",
    "Database",
    "create_pool",
    "translate_error",
]

#: names that moved to :mod:`.embedded` (and ``HPO_HOME``'s to :mod:`src.mlops._home`), still served here
_MOVED = {"resolve_database_url": (".embedded", "resolve_database_url"),
          "EmbeddedPostgres": (".embedded", "EmbeddedPostgres"),
          "start_embedded_postgres": (".embedded", "start_embedded_postgres"),
          "CleanupMode": (".embedded", "CleanupMode"),
          "hpo_home": ("src.mlops._home", "resolve_hpo_home"),
          "ENV_HPO_HOME": ("src.mlops._home", "ENV_HPO_HOME"),
          "DEFAULT_HPO_HOME": ("src.mlops._home", "DEFAULT_HPO_HOME")}


def __getattr__(name: str) -> Any:
    """The moved names (``from .database import start_embedded_postgres`` keeps working)."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _MOVED[name]
    return getattr(importlib.import_module(module, __package__), attr)


_log = logging.getLogger(__name__)

ENV_DATABASE_URL = "DATABASE_URL"
_SCHEMES = ("postgresql", "postgres")
_DEFAULT_PORT = 5432

# --------------------------------------------------------------------------------------------- DSNs


@dataclass(frozen=True)
class DsnInfo:
    """The non-secret parts of a DSN, for messages and for building related DSNs."""

    host: str
    port: int
    database: str | None
    user: str | None

    @property
    def is_unix_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def endpoint(self) -> str:
        """``host:port``, or the socket file for a unix-socket DSN."""
        if self.is_unix_socket:
            return f"unix socket {self.host.rstrip('/')}/.s.PGSQL.{self.port} (port {self.port})"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+[A-Za-z0-9_]+://", re.IGNORECASE)


def normalize_dsn(dsn: str) -> str:
    """``dsn`` without a SQLAlchemy driver suffix (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return _DRIVER_SUFFIX.sub(r"\1://", dsn.strip()) if isinstance(dsn, str) else dsn


def parse_dsn(dsn: str) -> DsnInfo:
    """Host, port, database and user of a ``postgresql://`` URL (the unix-socket ``?host=/dir`` form too).

    Raises :class:`ConfigurationError` for anything else, naming the (redacted) value.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigurationError(
            f"a database URL must be a non-empty 'postgresql://user:password@host:port/dbname' string, got {dsn!r}"
        )
    dsn = normalize_dsn(dsn)
    scheme, sep, _ = dsn.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"a database URL must start with 'postgresql://' or 'postgres://', got {redact_dsn(dsn)!r}; "
            f"set {ENV_DATABASE_URL} to e.g. 'postgresql://user:password@host:5432/dbname'"
        )
    try:
        parts = urlsplit(dsn)
        query = dict(parse_qsl(parts.query))
        _, at, hostinfo = parts.netloc.rpartition("@")
        if not at:
            hostinfo = parts.netloc
        userinfo = parts.netloc.rpartition("@")[0] if at else ""
        first = hostinfo.split(",")[0]
        if first.startswith("["):
            host, _, rest = first[1:].partition("]")
            port_s = rest.lstrip(":")
        elif ":" in first:
            host, _, port_s = first.rpartition(":")
        else:
            host, port_s = first, ""
        host = unquote(host) or query.get("host", "").split(",")[0] or os.environ.get("PGHOST", "localhost")
        port_s = port_s or query.get("port", "").split(",")[0] or os.environ.get("PGPORT", "")
        port = int(port_s) if port_s else _DEFAULT_PORT
        database = unquote(parts.path.lstrip("/")) or query.get("dbname") or query.get("database") or None
        user = unquote(userinfo.partition(":")[0]) or query.get("user") or None
    except ValueError as e:
        raise ConfigurationError(
            f"cannot parse database URL {redact_dsn(dsn)!r}: {_scrub(str(e), dsn)}; expected "
            "'postgresql://user:password@host:port/dbname'"
        ) from None
    return DsnInfo(host=host, port=port, database=database, user=user)


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server (path replaced, ``dbname`` query dropped)."""
    dsn = normalize_dsn(dsn)
    parse_dsn(dsn)
    if not database or "/" in database:
        raise ConfigurationError(f"database name must be non-empty and contain no '/', got {database!r}")
    parts = urlsplit(dsn)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("dbname", "database")]
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database, safe=""), urlencode(pairs, safe="/"), ""))


def to_sqlalchemy_url(dsn: str) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) of ``dsn``, e.g. for Optuna's ``RDBStorage``."""
    dsn = normalize_dsn(dsn)
    parse_dsn(dsn)
    return "postgresql+psycopg://" + dsn.partition("://")[2]


# --------------------------------------------------------------------------------------------- pool

_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def _describe(dsn: str) -> str:
    try:
        info = parse_dsn(dsn)
    except ConfigurationError:
        return repr(redact_dsn(dsn))
    return f"{info.endpoint} (database {info.database or '<default>'!r}, user {info.user or '<default>'!r})"


def translate_error(exc: BaseException, dsn: str, *, what: str = "query") -> DatabaseError:
    """A :class:`DatabaseError` (or subclass) for a driver error, with no password in its message."""
    if isinstance(exc, DatabaseError):
        return exc
    detail = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), dsn)
    where = _describe(dsn)
    if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
        return DatabaseUnavailableError(f"PostgreSQL at {where}: the database does not exist ({detail}); create it or fix the URL")
    if isinstance(exc, (asyncpg.exceptions.InvalidPasswordError, asyncpg.exceptions.InvalidAuthorizationSpecificationError)):
        return DatabaseUnavailableError(f"PostgreSQL at {where} refused the credentials ({detail}); check the user and password in {ENV_DATABASE_URL}")
    if isinstance(exc, _UNAVAILABLE_ERRORS):
        return DatabaseUnavailableError(
            f"PostgreSQL at {where} is unreachable during {what} ({detail}); check {ENV_DATABASE_URL} and that the server is running"
        )
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return DatabaseTimeoutError(f"{what} on PostgreSQL at {where} was cancelled by the server ({detail})")
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", "?")
        return DatabaseError(f"{what} failed on PostgreSQL at {where}: [{sqlstate}] {detail}")
    return DatabaseError(f"{what} failed on PostgreSQL at {where}: {detail}")


async def _init_connection(con: asyncpg.Connection) -> None:
    for typename in ("jsonb", "json"):
        await con.set_type_codec(typename, encoder=encode_json, decoder=json_loads, schema="pg_catalog")


class Database:
    """An asyncpg pool with timeouts and translated errors. Create it with :func:`create_pool`.

    Every method raises :class:`DatabaseUnavailableError` when the server cannot be reached,
    :class:`DatabaseTimeoutError` when a connection or a command takes longer than its limit, and
    :class:`DatabaseError` for other driver errors. Use it as ``async with await create_pool(...) as db``.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        dsn: str,
        max_size: int,
        acquire_timeout: float,
        command_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.command_timeout = command_timeout

    # -- introspection -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The DSN with its password redacted."""
        return redact_dsn(self._dsn)

    @property
    def info(self) -> DsnInfo:
        return parse_dsn(self._dsn)

    @property
    def pool(self) -> asyncpg.Pool:
        """The underlying asyncpg pool (errors raised through it are not translated)."""
        return self._pool

    def reveal_dsn(self) -> str:
        """The DSN with its password, for opening related clients (e.g. the Optuna storage). Never log it."""
        return self._dsn

    @property
    def closed(self) -> bool:
        return self._pool.is_closing()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"size={self._pool.get_size()}/{self.max_size}"
        return f"Database({self.url!r}, {state})"

    # -- connections ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for at most ``timeout`` (default ``acquire_timeout``) seconds of waiting.

        The connection goes back to the pool even when the caller is cancelled.
        """
        limit = self.acquire_timeout if timeout is None else timeout
        try:
            con = await self._pool.acquire(timeout=limit)
        except TimeoutError:
            raise DatabaseTimeoutError(
                f"no connection to PostgreSQL at {_describe(self._dsn)} became free within "
                f"acquire_timeout={limit:g} s (pool max_size={self.max_size}); release connections sooner "
                "or raise max_size/acquire_timeout"
            ) from None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
            raise translate_error(e, self._dsn, what="connect") from None
        try:
            yield con
        finally:
            await self._pool.release(con)

    @contextlib.asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except DatabaseError:
            raise
        except TimeoutError:
            raise DatabaseTimeoutError(
                f"{what} on PostgreSQL at {_describe(self._dsn)} exceeded command_timeout={self.command_timeout} s"
            ) from None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
            err = translate_error(e, self._dsn, what=what)
            pw = _password(self._dsn)
            if pw and pw in str(e):  # never chain a driver message that quotes the password
                raise err from None
            raise err from e

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside a transaction (committed on success, rolled back on error)."""
        async with self._translated("transaction"), self.acquire() as con, con.transaction():
            yield con

    # -- queries (values always bound as $n parameters) -----------------------------------------
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        async with self._translated("execute"), self.acquire() as con:
            return await con.execute(query, *args, timeout=timeout)

    async def executemany(self, query: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None) -> None:
        async with self._translated("executemany"), self.acquire() as con:
            await con.executemany(query, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        async with self._translated("fetch"), self.acquire() as con:
            return await con.fetch(query, *args, timeout=timeout)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        async with self._translated("fetchrow"), self.acquire() as con:
            return await con.fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        async with self._translated("fetchval"), self.acquire() as con:
            return await con.fetchval(query, *args, column=column, timeout=timeout)

    # -- lifecycle -----------------------------------------------------------------------------
    async def close(self, *, timeout: float = 10.0) -> None:
        """Close every connection, waiting at most ``timeout`` s for borrowed ones before terminating them."""
        if self._pool.is_closing():
            return
        try:
            await asyncio.wait_for(self._pool.close(), timeout)
        except TimeoutError:
            _log.warning("closing %r: connections still borrowed after %g s, terminating them", self, timeout)
            self._pool.terminate()
        except asyncio.CancelledError:
            self._pool.terminate()
            raise

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = 5.0,
    command_timeout: float | None = 30.0,
    acquire_timeout: float = 10.0,
    application_name: str = "hpo",
) -> Database:
    """Open a pool on ``dsn`` and check the server answers; fails within about ``connect_timeout`` s.

    Raises :class:`DatabaseUnavailableError` naming host and port (never the password) when the
    server cannot be reached, and :class:`ConfigurationError` for invalid options.
    """
    dsn = normalize_dsn(dsn)
    parse_dsn(dsn)
    if not 0 <= min_size <= max_size or max_size < 1:
        raise ConfigurationError(f"0 <= min_size <= max_size and max_size >= 1 must hold, got min_size={min_size}, max_size={max_size}")
    for name, value in (("connect_timeout", connect_timeout), ("acquire_timeout", acquire_timeout), ("command_timeout", command_timeout)):
        if value is not None and not value > 0:
            raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
    pool: asyncpg.Pool | None = None
    try:
        async with asyncio.timeout(connect_timeout + 1.0):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                init=_init_connection,
                server_settings={"application_name": application_name},
            )
            async with pool.acquire(timeout=connect_timeout) as con:
                await con.fetchval("SELECT 1")
    except BaseException as e:
        if pool is not None:
            pool.terminate()
        if isinstance(e, TimeoutError):
            raise DatabaseUnavailableError(
                f"PostgreSQL at {_describe(dsn)} did not answer within connect_timeout={connect_timeout:g} s; "
                f"check {ENV_DATABASE_URL} and that the server is running and reachable"
            ) from None
        if isinstance(e, (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, ValueError)):
            raise translate_error(e, dsn, what="connect") from None
        raise
    return Database(pool, dsn=dsn, max_size=max_size, acquire_timeout=acquire_timeout, command_timeout=command_timeout)

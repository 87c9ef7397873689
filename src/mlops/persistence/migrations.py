"""Numbered SQL migrations (``database/migrations/NNN_name.sql``) applied by an asyncpg runner.

Rules:

* ``schema_migrations`` records version, name, sha256 checksum of the file bytes and the time.
* Each pending file runs in its own transaction together with its ``schema_migrations`` row: it is
  applied entirely or not at all.
* A session-level advisory lock serializes runners, so processes migrating at once apply each
  file exactly once (the later runner finds nothing left to do).
* Refused, with a :class:`MigrationError` naming version and file: a file changed after it was
  applied, a database newer than the code (a recorded version with no file), and a new file numbered
  below an applied version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from ..errors import DatabaseError, MigrationError
from .database import Database, create_pool, translate_error

__all__ = [
    "DEFAULT_MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "Migration",
    "MigrationStatus",
    "load_migrations",
    "migrate",
    "migration_lock",
    "migration_status",
]

_log = logging.getLogger(__name__)

#: ``database/migrations`` of a source checkout (this file is ``<repo>/src/mlops/persistence/migrations.py``).
_CHECKOUT_MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "database" / "migrations"
#: the same files inside an installed wheel: ``setup.py`` copies them there when it builds the package.
PACKAGED_MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"


def _default_migrations_dir() -> Path:
    """``database/migrations`` of the checkout this code runs from, else the copy packaged with it."""
    return _CHECKOUT_MIGRATIONS_DIR if _CHECKOUT_MIGRATIONS_DIR.is_dir() else PACKAGED_MIGRATIONS_DIR


#: where :func:`migrate` reads the migration files by default (see :func:`_default_migrations_dir`).
DEFAULT_MIGRATIONS_DIR = _default_migrations_dir()
#: advisory lock key of the migration runner ("hpo_mig" in ASCII).
MIGRATION_LOCK_KEY = int.from_bytes(b"hpo_mig", "big")

_FILE_RE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9][A-Za-z0-9_\-]*)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name, sha256 of its bytes and its SQL text."""

    version: int
    name: str
    path: Path
    checksum: str
    sql: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    filename: str | None
    applied_at: datetime | None
    checksum_ok: bool | None


def load_migrations(migrations_dir: str | Path | None = None) -> list[Migration]:
    """The migration files of ``migrations_dir`` (default :data:`DEFAULT_MIGRATIONS_DIR`), by version."""
    directory = Path(migrations_dir) if migrations_dir is not None else DEFAULT_MIGRATIONS_DIR
    if not directory.is_dir():
        raise MigrationError(
            f"migrations directory {directory} does not exist; install the package from a wheel built by its "
            "setup.py (which ships database/migrations), run from a source checkout, or pass migrations_dir=..."
        )
    by_version: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        m = _FILE_RE.match(path.name)
        if m is None:
            raise MigrationError(
                f"migration file {path.name} in {directory} does not follow the NNN_name.sql pattern "
                "(digits, underscore, letters/digits/_/-); rename it"
            )
        version = int(m["version"])
        if version in by_version:
            raise MigrationError(
                f"migration files {by_version[version].filename} and {path.name} share version {version}; "
                "give each file its own number"
            )
        data = path.read_bytes()
        try:
            sql = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MigrationError(f"migration file {path.name} is not UTF-8 ({e})") from None
        by_version[version] = Migration(version, m["name"], path, hashlib.sha256(data).hexdigest(), sql)
    return [by_version[v] for v in sorted(by_version)]


async def _acquire_lock(con: asyncpg.Connection, timeout: float) -> None:
    """Take the migration lock by polling ``pg_try_advisory_lock``: a waiting runner never sits inside
    a statement, so it holds no snapshot that the holder's ``CREATE INDEX CONCURRENTLY`` would wait
    for (a blocking ``pg_advisory_lock`` there deadlocks the two)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not await con.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY):
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another migration runner has held the migration lock (pg_advisory_lock({MIGRATION_LOCK_KEY})) "
                f"for more than lock_timeout={timeout:g} s; wait for it or look for a stuck session in pg_stat_activity"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


@contextlib.asynccontextmanager
async def migration_lock(db: Database, *, timeout: float = 60.0) -> AsyncIterator[asyncpg.Connection]:
    """Hold the migration lock (on a pooled connection, yielded) for schema work of other libraries,
    e.g. LangGraph's ``AsyncPostgresSaver.setup()``, which takes no lock of its own: concurrent
    first runs then set up one at a time. Raises :class:`MigrationError` after ``timeout`` s."""
    async with db.acquire() as con:
        try:
            await _acquire_lock(con, timeout)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
            raise translate_error(e, db.reveal_dsn(), what="migration lock") from None
        try:
            yield con
        finally:
            if not con.is_closed():
                await con.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


def _check(applied: dict[int, asyncpg.Record], migrations: list[Migration], directory: str) -> list[Migration]:
    """Refuse changed files and newer databases; return the pending migrations."""
    files = {m.version: m for m in migrations}
    latest_file = migrations[-1] if migrations else None
    for version in sorted(applied):
        row = applied[version]
        m = files.get(version)
        if m is None:
            if latest_file is None or version > latest_file.version:
                known = f"{latest_file.filename} (version {latest_file.version})" if latest_file else "none"
                raise MigrationError(
                    f"the database is newer than this code: schema_migrations has version {version} "
                    f"({row['name']}) but the latest migration file in {directory} is {known}; "
                    "upgrade the code or point DATABASE_URL at another database"
                )
            raise MigrationError(
                f"migration version {version} ({row['name']}) is recorded as applied but its file is missing "
                f"from {directory}; restore the file"
            )
        if row["checksum"] != m.checksum:
            raise MigrationError(
                f"migration {m.filename} (version {version}) was changed after it was applied "
                f"(applied sha256 {row['checksum'][:12]}..., file now {m.checksum[:12]}...); restore the "
                "applied content and put the change in a new numbered migration"
            )
    pending = [m for m in migrations if m.version not in applied]
    if pending and applied and pending[0].version < max(applied):
        raise MigrationError(
            f"migration {pending[0].filename} (version {pending[0].version}) is numbered below the latest "
            f"applied version {max(applied)}; renumber it after {max(applied)}"
        )
    return pending


async def _migrate(db: Database, migrations: list[Migration], directory: str, lock_timeout: float, statement_timeout: float) -> list[int]:
    applied_now: list[int] = []
    try:
        async with migration_lock(db, timeout=lock_timeout) as con:
            await con.execute(_CREATE_TABLE)
            rows = await con.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            pending = _check({r["version"]: r for r in rows}, migrations, directory)
            for m in pending:
                started = time.perf_counter()
                try:
                    async with con.transaction():
                        await con.execute(m.sql, timeout=statement_timeout)
                        await con.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            m.version,
                            m.name,
                            m.checksum,
                        )
                except asyncpg.PostgresError as e:
                    raise MigrationError(
                        f"migration {m.filename} (version {m.version}) failed and was rolled back: "
                        f"[{e.sqlstate}] {e}; earlier migrations stay applied, fix the file and run again"
                    ) from e
                except TimeoutError:
                    raise MigrationError(
                        f"migration {m.filename} (version {m.version}) ran longer than "
                        f"statement_timeout={statement_timeout:g} s and was rolled back"
                    ) from None
                applied_now.append(m.version)
                _log.info("applied migration %s in %.0f ms", m.filename, (time.perf_counter() - started) * 1e3)
    except (MigrationError, DatabaseError):
        raise
    except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as e:
        raise translate_error(e, db.reveal_dsn(), what="migrate") from None
    return applied_now


async def migrate(
    db_or_dsn: Database | str,
    *,
    migrations_dir: str | Path | None = None,
    lock_timeout: float = 60.0,
    statement_timeout: float = 600.0,
) -> list[int]:
    """Apply the pending migrations; return the versions applied by this call (``[]`` if none).

    ``db_or_dsn`` is a :class:`Database` or a ``postgresql://`` URL (a short-lived pool is opened).
    """
    migrations = load_migrations(migrations_dir)
    directory = str(Path(migrations_dir) if migrations_dir is not None else DEFAULT_MIGRATIONS_DIR)
    if isinstance(db_or_dsn, Database):
        return await _migrate(db_or_dsn, migrations, directory, lock_timeout, statement_timeout)
    async with await create_pool(db_or_dsn, min_size=1, max_size=1, application_name="hpo-migrate") as db:
        return await _migrate(db, migrations, directory, lock_timeout, statement_timeout)


async def migration_status(db_or_dsn: Database | str, *, migrations_dir: str | Path | None = None) -> list[MigrationStatus]:
    """Every known version (files and database rows) with its file, apply time and checksum match."""
    migrations = {m.version: m for m in load_migrations(migrations_dir)}

    async def _status(db: Database) -> list[MigrationStatus]:
        exists = await db.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        rows = await db.fetch("SELECT version, checksum, applied_at FROM schema_migrations") if exists else []
        applied = {r["version"]: r for r in rows}
        out = []
        for v in sorted(set(migrations) | set(applied)):
            m, r = migrations.get(v), applied.get(v)
            out.append(
                MigrationStatus(
                    version=v,
                    filename=m.filename if m else None,
                    applied_at=r["applied_at"] if r else None,
                    checksum_ok=(r["checksum"] == m.checksum) if (m and r) else None,
                )
            )
        return out

    if isinstance(db_or_dsn, Database):
        return await _status(db_or_dsn)
    async with await create_pool(db_or_dsn, min_size=1, max_size=1, application_name="hpo-migrate") as db:
        return await _status(db)

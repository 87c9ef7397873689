"""Fixtures of the persistence tests: a real PostgreSQL, a fresh database per test.

The server is ``DATABASE_URL`` when set (the role needs CREATEDB), else an embedded server (pgserver)
under a temporary ``HPO_HOME``, stopped at the end of the session. Each test gets its own database
(``fresh_dsn``: empty; ``migrated_dsn``: cloned from a migrated template), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from src.mlops.persistence import (
    Database,
    EmbeddedPostgres,
    InMemoryHistoryRepository,
    PostgresHistoryRepository,
    create_pool,
    migrate,
    start_embedded_postgres,
)

from ._helpers import create_database, drop_database


@pytest.fixture(scope="session")
def server_home() -> Iterator[Callable[[], Path]]:
    """Makes directories for embedded servers, removed at the end of the session.

    Not under pytest's tmp_path: run as root, pgserver runs PostgreSQL as the user ``pgserver``,
    which must traverse every parent directory, and every pytest session that starts (another
    engineer's, CI's) resets ``/tmp/pytest-of-<user>`` to mode 0700 -- a running server there loses
    access to its own files.
    """
    made: list[Path] = []

    def make() -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="hpo-pgtest-")))
        return made[-1]

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_pg(server_home: Callable[[], Path]) -> Iterator[EmbeddedPostgres | None]:
    """The session's embedded server, or None when DATABASE_URL names an external one."""
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    handle = start_embedded_postgres(server_home())
    yield handle
    handle.release()  # last user: stops it


@pytest.fixture(scope="session")
def pg_admin_dsn(embedded_pg: EmbeddedPostgres | None) -> str:
    return os.environ["DATABASE_URL"] if embedded_pg is None else embedded_pg.dsn()


@pytest.fixture(scope="session")
def migrated_template(pg_admin_dsn: str) -> Iterator[str]:
    name, dsn = create_database(pg_admin_dsn)
    # a thread of its own: this fixture may first be requested from inside a running event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate(dsn)).result()
    yield name
    drop_database(pg_admin_dsn, name)


@pytest.fixture
def fresh_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """An empty database of its own."""
    name, dsn = create_database(pg_admin_dsn)
    yield dsn
    drop_database(pg_admin_dsn, name)


@pytest.fixture
def migrated_dsn(pg_admin_dsn: str, migrated_template: str) -> Iterator[str]:
    """A database of its own with every migration applied."""
    name, dsn = create_database(pg_admin_dsn, template=migrated_template)
    yield dsn
    drop_database(pg_admin_dsn, name)


@pytest_asyncio.fixture(loop_scope="function")
async def db(migrated_dsn: str) -> AsyncIterator[Database]:
    async with await create_pool(migrated_dsn, max_size=4) as database:
        yield database


@pytest_asyncio.fixture(params=["memory", "postgres"], loop_scope="function")
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Every HistoryRepository implementation: the contract tests run once per backend."""
    if request.param == "memory":
        yield InMemoryHistoryRepository()
        return
    dsn = request.getfixturevalue("migrated_dsn")
    async with await create_pool(dsn, max_size=4) as database:
        yield PostgresHistoryRepository(database)

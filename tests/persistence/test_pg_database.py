"""DSN handling, redaction, pool timeouts and cancellation, the embedded server (F17)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import logging
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from src.mlops.errors import ConfigurationError, DatabaseError, DatabaseTimeoutError, DatabaseUnavailableError
from src.mlops.persistence import (
    create_pool,
    normalize_dsn,
    parse_dsn,
    redact_dsn,
    redact_secrets,
    resolve_database_url,
    start_embedded_postgres,
    to_sqlalchemy_url,
    with_database,
)

from ._helpers import result_of, soon, spawn, with_password

SECRET = "s3cr3t-Pa55"


def _chain_text(e: BaseException) -> str:
    """Message of an exception and everything it chains to."""
    parts = []
    while e is not None:
        parts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- DSN helpers


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (f"postgresql://alice:{SECRET}@db.example:5433/hpo", "postgresql://alice:***@db.example:5433/hpo"),
        ("postgresql://alice:p%40ss%2Fw@db/hpo", "postgresql://alice:***@db/hpo"),
        ("postgresql://alice@db/hpo", "postgresql://alice@db/hpo"),
        ("postgresql://postgres:@/postgres?host=/tmp/x", "postgresql://postgres:@/postgres?host=/tmp/x"),
        (f"postgresql://db/hpo?user=alice&password={SECRET}", "postgresql://db/hpo?user=alice&password=***"),
        (f"host=db user=alice password={SECRET} dbname=hpo", "host=db user=alice password=*** dbname=hpo"),
        (f"host=db password='{SECRET} x' dbname=hpo", "host=db password=*** dbname=hpo"),
    ],
)
def test_redact_dsn_hides_every_password_form(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


def test_redact_secrets_in_free_text() -> None:
    text = f"could not use postgresql://bob:{SECRET}@h:1/d and password={SECRET}"
    assert SECRET not in redact_secrets(text)


def test_parse_dsn_forms() -> None:
    info = parse_dsn(f"postgresql://alice:{SECRET}@db.example:5433/hpo")
    assert (info.host, info.port, info.database, info.user) == ("db.example", 5433, "hpo", "alice")
    assert info.endpoint == "db.example:5433"
    sock = parse_dsn("postgresql://postgres@/postgres?host=/tmp/some%20dir&port=5432")
    assert sock.is_unix_socket and sock.host == "/tmp/some dir" and sock.port == 5432
    assert ".s.PGSQL.5432" in sock.endpoint
    v6 = parse_dsn("postgres://u@[::1]:6543/d")
    assert (v6.host, v6.port) == ("::1", 6543) and v6.endpoint == "[::1]:6543"


@pytest.mark.parametrize("bad", ["", "mysql://u:pw@h/d", f"http://u:{SECRET}@h/d", "not a url"])
def test_parse_dsn_rejects_other_schemes_without_leaking(bad: str) -> None:
    with pytest.raises(ConfigurationError) as ei:
        parse_dsn(bad)
    assert SECRET not in str(ei.value)
    assert "postgresql://" in str(ei.value)


def test_with_database_and_sqlalchemy_url() -> None:
    dsn = "postgresql://postgres@/postgres?host=/tmp/sock&port=5432"
    other = with_database(dsn, "test_1")
    assert parse_dsn(other).database == "test_1" and parse_dsn(other).host == "/tmp/sock"
    assert with_database("postgresql://u:p@h:1/a?dbname=a", "b") == "postgresql://u:p@h:1/b"
    assert to_sqlalchemy_url("postgresql://u:p@h:1/a") == "postgresql+psycopg://u:p@h:1/a"
    with pytest.raises(ConfigurationError):
        with_database(dsn, "a/b")


def test_sqlalchemy_style_urls_are_accepted() -> None:
    assert normalize_dsn("postgresql+psycopg://u:p@h:1/d") == "postgresql://u:p@h:1/d"
    assert normalize_dsn(" postgres+asyncpg://u@h/d ") == "postgres://u@h/d"
    assert parse_dsn("postgresql+psycopg://u@h:7/d").port == 7
    assert resolve_database_url({"DATABASE_URL": "postgresql+psycopg://u@h/d"}) == "postgresql://u@h/d"


def test_resolve_prefers_database_url_and_validates_it(tmp_path: Path) -> None:
    url = f"postgresql://alice:{SECRET}@db.example:5432/hpo"
    assert resolve_database_url({"DATABASE_URL": url, "HPO_HOME": str(tmp_path)}) == url
    assert not (tmp_path / "pgdata").exists()  # no embedded server was started
    with pytest.raises(ConfigurationError) as ei:
        resolve_database_url({"DATABASE_URL": f"mysql://alice:{SECRET}@h/d"})
    assert SECRET not in str(ei.value)


# ------------------------------------------------------------------------------------ connectivity


async def test_unreachable_database_url_fails_fast_naming_host_and_port() -> None:
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as ei:
        await create_pool(f"postgresql://alice:{SECRET}@127.0.0.1:1/hpo", connect_timeout=2)
    assert time.monotonic() - t0 < 4
    text = _chain_text(ei.value)
    assert "127.0.0.1:1" in str(ei.value)
    assert SECRET not in text
    assert isinstance(ei.value, ConnectionError)


async def test_unanswered_connect_times_out_with_host_and_port() -> None:
    # 10.255.255.1 is normally unroutable (no answer); some sandboxes refuse it at once: both are fine
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as ei:
        await create_pool(f"postgresql://alice:{SECRET}@10.255.255.1:5432/hpo", connect_timeout=1)
    assert time.monotonic() - t0 < 3.5
    assert "10.255.255.1:5432" in str(ei.value)
    assert SECRET not in _chain_text(ei.value)


async def test_missing_database_is_a_clear_unavailable_error(pg_admin_dsn: str) -> None:
    with pytest.raises(DatabaseUnavailableError, match="does not exist"):
        await create_pool(with_database(pg_admin_dsn, "no_such_db_here"), connect_timeout=3)


async def test_repr_and_errors_never_show_the_password(migrated_dsn: str) -> None:
    dsn, secret = with_password(migrated_dsn, SECRET)
    async with await create_pool(dsn, max_size=1) as db:
        assert secret not in repr(db) and "***" in repr(db)
        assert secret not in db.url
        with pytest.raises(DatabaseError) as ei:
            await db.execute("SELECT * FROM no_such_table")
        assert "no_such_table" in str(ei.value) and secret not in _chain_text(ei.value)


async def test_acquire_timeout(migrated_dsn: str) -> None:
    async with await create_pool(migrated_dsn, min_size=1, max_size=1, acquire_timeout=0.3) as db:
        async with db.acquire():
            t0 = time.monotonic()
            with pytest.raises(DatabaseTimeoutError, match=r"acquire_timeout=0\.3"):
                await db.fetchval("SELECT 1")
            assert time.monotonic() - t0 < 1.5
        assert await db.fetchval("SELECT 1") == 1


async def test_command_timeout(migrated_dsn: str) -> None:
    async with await create_pool(migrated_dsn, max_size=1, command_timeout=0.3) as db:
        t0 = time.monotonic()
        with pytest.raises(DatabaseTimeoutError, match="command_timeout"):
            await db.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - t0 < 2
        assert await db.fetchval("SELECT 2") == 2  # the pool recovered its connection


async def test_cancelled_callers_do_not_leak_connections(migrated_dsn: str) -> None:
    async with await create_pool(migrated_dsn, min_size=1, max_size=2, acquire_timeout=2) as db:
        tasks = [asyncio.create_task(db.execute("SELECT pg_sleep(10)")) for _ in range(5)]
        async with await create_pool(migrated_dsn, max_size=1) as observer:  # two run, three wait for a connection
            deadline = time.monotonic() + 10
            while await observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%' "
                    "AND state = 'active'") < 2:
                assert time.monotonic() < deadline, "the two sleeps never started"
                await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        t0 = time.monotonic()
        # both connections are usable again at once, concurrently
        assert await asyncio.gather(db.fetchval("SELECT 1"), db.fetchval("SELECT 2")) == [1, 2]
        assert time.monotonic() - t0 < 2
        assert db.pool.get_size() <= 2
        # and the server is not still sleeping on behalf of a cancelled caller
        deadline = time.monotonic() + 3
        while True:
            busy = await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'SELECT pg_sleep(10)%' AND state = 'active'"
            )
            if busy == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert busy == 0


async def test_create_pool_validates_options(migrated_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="min_size <= max_size"):
        await create_pool(migrated_dsn, min_size=3, max_size=2)
    with pytest.raises(ConfigurationError, match="acquire_timeout"):
        await create_pool(migrated_dsn, acquire_timeout=0)


# --------------------------------------------------------------------------------- embedded server


def test_embedded_server_with_a_path_too_long_for_a_unix_socket(server_home: Callable[[], Path]) -> None:
    home = server_home() / ("h" * 60) / ("o" * 60)
    home.mkdir(parents=True)
    assert len(str(home / "pgdata" / ".s.PGSQL.5432")) > 108
    handle = start_embedded_postgres(home)
    try:
        info = parse_dsn(handle.dsn())
        assert info.is_unix_socket and not info.host.startswith(str(home))  # fell back to a short directory
        import psycopg

        with psycopg.connect(handle.dsn(), autocommit=True) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
    finally:
        handle.release()
    assert handle.pid is None  # this process was its only user: stopped


def ready_line(proc: subprocess.Popen[str]) -> dict:
    """The worker's first JSON line; its stderr when it exited before printing one."""
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.strip():
        _, err = proc.communicate(timeout=60)
        pytest.fail(f"worker exited before it was ready (rc={proc.returncode}):\n{err[-3000:]}")
    return json.loads(line)


def test_two_processes_share_one_embedded_server(tmp_path: Path, server_home: Callable[[], Path]) -> None:
    """Started at once by two processes: one server; the first exits, the second keeps using it;
    after both exit the server is stopped cleanly and the data is intact."""
    home = str(server_home() / "home")
    go_first, go_second = tmp_path / "go-first", tmp_path / "go-second"
    start_at = soon(2.0)
    procs = [
        spawn("embedded", {"home": home, "name": name, "rows": 50, "start_at": start_at, "hold_until_file": str(go)})
        for name, go in (("first", go_first), ("second", go_second))
    ]
    ready = [ready_line(p) for p in procs]
    assert ready[0]["server_pid"] == ready[1]["server_pid"] is not None  # one server for both
    server_pid = ready[0]["server_pid"]

    go_first.touch()
    r1 = result_of(procs[0])  # the first user exits ...
    assert psutil.pid_exists(server_pid) and (Path(home) / "pgdata" / "postmaster.pid").exists()
    go_second.touch()
    r2 = result_of(procs[1])  # ... and the second still writes after that
    assert r1["server_pid"] == r2["server_pid"] == server_pid
    assert r2["rows_seen"] == 200
    assert not (Path(home) / "pgdata" / "postmaster.pid").exists()  # the last user stopped it

    handle = start_embedded_postgres(home)
    try:
        import psycopg

        with psycopg.connect(handle.dsn(), autocommit=True) as con:
            rows = con.execute("SELECT who, count(*) FROM share_test GROUP BY who ORDER BY who").fetchall()
        assert rows == [("first", 50), ("first-late", 50), ("second", 50), ("second-late", 50)]
        log = (Path(home) / "pgdata" / "log").read_text()
        assert "not properly shut down" not in log and "database system was interrupted" not in log
    finally:
        handle.release()


def test_embedded_cleanup_option_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cleanup"):
        start_embedded_postgres(tmp_path, cleanup="delete")  # type: ignore[arg-type]


def test_no_password_in_log_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigurationError):
        resolve_database_url({"DATABASE_URL": f"mysql://alice:{SECRET}@h/d"})
    assert SECRET not in caplog.text

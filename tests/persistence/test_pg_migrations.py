"""Numbered SQL migrations: once each, concurrent runners, refusals (F15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from src.mlops.errors import MigrationError
from src.mlops.persistence import (
    DEFAULT_MIGRATIONS_DIR,
    create_pool,
    load_migrations,
    migrate,
    migration_status,
)

from ._helpers import REPO_ROOT, result_of, soon, spawn

#: the repository's migration files, by version (each helper adding a file need not edit these tests)
FILES = sorted(DEFAULT_MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
VERSIONS = [int(f.name[:3]) for f in FILES]


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    """A private copy of the repository's migrations, free to edit."""
    d = tmp_path / "migrations"
    shutil.copytree(DEFAULT_MIGRATIONS_DIR, d)
    return d


def test_default_directory_is_the_repository_one() -> None:
    assert DEFAULT_MIGRATIONS_DIR == REPO_ROOT / "database" / "migrations"
    migrations = load_migrations()
    assert [m.version for m in migrations] == VERSIONS and VERSIONS[:2] == [1, 2]
    assert all(len(m.checksum) == 64 for m in migrations)


async def test_migrate_applies_each_file_once(fresh_dsn: str) -> None:
    assert await migrate(fresh_dsn) == VERSIONS
    assert await migrate(fresh_dsn) == []
    async with await create_pool(fresh_dsn) as db:
        rows = await db.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows][:2] == [(1, "hpo_history"), (2, "optuna_journal")]
        assert [r["version"] for r in rows] == VERSIONS
        assert [r["checksum"] for r in rows] == [m.checksum for m in load_migrations()]
        tables = {r["t"] for r in await db.fetch("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'")}
        assert {"ml_experiments", "ml_hpo_studies", "ml_hpo_trials", "optuna_journal_logs", "ml_model_artifacts",
                "schema_migrations"} <= tables
        fks = await db.fetch(
            "SELECT conrelid::regclass::text AS t, confrelid::regclass::text AS r FROM pg_constraint WHERE contype = 'f'"
        )
        assert {(r["t"], r["r"]) for r in fks} == {("ml_hpo_studies", "ml_experiments"), ("ml_hpo_trials", "ml_hpo_studies")}
        indexes = {r["i"] for r in await db.fetch("SELECT indexname AS i FROM pg_indexes WHERE schemaname = 'public'")}
        assert {"ml_hpo_studies_lookup_idx", "ml_hpo_trials_complete_value_idx", "ml_hpo_trials_study_number_key"} <= indexes
        status = await migration_status(db)
        assert [(s.version, s.checksum_ok) for s in status] == [(v, True) for v in VERSIONS]


def test_two_processes_migrating_at_once_apply_each_file_exactly_once(fresh_dsn: str, migrations_copy: Path) -> None:
    # a slow last migration widens the window in which both runners are active
    slow = VERSIONS[-1] + 1
    (migrations_copy / f"{slow:03d}_slow.sql").write_text("SELECT pg_sleep(0.5);\nCREATE TABLE slow_marker (id INT);\n")
    start_at = soon(1.5)
    procs = [spawn("migrate", {"dsn": fresh_dsn, "start_at": start_at, "migrations_dir": str(migrations_copy)}) for _ in range(2)]
    applied = [result_of(p)["applied"] for p in procs]
    assert sorted(applied) == [[], [*VERSIONS, slow]]


async def test_changed_file_is_refused(fresh_dsn: str, migrations_copy: Path) -> None:
    await migrate(fresh_dsn, migrations_dir=migrations_copy)
    f = migrations_copy / "001_hpo_history.sql"
    f.write_text(f.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError) as ei:
        await migrate(fresh_dsn, migrations_dir=migrations_copy)
    msg = str(ei.value)
    assert "001_hpo_history.sql" in msg and "version 1" in msg and "changed after it was applied" in msg


async def test_database_newer_than_the_code_is_refused(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    async with await create_pool(fresh_dsn) as db:
        await db.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (7, 'from_the_future', 'x')")
    with pytest.raises(MigrationError) as ei:
        await migrate(fresh_dsn)
    msg = str(ei.value)
    assert "newer than this code" in msg and "version 7" in msg and "from_the_future" in msg
    assert FILES[-1].name in msg


async def test_failing_file_rolls_back_alone(fresh_dsn: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_ok.sql").write_text("CREATE TABLE a (id INT);")
    (d / "002_bad.sql").write_text("CREATE TABLE b (id INT);\nSELECT 1 / 0;")
    with pytest.raises(MigrationError) as ei:
        await migrate(fresh_dsn, migrations_dir=d)
    assert "002_bad.sql" in str(ei.value) and "rolled back" in str(ei.value)
    async with await create_pool(fresh_dsn) as db:
        assert await db.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
        assert await db.fetchval("SELECT to_regclass('a') IS NOT NULL") is True
        assert await db.fetchval("SELECT to_regclass('b') IS NULL") is True
    (d / "002_bad.sql").write_text("CREATE TABLE b (id INT);")
    assert await migrate(fresh_dsn, migrations_dir=d) == [2]


async def test_file_numbered_below_an_applied_version_is_refused(fresh_dsn: str, tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    (d / "001_a.sql").write_text("SELECT 1;")
    (d / "003_c.sql").write_text("SELECT 1;")
    await migrate(fresh_dsn, migrations_dir=d)
    (d / "002_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"002_b\.sql .*below the latest applied version 3"):
        await migrate(fresh_dsn, migrations_dir=d)


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"1-first.sql": ""}, "NNN_name.sql"),
        ({"001_a.sql": "", "1_b.sql": ""}, "share version 1"),
    ],
)
def test_bad_migration_files_are_refused(tmp_path: Path, files: dict[str, str], match: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(MigrationError, match=match):
        load_migrations(tmp_path)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nope")

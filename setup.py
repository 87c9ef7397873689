"""Build hook: ship ``database/migrations/*.sql`` inside the package (``src/mlops/persistence/sql/``).

``database/migrations`` stays the one source of the migrations; a source checkout reads it in place,
and a wheel (``pip install .``, not editable) gets this copy made at build time, which
``src.mlops.persistence.migrations`` finds when there is no checkout around it. Everything else
about the package is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MIGRATIONS = ROOT / "database" / "migrations"
PACKAGED = Path("src") / "mlops" / "persistence" / "sql"


class BuildPyWithMigrations(build_py):
    """``build_py`` that also copies the SQL migrations into the built package."""

    def run(self) -> None:
        super().run()
        files = sorted(MIGRATIONS.glob("*.sql"))
        if not files:
            raise SystemExit(f"no migrations found in {MIGRATIONS}: the package would have no schema")
        target = Path(self.build_lib) / PACKAGED
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, target / f.name)


setup(cmdclass={"build_py": BuildPyWithMigrations})

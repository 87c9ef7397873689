"""A wheel install (``pip install .``, not editable) carries its migrations (issue 8 defect 5).

The wheel is built the way ``./run`` installs the project (pip, isolated build from the configured
index), installed with ``--no-deps`` into a fresh virtualenv whose only other packages are the
project venv's (a ``.pth`` line; nothing is downloaded), and ``hpo db migrate`` runs there, outside
the checkout, against an embedded PostgreSQL in a temporary HPO_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import psycopg
import pytest

from ._helpers import ROOT, embedded_dsn, env_for

MIGRATIONS = sorted(p.name for p in (ROOT / "database" / "migrations").glob("*.sql"))


def _run(*cmd: str, **kw) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_hpo_db_migrate_from_an_installed_wheel(tmp_path, home):
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("hpo_agent-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = sorted(Path(n).name for n in z.namelist() if n.startswith("src/mlops/persistence/sql/"))
    assert shipped == MIGRATIONS

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after the wheel's own files
    _run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = env_for(home, embedded=True)
    env.pop("PYTHONPATH", None)
    where = _run(str(python), "-c", "import src.mlops.persistence as p; print(p.__file__); print(p.DEFAULT_MIGRATIONS_DIR)",
                 cwd=elsewhere, env=env).stdout.split()
    assert all(Path(w).is_relative_to(site) for w in where), where  # the installed copy, not the checkout

    migrated = _run(str(venv / "bin" / "hpo"), "db", "migrate", cwd=elsewhere, env=env)
    for name in MIGRATIONS:
        assert f"{name.split('.')[0]}" in migrated.stdout and "pending" not in migrated.stdout, migrated.stdout
    with psycopg.connect(embedded_dsn(home)) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()}
    assert {"ml_experiments", "ml_hpo_studies", "ml_hpo_trials", "optuna_journal_logs", "schema_migrations"} <= tables
    assert os.environ.get("HPO_HOME") != str(home)  # the test did not change its own process

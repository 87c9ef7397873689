"""Helpers shared by the persistence tests (databases, subprocess workers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from src.mlops.persistence import with_database

WORKER = Path(__file__).with_name("_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def with_password(dsn: str, fallback: str) -> tuple[str, str]:
    """``(dsn, password)`` for the redaction tests: the DSN's own password when it has one (an external
    server), else ``fallback`` put into it -- accepted because a server reached without a password
    authenticates by trust or peer and ignores the one given."""
    parts = urlsplit(dsn)
    if parts.password:
        return dsn, parts.password
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{fallback}@{host}")), fallback


def admin_sql(dsn: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as con:
        con.execute(sql)


def create_database(admin_dsn: str, *, template: str | None = None) -> tuple[str, str]:
    """A new database (optionally cloned from ``template``): its name and DSN."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin_sql(admin_dsn, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name, with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    admin_sql(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn(command: str, args: dict[str, Any]) -> subprocess.Popen[str]:
    """Run ``_worker.py COMMAND ARGS`` in a new Python process."""
    return subprocess.Popen(
        [sys.executable, str(WORKER), command, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
        env=dict(os.environ),
    )


def result_of(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """The last JSON line a worker printed (fails the test with its stderr if it failed)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed (rc={proc.returncode}):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def soon(seconds: float = 1.5) -> float:
    """A start time a little in the future, so subprocesses begin their work together."""
    return time.time() + seconds


def add_other_studies(dsn: str, n_studies: int, n_trials: int) -> int:
    """Write ``n_studies`` finished studies of ``n_trials`` trials straight into the per-study journals
    (COPY: fast), as Optuna would have logged them; returns the number of logs written. Used by the
    open-time test and bench/bench_workers.py."""
    from src.mlops.persistence.optuna_storage import TRIAL_ID_STRIDE

    from optuna.distributions import FloatDistribution, distribution_to_json
    from optuna.storages.journal._storage import JournalOperation as Op

    names = [f"other-{uuid.uuid4().hex}" for _ in range(n_studies)]
    x = distribution_to_json(FloatDistribution(0.0, 1.0))
    with psycopg.connect(dsn, autocommit=True) as con:
        studies = con.execute("INSERT INTO optuna_journal_studies (study_name) SELECT unnest(%s::text[]) "
                              "RETURNING study_key, study_name", (names,)).fetchall()
        rows = 0
        with con.cursor().copy("COPY optuna_journal_logs (study_key, log_number, append_id, op_code, body) FROM STDIN") as copy:
            for key, name in studies:
                logs: list[dict[str, Any]] = [{"op_code": Op.CREATE_STUDY, "worker_id": "w", "study_name": name,
                                               "directions": [1]}]
                for n in range(n_trials):
                    tid = key * TRIAL_ID_STRIDE + n
                    logs += [
                        {"op_code": Op.CREATE_TRIAL, "worker_id": "w", "study_id": key,
                         "datetime_start": "2026-01-01T00:00:00.000000+00:00"},
                        {"op_code": Op.SET_TRIAL_PARAM, "worker_id": "w", "trial_id": tid, "param_name": "x",
                         "param_value_internal": 0.5, "distribution": x},
                        {"op_code": Op.SET_TRIAL_STATE_VALUES, "worker_id": "w", "trial_id": tid, "state": 1,
                         "values": [0.5], "datetime_complete": "2026-01-01T00:00:01.000000+00:00"},
                    ]
                for number, log in enumerate(logs):
                    copy.write_row((key, number, uuid.uuid4(), int(log["op_code"]), json.dumps(log)))
                rows += len(logs)
        con.execute("ANALYZE optuna_journal_logs")
    return rows

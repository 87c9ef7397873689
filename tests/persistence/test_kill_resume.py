"""kill -9 in the middle of a study, then the same command again: the study continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psycopg

from src.mlops.optimizer import resolve_storage

WORKER = Path(__file__).with_name("_tune_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(dsn: str, name: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), dsn, name, str(n)], cwd=str(ROOT), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


def _complete(storage: optuna.storages.BaseStorage, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def test_kill_9_mid_study_then_resume_completes_exactly_n_trials(migrated_dsn):
    name, n = "kill-me", 14
    storage = resolve_storage(migrated_dsn)
    proc = _spawn(migrated_dsn, name, n)
    deadline = time.monotonic() + 120
    while _complete(storage, name) < 4:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _complete(storage, name)
    assert done_before < n

    again = _spawn(migrated_dsn, name, n)
    out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])

    study = optuna.load_study(study_name=name, storage=resolve_storage(migrated_dsn))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n == summary["n_completed"]
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len({t.number for t in trials}) == len(trials)
    stale = [t for t in trials if t.user_attrs.get("fail_reason") == "stale"]
    assert len(stale) <= 1  # at most the trial in flight when the process died
    assert [t.user_attrs.get("source") for t in trials].count("defaults") == 1

    with psycopg.connect(migrated_dsn) as con:
        rows = con.execute(
            "SELECT t.trial_number, t.state FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id "
            "WHERE s.study_name = %s", (name,)).fetchall()
    numbers = [r[0] for r in rows]
    assert len(numbers) == len(set(numbers))  # every trial exactly once
    assert sorted(r[0] for r in rows if r[1] == "COMPLETE") == sorted(t.number for t in complete)

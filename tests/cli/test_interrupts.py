"""Ctrl-C and SIGTERM on a real ``hpo train`` (issue 9 items 7, 8, 11): the run stops cleanly, says
how to resume, records the study as interrupted with its real counters, and a resume honours a
larger --n-trials while refusing changed data."""

from __future__ import annotations

import json
import re
import signal
import time

import optuna
import pytest

from ._helpers import Running, embedded_dsn, hpo, postmaster_pid

#: what a clean stop never prints
NOISE = ("Traceback", "never retrieved", "rollback", "did not finish its queue", "KeyboardInterrupt")


def _study_line(home, study_name: str) -> str:
    r = hpo(home, "studies", "--limit", "50")
    assert r.returncode == 0, r.stderr[-2000:]
    return next(line for line in r.stdout.splitlines() if line.startswith(study_name))


def _counter(line: str, name: str) -> int:
    return int(re.search(rf"\b{name}=(\d+)", line).group(1))


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_the_resume_honours_n_trials(tmp_path, home):
    """Before: 'interrupted' only (no thread id), a 'Future exception was never retrieved', a psycopg
    rollback warning, child-process KeyboardInterrupt tracebacks and a wrong 'did not finish its
    queue' message; `hpo studies` said 'running complete=0'; a resume ignored --n-trials."""
    out_json = tmp_path / "run.json"
    run = Running(home, "train", "--dataset", "breast_cancer", "--n-trials", "40", "--pruner", "none",
                  "--trial-timeout", "120", "--output-json", str(out_json))  # trials in worker processes, MLflow on
    run.wait_for_trials(3)
    run.signal(signal.SIGINT, group=True)  # what a terminal's Ctrl-C does: the whole process group
    rc, _, err = run.finish()
    assert rc == 130, err[-3000:]
    m = re.search(r"To resume: hpo train --thread-id (\w+)", err)
    assert m, err[-3000:]
    thread_id = m.group(1)
    assert not [n for n in NOISE if n in err], err[-5000:]
    saved = json.loads(out_json.read_text())
    assert saved["status"] == "interrupted" and saved["thread_id"] == thread_id and saved["signal"] == "SIGINT"
    study_name = f"trainer-{saved['run_id']}"
    line = _study_line(home, study_name)
    assert " interrupted " in line and _counter(line, "complete") >= 3, line

    other = tmp_path / "other.csv"
    other.write_text("a,b,y\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(60)))
    refused = hpo(home, "train", "--thread-id", thread_id, "--data", str(other), "--n-trials", "6")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "--data" in refused.stderr and "--dataset 'breast_cancer'" in refused.stderr, refused.stderr

    resumed = hpo(home, "train", "--thread-id", thread_id, "--n-trials", "6", "--no-mlflow", "--quiet",
                  "--output-json", str(out_json))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "honoured: --n-trials 6 (was 40)" in resumed.stderr, resumed.stderr
    done = json.loads(out_json.read_text())
    assert done["status"] == "completed" and done["thread_id"] == thread_id
    study = optuna.load_study(study_name=study_name, storage=_storage(home))
    used = [t for t in study.get_trials(deepcopy=False)
            if t.state != optuna.trial.TrialState.FAIL or t.user_attrs.get("fail_reason") not in ("cancelled", "stale")]
    assert len(used) == 6, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    line = _study_line(home, study_name)
    assert " completed " in line and _counter(line, "complete") + _counter(line, "pruned") >= 6 - 1, line


def _storage(home):
    from src.mlops.optimizer import resolve_storage

    return resolve_storage(embedded_dsn(home))


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_leaves_no_trial_running_and_stops_the_server(tmp_path, home):
    """Before: the process died at once (rc -15/143 from the default action), a trial stayed RUNNING
    until a resume, and the embedded PostgreSQL kept running."""
    run = Running(home, "train", "--dataset", "breast_cancer", "--n-trials", "40", "--no-mlflow",
                  "--output-json", str(tmp_path / "run.json"))
    run.wait_for_trials(3)
    assert postmaster_pid(home) is not None
    run.signal(signal.SIGTERM, group=False)  # a container stop: the main process alone
    rc, _, err = run.finish()
    assert rc == 143, err[-3000:]
    assert "stopped by SIGTERM" in err and "To resume: hpo train --thread-id" in err, err[-3000:]
    assert not [n for n in NOISE if n in err], err[-5000:]
    deadline = time.monotonic() + 20
    while postmaster_pid(home) is not None and time.monotonic() < deadline:  # pg_ctl stop returned already
        time.sleep(0.2)
    assert postmaster_pid(home) is None, "the embedded PostgreSQL is still running"
    saved = json.loads((tmp_path / "run.json").read_text())
    study_name = f"trainer-{saved['run_id']}"
    study = optuna.load_study(study_name=study_name, storage=_storage(home))
    states = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.get_trials(deepcopy=False)]
    assert not [s for s in states if s[1] == "RUNNING"], states
    line = _study_line(home, study_name)
    complete = sum(1 for s in states if s[1] == "COMPLETE")
    assert " interrupted " in line and _counter(line, "complete") == complete >= 3, (line, states)

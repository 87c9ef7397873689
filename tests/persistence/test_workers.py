"""Many worker processes on one study (SPEC F25, issue 11): real processes, real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import psycopg
import pytest
from optuna.trial import TrialState

from src.mlops.errors import DataValidationError, StudyNotFoundError
from src.mlops.optimizer import uses_budget
from src.mlops.optuna_optimizer import run_hyperparameter_optimization
from src.mlops.persistence import create_optuna_storage
from src.mlops.persistence.pg_trial_slots import PostgresTrialSlots
from src.mlops.schemes import resolve_scheme, tuning_frames
from src.mlops.study_recipe import data_fingerprint, join_study, load_data_source
from src.mlops.trial_slots import new_worker_id

from ._helpers import REPO_ROOT, result_of, soon, spawn


def _trials(dsn: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=create_optuna_storage(dsn)).get_trials()


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic()


def test_four_workers_on_a_fresh_study_run_exactly_its_budget(migrated_dsn: str) -> None:
    """4 processes start the same fresh study of 40 trials at once: exactly 40 finished, none left
    RUNNING or WAITING, and the defaults and each portfolio configuration enqueued once."""
    start_at = soon(2.0)
    procs = [spawn("engine-worker", {"dsn": migrated_dsn, "study": "four", "n_trials": 40, "tune": True,
                                     "host": f"host-{i}", "start_at": start_at}) for i in range(4)]
    results = [result_of(p, timeout=180) for p in procs]
    trials = _trials(migrated_dsn, "four")
    states = [t.state for t in trials]
    assert len(trials) == 40 and states.count(TrialState.COMPLETE) == 40, [s.name for s in states]
    sources = [t.user_attrs.get("source") for t in trials]
    assert sources.count("defaults") == 1
    portfolio = [json.dumps(t.params, sort_keys=True) for t in trials if t.user_attrs.get("source") == "portfolio"]
    assert len(portfolio) == len(set(portfolio)) == 3
    assert all(r["n_completed"] == 40 for r in results)
    with psycopg.connect(migrated_dsn) as con:
        used, hosts = con.execute("SELECT count(*) FILTER (WHERE uses_budget), count(DISTINCT w.host) "
                                  "FROM hpo_trial_slots s JOIN hpo_workers w USING (worker_key)").fetchone()
    assert used == 40 and hosts >= 2


def _slot_of(dsn: str, host: str) -> tuple[int, str] | None:
    with psycopg.connect(dsn) as con:
        return con.execute("SELECT s.trial_number, s.state FROM hpo_trial_slots s JOIN hpo_workers w USING (worker_key) "
                           "WHERE w.host = %s ORDER BY s.trial_number LIMIT 1", (host,)).fetchone()


def test_dead_and_frozen_workers_on_other_hosts_lose_their_trials_live_ones_never(migrated_dsn: str) -> None:
    """Four hosts share a study. host-a and host-b are live, with trials longer than their lease.
    host-d is killed with -9: its database session ends with it, so its trial is failed as stale
    long before its 30 s lease would expire. host-c is frozen (SIGSTOP: its session stays open): its
    trial is left alone while its 3 s lease runs, then failed as stale. Both are retried once; the
    live workers' trials are never touched."""
    n = 8
    common = {"dsn": migrated_dsn, "study": "hosts", "n_trials": n, "heartbeat": 0.1, "start_at": soon(2.0)}
    live = [spawn("engine-worker", {**common, "host": h, "trial_s": 1.3, "lease": 1.0}) for h in ("host-a", "host-b")]
    frozen = spawn("engine-worker", {**common, "host": "host-c", "block": True, "max_trials": 1, "lease": 3.0})
    dead = spawn("engine-worker", {**common, "host": "host-d", "block": True, "max_trials": 1, "lease": 30.0})
    try:
        _wait_for("host-c and host-d to hold a trial",
                  lambda: _slot_of(migrated_dsn, "host-c") is not None and _slot_of(migrated_dsn, "host-d") is not None)
        c_trial, d_trial = _slot_of(migrated_dsn, "host-c")[0], _slot_of(migrated_dsn, "host-d")[0]
        os.kill(frozen.pid, signal.SIGSTOP)
        os.kill(dead.pid, signal.SIGKILL)
        t0 = time.monotonic()
        storage = create_optuna_storage(migrated_dsn)
        study = optuna.load_study(study_name="hosts", storage=storage)
        reaper = PostgresTrialSlots(migrated_dsn, worker_id=new_worker_id("host-test"))
        reaped: dict[int, float] = {}

        def reap() -> bool:
            # the live workers reconcile too: whoever fails a trial as stale first, it is seen here
            reaper.reap(study)
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                if t.user_attrs.get("fail_reason") == "stale":
                    reaped.setdefault(t.number, time.monotonic() - t0)
            return c_trial in reaped and d_trial in reaped

        _wait_for("the dead and the frozen worker's trials to be failed as stale", reap, timeout=60)
        reaper.close()
        assert reaped[d_trial] < 3.0, reaped  # session ended: well before its 30 s lease
        assert 3.0 - 0.5 <= reaped[c_trial] < 3.0 + 10, reaped  # frozen: only once its 3 s lease expired
        for p in live:
            result_of(p, timeout=120)
    finally:
        for p in (frozen, dead):
            if p.poll() is None:
                p.kill()
            p.wait()
    trials = _trials(migrated_dsn, "hosts")
    by_number = {t.number: t for t in trials}
    assert {by_number[c_trial].user_attrs.get("fail_reason"), by_number[d_trial].user_attrs.get("fail_reason")} == {"stale"}
    stale = [t.number for t in trials if t.user_attrs.get("fail_reason") == "stale"]
    assert sorted(stale) == sorted([c_trial, d_trial])  # the live hosts' trials were never reaped
    retries = sorted(t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs)
    assert retries == sorted([c_trial, d_trial])
    assert sum(t.state == TrialState.COMPLETE for t in trials) == n == sum(uses_budget(t) for t in trials)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def _hpo(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "src.cli", *args], cwd=str(REPO_ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_hpo_worker_joins_a_study_and_refuses_changed_data(migrated_dsn: str, tmp_path: Path) -> None:
    """A study created by `hpo tune`'s code path records its data location and fingerprint; two
    `hpo worker` processes finish its budget exactly; changed data is refused naming both fingerprints."""
    from sklearn.datasets import load_wine

    csv = tmp_path / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(csv, index=False)
    source = {"kind": "file", "path": str(csv), "target": "target", "problem_type": None, "time_column": None,
              "split": {"seed": 3, "rare_classes": "train"}}
    splits = load_data_source(source)  # what `hpo tune` does: splits, the evaluation scheme, its data
    scheme = resolve_scheme(y_train=splits.y_train, y_val=splits.y_val, n_features=splits.X_train.shape[1],
                            classification=True)
    assert scheme.uses_cv  # a small table: trials are scored by CV over train + validation
    source["scheme"] = scheme.to_dict()
    X_tr, y_tr, X_va, y_va = tuning_frames(splits.X_train, splits.y_train, splits.X_val, splits.y_val, scheme)
    first = await run_hyperparameter_optimization(
        "logistic_regression", splits.problem_type, X_tr, y_tr, X_va, y_va, n_trials=7, **scheme.objective_options(),
        study_name="joined", storage=migrated_dsn, data_source=source, max_trials=1, seed=3)
    assert first.n_trials == 1  # this call's own share; the study's budget is 7

    env = {**os.environ, "DATABASE_URL": migrated_dsn, "HPO_HOME": str(tmp_path / "home")}
    workers = [_hpo(env, "worker", "--study", "joined", "--no-mlflow", "--quiet", "--output-json",
                    str(tmp_path / f"w{i}.json")) for i in range(2)]
    for w in workers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err[-3000:]
    trials = _trials(migrated_dsn, "joined")
    assert len(trials) == 7 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.user_attrs.get("source") for t in trials].count("defaults") == 1
    assert json.loads((tmp_path / "w0.json").read_text())["n_completed"] == 7

    frame = load_wine(as_frame=True).frame
    frame.loc[5, "alcohol"] += 1.0
    frame.to_csv(csv, index=False)
    with pytest.raises(DataValidationError) as ei:
        await join_study("joined", storage=migrated_dsn)
    recorded = optuna.load_study(study_name="joined", storage=create_optuna_storage(migrated_dsn)).user_attrs["hpo.recipe"]
    changed = load_data_source(source)  # with the scheme: the objective's data, as the worker saw it
    now = data_fingerprint(changed.X_train, changed.y_train, changed.X_val, changed.y_val)
    assert now != recorded["fingerprint"]
    assert recorded["fingerprint"] in str(ei.value) and now in str(ei.value) and str(csv) in str(ei.value)
    with pytest.raises(StudyNotFoundError, match="no study named 'nope'"):
        await join_study("nope", storage=migrated_dsn)


async def test_a_study_of_the_graph_is_joined_from_its_split_files(migrated_dsn: str, tmp_path: Path) -> None:
    """`hpo train --study-name` studies record their split files (and the evaluation scheme): a worker
    loads them, checks the fingerprint and runs the rest of the budget; the graph's pruner (none) holds."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from src.mlops.schemes import EvaluationScheme
    from src.mlops.splits import save_frame_ref

    X, y = load_wine(return_X_y=True, as_frame=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    refs = {name: save_frame_ref(obj, tmp_path, name) for name, obj in
            {"train_X": X_tr, "train_y": y_tr, "val_X": X_va, "val_y": y_va}.items()}
    scheme = EvaluationScheme("cv", 3, reason="test")
    source = {"kind": "frames", "refs": refs, "scheme": scheme.to_dict()}
    X_cv, y_cv, _, _ = tuning_frames(X_tr, y_tr, X_va, y_va, scheme)
    await run_hyperparameter_optimization("logistic_regression", "multiclass_classification", X_cv, y_cv,
                                          n_trials=4, **scheme.objective_options(), pruner=None,
                                          study_name="graph", storage=migrated_dsn, data_source=source, max_trials=1)
    r = await join_study("graph", storage=migrated_dsn)
    trials = _trials(migrated_dsn, "graph")
    assert r.n_completed == 4 == len(trials) and all(t.state == TrialState.COMPLETE for t in trials)
    study = optuna.load_study(study_name="graph", storage=create_optuna_storage(migrated_dsn))
    assert study.user_attrs["hpo.recipe"]["study"]["pruner"] == "none"
    assert study.user_attrs["hpo.recipe"]["objective"]["cv"] == 3

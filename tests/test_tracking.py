"""MLflow tracking against a real local SQLite store and against unreachable servers (no mocks)."""

from __future__ import annotations

import os
from pathlib import Path
import socket
import threading
import time

import mlflow  # imported up front: the timing tests measure network delays, not the import
import mlflow.sklearn
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from src.mlops.tracking import MLflowTracker, default_tracking_uri, redact_secrets, resolve_tracking_uri
from src.mlops.types import FAIL_REASON_ATTR, OptimizationResult, StudyContext

from ._models import saved_model as _saved_model

optuna.logging.set_verbosity(optuna.logging.WARNING)

DSN = "postgresql://hpo_user:s3cr3t@db.example:5432/hpo"


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    """One SQLite store for the module (creating its schema costs a few seconds)."""
    return default_tracking_uri(tmp_path_factory.mktemp("hpo_home"))


def _context(name: str) -> StudyContext:
    return StudyContext(
        study_name=name,
        directions=("minimize",),
        algorithm="lightgbm",
        problem_type="regression",
        metric="rmse",
        sampler_name="tpe",
        pruner_name="median",
        search_space={"x": {"type": "float", "low": -2.0, "high": 2.0}},
        n_trials=6,
        dataset_fingerprint="abc123",
        tags={"database_url": DSN, "note": f"stored in {DSN}", "owner": "agent-7"},
    )


async def _drive(tracker: MLflowTracker, name: str, n_trials: int = 6) -> optuna.Study:
    """Ask/tell a trivial objective by hand and call the listener methods in order."""
    study = optuna.create_study(study_name=name, direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    await tracker.on_study_start(study, _context(name))
    for i in range(n_trials):
        trial = study.ask()
        x = trial.suggest_float("x", -2.0, 2.0)
        trial.suggest_categorical("kind", ["a", "b"])
        trial.report(x * x + 1.0, 0)
        trial.report(x * x, 1)
        if i == 2:
            trial.set_user_attr(FAIL_REASON_ATTR, f"exception: cannot reach {DSN}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif i == 4:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, x * x)
        await tracker.on_trial_finished(study, study.trials[-1])
    done = study.get_trials(deepcopy=False)
    result = OptimizationResult(
        study_name=name,
        directions=("minimize",),
        best_params=study.best_params,
        best_value=study.best_value,
        best_values=None,
        best_trial_number=study.best_trial.number,
        n_trials=len(done),
        n_completed=sum(t.state == optuna.trial.TrialState.COMPLETE for t in done),
        n_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in done),
        n_failed=sum(t.state == optuna.trial.TrialState.FAIL for t in done),
        duration_s=0.5,
        stop_reason="n_trials",
        defaults_value=study.trials[0].value,
    )
    await tracker.on_study_end(study, result)
    return study


def _runs(uri: str, experiment_id: str) -> tuple[object, list]:
    client = MlflowClient(uri)
    runs = client.search_runs([experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    children = [r for r in runs if r.data.tags.get("hpo.role") == "trial"]
    assert len(parents) == 1
    return parents[0], children


async def test_parent_and_nested_runs(store_uri):
    tracker = MLflowTracker(store_uri, "test-runs", log_intermediate=True)
    study = await _drive(tracker, "study-runs")
    await tracker.aclose()
    assert tracker.state == "active" and tracker.dropped_writes == 0 and tracker.last_error is None

    parent, children = _runs(store_uri, tracker.experiment_id)
    assert parent.info.run_id == tracker.parent_run_id
    assert parent.info.status == "FINISHED"
    assert parent.data.params["algorithm"] == "lightgbm" and parent.data.params["metric"] == "rmse"
    assert parent.data.params["best.x"] == str(study.best_params["x"])
    assert parent.data.metrics["best_rmse"] == pytest.approx(study.best_value)
    assert parent.data.metrics["n_trials"] == 6 and parent.data.metrics["n_failed"] == 1
    assert parent.data.metrics["n_pruned"] == 1 and parent.data.metrics["n_completed"] == 4
    # secrets never reach the store
    assert parent.data.tags["database_url"] == "***"
    assert parent.data.tags["note"] == "stored in postgresql://hpo_user:***@db.example:5432/hpo"
    assert parent.data.tags["owner"] == "agent-7"

    by_number = {int(r.data.tags["hpo.trial_number"]): r for r in children}
    assert sorted(by_number) == list(range(6))
    for number, run in by_number.items():
        trial = study.trials[number]
        assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
        assert run.data.tags["hpo.state"] == trial.state.name
        assert run.data.params["x"] == str(trial.params["x"])
        assert run.data.params["kind"] == trial.params["kind"]
        assert "duration_s" in run.data.metrics
        assert run.data.metrics["intermediate_rmse"] == pytest.approx(trial.intermediate_values[1])
    assert by_number[0].data.metrics["rmse"] == pytest.approx(study.trials[0].value)
    assert by_number[0].info.status == "FINISHED"
    assert by_number[2].info.status == "FAILED" and "rmse" not in by_number[2].data.metrics
    assert by_number[2].data.tags["hpo.fail_reason"] == "exception: cannot reach postgresql://hpo_user:***@db.example:5432/hpo"
    assert by_number[4].data.tags["hpo.state"] == "PRUNED"
    history = MlflowClient(store_uri).get_metric_history(by_number[0].info.run_id, "intermediate_rmse")
    assert [m.step for m in history] == [0, 1]

    # artifacts of the SQLite store live next to the database
    exp = MlflowClient(store_uri).get_experiment(tracker.experiment_id)
    db_dir = os.path.dirname(store_uri[len("sqlite:///") :])
    assert exp.artifact_location.startswith("file://") and os.path.join(db_dir, "mlartifacts") in exp.artifact_location
    assert "search_space.json" in [a.path for a in MlflowClient(store_uri).list_artifacts(tracker.parent_run_id)]


async def test_resume_reuses_parent_and_skips_logged_trials(store_uri):
    first = MLflowTracker(store_uri, "test-resume")
    await _drive(first, "study-resume", n_trials=3)
    await first.aclose()
    second = MLflowTracker(store_uri, "test-resume")
    await _drive(second, "study-resume", n_trials=3)  # same trial numbers 0..2 again
    await second.aclose()
    assert second.parent_run_id == first.parent_run_id
    assert second.dropped_writes == 0, second.last_error
    _, children = _runs(store_uri, second.experiment_id)
    assert sorted(int(r.data.tags["hpo.trial_number"]) for r in children) == [0, 1, 2]


async def test_log_final_model_is_a_raw_rows_pyfunc(store_uri, tmp_path, monkeypatch):
    model, model_file, preparer_file, raw = _saved_model(tmp_path)
    previous_env = dict(os.environ)
    tracker = MLflowTracker(store_uri, "test-model")
    await _drive(tracker, "study-model", n_trials=2)
    uri = await tracker.log_final_model(model_file, preparer_file=preparer_file, raw_sample=raw.head(50),
                                       metrics={"test_rmse": 0.12}, params={"n_estimators": 10})
    await tracker.end_run("FINISHED")
    await tracker.aclose()
    assert uri is not None and uri.startswith("models:/"), tracker.last_error
    # no global MLflow state set through the environment (MLflow's own telemetry session id comes and goes)
    ours = lambda env: {k: v for k, v in env.items() if not k.startswith("_MLFLOW_TELEMETRY")}  # noqa: E731
    assert ours(dict(os.environ)) == ours(previous_env)
    assert tracker.dropped_writes == 0

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    info = mlflow.models.get_model_info(uri)
    assert [c.name for c in info.signature.inputs.inputs] == ["income", "age", "plan"]  # raw columns, no target
    assert info.signature.params.to_dict()[0]["name"] == "predict_method"
    loaded = mlflow.pyfunc.load_model(uri)
    expected = model.predict(prepare_rows(preparer_file, raw))
    np.testing.assert_array_equal(loaded.predict(raw), expected)  # raw rows in, original labels out
    proba = loaded.predict(raw.drop(columns=["churn"]), params={"predict_method": "predict_proba"})
    assert list(proba.columns) == ["no", "yes"] and np.allclose(proba.sum(axis=1), 1.0)
    parent, _ = _runs(store_uri, tracker.experiment_id)
    assert parent.data.metrics["test_rmse"] == pytest.approx(0.12)
    assert parent.data.params["n_estimators"] == "10"
    assert parent.info.status == "FINISHED"


def prepare_rows(preparer_file, raw):
    from src.mlops.features import load_preparer

    return load_preparer(preparer_file).transform(raw)


async def test_log_final_model_says_why_when_there_is_no_parent_run(store_uri, tmp_path):
    _, model_file, preparer_file, _ = _saved_model(tmp_path)
    tracker = MLflowTracker(store_uri, "test-no-parent")
    assert await tracker.log_final_model(model_file, preparer_file=preparer_file) is None
    await tracker.aclose()
    assert "no parent run" in tracker.last_error and tracker.dropped_writes == 1


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def black_hole():
    """A server that accepts TCP connections (kernel backlog) but never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize("server", ["refused", "black_hole"])
async def test_unreachable_server_never_fails_and_stays_fast(server, request):
    port = _free_port() if server == "refused" else request.getfixturevalue("black_hole")
    env_before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    tracker = MLflowTracker(f"http://hpo:pw123@127.0.0.1:{port}", "unreachable")  # 3 s timeout, 0 retries
    start = time.monotonic()
    await _drive(tracker, f"study-{server}")
    uri = await tracker.log_final_model("model.skops", raw_sample=pd.DataFrame({"a": [1.0]}))
    await tracker.end_run("FAILED")
    await tracker.aclose()
    elapsed = time.monotonic() - start
    assert elapsed < 6.0
    assert uri is None and tracker.parent_run_id is None
    assert tracker.state == "broken"
    assert tracker.dropped_writes >= 8  # start, 6 trials, end, model, end_run
    assert tracker.last_error and "pw123" not in tracker.last_error and "127.0.0.1" in tracker.last_error
    assert "pw123" not in repr(tracker)
    # the bounded HTTP settings were only in effect during the tracker's own calls
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == env_before


async def test_disabled_tracker_is_a_no_op():
    tracker = MLflowTracker("http://127.0.0.1:9", enabled=False)
    await _drive(tracker, "study-off", n_trials=2)
    assert await tracker.log_final_model("model.skops") is None
    tracker.close()
    assert tracker.state == "disabled" and tracker.dropped_writes == 0 and tracker.parent_run_id is None


def test_store_location_and_redaction(tmp_path, monkeypatch):
    uri = default_tracking_uri(tmp_path / "home")
    assert uri == f"sqlite:///{(tmp_path / 'home').resolve()}/mlflow.db" and uri.startswith("sqlite:////")
    monkeypatch.setenv("HPO_HOME", str(tmp_path / "env_home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{(tmp_path / 'env_home').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert resolve_tracking_uri() == "http://tracking:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"

    assert redact_secrets(DSN) == "postgresql://hpo_user:***@db.example:5432/hpo"
    assert redact_secrets("host=db password=hunter2 user=x") == "host=db password=*** user=x"
    assert redact_secrets("postgresql://db.example/hpo") == "postgresql://db.example/hpo"


async def test_tracker_never_changes_the_environment_while_it_calls(black_hole):
    """MLflow's HTTP bounds come from os.environ; the tracker used to set them around each call,
    which other threads could observe. Watch the environment from another thread during calls."""
    seen: set[str | None] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.add(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT"))

    before = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tracker = MLflowTracker(f"http://127.0.0.1:{black_hole}", "env-watch", call_timeout_s=2)
    try:
        await _drive(tracker, "study-env", n_trials=1)
    finally:
        stop.set()
        watcher.join(5)
        await tracker.aclose()
    assert tracker.state == "broken"  # the calls did happen (and failed against the black hole)
    assert seen == {before}


def test_first_runs_at_once_share_a_new_sqlite_store(tmp_path):
    """Three processes open a store that does not exist yet: one creates MLflow's schema, the others
    wait for it (without the lock, alembic's migrations collide: 'duplicate column', 'expected to match
    one row')."""
    import subprocess
    import sys

    code = ("import asyncio, sys; from src.mlops.tracking import MLflowTracker; "
            "t = MLflowTracker(sys.argv[1], 'race'); asyncio.run(t.flush()); t.close(); "
            "print(t.state, t.experiment_id, t.last_error)")
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=str(Path(__file__).resolve().parents[1])) for _ in range(3)]
    outs = [p.communicate(timeout=240)[0].split() for p in procs]
    assert all(o[:1] == ["active"] and o[-1] == "None" for o in outs), outs
    assert len({o[1] for o in outs}) == 1  # one experiment, found by all three


def test_the_pyfunc_class_imports_without_warnings():
    """Before: defining the pyfunc printed MLflow's "Add type hints to the predict method" warning
    in every `hpo train` run (no warnings filter can catch it: imports reset the filters)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import src.mlops.tracking._pyfunc"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Add type hints" not in r.stderr, r.stderr[-2000:]

"""The Optuna study in PostgreSQL: JournalStorage over optuna_journal_logs (F18)."""

from __future__ import annotations

import io
import json
import math
import pickle
import threading
import time
import uuid

import optuna
import psycopg
import pytest
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

from src.mlops.errors import DatabaseUnavailableError, MigrationError
from src.mlops.persistence import PostgresJournalBackend, create_optuna_storage
from src.mlops.persistence.optuna_storage import _records_result
from src.mlops.types import FAIL_REASON_ATTR, WORKER_ATTR

from ._helpers import result_of, soon, spawn, with_password

SPACE = {"x": optuna.distributions.FloatDistribution(-1, 1), "c": optuna.distributions.CategoricalDistribution(["a", "b"])}
SECRET = "journal-pw-77"


def test_missing_schema_names_the_fix(fresh_dsn: str) -> None:
    with pytest.raises(MigrationError, match="hpo db migrate"):
        create_optuna_storage(fresh_dsn)


def test_unreachable_server_fails_fast_without_the_password() -> None:
    t0 = time.monotonic()
    with pytest.raises(DatabaseUnavailableError) as ei:
        create_optuna_storage(f"postgresql://bob:{SECRET}@127.0.0.1:1/hpo", connect_timeout=2)
    assert time.monotonic() - t0 < 4
    assert "127.0.0.1:1" in str(ei.value) and SECRET not in str(ei.value)


def test_study_round_trips_through_a_second_storage(migrated_dsn: str) -> None:
    a = create_optuna_storage(migrated_dsn)
    study = optuna.create_study(study_name="rt", storage=a, direction="minimize")
    for i in range(6):
        t = study.ask(SPACE)
        t.set_user_attr(WORKER_ATTR, "host:1:abc")
        t.report(0.5, step=0)
        t.report(float("nan"), step=1)
        if i == 2:
            study.tell(t, state=TrialState.PRUNED)
        elif i == 3:
            t.set_user_attr(FAIL_REASON_ATTR, "timeout")
            study.tell(t, state=TrialState.FAIL)
        elif i == 4:
            study.tell(t, float("inf"))  # COMPLETE with inf, as Optuna allows
        else:
            study.tell(t, t.params["x"])
    study.enqueue_trial({"x": 0.25, "c": "b"})
    sqlalchemy_style = migrated_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    b = optuna.load_study(study_name="rt", storage=create_optuna_storage(sqlalchemy_style))
    ta, tb = study.trials, b.trials
    assert len(tb) == 7
    for x, y in zip(ta, tb):
        assert (x.number, x.state, x.params, x.user_attrs, x.distributions) == (y.number, y.state, y.params, y.user_attrs, y.distributions)
        assert x.values == y.values or (x.values and math.isinf(x.values[0]) and math.isinf(y.values[0]))
        assert json.dumps(x.intermediate_values) == json.dumps(y.intermediate_values)  # NaN-aware
    assert tb[0].intermediate_values[0] == 0.5
    assert tb[3].user_attrs[FAIL_REASON_ATTR] == "timeout"
    assert tb[6].state == TrialState.WAITING
    assert b.best_trial.number == study.best_trial.number


def test_another_process_can_fail_a_running_trial(migrated_dsn: str) -> None:
    """What stale reaping needs: tell FAIL (with a reason) on a trial another worker left RUNNING."""
    owner = optuna.create_study(study_name="reap", storage=create_optuna_storage(migrated_dsn))
    orphan = owner.ask(SPACE)
    reaper = optuna.load_study(study_name="reap", storage=create_optuna_storage(migrated_dsn))
    running = reaper.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [orphan.number]
    reaper._storage.set_trial_user_attr(running[0]._trial_id, FAIL_REASON_ATTR, "stale")
    reaper.tell(running[0].number, state=TrialState.FAIL)
    reaper.enqueue_trial(running[0].params)  # retried once
    seen = optuna.load_study(study_name="reap", storage=create_optuna_storage(migrated_dsn)).trials
    assert seen[0].state == TrialState.FAIL and seen[0].user_attrs[FAIL_REASON_ATTR] == "stale"
    assert seen[1].state == TrialState.WAITING and seen[1].system_attrs["fixed_params"] == orphan.params
    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):
        owner.tell(orphan, 1.0)  # the original owner can no longer overwrite it


def test_concurrent_writers_keep_a_dense_ordered_log(migrated_dsn: str) -> None:
    backends = [PostgresJournalBackend(migrated_dsn) for _ in range(4)]

    def write(i: int) -> None:
        for n in range(40):
            backends[i].append_logs([{"op_code": 99, "writer": i, "n": n}])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logs = PostgresJournalBackend(migrated_dsn).read_logs(0)
    assert len(logs) == 160
    for i in range(4):  # each writer's logs appear in its own order
        assert [log["n"] for log in logs if log["writer"] == i] == list(range(40))
    with psycopg.connect(migrated_dsn) as con:
        numbers = [r[0] for r in con.execute("SELECT log_number FROM optuna_journal_logs ORDER BY 1")]
    assert numbers == list(range(160))
    assert backends[0].read_logs(158) == logs[158:]


def test_a_retried_append_is_applied_once(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as con:
        append_id = uuid.uuid4()
        sql = "SELECT r_log_number, r_body FROM optuna_journal_append(%s, %s, true, 0)"
        first = con.execute(sql, (append_id, ['{"a": 1}', '{"b": 2}'])).fetchall()
        again = con.execute(sql, (append_id, ['{"a": 1}', '{"b": 2}'])).fetchall()
        assert first == again == [(0, '{"a": 1}'), (1, '{"b": 2}')]  # inserted once, read back both times
        assert con.execute("SELECT count(*) FROM optuna_journal_logs").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            con.execute("DELETE FROM optuna_journal_logs")


def test_reconnects_after_the_server_drops_the_connection(migrated_dsn: str) -> None:
    storage = create_optuna_storage(migrated_dsn)
    study = optuna.create_study(study_name="drop", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with psycopg.connect(migrated_dsn, autocommit=True) as con:
        killed = con.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'hpo-optuna-journal'"
        ).fetchone()[0]
    assert killed >= 1
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4


def test_durability_policy_matches_optunas_operations() -> None:
    assert _records_result({"op_code": JournalOperation.CREATE_STUDY})
    assert _records_result({"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "state": TrialState.COMPLETE})
    assert _records_result({"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "state": TrialState.FAIL})
    assert _records_result({"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "state": TrialState.PRUNED})
    assert _records_result({"op_code": JournalOperation.CREATE_TRIAL, "state": TrialState.WAITING})  # enqueue_trial
    assert not _records_result({"op_code": JournalOperation.CREATE_TRIAL, "study_id": 0})  # ask
    assert not _records_result({"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "state": TrialState.RUNNING})
    for op in (JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_USER_ATTR,
               JournalOperation.SET_TRIAL_SYSTEM_ATTR, JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE):
        assert not _records_result({"op_code": op})


def test_storage_pickles_for_multiprocessing(migrated_dsn: str) -> None:
    storage = create_optuna_storage(migrated_dsn)
    optuna.create_study(study_name="pk", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    clone = pickle.loads(pickle.dumps(storage))
    assert len(optuna.load_study(study_name="pk", storage=clone).trials) == 2


def test_repr_redacts_the_password(migrated_dsn: str) -> None:
    dsn, secret = with_password(migrated_dsn, SECRET)
    backend = PostgresJournalBackend(dsn)
    assert secret not in repr(backend) and "***" in repr(backend)
    list(backend.read_logs(0))  # connects with that password (raises if the server refused it)


def test_optuna_dashboard_opens_the_storage(migrated_dsn: str) -> None:
    import optuna_dashboard

    storage = create_optuna_storage(migrated_dsn)
    optuna.create_study(study_name="dash", storage=storage).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    app = optuna_dashboard.wsgi(storage)

    def get(path: str) -> dict:
        status: list[str] = []
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "t",
                   "SERVER_PORT": "80", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http"}
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
        assert status[0].startswith("200"), (status, body[:300])
        return json.loads(body)

    assert [s["study_name"] for s in get("/api/studies")["study_summaries"]] == ["dash"]
    detail = get("/api/studies/0")
    assert len(detail["trials"]) == 3 and len(detail["best_trials"]) == 1


def test_two_processes_share_one_study_with_exact_counts(migrated_dsn: str) -> None:
    start_at = soon(1.5)
    procs = [spawn("journal-worker", {"dsn": migrated_dsn, "study": "shared", "n": 15, "seed": i, "start_at": start_at})
             for i in range(2)]
    numbers = [result_of(p)["numbers"] for p in procs]
    assert sorted(numbers[0] + numbers[1]) == list(range(30))  # no trial lost, none duplicated
    assert set(numbers[0]).isdisjoint(numbers[1]) and min(len(n) for n in numbers) == 15
    trials = optuna.load_study(study_name="shared", storage=create_optuna_storage(migrated_dsn)).trials
    assert len(trials) == 30 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2

"""The Optuna studies in PostgreSQL: one journal per study in optuna_journal_logs (F18, issue 11)."""

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
from src.mlops.persistence.optuna_storage import TRIAL_ID_STRIDE, _records_result
from src.mlops.persistence.pg_sync import SyncConnection
from src.mlops.types import FAIL_REASON_ATTR, WORKER_ATTR

from ._helpers import add_other_studies, result_of, soon, spawn, with_password

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


def _study_key(dsn: str, name: str) -> int:
    return create_optuna_storage(dsn).create_new_study([optuna.study.StudyDirection.MINIMIZE], name)


def test_concurrent_writers_keep_a_dense_ordered_log_per_study(migrated_dsn: str) -> None:
    keys = [_study_key(migrated_dsn, "a"), _study_key(migrated_dsn, "b")]
    backends = [PostgresJournalBackend(SyncConnection(migrated_dsn), keys[i % 2]) for i in range(4)]

    def write(i: int) -> None:
        for n in range(40):
            backends[i].append_logs([{"op_code": 8, "writer": i, "n": n}])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key in keys:  # log 0 is the study's creation; two writers share each study
        logs = PostgresJournalBackend(SyncConnection(migrated_dsn), key).read_logs(1)
        assert len(logs) == 80
        for i in {log["writer"] for log in logs}:  # each writer's logs appear in its own order
            assert [log["n"] for log in logs if log["writer"] == i] == list(range(40))
        with psycopg.connect(migrated_dsn) as con:
            numbers = [r[0] for r in con.execute(
                "SELECT log_number FROM optuna_journal_logs WHERE study_key = %s ORDER BY 1", (key,))]
        assert numbers == list(range(81))
    assert backends[0].read_logs(79) == PostgresJournalBackend(SyncConnection(migrated_dsn), keys[0]).read_logs(79)


def test_appends_to_different_studies_do_not_wait_for_each_other(migrated_dsn: str) -> None:
    """One study's journal lock (held here by a slow writer) does not stop another study's appends."""
    a, b = _study_key(migrated_dsn, "busy"), _study_key(migrated_dsn, "free")
    writer_a = PostgresJournalBackend(SyncConnection(migrated_dsn), a)
    writer_b = PostgresJournalBackend(SyncConnection(migrated_dsn), b)
    with psycopg.connect(migrated_dsn) as holder:  # a transaction holding study a's append lock
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (int.from_bytes(b"hpoj", "big"), a))
        t0 = time.monotonic()
        writer_b.append_logs([{"op_code": 8, "n": 1}])
        assert time.monotonic() - t0 < 2.0
        blocked = threading.Thread(target=writer_a.append_logs, args=([{"op_code": 8, "n": 1}],))
        blocked.start()
        blocked.join(0.5)
        assert blocked.is_alive()  # the same study's appends do wait: its log order stays strict
    blocked.join(10)
    assert not blocked.is_alive()
    assert len(writer_a.read_logs(0)) == len(writer_b.read_logs(0)) == 2


def test_a_retried_append_is_applied_once(migrated_dsn: str) -> None:
    key = _study_key(migrated_dsn, "retried")
    with psycopg.connect(migrated_dsn, autocommit=True) as con:
        append_id = uuid.uuid4()
        sql = "SELECT r_log_number, r_body FROM optuna_journal_append(%s, %s, %s, '{8,8}', true, 1)"
        first = con.execute(sql, (key, append_id, ['{"a": 1}', '{"b": 2}'])).fetchall()
        again = con.execute(sql, (key, append_id, ['{"a": 1}', '{"b": 2}'])).fetchall()
        assert first == again == [(1, '{"a": 1}'), (2, '{"b": 2}')]  # inserted once, read back both times
        assert con.execute("SELECT count(*) FROM optuna_journal_logs WHERE study_key = %s", (key,)).fetchone()[0] == 3
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            con.execute("DELETE FROM optuna_journal_logs")


def test_trial_ids_are_unique_across_studies_and_route_to_their_study(migrated_dsn: str) -> None:
    storage = create_optuna_storage(migrated_dsn)
    studies = [optuna.create_study(study_name=f"s{i}", storage=storage) for i in range(3)]
    for study in studies:
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    ids = [t._trial_id for s in studies for t in s.trials]
    assert len(set(ids)) == 9
    running = []
    for study in studies:
        assert {t._trial_id // TRIAL_ID_STRIDE for t in study.trials} == {study._study_id}
        running.append(study.ask()._trial_id)
        storage.set_trial_system_attr(running[-1], "k", study.study_name)  # the id alone finds the study
    fresh = create_optuna_storage(migrated_dsn)
    assert [fresh.get_trial(i).system_attrs["k"] for i in running] == ["s0", "s1", "s2"]
    with pytest.raises(KeyError):
        fresh.get_trial(999 * TRIAL_ID_STRIDE)
    with pytest.raises(KeyError):
        optuna.load_study(study_name="nope", storage=fresh)


def test_every_study_is_listed_and_a_deleted_name_can_be_reused(migrated_dsn: str) -> None:
    storage = create_optuna_storage(migrated_dsn)
    optuna.create_study(study_name="one", storage=storage).set_user_attr("a", 1)
    optuna.create_study(study_name="two", storage=storage, directions=["maximize", "minimize"])
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(study_name="one", storage=storage)
    listed = {s.study_name: s for s in create_optuna_storage(migrated_dsn).get_all_studies()}
    assert set(listed) == {"one", "two"} and listed["one"].user_attrs == {"a": 1}
    assert [d.name for d in listed["two"].directions] == ["MAXIMIZE", "MINIMIZE"]
    optuna.delete_study(study_name="one", storage=storage)
    assert [s.study_name for s in storage.get_all_studies()] == ["two"]
    again = optuna.create_study(study_name="one", storage=storage)
    assert again.trials == [] and again.user_attrs == {}


def test_opening_a_study_does_not_read_other_studies(migrated_dsn: str) -> None:
    """Opening study X reads X's logs only: 1,000 other studies' journals (20 trials each) leave the
    time to open it about where it was in an empty database (measured in bench/bench_workers.py)."""
    storage = create_optuna_storage(migrated_dsn)
    mine = optuna.create_study(study_name="mine", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    mine.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=50)

    def open_ms() -> float:
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            study = optuna.load_study(study_name="mine", storage=create_optuna_storage(migrated_dsn))
            assert len(study.trials) == 50
            best = min(best, time.perf_counter() - t0)
        return best * 1e3

    empty = open_ms()
    n_logs = add_other_studies(migrated_dsn, 1000, 20)
    crowded = open_ms()
    assert n_logs > 60_000
    assert crowded < 3 * empty + 30, f"open took {crowded:.1f} ms with 1000 other studies, {empty:.1f} ms without"


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
    storage = create_optuna_storage(dsn)  # connects with that password (raises if the server refused it)
    backend = PostgresJournalBackend(storage.connection, storage.create_new_study([optuna.study.StudyDirection.MINIMIZE]))
    for obj in (storage, storage.connection, backend):
        assert secret not in repr(obj) and "***" in repr(obj)


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

    summaries = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == ["dash"]
    detail = get(f"/api/studies/{summaries[0]['study_id']}")
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

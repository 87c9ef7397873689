"""One contract suite, run against every HistoryRepository (in-memory fake and PostgreSQL) (F16)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import optuna
import pytest

from src.mlops.errors import ConfigurationError, StudyNotFoundError
from src.mlops.persistence import (
    HistoryRepository,
    InMemoryHistoryRepository,
    PostgresHistoryRepository,
    StudySummary,
    TrialRecord,
    dataset_fingerprint,
)
from src.mlops.types import FAIL_REASON_ATTR, StudyContext

INJECTION = "x'; DROP TABLE ml_hpo_trials;--"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def ctx(name: str = "study-a", **kw: Any) -> StudyContext:
    base: dict[str, Any] = dict(
        study_name=name, directions=("maximize",), algorithm="xgboost", problem_type="binary_classification",
        metric="roc_auc", sampler_name="tpe", pruner_name="median", n_trials=20, dataset_fingerprint="fp1",
        search_space={"max_depth": {"type": "int", "low": 2, "high": 8}}, experiment_name="exp-1",
    )
    base.update(kw)
    return StudyContext(**base)


def trial(number: int, state: str = "COMPLETE", value: float | None = 0.5, **kw: Any) -> TrialRecord:
    base: dict[str, Any] = dict(
        number=number, state=state, params={"max_depth": number % 7 + 2, "eta": 0.1 * (number + 1)},
        value=value if state == "COMPLETE" else None,
        values=(value,) if state == "COMPLETE" and value is not None else None,
        intermediate_values={0: 0.1, 1: 0.2}, duration_seconds=1.5,
        datetime_start=T0 + timedelta(seconds=number), datetime_complete=T0 + timedelta(seconds=number + 1.5),
    )
    base.update(kw)
    return TrialRecord(**base)


def same(a: TrialRecord, b: TrialRecord) -> bool:
    """Equality with NaN == NaN."""
    def norm(x: Any) -> Any:
        if isinstance(x, float) and math.isnan(x):
            return "nan"
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        return x
    return norm(asdict(a)) == norm(asdict(b))


def test_both_implementations_satisfy_the_protocol() -> None:
    assert isinstance(InMemoryHistoryRepository(), HistoryRepository)
    assert issubclass(PostgresHistoryRepository, HistoryRepository)


async def test_upsert_and_get_study(repo: HistoryRepository) -> None:
    assert await repo.get_study("study-a") is None
    await repo.upsert_study(ctx())
    s = await repo.get_study("study-a")
    assert s is not None
    assert (s.study_name, s.direction, s.directions, s.algorithm, s.problem_type) == (
        "study-a", "maximize", ("maximize",), "xgboost", "binary_classification")
    assert (s.metric, s.sampler_name, s.pruner_name, s.n_trials, s.dataset_fingerprint, s.experiment_name) == (
        "roc_auc", "tpe", "median", 20, "fp1", "exp-1")
    assert s.search_space == {"max_depth": {"type": "int", "low": 2, "high": 8}}
    assert s.status == "running" and s.n_completed == 0 and s.completed_at is None
    assert s.created_at is not None and s.created_at == s.updated_at
    d = s.to_dict()
    assert d["study_name"] == "study-a" and isinstance(d["created_at"], str)
    json.dumps(d, allow_nan=False)  # JSON-ready, e.g. for the CLI


async def test_upsert_study_is_idempotent_and_keeps_known_fields(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx())
    first = await repo.get_study("study-a")
    await repo.upsert_study(ctx())
    assert await repo.get_study("study-a") == first  # nothing changed, not even updated_at
    # a sparser context (e.g. a worker that only knows the name) does not erase what is known
    await repo.upsert_study(StudyContext(study_name="study-a", directions=("maximize",)))
    assert await repo.get_study("study-a") == first
    await repo.upsert_study(ctx(n_trials=50, tags={"team": "ml"}))
    changed = await repo.get_study("study-a")
    assert changed.n_trials == 50 and changed.tags == {"team": "ml"} and changed.updated_at > first.updated_at  # type: ignore[union-attr,operator]


async def test_sql_injection_study_name_is_stored_verbatim(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx(INJECTION, experiment_name=INJECTION))
    await repo.upsert_trials(INJECTION, [trial(0), trial(1)])
    s = await repo.get_study(INJECTION)
    assert s is not None and s.study_name == INJECTION and s.experiment_name == INJECTION
    assert [t.number for t in await repo.get_trials(INJECTION)] == [0, 1]
    assert [x.study_name for x in await repo.list_studies(experiment_name=INJECTION)] == [INJECTION]
    await repo.upsert_study(ctx("other"))
    await repo.upsert_trials("other", [trial(0)])  # the trials table is still there
    assert len(await repo.get_trials("other")) == 1


async def test_trials_round_trip_every_state_and_value(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx())
    records = [
        trial(0, params={"name": "日本語 ' \" \\", "flag": True, "none": None}, user_attrs={"source": "defaults"}),
        trial(1, "PRUNED", intermediate_values={0: 0.3, 3: float("nan")}),
        trial(2, "FAIL", fail_reason="exception: ValueError('boom')", user_attrs={FAIL_REASON_ATTR: "exception: ValueError('boom')"}),
        trial(3, "RUNNING", datetime_complete=None, duration_seconds=None),
        trial(4, value=float("inf")),
        trial(5, "COMPLETE", value=None, values=(0.9, 12.5)),  # multi-objective
        trial(6, "WAITING", datetime_start=None, datetime_complete=None, duration_seconds=None, intermediate_values={}),
    ]
    await repo.upsert_trials("study-a", records)
    back = await repo.get_trials("study-a")
    assert len(back) == len(records)
    for a, b in zip(records, back):
        assert same(a, b), (a, b)
    assert [t.number for t in await repo.get_trials("study-a", states=["COMPLETE"])] == [0, 4, 5]
    assert [t.number for t in await repo.get_trials("study-a", states=["pruned", "FAIL"])] == [1, 2]


async def test_upsert_trials_is_idempotent_and_never_downgrades(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx())
    await repo.upsert_trials("study-a", [trial(0, "RUNNING"), trial(1)])
    await repo.upsert_trials("study-a", [trial(0, "COMPLETE", value=0.7)])  # RUNNING -> COMPLETE
    snapshot = await repo.get_trials("study-a")
    await repo.upsert_trials("study-a", [trial(0, "COMPLETE", value=0.7), trial(1)])  # same again
    await repo.upsert_trials("study-a", [trial(0, "RUNNING"), trial(1, "WAITING")])  # stale writes
    assert await repo.get_trials("study-a") == snapshot
    assert snapshot[0].state == "COMPLETE" and snapshot[0].value == 0.7
    await repo.upsert_trials("study-a", [])  # an empty batch is fine


async def test_unknown_study_is_a_clear_error(repo: HistoryRepository) -> None:
    with pytest.raises(StudyNotFoundError, match="'ghost'"):
        await repo.upsert_trials("ghost", [trial(0)])
    with pytest.raises(StudyNotFoundError):
        await repo.get_trials("ghost")
    with pytest.raises(StudyNotFoundError):
        await repo.update_study_summary("ghost", StudySummary(0, 0, 0))
    assert isinstance(StudyNotFoundError("x"), KeyError)


async def test_update_study_summary(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx())
    summary = StudySummary(n_completed=3, n_pruned=1, n_failed=2, best_trial_number=4, best_value=0.93,
                           best_values=(0.93,), best_params={"max_depth": 5}, status="completed",
                           stop_reason="n_trials", duration_seconds=12.5)
    await repo.update_study_summary("study-a", summary)
    s = await repo.get_study("study-a")
    assert (s.n_completed, s.n_pruned, s.n_failed, s.best_trial_number, s.best_value, s.best_values) == (  # type: ignore[union-attr]
        3, 1, 2, 4, 0.93, (0.93,))
    assert (s.best_params, s.status, s.stop_reason, s.duration_seconds) == ({"max_depth": 5}, "completed", "n_trials", 12.5)  # type: ignore[union-attr]
    assert s.completed_at is not None  # type: ignore[union-attr]
    await repo.update_study_summary("study-a", summary)
    assert await repo.get_study("study-a") == s
    # None keeps status, stop reason and duration
    await repo.update_study_summary("study-a", replace(summary, status=None, stop_reason=None, duration_seconds=None))
    assert await repo.get_study("study-a") == s
    # resuming puts the study back to running
    await repo.upsert_study(ctx(), status="running")
    again = await repo.get_study("study-a")
    assert again.status == "running" and again.completed_at is None  # type: ignore[union-attr]


async def test_refresh_study_counts_follows_the_stored_trials(repo: HistoryRepository) -> None:
    """Counters written as trials finish (not only at the study's end): a study interrupted before
    its end still shows what it did. Status, stop reason and duration are left alone."""
    await repo.upsert_study(ctx())
    await repo.upsert_trials("study-a", [trial(0, value=0.80), trial(1, "PRUNED"), trial(2, value=0.91),
                                         trial(3, "FAIL"), trial(4, "RUNNING"), trial(5, value=float("nan")),
                                         trial(6, value=0.91)])
    await repo.refresh_study_counts("study-a")
    s = await repo.get_study("study-a")
    assert (s.n_completed, s.n_pruned, s.n_failed, s.status) == (4, 1, 1, "running")  # type: ignore[union-attr]
    assert (s.best_trial_number, s.best_value) == (2, 0.91)  # type: ignore[union-attr]  # ties: lowest number
    assert s.best_params == trial(2).params  # type: ignore[union-attr]
    await repo.refresh_study_counts("study-a")
    assert await repo.get_study("study-a") == s  # idempotent: not even updated_at moves
    await repo.upsert_study(ctx("loss", directions=("minimize",), metric="log_loss"))
    await repo.upsert_trials("loss", [trial(0, value=0.3), trial(1, value=0.1), trial(2, "FAIL")])
    await repo.update_study_summary("loss", StudySummary(0, 0, 0, status="interrupted", stop_reason="signal"))
    await repo.refresh_study_counts("loss")
    s = await repo.get_study("loss")
    assert (s.n_completed, s.n_failed, s.best_trial_number, s.best_value) == (2, 1, 1, 0.1)  # type: ignore[union-attr]
    assert (s.status, s.stop_reason) == ("interrupted", "signal")  # type: ignore[union-attr]
    with pytest.raises(StudyNotFoundError, match="'ghost'"):
        await repo.refresh_study_counts("ghost")


async def _history(repo: HistoryRepository) -> None:
    """Three studies on the same algorithm/problem/dataset, one elsewhere."""
    await repo.upsert_study(ctx("old-max", metric="roc_auc"))
    await repo.upsert_trials("old-max", [trial(0, value=0.80), trial(1, value=0.91), trial(2, "PRUNED"),
                                         trial(3, value=float("inf")), trial(4, "FAIL"), trial(5, value=0.85)])
    await repo.upsert_study(ctx("new-max", metric="roc_auc"))
    await repo.upsert_trials("new-max", [trial(0, value=0.88, params={"max_depth": 9, "eta": 0.05}),
                                         trial(1, value=0.95, params={"max_depth": 9, "eta": 0.05})])
    await repo.upsert_study(ctx("min-loss", directions=("minimize",), metric="log_loss"))
    await repo.upsert_trials("min-loss", [trial(0, value=0.30), trial(1, value=0.10)])
    await repo.upsert_study(ctx("other-data", dataset_fingerprint="fp2"))
    await repo.upsert_trials("other-data", [trial(0, value=0.99)])


async def test_best_trials_for_algorithm_problem_and_fingerprint(repo: HistoryRepository) -> None:
    await _history(repo)
    key = dict(algorithm="xgboost", problem_type="binary_classification", dataset_fingerprint="fp1")
    best = await repo.best_trials(**key, metric="roc_auc", limit=10)
    # finite COMPLETE trials only, best first, duplicate params collapsed to their best trial
    assert [(b.study_name, b.trial.number, b.value) for b in best] == [
        ("new-max", 1, 0.95), ("old-max", 1, 0.91), ("old-max", 5, 0.85), ("old-max", 0, 0.80)]
    assert best[0].params == {"max_depth": 9, "eta": 0.05} and best[0].direction == "maximize"
    assert [b.value for b in await repo.best_trials(**key, metric="roc_auc", limit=10, distinct_params=False)] == [
        0.95, 0.91, 0.88, 0.85, 0.80]
    assert [b.value for b in await repo.best_trials(**key, metric="roc_auc", limit=2)] == [0.95, 0.91]
    assert [b.study_name for b in await repo.best_trials(**key, metric="roc_auc", exclude_study="new-max", limit=1)] == ["old-max"]
    # each study is ranked in its own direction
    assert [(b.study_name, b.value) for b in await repo.best_trials(**key, metric="log_loss")] == [
        ("min-loss", 0.10), ("min-loss", 0.30)]
    assert [b.value for b in await repo.best_trials(**{**key, "dataset_fingerprint": "fp2"})] == [0.99]
    assert await repo.best_trials(**{**key, "algorithm": "lightgbm"}) == []


async def test_list_studies_filters_and_newest_first(repo: HistoryRepository) -> None:
    await _history(repo)
    names = [s.study_name for s in await repo.list_studies()]
    assert names == ["other-data", "min-loss", "new-max", "old-max"]
    assert [s.study_name for s in await repo.list_studies(dataset_fingerprint="fp2")] == ["other-data"]
    assert [s.study_name for s in await repo.list_studies(limit=2, offset=1)] == ["min-loss", "new-max"]
    assert await repo.list_studies(algorithm="nope") == []
    assert len(await repo.list_studies(status="running", experiment_name="exp-1")) == 4


async def test_delete_study_removes_its_trials(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx())
    await repo.upsert_trials("study-a", [trial(0)])
    assert await repo.delete_study("study-a") is True
    assert await repo.delete_study("study-a") is False
    assert await repo.get_study("study-a") is None
    await repo.upsert_study(ctx())
    assert await repo.get_trials("study-a") == []


async def test_invalid_inputs_name_the_rule(repo: HistoryRepository) -> None:
    with pytest.raises(ConfigurationError, match="status"):
        await repo.upsert_study(ctx(), status="paused")
    with pytest.raises(ConfigurationError, match="direction"):
        await repo.upsert_study(ctx(directions=("up",)))
    with pytest.raises(ConfigurationError, match="limit"):
        await repo.list_studies(limit=0)
    with pytest.raises(ConfigurationError, match="study_name"):
        await repo.get_study("")
    with pytest.raises(ConfigurationError, match="trial state"):
        trial(0, "DONE")


def test_trial_record_from_optuna() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    t.set_user_attr(FAIL_REASON_ATTR, "timeout")
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    rec = TrialRecord.from_frozen_trial(study.trials[0])
    assert rec.state == "FAIL" and rec.fail_reason == "timeout" and rec.value is None and rec.values is None
    assert rec.distributions["x"]["name"] == "FloatDistribution"
    assert rec.datetime_start is not None and rec.datetime_start.tzinfo is not None
    single = optuna.create_study()
    single.optimize(lambda tr: tr.suggest_int("n", 1, 3) * 1.0, n_trials=1)
    r = TrialRecord.from_frozen_trial(single.trials[0])
    assert r.value == r.values[0] and r.params["n"] in (1, 2, 3) and r.duration_seconds is not None  # type: ignore[index]


def test_dataset_fingerprint_is_part_of_the_api() -> None:
    import numpy as np

    X = np.arange(12.0).reshape(4, 3)
    assert dataset_fingerprint(X, [0, 1, 0, 1]) == dataset_fingerprint(X.copy(), [0, 1, 0, 1])
    assert dataset_fingerprint(X, [0, 1, 0, 1]) != dataset_fingerprint(X[::-1], [0, 1, 0, 1])


async def test_best_trials_by_schema_fingerprint(repo: HistoryRepository) -> None:
    await repo.upsert_study(ctx("schema-a", dataset_fingerprint="fpA", tags={"schema_fingerprint": "s1"}))
    await repo.upsert_study(ctx("schema-b", dataset_fingerprint="fpB", tags={"schema_fingerprint": "s2"}))
    await repo.upsert_trials("schema-a", [trial(0, value=0.7)])
    await repo.upsert_trials("schema-b", [trial(1, value=0.9)])
    found = await repo.best_trials(algorithm="xgboost", problem_type="binary_classification", schema_fingerprint="s1")
    assert [bt.study_name for bt in found] == ["schema-a"]
    both = await repo.best_trials(algorithm="xgboost", problem_type="binary_classification",
                                  dataset_fingerprint="fpB", schema_fingerprint="s1")
    assert both == []
    with pytest.raises(ConfigurationError, match="dataset_fingerprint or schema_fingerprint"):
        await repo.best_trials(algorithm="xgboost", problem_type="binary_classification")

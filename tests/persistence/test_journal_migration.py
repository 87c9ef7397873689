"""Migration 003 splits the pre-003 journal (one log for every study) into per-study journals
without losing a trial: studies are written through the pre-003 protocol (its SQL function
``optuna_journal_append`` from migration 002, read back by Optuna's own JournalStorage), then the
database is migrated and every study must read back identically through the new storage."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import TrialState

from src.mlops.optimizer import OptunaOptimizer, uses_budget
from src.mlops.persistence import DEFAULT_MIGRATIONS_DIR, create_optuna_storage, migrate
from src.mlops.persistence.optuna_storage import TRIAL_ID_STRIDE

SPACE = {"x": optuna.distributions.FloatDistribution(-1, 1), "c": optuna.distributions.CategoricalDistribution(["a", "b"])}


class Pre003Backend(BaseJournalBackend):
    """The pre-003 journal protocol: one global log, appended through migration 002's function."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT body FROM optuna_journal_logs WHERE log_number >= %s ORDER BY log_number",
                                 (log_number_from,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.conn.execute("SELECT count(*) FROM optuna_journal_append(%s, %s, true, NULL)",
                          (uuid.uuid4(), [json.dumps(log) for log in logs]))


async def _pre003_database(dsn: str, tmp_path: Path) -> None:
    only_old = tmp_path / "pre003"
    only_old.mkdir()
    for name in ("001_hpo_history.sql", "002_optuna_journal.sql"):
        shutil.copy(DEFAULT_MIGRATIONS_DIR / name, only_old / name)
    assert await migrate(dsn, migrations_dir=only_old) == [1, 2]


def _write_old_studies(storage: JournalStorage) -> None:
    """Studies whose trials interleave in the global log, with every kind of state and value."""
    alpha = optuna.create_study(study_name="alpha", storage=storage, direction="minimize")
    beta = optuna.create_study(study_name="beta", storage=storage, directions=["minimize", "maximize"])
    gone = optuna.create_study(study_name="gone", storage=storage)
    odd = optuna.create_study(study_name="NaN and -Infinity", storage=storage)
    alpha.set_user_attr("nested", {"k": [1, 2], "nan": float("nan")})
    storage.set_study_system_attr(alpha._study_id, "sys", "v")
    gone.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    for i in range(6):
        a = alpha.ask(SPACE)
        b = beta.ask(SPACE)
        a.set_user_attr("i", i)
        a.report(float("nan") if i == 1 else 0.5 * i, step=0)
        a.report(float("inf"), step=1)
        if i == 1:
            alpha.tell(a, state=TrialState.PRUNED)
        elif i == 2:
            a.set_user_attr("fail_reason", "exception: boom")
            alpha.tell(a, state=TrialState.FAIL)
        elif i == 3:
            alpha.tell(a, float("inf"))
        elif i == 5:
            pass  # left RUNNING: a worker that died before the migration
        else:
            alpha.tell(a, a.params["x"])
        beta.tell(b, [b.params["x"], -b.params["x"]])
        odd.optimize(lambda t: t.suggest_float("y", 0, 1), n_trials=1)
    alpha.enqueue_trial({"x": 0.25, "c": "b"}, user_attrs={"source": "user"})  # WAITING
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(study_name="alpha", storage=storage)  # a duplicate CREATE_STUDY log
    optuna.delete_study(study_name="gone", storage=storage)
    again = optuna.create_study(study_name="gone", storage=storage)  # the name reused after deletion
    again.optimize(lambda t: t.suggest_int("n", 1, 9), n_trials=3)


def _snapshot(storage: optuna.storages.BaseStorage) -> dict[str, Any]:
    out = {}
    for summary in storage.get_all_studies():
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        out[summary.study_name] = {
            "directions": [d.name for d in study.directions],
            "user_attrs": json.dumps(study.user_attrs, sort_keys=True),
            "system_attrs": storage.get_study_system_attrs(study._study_id),
            "trials": [(t.number, t.state.name, t.params, t.distributions, json.dumps(t.user_attrs, sort_keys=True),
                        t.system_attrs, json.dumps(t.values), json.dumps(t.intermediate_values, sort_keys=True),
                        t.datetime_start, t.datetime_complete) for t in study.trials],
        }
    return out


async def test_migration_splits_the_old_journal_without_losing_a_trial(fresh_dsn: str, tmp_path: Path) -> None:
    await _pre003_database(fresh_dsn, tmp_path)
    old_storage = JournalStorage(Pre003Backend(fresh_dsn))
    _write_old_studies(old_storage)
    before = _snapshot(old_storage)
    assert set(before) == {"alpha", "beta", "gone", "NaN and -Infinity"}
    with psycopg.connect(fresh_dsn) as con:
        old_logs = con.execute("SELECT count(*) FROM optuna_journal_logs").fetchone()[0]

    assert 3 in await migrate(fresh_dsn)
    storage = create_optuna_storage(fresh_dsn)
    after = _snapshot(storage)
    assert after == before  # every study, attribute and trial, as Optuna's own replay of the old log saw it
    assert [len(s["trials"]) for s in (after["alpha"], after["beta"], after["gone"])] == [7, 6, 3]

    with psycopg.connect(fresh_dsn) as con:
        assert con.execute("SELECT count(*) FROM optuna_journal_legacy_logs").fetchone()[0] == old_logs  # kept
        deleted = con.execute("SELECT count(*) FROM optuna_journal_studies WHERE deleted_at IS NOT NULL").fetchone()[0]
        assert deleted == 1  # the first "gone", kept with its logs

    # the migrated studies go on: new trials take the next numbers and ids of their own study
    alpha = optuna.load_study(study_name="alpha", storage=storage)
    waiting = alpha.ask(SPACE)  # the trial enqueued before the migration
    assert waiting.number == 6 and waiting.params == {"x": 0.25, "c": "b"}
    alpha.tell(waiting, 0.25)
    trial = alpha.ask(SPACE)
    assert trial.number == 7 and trial._trial_id == alpha._study_id * TRIAL_ID_STRIDE + 7
    alpha.tell(trial, trial.params["x"])
    reopened = optuna.load_study(study_name="alpha", storage=create_optuna_storage(fresh_dsn)).trials
    assert [t.state.name for t in reopened[6:]] == ["COMPLETE", "COMPLETE"]


async def test_a_migrated_study_resumes_with_an_exact_budget(fresh_dsn: str, tmp_path: Path) -> None:
    """Finished trials written before slots existed are adopted into the ledger; the RUNNING trial of a
    worker that died before the migration has no slot, so it is failed as stale and its params retried."""
    await _pre003_database(fresh_dsn, tmp_path)
    old = optuna.create_study(study_name="old", storage=JournalStorage(Pre003Backend(fresh_dsn)))
    old.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=4)
    dead = old.ask()
    x_dead = dead.suggest_float("x", 0, 1)
    await migrate(fresh_dsn)

    async with OptunaOptimizer(storage=fresh_dsn) as opt:
        study = await opt.create_study(study_name="old", direction="minimize", sampler="random", seed=0)
        r = await opt.optimize(study, lambda t: t.suggest_float("x", 0, 1), n_trials=7)
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL and trials[dead.number].user_attrs["fail_reason"] == "stale"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retry) == 1 and math.isclose(retry[0].params["x"], x_dead)
    assert sum(uses_budget(t) for t in trials) == 7 == r.n_completed
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

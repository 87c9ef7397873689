"""Subprocess side of the multi-process persistence tests (run as ``python _worker.py COMMAND JSON``).

Each command prints one JSON line on stdout with what the test needs to check.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import optuna  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402

from src.mlops.persistence import (  # noqa: E402
    HistoryRecorder,
    PostgresHistoryRepository,
    create_optuna_storage,
    create_pool,
    migrate,
    resolve_database_url,
    start_embedded_postgres,
)
from src.mlops.optimizer import OptunaOptimizer  # noqa: E402
from src.mlops.trial_slots import new_worker_id  # noqa: E402
from src.mlops.types import WORKER_ATTR, StudyContext  # noqa: E402

WORKER_ID = new_worker_id()
SPACE = {"x": FloatDistribution(-5, 5), "y": FloatDistribution(0, 1)}


def _wait_until(t: float) -> None:
    while time.time() < t:
        time.sleep(0.001)


def cmd_migrate(a: dict) -> dict:
    _wait_until(a["start_at"])
    return {"applied": asyncio.run(migrate(a["dsn"], migrations_dir=a.get("migrations_dir")))}


def cmd_embedded(a: dict) -> dict:
    """Start or attach to the embedded default, write rows; optionally keep using it until told to stop."""
    _wait_until(a["start_at"])
    env = {"HPO_HOME": a["home"]}
    dsn = resolve_database_url(env)
    handle = start_embedded_postgres(a["home"])

    async def work() -> dict:
        async with await create_pool(dsn, max_size=1) as db:
            async with db.transaction() as con:
                # two concurrent CREATE TABLE IF NOT EXISTS can both try to create the row type
                # (unique violation in pg_type): serialize them
                await con.execute("SELECT pg_advisory_xact_lock(4242)")
                await con.execute("CREATE TABLE IF NOT EXISTS share_test (who TEXT, n INT)")
            await db.executemany("INSERT INTO share_test VALUES ($1, $2)", [(a["name"], i) for i in range(a["rows"])])
            if a.get("hold_until_file"):
                print(json.dumps({"ready": True, "server_pid": handle.pid}), flush=True)
                while not os.path.exists(a["hold_until_file"]):
                    await asyncio.sleep(0.02)
                # the other process has exited by now: the server must still serve us
                await db.executemany("INSERT INTO share_test VALUES ($1, $2)", [(a["name"] + "-late", i) for i in range(a["rows"])])
            n = await db.fetchval("SELECT count(*) FROM share_test")
        return {"server_pid": handle.pid, "rows_seen": n}

    return asyncio.run(work())


def _objective(params: dict) -> float:
    return (params["x"] - 1) ** 2 + params["y"]


def cmd_journal_worker(a: dict) -> dict:
    """Run exactly ``n`` ask/tell trials on a shared study."""
    _wait_until(a["start_at"])
    storage = create_optuna_storage(a["dsn"])
    study = optuna.create_study(study_name=a["study"], storage=storage, load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=a["seed"]))
    numbers = []
    for _ in range(a["n"]):
        trial = study.ask(SPACE)
        trial.set_user_attr(WORKER_ATTR, WORKER_ID)
        study.tell(trial, _objective(trial.params))
        numbers.append(trial.number)
    return {"numbers": numbers}


async def _run_until(study: optuna.Study, recorder: HistoryRecorder, context: StudyContext, n_trials: int, delay: float) -> None:
    """Ask/tell until the study has ``n_trials`` COMPLETE trials, recording each (a minimal engine)."""
    await recorder.on_study_start(study, context)
    while len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < n_trials:
        trial = await asyncio.to_thread(study.ask, SPACE)
        await asyncio.to_thread(trial.set_user_attr, WORKER_ATTR, WORKER_ID)
        await asyncio.sleep(delay)  # "training"
        frozen = await asyncio.to_thread(study.tell, trial, _objective(trial.params))
        await recorder.on_trial_finished(study, frozen)
    await recorder.flush(timeout=30)


def cmd_kill_worker(a: dict) -> dict:
    """Study with journal storage + history recorder; resumable; optionally reaps stale trials first."""

    async def main() -> dict:
        storage = create_optuna_storage(a["dsn"])
        study = optuna.create_study(study_name=a["study"], storage=storage, load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(seed=a["seed"]))
        # what the engine does on resume: the killed raw ask/tell worker's RUNNING trial has no slot,
        # so the PostgreSQL ledger knows it as an orphan of a dead worker
        reaped = []
        if a.get("reap"):
            async with OptunaOptimizer() as opt:
                reaped = await asyncio.to_thread(opt.reap_stale, study)
        context = StudyContext(study_name=a["study"], directions=("minimize",), algorithm="toy",
                               problem_type="regression", dataset_fingerprint="fp", n_trials=a["n_trials"])
        async with await create_pool(a["dsn"], max_size=2) as db:
            recorder = HistoryRecorder(PostgresHistoryRepository(db))
            print(json.dumps({"started": True, "pid": os.getpid()}), flush=True)
            await _run_until(study, recorder, context, a["n_trials"], a["delay"])
            await recorder.aclose()
        return {"reaped": reaped}

    return asyncio.run(main())


def cmd_engine_worker(a: dict) -> dict:
    """An engine worker (``OptunaOptimizer.optimize``) on a shared study, with its own host id and lease.

    ``tune``: the real objective (LightGBM on a small table, through run_hyperparameter_optimization,
    so a fresh study gets its defaults and portfolio); otherwise each trial sleeps ``trial_s`` seconds
    (``block``: forever -- a worker the test freezes or kills)."""
    from src.mlops.optuna_optimizer import run_hyperparameter_optimization

    async def main() -> dict:
        async with OptunaOptimizer(storage=a["dsn"], host_id=a["host"], heartbeat_interval=a.get("heartbeat", 5.0),
                                   lease_duration=a.get("lease", 60.0)) as opt:
            _wait_until(a.get("start_at", 0))
            if a.get("tune"):
                from sklearn.datasets import load_breast_cancer

                X, y = load_breast_cancer(return_X_y=True, as_frame=True)
                r = await run_hyperparameter_optimization(
                    "lightgbm", "binary_classification", X[:200], y[:200], X[200:300], y[200:300],
                    n_trials=a["n_trials"], study_name=a["study"], storage=a["dsn"], optimizer=opt, pruner="none",
                    seed=None, early_stopping_rounds=5)  # the default space (so a portfolio), short fits
                return {"worker_id": opt.worker_id, "n_completed": r.n_completed}
            study = await opt.create_study(study_name=a["study"], direction="minimize", sampler="random")
            print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)

            def objective(trial: optuna.Trial) -> float:
                x = trial.suggest_float("x", 0, 1)
                time.sleep(3600 if a.get("block") else a["trial_s"])
                return x

            r = await opt.optimize(study, objective, n_trials=a["n_trials"], max_trials=a.get("max_trials"))
            return {"worker_id": opt.worker_id, "n_completed": r.n_completed}

    return asyncio.run(main())


if __name__ == "__main__":
    command, args = sys.argv[1], json.loads(sys.argv[2])
    out = {"cmd_migrate": cmd_migrate, "cmd_embedded": cmd_embedded, "cmd_journal_worker": cmd_journal_worker,
           "cmd_kill_worker": cmd_kill_worker, "cmd_engine_worker": cmd_engine_worker}["cmd_" + command.replace("-", "_")](args)
    print(json.dumps(out), flush=True)

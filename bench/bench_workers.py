"""Many workers on one study, and studies among many (issue 11): figures from one run.

1. Efficiency: k worker processes share one study of ``k * --trials-per-worker`` trials; each trial
   sleeps ``--trial-s`` seconds (0.2 s: the cost of coordination, not of CPU, is measured) after
   TPE sampled it. Throughput = trials / (last completion - first start), from the trials' own
   timestamps, so process start-up is not counted (workers start together after a barrier).
   Efficiency(k) = throughput(k) / (k * throughput(1)). Arms: ``ours`` (``OptunaOptimizer.optimize``
   on the PostgreSQL journals with the trial ledger: exact budget) and, for reference, plain Optuna's
   ``study.optimize`` on ``RDBStorage`` (PostgreSQL) and on a ``JournalFileBackend`` (each process
   runs its share: no shared budget).
2. Open time vs other studies: the time to open a 200-trial study (fresh storage, load, read its
   trials), and to create a new study and run one trial, with 0, 100 and 1,000 other studies of 50
   trials in the database.

    ./run bench bench_workers                       # embedded PostgreSQL in a temporary HPO_HOME
    ./run bench bench_workers --workers 1 2 4 --arms ours,rdb,journal-file
    DATABASE_URL=postgresql://... ./run bench bench_workers
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_storage import admin_server, drop_database, make_database  # noqa: E402
from src.mlops.persistence import create_optuna_storage, redact_dsn, to_sqlalchemy_url  # noqa: E402
from tests.persistence._helpers import add_other_studies  # noqa: E402

ARMS = ("ours", "rdb", "journal-file")


# ---------------------------------------------------------------------------------------------
# child: one worker process
# ---------------------------------------------------------------------------------------------
def child(arm: str, storage_url: str, study: str, n_trials: int, share: int, trial_s: float, go: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -5, 5)
        y = trial.suggest_float("y", 1e-3, 1.0, log=True)
        time.sleep(trial_s)
        return (x - 1) ** 2 + y

    def wait_for_go() -> None:
        print("ready", flush=True)
        while not os.path.exists(go):
            time.sleep(0.005)

    if arm == "ours":
        from src.mlops.optimizer import OptunaOptimizer

        async def main() -> None:
            async with OptunaOptimizer(storage=storage_url) as opt:
                s = await opt.create_study(study_name=study, direction="minimize", sampler="tpe")
                await asyncio.to_thread(opt.slots_for, s)  # connect the ledger before the clock starts
                wait_for_go()
                await opt.optimize(s, objective, n_trials=n_trials)

        asyncio.run(main())
        return
    if arm == "rdb":
        storage = optuna.storages.get_storage(optuna.storages.RDBStorage(storage_url, engine_kwargs={"pool_pre_ping": True}))
    else:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(storage_url))
    s = optuna.create_study(study_name=study, storage=storage, load_if_exists=True, direction="minimize",
                            sampler=optuna.samplers.TPESampler())
    wait_for_go()
    s.optimize(objective, n_trials=share)


# ---------------------------------------------------------------------------------------------
# parent
# ---------------------------------------------------------------------------------------------
def run_workers(arm: str, url: str, k: int, share: int, trial_s: float, tmp: str) -> float:
    """Trials per second of ``k`` processes on one fresh study."""
    study = f"eff-{arm}-{k}-{uuid.uuid4().hex[:6]}"
    go = os.path.join(tmp, f"go-{study}")
    if arm == "rdb":
        optuna.create_study(study_name=study, storage=url, direction="minimize")  # schema and study, once
    procs = [subprocess.Popen([sys.executable, __file__, "--child", arm, url, study, str(k * share), str(share),
                               str(trial_s), go], stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
             for _ in range(k)]
    for p in procs:
        line = p.stdout.readline().strip()  # type: ignore[union-attr]
        if line != "ready":
            raise RuntimeError(f"worker of {arm} failed to start (rc={p.wait()})")
    Path(go).touch()
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError(f"worker of {arm} failed (rc={p.returncode})")
    storage: optuna.storages.BaseStorage
    if arm == "ours":
        storage = create_optuna_storage(url)
    elif arm == "rdb":
        storage = optuna.storages.RDBStorage(url)
    else:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(url))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if arm == "ours" and len(done) != k * share:
        raise RuntimeError(f"ours: {len(done)} trials finished, budget {k * share}")
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return len(done) / span


def open_ms(dsn: str, name: str) -> float:
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        s = optuna.load_study(study_name=name, storage=create_optuna_storage(dsn))
        len(s.trials)
        best.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(best)


def create_and_one_trial_ms(dsn: str) -> float:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        s = optuna.create_study(study_name=f"new-{uuid.uuid4().hex[:8]}", storage=create_optuna_storage(dsn))
        s.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        arm, url, study, n, share, trial_s, go = sys.argv[2:9]
        child(arm, url, study, int(n), int(share), float(trial_s), go)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--trials-per-worker", type=int, default=25)
    ap.add_argument("--trial-s", type=float, default=0.2)
    ap.add_argument("--arms", default="ours,rdb,journal-file")
    ap.add_argument("--others", type=int, nargs="+", default=[0, 100, 1000], help="other studies for the open-time table")
    ap.add_argument("--skip-open", action="store_true")
    args = ap.parse_args()
    arms = args.arms.split(",")
    if unknown := set(arms) - set(ARMS):
        ap.error(f"unknown arms {sorted(unknown)}; choose among {list(ARMS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tmp = tempfile.mkdtemp(prefix="hpo-bench-workers-")
    admin, embedded = admin_server(os.path.join(tmp, "home"))
    print(f"PostgreSQL: {redact_dsn(admin)}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}\n")
    dbs: list[str] = []
    try:
        urls = {}
        if "ours" in arms:
            dbs.append(f"hpo_bench_ours_{os.getpid()}")
            urls["ours"] = asyncio.run(make_database(admin, dbs[-1], migrated=True))
        if "rdb" in arms:
            dbs.append(f"hpo_bench_rdb_{os.getpid()}")
            urls["rdb"] = to_sqlalchemy_url(asyncio.run(make_database(admin, dbs[-1], migrated=False)))
        if "journal-file" in arms:
            urls["journal-file"] = os.path.join(tmp, "journal.log")

        rates: dict[str, dict[int, float]] = {arm: {} for arm in arms}
        for k in args.workers:  # arms interleaved per k: load from elsewhere hits them alike
            for arm in arms:
                rates[arm][k] = run_workers(arm, urls[arm], k, args.trials_per_worker, args.trial_s, tmp)
                print(f"  {arm:<12} k={k}: {rates[arm][k]:.2f} trials/s", flush=True)
        print(f"\nEfficiency = throughput(k) / (k x throughput(1)); {args.trials_per_worker} trials per worker, "
              f"{args.trial_s} s trials, TPE\n")
        print("| storage | " + " | ".join(f"k={k} trials/s" for k in args.workers) + " | "
              + " | ".join(f"efficiency k={k}" for k in args.workers if k > 1) + " |")
        print("|---" * (1 + len(args.workers) + sum(k > 1 for k in args.workers)) + "|")
        for arm in arms:
            base = rates[arm].get(1)
            effs = [rates[arm][k] / (k * base) if base else float("nan") for k in args.workers if k > 1]
            print(f"| {arm} | " + " | ".join(f"{rates[arm][k]:.2f}" for k in args.workers) + " | "
                  + " | ".join(f"{e:.2f}" for e in effs) + " |")

        if not args.skip_open:
            dbs.append(f"hpo_bench_open_{os.getpid()}")
            dsn = asyncio.run(make_database(admin, dbs[-1], migrated=True))
            target = optuna.create_study(study_name="target", storage=create_optuna_storage(dsn),
                                         sampler=optuna.samplers.RandomSampler(seed=0))
            target.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=200)
            print("\n| other studies (50 trials each) | logs in the database | open a 200-trial study, ms | "
                  "create a study + 1 trial, ms |")
            print("|---|---|---|---|")
            present = 0
            for n in sorted(args.others):
                if n > present:
                    add_other_studies(dsn, n - present, 50)
                    present = n
                with psycopg.connect(dsn) as con:
                    logs = con.execute("SELECT count(*) FROM optuna_journal_logs").fetchone()[0]
                print(f"| {n} | {logs:,} | {open_ms(dsn, 'target'):.1f} | {create_and_one_trial_ms(dsn):.1f} |",
                      flush=True)
    finally:
        for name in dbs:
            asyncio.run(drop_database(admin, name))
        if embedded is not None:
            embedded.release()


if __name__ == "__main__":
    main()

"""Optuna storage overhead per trial, side by side in one run (SPEC F18, F25).

Backends: in-memory, JournalStorage on a file, RDBStorage on PostgreSQL (wrapped by
``optuna.storages.get_storage``, i.e. with its cache), and our per-study journals on PostgreSQL
(``create_optuna_storage``). Each runs the same ask/tell loop: TPE (seeded), two float params, a
trivial objective, one user attribute per trial. Two more arms run the engine itself,
``OptunaOptimizer.optimize`` (its trial lifecycle included: the ledger's reservation transaction,
slot, lease), in memory and on PostgreSQL: their difference is what the lifecycle and the storage
cost per trial (target: at most 10 ms). The backends advance in lockstep (trial i of each, then
trial i+1 ...; the engine arms in chunks of ``--chunk`` trials), so other load on the machine
affects them alike. Reported: median and p90 wall time per trial over the last ``--window`` trials
(900-1000 by default), the overhead over in-memory, and the ratio to it; plus the time to re-open
the finished study from a fresh storage.
PostgreSQL runs on the same machine: on few cores, numpy's idle-spinning BLAS threads (TPE) compete
with it, which ``OPENBLAS_NUM_THREADS=1`` removes.

    ./run bench bench_storage                      # embedded PostgreSQL in a temporary HPO_HOME
    DATABASE_URL=postgresql://... ./run bench bench_storage --n-trials 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.mlops.persistence import (  # noqa: E402
    EmbeddedPostgres,
    create_optuna_storage,
    create_pool,
    migrate,
    redact_dsn,
    resolve_database_url,
    start_embedded_postgres,
    to_sqlalchemy_url,
    with_database,
)

DISTRIBUTIONS = {"x": FloatDistribution(-10, 10), "y": FloatDistribution(1e-3, 1.0, log=True)}


class Runner:
    """One backend's study, advanced one ask/tell trial at a time."""

    def __init__(self, storage: optuna.storages.BaseStorage | None, seed: int) -> None:
        self.study = optuna.create_study(
            study_name=f"bench-{uuid.uuid4().hex[:8]}", storage=storage, sampler=optuna.samplers.TPESampler(seed=seed)
        )
        self.times: list[float] = []

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            trial = self.study.ask(DISTRIBUTIONS)
            trial.set_user_attr("worker_id", f"bench:{os.getpid()}")
            value = (trial.params["x"] - 2) ** 2 + trial.params["y"]
            self.study.tell(trial, value)
            self.times.append((time.perf_counter() - t0) * 1e3)


class EngineRunner:
    """The engine (``OptunaOptimizer.optimize``) on one study, advanced ``n`` trials per step; a trial's
    time is the gap between consecutive trial completions within a step (the call's own set-up is
    left out)."""

    def __init__(self, storage: str | None, seed: int) -> None:
        from src.mlops.optimizer import OptunaOptimizer

        self.loop = asyncio.new_event_loop()
        self.opt = OptunaOptimizer(storage=storage)
        self.study = self.loop.run_until_complete(self.opt.create_study(
            study_name=f"bench-{uuid.uuid4().hex[:8]}", direction="minimize", sampler="tpe", seed=seed))
        self.times: list[float] = []
        self.done = 0

    @staticmethod
    def objective(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", -10, 10) - 2) ** 2 + trial.suggest_float("y", 1e-3, 1.0, log=True)

    def step(self, n: int = 1) -> None:
        stamps: list[float] = []
        self.done += n
        self.loop.run_until_complete(self.opt.optimize(
            self.study, self.objective, n_trials=self.done, callbacks=[lambda s, t: stamps.append(time.perf_counter())]))
        self.times += [(b - a) * 1e3 for a, b in zip(stamps, stamps[1:])]

    def close(self) -> None:
        self.loop.run_until_complete(self.opt.aclose())
        self.loop.close()


def reopen_ms(make: Callable[[], optuna.storages.BaseStorage], study_name: str) -> float:
    t0 = time.perf_counter()
    study = optuna.load_study(study_name=study_name, storage=make())
    len(study.trials)
    return (time.perf_counter() - t0) * 1e3


async def make_database(admin_dsn: str, name: str, *, migrated: bool) -> str:
    async with await create_pool(admin_dsn, max_size=1) as db:
        await db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await db.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(admin_dsn, name)
    if migrated:
        await migrate(dsn)
    return dsn


async def checkpoint(admin_dsn: str) -> None:
    async with await create_pool(admin_dsn, max_size=1) as db:
        try:
            await db.execute("CHECKPOINT")
        except Exception as e:  # needs superuser or pg_checkpoint on an external server
            print(f"  (no CHECKPOINT: {e})")


async def drop_database(admin_dsn: str, name: str) -> None:
    async with await create_pool(admin_dsn, max_size=1) as db:
        await db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_server(home: str) -> tuple[str, EmbeddedPostgres | None]:
    """``DATABASE_URL``'s server, or an embedded one in ``home`` (release it when done)."""
    if os.environ.get("DATABASE_URL"):
        return resolve_database_url(), None
    embedded = start_embedded_postgres(home)
    return embedded.dsn(), embedded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-trials", type=int, default=1000)
    ap.add_argument("--window", type=int, default=100, help="median over the last WINDOW trials")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="inmemory,journal-file,journal-postgres,rdb-postgres,engine-inmemory,engine-postgres")
    ap.add_argument("--chunk", type=int, default=50, help="engine arms: trials per optimize call")
    ap.add_argument("--hpo-home", default=None, help="HPO_HOME of the embedded server (default: a temporary directory)")
    args = ap.parse_args()
    if not 1 <= args.window <= args.n_trials:
        ap.error(f"1 <= --window <= --n-trials must hold, got window={args.window}, n_trials={args.n_trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    tmp = tempfile.TemporaryDirectory(prefix="hpo-bench-")
    admin_dsn, embedded = admin_server(args.hpo_home or os.path.join(tmp.name, "home"))
    print(f"PostgreSQL: {redact_dsn(admin_dsn)}")
    print(f"{args.n_trials} trials per backend, TPE(seed={args.seed}), window = trials "
          f"{args.n_trials - args.window}-{args.n_trials}, {os.cpu_count()} CPUs, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}\n")

    created: list[str] = []
    factories: dict[str, Callable[[], optuna.storages.BaseStorage | None]] = {}
    engine_urls: dict[str, str | None] = {}
    for backend in args.backends.split(","):
        if backend == "inmemory":
            factories[backend] = lambda: None
        elif backend == "journal-file":
            path = os.path.join(tmp.name, "journal.log")
            factories[backend] = lambda p=path: optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(p))
        elif backend == "rdb-postgres":
            name = f"hpo_bench_rdb_{os.getpid()}"
            dsn = asyncio.run(make_database(admin_dsn, name, migrated=False))
            created.append(name)
            url = to_sqlalchemy_url(dsn)
            optuna.storages.RDBStorage(url)  # create the schema once, before timing
            factories[backend] = lambda u=url: optuna.storages.get_storage(
                optuna.storages.RDBStorage(u, engine_kwargs={"pool_pre_ping": True})
            )
        elif backend in ("journal-postgres", "engine-postgres"):
            name = f"hpo_bench_{backend.replace('-', '_')}_{os.getpid()}"
            dsn = asyncio.run(make_database(admin_dsn, name, migrated=True))
            created.append(name)
            factories[backend] = lambda d=dsn: create_optuna_storage(d)
            engine_urls[backend] = dsn
        elif backend == "engine-inmemory":
            factories[backend] = lambda: None
            engine_urls[backend] = None
        else:
            ap.error(f"unknown backend {backend!r}; choose among inmemory, journal-file, rdb-postgres, journal-postgres, "
                     "engine-inmemory, engine-postgres")

    results = {}
    try:
        for backend in factories:
            if backend.endswith("-postgres"):
                asyncio.run(checkpoint(admin_dsn))  # no dirty pages left over from setting up
        runners: dict[str, Runner | EngineRunner] = {
            backend: EngineRunner(engine_urls[backend], args.seed) if backend in engine_urls else Runner(make(), args.seed)
            for backend, make in factories.items()}
        # lockstep: trial i of every backend runs back to back (chunks of them for the engine), so load
        # from elsewhere on the machine hits all of them alike and the windows compare the same trials
        for i in range(0, args.n_trials, args.chunk):
            n = min(args.chunk, args.n_trials - i)
            for runner in runners.values():
                runner.step(n)
            print(f"  {i + n} trials", flush=True)
        for backend, runner in runners.items():
            window = runner.times[-args.window :]
            reopen = (reopen_ms(factories[backend], runner.study.study_name)  # type: ignore[arg-type]
                      if backend not in ("inmemory", "engine-inmemory") else float("nan"))
            results[backend] = (statistics.median(window), statistics.quantiles(window, n=10)[-1], sum(runner.times) / 1e3, reopen)
            if isinstance(runner, EngineRunner):
                runner.close()
    finally:
        for name in created:
            asyncio.run(drop_database(admin_dsn, name))
        if embedded is not None:
            embedded.release()  # stops it unless another process uses it

    base = results.get("inmemory", (float("nan"),))[0]
    engine_base = results.get("engine-inmemory", (float("nan"),))[0]
    print()
    header = f"| {'backend':<17} | {'median ms/trial':>15} | {'p90 ms':>7} | {'overhead ms':>11} | {'x in-memory':>11} | {'total s':>7} | {'reopen ms':>9} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for backend, (med, p90, total, reopen) in results.items():
        b = engine_base if backend.startswith("engine-") else base  # the engine is compared with itself in memory
        print(f"| {backend:<17} | {med:>15.2f} | {p90:>7.2f} | {med - b:>11.2f} | {med / b:>11.2f} | {total:>7.1f} | {reopen:>9.0f} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
